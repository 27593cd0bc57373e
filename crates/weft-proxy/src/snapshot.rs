//! The proxy's whole config at one moment: immutable, assembled from the
//! converted CDS, EDS, LDS and RDS resources, checked for dangling
//! references, and swapped in atomically ([`arc_swap::ArcSwap`]). A
//! request loads the snapshot once and uses it to its end, so a new one
//! never disturbs what is in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::balance::Balancer;
use crate::breaker::Breakers;
use crate::cluster::{Cluster, Discovery};
use crate::endpoint::{ActiveRequest, Address, Endpoint, LoadAssignment};
use crate::fasthash::FastMap;
use crate::listener::{Listener, NetworkFilter, Routes};
use crate::outlier::{Detector, Outcome, OutlierStats};
use crate::route::RouteTable;

/// The converted resources of each type, by name.
#[derive(Clone, Debug, Default)]
pub struct Parts {
    /// CDS.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// EDS, by cluster (service) name.
    pub assignments: BTreeMap<String, Arc<LoadAssignment>>,
    /// LDS.
    pub listeners: BTreeMap<String, Arc<Listener>>,
    /// RDS.
    pub routes: BTreeMap<String, Arc<RouteTable>>,
    /// The version of each type (`CDS`, `EDS`, `LDS`, `RDS`).
    pub versions: BTreeMap<&'static str, String>,
}

/// A reference to a resource the config doesn't have.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{from} references cluster {cluster}, which CDS does not have")]
pub struct MissingCluster {
    /// What refers to it (`route configuration 9080`, `listener X`).
    pub from: String,
    /// The cluster.
    pub cluster: String,
}

/// A cluster with its endpoints, ready for requests, and its live state:
/// circuit breaker counts and outlier detection (whose task rebuilds the
/// balancer when ejections change).
#[derive(Debug)]
pub struct ClusterEntry {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// All its endpoints.
    pub assignment: Arc<LoadAssignment>,
    /// The endpoints it balances over (all but loops to its own listeners).
    usable: Vec<Arc<Endpoint>>,
    /// Its balancer, built over them (or kept from the last snapshot,
    /// when neither they nor the cluster's balancing changed), rebuilt
    /// when outlier detection ejects or returns an endpoint.
    balancer: ArcSwap<Balancer>,
    /// Circuit breaker counts (kept while the cluster's limits stay).
    pub breakers: Arc<Breakers>,
    /// Outlier detection counters (kept while the cluster stays).
    pub outlier_stats: Arc<OutlierStats>,
    /// Wakes the outlier detection task (to stop, once retired).
    wake: Arc<Notify>,
    /// Held while an outlier decision is made ([`ClusterEntry::detect_now`]).
    detecting: std::sync::Mutex<()>,
    /// Set when a newer snapshot replaced it: its task stops.
    retired: AtomicBool,
}

/// The clusters of the last snapshot, whose live state (breaker counts,
/// outlier state and stats) the next one takes over. A cluster whose
/// config and endpoints are unchanged — the same [`Cluster`] and
/// [`LoadAssignment`] (`Arc`s `xds::state` keeps while a push doesn't
/// change them), and for a static cluster the same listeners of the
/// proxy's own — keeps its whole entry: a push of other resources
/// rebuilds nothing of it. EDS clusters whose endpoints and balancing
/// settings are unchanged keep their balancer at least: Maglev tables and
/// rings aren't rebuilt, round robin doesn't restart.
#[derive(Debug, Default)]
pub struct Reuse {
    clusters: Arc<ClusterMap>,
    /// The addresses of the proxy's own bound listeners then.
    own: BTreeSet<std::net::SocketAddr>,
}

impl Reuse {
    /// What `snapshot` can pass on.
    pub fn of(snapshot: &Snapshot) -> Reuse {
        Reuse {
            clusters: snapshot.clusters.clone(),
            own: snapshot.own.clone(),
        }
    }

    /// The old entry of `c`, if nothing it was built from changed.
    fn entry(
        &self,
        c: &Arc<Cluster>,
        assignments: &BTreeMap<String, Arc<LoadAssignment>>,
        own: &BTreeSet<std::net::SocketAddr>,
    ) -> Option<Arc<ClusterEntry>> {
        let old = self.clusters.get(&c.name)?;
        let same = Arc::ptr_eq(&old.cluster, c)
            && match &c.discovery {
                Discovery::Eds(service) => assignments
                    .get(service)
                    .is_some_and(|a| Arc::ptr_eq(a, &old.assignment)),
                // Its endpoints are the cluster's own; which of them loop
                // back into the proxy depends on its listeners.
                Discovery::Static => self.own == *own,
                Discovery::OriginalDst => true,
            };
        same.then(|| old.clone())
    }

    fn balancer(&self, c: &Cluster, assignment: &Arc<LoadAssignment>) -> Option<Arc<Balancer>> {
        let old = self.clusters.get(&c.name)?;
        (matches!(c.discovery, Discovery::Eds(_))
            && Arc::ptr_eq(&old.assignment, assignment)
            && old.cluster.lb_policy == c.lb_policy
            && old.cluster.lb == c.lb)
            .then(|| old.balancer.load_full())
    }
}

impl ClusterEntry {
    /// Picks an endpoint for a request without a hash (consistent-hash
    /// clusters pick at random then).
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        self.balancer.load().pick(None).cloned()
    }

    /// Picks an endpoint for a request with `hash` (its route's hash
    /// policy's result).
    pub fn pick_hashed(&self, hash: Option<u64>) -> Option<Arc<Endpoint>> {
        self.balancer.load().pick(hash).cloned()
    }

    /// The balancer in force.
    pub fn balancer(&self) -> Arc<Balancer> {
        self.balancer.load_full()
    }

    /// Records what an attempt to `endpoint` came to, for outlier
    /// detection (nothing when the cluster has none).
    pub fn record(&self, endpoint: Option<&ActiveRequest>, outcome: Option<Outcome>) {
        let (Some(config), Some(e), Some(outcome)) = (&self.cluster.outlier, endpoint, outcome)
        else {
            return;
        };
        if e.endpoint().outlier.record(config, outcome) {
            // A threshold was reached: ejected here, on the request path,
            // so the very next pick already avoids the endpoint (a task
            // woken to do it may run only requests later on a busy
            // worker). Rare: once per outlier found.
            self.detect_now(|d, now| d.eject_pending(now));
        }
    }

    /// Runs one decision of its outlier detection (`f`, true if an
    /// endpoint went out or came back) and rebuilds the balancer if so;
    /// one at a time per cluster, so the `max_ejection_percent` count
    /// holds.
    fn detect_now(&self, f: impl FnOnce(&Detector<'_>, std::time::Instant) -> bool) {
        let Some(d) = self.detector() else { return };
        let _one = crate::outlier::lock(&self.detecting);
        if f(&d, std::time::Instant::now()) {
            self.rebalance();
        }
    }

    /// Its outlier detection, when it has one.
    pub fn detector(&self) -> Option<Detector<'_>> {
        Some(Detector {
            config: self.cluster.outlier.as_ref()?,
            hosts: &self.usable,
            stats: &self.outlier_stats,
        })
    }

    /// Rebuilds the balancer from the endpoints' health now.
    pub fn rebalance(&self) {
        let c = &self.cluster;
        self.balancer.store(Arc::new(Balancer::new(
            c.lb_policy,
            &c.lb,
            &self.usable,
            self.assignment.overprovisioning,
        )));
    }
}

/// One cluster's outlier detection task: sweeps every interval (success
/// rates, failure percentages, ejections that are over; the request path
/// ejects consecutive-failure outliers itself); ends when its entry is
/// replaced or gone.
async fn detect(entry: Weak<ClusterEntry>, wake: Arc<Notify>, interval: std::time::Duration) {
    let start = tokio::time::Instant::now() + interval;
    let mut tick = tokio::time::interval_at(start, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let Some(e) = entry.upgrade() else { return };
        if e.retired.load(Ordering::Relaxed) {
            return;
        }
        e.detect_now(|d, now| d.sweep(now));
    }
}

/// Cluster entries by name, with the fast hash (the names come from
/// config; SipHash of each name was most of a push that rebuilt the map).
pub type ClusterMap = FastMap<String, Arc<ClusterEntry>>;

/// The config in force.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// What it was built from.
    pub parts: Parts,
    /// Clusters by name (the same map as the last snapshot's when no
    /// cluster changed; looked up per request: a fast hash).
    pub clusters: Arc<ClusterMap>,
    /// Outbound HTTP routes by port, from the `0.0.0.0_<port>` listeners,
    /// with their connection manager's header settings.
    outbound_http: HashMap<u16, (Arc<RouteTable>, Arc<crate::forwarded::Config>)>,
    /// The addresses of the listeners the proxy binds itself.
    own: BTreeSet<std::net::SocketAddr>,
}

impl Snapshot {
    /// Assembles a snapshot; fails, naming every dangling cluster
    /// reference, rather than applying part of it.
    pub fn build(parts: Parts) -> Result<Snapshot, Vec<MissingCluster>> {
        Self::build_reusing(parts, &Reuse::default())
    }

    /// As [`Snapshot::build`], keeping the unchanged entries (or at least
    /// balancers) of `reuse`.
    pub fn build_reusing(parts: Parts, reuse: &Reuse) -> Result<Snapshot, Vec<MissingCluster>> {
        let mut missing = BTreeSet::new();
        let check = |from: String, cluster: &str, missing: &mut BTreeSet<MissingCluster>| {
            if !parts.clusters.contains_key(cluster) {
                missing.insert(MissingCluster {
                    from,
                    cluster: cluster.to_string(),
                });
            }
        };
        let referenced: BTreeSet<&str> = parts
            .listeners
            .values()
            .flat_map(|l| l.rds_names())
            .collect();
        for (name, table) in &parts.routes {
            if referenced.contains(name.as_str()) {
                for c in table.clusters() {
                    check(format!("route configuration {name}"), c, &mut missing);
                }
            }
        }
        for l in parts.listeners.values() {
            for chain in l.chains.iter().chain(l.default_chain.as_ref()) {
                let clusters: Vec<&str> = match &chain.filter {
                    NetworkFilter::Tcp(t) => t.clusters().collect(),
                    NetworkFilter::Http(Routes::Inline(t)) => t.clusters().into_iter().collect(),
                    NetworkFilter::Http(Routes::Rds(_)) => Vec::new(),
                };
                for c in clusters {
                    check(
                        format!("listener {} chain {}", l.name, chain.name),
                        c,
                        &mut missing,
                    );
                }
            }
        }
        if !missing.is_empty() {
            return Err(missing.into_iter().collect());
        }
        // A static endpoint on one of the proxy's own bound listeners would
        // send requests back into the proxy forever (explicit mode without
        // --app: Istio's default app address 127.0.0.1:<port> is the
        // listener's own).
        let own: BTreeSet<std::net::SocketAddr> = parts
            .listeners
            .values()
            .filter(|l| l.bind)
            .filter_map(|l| l.address)
            .collect();
        // No cluster changed (a push of routes, listeners or other
        // clusters' endpoints): the last snapshot's map as it is.
        let unchanged = parts.clusters.len() == reuse.clusters.len()
            && parts
                .clusters
                .values()
                .all(|c| reuse.entry(c, &parts.assignments, &own).is_some());
        let clusters = if unchanged {
            reuse.clusters.clone()
        } else {
            Arc::new(Self::entries(&parts, reuse, &own))
        };
        let mut outbound_http = HashMap::new();
        for l in parts.listeners.values() {
            let Some(port) = l
                .name
                .strip_prefix("0.0.0.0_")
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            let Some(chain) = l.http_chain() else {
                continue;
            };
            let table = match &chain.filter {
                NetworkFilter::Http(Routes::Rds(name)) => parts.routes.get(name).cloned(),
                NetworkFilter::Http(Routes::Inline(t)) => Some(t.clone()),
                NetworkFilter::Tcp(_) => None,
            };
            if let Some(t) = table {
                outbound_http.insert(port, (t, chain.forwarded.clone()));
            }
        }
        Ok(Snapshot {
            parts,
            clusters,
            outbound_http,
            own,
        })
    }

    /// Every cluster's entry: the old one where nothing changed, else a
    /// new one taking over the old one's live state; the old entries not
    /// kept are retired (their outlier tasks stop).
    fn entries(parts: &Parts, reuse: &Reuse, own: &BTreeSet<std::net::SocketAddr>) -> ClusterMap {
        let empty = Arc::new(LoadAssignment::default());
        let clusters: ClusterMap = parts
            .clusters
            .iter()
            .map(|(name, c)| {
                if let Some(kept) = reuse.entry(c, &parts.assignments, own) {
                    return (name.clone(), kept);
                }
                let assignment = match (&c.discovery, &c.load_assignment) {
                    (Discovery::Eds(service), _) => parts
                        .assignments
                        .get(service)
                        .cloned()
                        .unwrap_or_else(|| empty.clone()),
                    (_, Some(la)) => Arc::new(LoadAssignment {
                        cluster: la.cluster.clone(),
                        endpoints: la
                            .endpoints
                            .iter()
                            .map(|e| Arc::new(e.fresh_copy()))
                            .collect(),
                        overprovisioning: la.overprovisioning,
                    }),
                    _ => empty.clone(),
                };
                let mut usable = assignment.endpoints.clone();
                if c.discovery == Discovery::Static {
                    usable.retain(|e| match &e.address {
                        Address::Socket(a) if own.contains(a) => {
                            tracing::error!(target: "weft::proxy", cluster = %c.name, endpoint = %a, "the app address is the proxy's own listener (a loop): give the app's address with --app; the cluster gets no traffic");
                            false
                        }
                        _ => true,
                    });
                }
                (name.clone(), entry(c, assignment, usable, reuse))
            })
            .collect();
        // The entries replaced (or gone) stop their outlier tasks.
        for (name, old) in reuse.clusters.iter() {
            if !clusters.get(name).is_some_and(|e| Arc::ptr_eq(e, old)) {
                old.retired.store(true, Ordering::Relaxed);
                old.wake.notify_one();
            }
        }
        clusters
    }

    /// The routes for outbound HTTP to `port`.
    pub fn outbound_routes(&self, port: u16) -> Option<&Arc<RouteTable>> {
        self.outbound_http.get(&port).map(|(t, _)| t)
    }

    /// [`Snapshot::outbound_routes`] with the header settings of the
    /// listener's connection manager.
    pub fn outbound_http(&self, port: u16) -> Option<(&RouteTable, &crate::forwarded::Config)> {
        self.outbound_http.get(&port).map(|(t, f)| (&**t, &**f))
    }

    /// The outbound listener for connections to `port` (`0.0.0.0_<port>`)
    /// or, for a service with its own address, `<ip>_<port>`.
    pub fn outbound_listener(
        &self,
        ip: Option<std::net::IpAddr>,
        port: u16,
    ) -> Option<&Arc<Listener>> {
        ip.and_then(|ip| self.parts.listeners.get(&format!("{ip}_{port}")))
            .or_else(|| self.parts.listeners.get(&format!("0.0.0.0_{port}")))
    }

    /// The listeners the proxy binds itself.
    pub fn bound_listeners(&self) -> impl Iterator<Item = &Arc<Listener>> {
        self.parts
            .listeners
            .values()
            .filter(|l| l.bind && l.address.is_some())
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&ClusterEntry> {
        self.clusters.get(name).map(|e| &**e)
    }
}

/// A cluster's entry: its balancer (kept when unchanged), and the live
/// state of the cluster's last entry taken over — breaker counts while
/// the limits stay, outlier stats, and each endpoint's outlier state by
/// address; its outlier task started (within a tokio runtime).
fn entry(
    c: &Arc<Cluster>,
    assignment: Arc<LoadAssignment>,
    usable: Vec<Arc<Endpoint>>,
    reuse: &Reuse,
) -> Arc<ClusterEntry> {
    let old = reuse.clusters.get(&c.name);
    if c.outlier.is_none() {
        // Outlier detection turned off: nothing stays ejected.
        for e in usable.iter().filter(|e| e.outlier.is_ejected()) {
            e.outlier.clear();
        }
    } else if let Some(old) = old
        && !Arc::ptr_eq(&old.assignment, &assignment)
    {
        let before: HashMap<&Address, &Arc<Endpoint>> =
            old.usable.iter().map(|e| (&e.address, e)).collect();
        for e in &usable {
            if let Some(o) = before.get(&e.address) {
                e.outlier.inherit(&o.outlier);
            }
        }
    }
    let balancer = reuse.balancer(c, &assignment).unwrap_or_else(|| {
        Arc::new(Balancer::new(
            c.lb_policy,
            &c.lb,
            &usable,
            assignment.overprovisioning,
        ))
    });
    let breakers = match old {
        Some(o) if o.breakers.limits == c.limits => o.breakers.clone(),
        _ => {
            let b = Breakers::new(c.limits);
            if let Some(o) = old {
                b.inherit_stats(&o.breakers);
            }
            Arc::new(b)
        }
    };
    let entry = Arc::new(ClusterEntry {
        cluster: c.clone(),
        assignment,
        usable,
        balancer: ArcSwap::new(balancer),
        breakers,
        outlier_stats: old.map(|o| o.outlier_stats.clone()).unwrap_or_default(),
        wake: Arc::new(Notify::new()),
        detecting: std::sync::Mutex::new(()),
        retired: AtomicBool::new(false),
    });
    if let Some(o) = &c.outlier
        && !entry.usable.is_empty()
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        rt.spawn(detect(
            Arc::downgrade(&entry),
            entry.wake.clone(),
            o.interval,
        ));
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LbPolicy, UpstreamProtocol};
    use crate::listener::{Direction, FilterChain};
    use crate::route::Target;

    fn static_cluster(name: &str, endpoint: &str) -> Cluster {
        Cluster {
            name: name.into(),
            discovery: Discovery::Static,
            lb_policy: LbPolicy::RoundRobin,
            lb: crate::cluster::LbSettings::default(),
            connect_timeout: std::time::Duration::from_secs(1),
            protocol: UpstreamProtocol::Http1,
            idle_timeout: None,
            max_requests_per_connection: None,
            max_concurrent_streams: None,
            max_connection_duration: None,
            limits: crate::breaker::Limits::default(),
            outlier: None,
            load_assignment: Some(LoadAssignment {
                cluster: name.into(),
                endpoints: vec![Arc::new(Endpoint::new(Address::Socket(
                    endpoint.parse().expect("addr"),
                )))],
                ..LoadAssignment::default()
            }),
            tls_not_originated: crate::cluster::UpstreamTls::None,
        }
    }

    fn tcp_listener(name: &str, addr: &str, cluster: &str) -> Listener {
        Listener {
            name: name.into(),
            address: Some(addr.parse().expect("addr")),
            bind: true,
            direction: Direction::Inbound,
            chains: vec![FilterChain {
                name: "tcp".into(),
                destination_port: None,
                server_names: Vec::new(),
                transport_protocol: String::new(),
                application_protocols: Vec::new(),
                filter: NetworkFilter::Tcp(Target::Cluster(cluster.into())),
                tcp_idle_timeout: crate::tcp::DEFAULT_IDLE_TIMEOUT,
                tcp_max_duration: None,
                forwarded: Default::default(),
            }],
            default_chain: None,
        }
    }

    fn parts(clusters: Vec<Cluster>, listeners: Vec<Listener>) -> Parts {
        Parts {
            clusters: clusters
                .into_iter()
                .map(|c| (c.name.clone(), Arc::new(c)))
                .collect(),
            listeners: listeners
                .into_iter()
                .map(|l| (l.name.clone(), Arc::new(l)))
                .collect(),
            ..Parts::default()
        }
    }

    #[test]
    fn unchanged_eds_clusters_keep_their_balancer() {
        let mut c = static_cluster("outbound|1||a", "127.0.0.1:7");
        let assignment = c.load_assignment.take().map(Arc::new).expect("assignment");
        c.discovery = Discovery::Eds("outbound|1||a".into());
        let mut p = parts(vec![c], vec![]);
        p.assignments
            .insert("outbound|1||a".into(), assignment.clone());
        let first = Snapshot::build(p.clone()).expect("builds");
        let kept = Snapshot::build_reusing(p.clone(), &Reuse::of(&first)).expect("builds");
        let balancer = |s: &Snapshot| s.cluster("outbound|1||a").map(|e| e.balancer());
        let (a, b) = (
            balancer(&first).expect("one"),
            balancer(&kept).expect("one"),
        );
        assert!(Arc::ptr_eq(&a, &b), "kept");
        // New endpoints (another assignment): a new balancer.
        let mut changed = p.clone();
        let fresh = LoadAssignment {
            cluster: "outbound|1||a".into(),
            endpoints: vec![Arc::new(assignment.endpoints[0].fresh_copy())],
            ..LoadAssignment::default()
        };
        changed
            .assignments
            .insert("outbound|1||a".into(), Arc::new(fresh));
        let rebuilt = Snapshot::build_reusing(changed, &Reuse::of(&first)).expect("builds");
        assert!(!Arc::ptr_eq(&a, &balancer(&rebuilt).expect("one")));
        // Another policy: a new balancer too.
        let mut policy = p;
        let mut c = static_cluster("outbound|1||a", "127.0.0.1:7");
        c.load_assignment = None;
        c.discovery = Discovery::Eds("outbound|1||a".into());
        c.lb_policy = LbPolicy::Random;
        policy.clusters.insert(c.name.clone(), Arc::new(c));
        let rebuilt = Snapshot::build_reusing(policy, &Reuse::of(&first)).expect("builds");
        assert!(!Arc::ptr_eq(&a, &balancer(&rebuilt).expect("one")));
    }

    #[test]
    fn outlier_state_and_breaker_counts_survive_a_new_snapshot() {
        use crate::outlier::{Outcome, OutlierConfig};
        let make = || {
            let mut c = static_cluster("outbound|1||a", "127.0.0.1:7");
            if let Some(la) = c.load_assignment.as_mut() {
                la.endpoints.push(Arc::new(Endpoint::new(Address::Socket(
                    "127.0.0.1:8".parse().expect("addr"),
                ))));
            }
            c.outlier = Some(OutlierConfig {
                consecutive_5xx: 1,
                max_ejection_percent: 50,
                ..OutlierConfig::default()
            });
            c
        };
        let first = Snapshot::build(parts(vec![make()], vec![])).expect("builds");
        let entry = first.cluster("outbound|1||a").expect("cluster");
        let seven = entry
            .assignment
            .endpoints
            .iter()
            .find(|e| e.address.to_string() == "127.0.0.1:7")
            .expect("endpoint")
            .start_request();
        // The failure that reaches the threshold ejects at once: the very
        // next picks skip the endpoint, with no task to run first (there
        // is no runtime here, so no detection task either).
        entry.record(Some(&seven), Some(Outcome::ConnectFailed));
        assert_eq!(
            entry.outlier_stats.enforced_total.load(Ordering::Relaxed),
            1
        );
        let picks = |e: &ClusterEntry| -> BTreeSet<String> {
            (0..20)
                .filter_map(|_| e.pick())
                .map(|e| e.address.to_string())
                .collect()
        };
        assert_eq!(picks(entry), BTreeSet::from(["127.0.0.1:8".to_string()]));
        let _admitted = entry.breakers.admit().expect("admitted");
        // A new snapshot with the cluster sent again (its static endpoints
        // are copied afresh): the endpoint is still ejected, the balancer
        // still skips it, counts go on.
        let second = Snapshot::build_reusing(parts(vec![make()], vec![]), &Reuse::of(&first))
            .expect("builds");
        let next = second.cluster("outbound|1||a").expect("cluster");
        assert!(entry.retired.load(Ordering::Relaxed));
        assert!(!Arc::ptr_eq(&entry.assignment, &next.assignment));
        assert_eq!(picks(next), BTreeSet::from(["127.0.0.1:8".to_string()]));
        assert_eq!(next.detector().map(|d| d.ejected()), Some(1));
        assert!(Arc::ptr_eq(&entry.breakers, &next.breakers));
        assert_eq!(next.breakers.active_requests(), 1);
        assert!(Arc::ptr_eq(&entry.outlier_stats, &next.outlier_stats));
        // An EDS cluster keeps its endpoints across snapshots; with outlier
        // detection turned off nothing of them stays ejected.
        let eds = |outlier: Option<OutlierConfig>| {
            let mut c = static_cluster("outbound|2||b", "127.0.0.1:9");
            c.discovery = Discovery::Eds("outbound|2||b".into());
            c.outlier = outlier;
            c
        };
        let mut c = eds(None);
        let assignment = c.load_assignment.take().map(Arc::new).expect("assignment");
        assignment.endpoints[0].outlier.record(
            &OutlierConfig {
                consecutive_5xx: 1,
                ..OutlierConfig::default()
            },
            Outcome::Status(500),
        );
        let mut on = parts(
            vec![eds(Some(OutlierConfig {
                consecutive_5xx: 1,
                ..OutlierConfig::default()
            }))],
            vec![],
        );
        on.assignments
            .insert("outbound|2||b".into(), assignment.clone());
        let with = Snapshot::build(on).expect("builds");
        let b = with.cluster("outbound|2||b").expect("cluster");
        assert!(
            b.detector()
                .is_some_and(|d| d.eject_pending(std::time::Instant::now()))
        );
        assert!(assignment.endpoints[0].outlier.is_ejected());
        let mut off = parts(vec![eds(None)], vec![]);
        off.assignments
            .insert("outbound|2||b".into(), assignment.clone());
        let without = Snapshot::build_reusing(off, &Reuse::of(&with)).expect("builds");
        let b = without.cluster("outbound|2||b").expect("cluster");
        assert!(Arc::ptr_eq(&b.assignment, &assignment));
        assert!(b.pick().is_some(), "not ejected any more");
        assert!(b.detector().is_none());
    }

    #[test]
    fn unchanged_clusters_keep_their_whole_entry() {
        let eds = |name: &str| {
            let mut c = static_cluster(name, "127.0.0.1:7");
            c.load_assignment = None;
            c.discovery = Discovery::Eds(name.into());
            c
        };
        let assignment = |port: u16| {
            Arc::new(LoadAssignment {
                endpoints: vec![Arc::new(Endpoint::new(Address::Socket(
                    std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                )))],
                ..LoadAssignment::default()
            })
        };
        let mut p = parts(
            vec![
                eds("a"),
                eds("b"),
                static_cluster("inbound|1||", "127.0.0.1:8080"),
            ],
            vec![tcp_listener("l", "127.0.0.1:1", "inbound|1||")],
        );
        p.assignments.insert("a".into(), assignment(7));
        p.assignments.insert("b".into(), assignment(8));
        let first = Snapshot::build(p.clone()).expect("builds");
        let entry = |s: &Snapshot, n: &str| s.clusters.get(n).cloned().expect("cluster");
        // A push of something else (the same cluster and endpoint Arcs):
        // every entry is the old one, none retired.
        let mut routes = p.clone();
        routes.versions.insert("RDS", "2".into());
        let second = Snapshot::build_reusing(routes, &Reuse::of(&first)).expect("builds");
        for n in ["a", "b", "inbound|1||"] {
            let (old, new) = (entry(&first, n), entry(&second, n));
            assert!(Arc::ptr_eq(&old, &new), "{n} kept");
            assert!(!old.retired.load(Ordering::Relaxed), "{n} still serving");
        }
        // New endpoints of b, a resent cluster a, another own listener:
        // those are rebuilt (the old ones retired), nothing else.
        let mut changed = p.clone();
        changed.assignments.insert("b".into(), assignment(9));
        changed.clusters.insert("a".into(), Arc::new(eds("a")));
        let third = Snapshot::build_reusing(changed.clone(), &Reuse::of(&second)).expect("builds");
        for n in ["a", "b"] {
            assert!(!Arc::ptr_eq(&entry(&second, n), &entry(&third, n)), "{n}");
            assert!(entry(&second, n).retired.load(Ordering::Relaxed));
        }
        assert!(Arc::ptr_eq(
            &entry(&second, "inbound|1||"),
            &entry(&third, "inbound|1||")
        ));
        changed.listeners.insert(
            "m".into(),
            Arc::new(tcp_listener("m", "127.0.0.1:8080", "inbound|1||")),
        );
        let fourth = Snapshot::build_reusing(changed, &Reuse::of(&third)).expect("builds");
        let inbound = entry(&fourth, "inbound|1||");
        assert!(!Arc::ptr_eq(&entry(&third, "inbound|1||"), &inbound));
        assert!(inbound.pick().is_none(), "now a loop into the proxy");
    }

    #[test]
    fn dangling_cluster_references_are_all_named() {
        let e = Snapshot::build(parts(
            vec![],
            vec![tcp_listener("l", "127.0.0.1:1", "gone")],
        ))
        .expect_err("missing cluster");
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_string(),
            "listener l chain tcp references cluster gone, which CDS does not have"
        );
    }

    #[test]
    fn an_app_address_on_the_proxys_own_listener_gets_no_traffic() {
        let s = Snapshot::build(parts(
            vec![
                static_cluster("inbound|1||", "127.0.0.1:1"),
                static_cluster("inbound|2||", "127.0.0.1:8080"),
            ],
            vec![
                tcp_listener("127.0.0.1_1", "127.0.0.1:1", "inbound|1||"),
                tcp_listener("127.0.0.1_2", "127.0.0.1:2", "inbound|2||"),
            ],
        ))
        .expect("builds");
        assert!(
            s.cluster("inbound|1||")
                .and_then(ClusterEntry::pick)
                .is_none(),
            "a loop"
        );
        assert!(
            s.cluster("inbound|2||")
                .and_then(ClusterEntry::pick)
                .is_some()
        );
        assert_eq!(s.bound_listeners().count(), 2);
    }
}
