//! The proxy's whole config at one moment: immutable, assembled from the
//! converted CDS, EDS, LDS and RDS resources, checked for dangling
//! references, and swapped in atomically ([`arc_swap::ArcSwap`]). A
//! request loads the snapshot once and uses it to its end, so a new one
//! never disturbs what is in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::balance::Balancer;
use crate::cluster::{Cluster, Discovery, LbPolicy, LbSettings};
use crate::endpoint::{Address, Endpoint, LoadAssignment};
use crate::listener::{Listener, NetworkFilter, Routes};
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

/// A cluster with its endpoints, ready for requests.
#[derive(Debug)]
pub struct ClusterEntry {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// All its endpoints.
    pub assignment: Arc<LoadAssignment>,
    /// Its balancer, built over them (or kept from the last snapshot,
    /// when neither they nor the cluster's balancing changed).
    pub balancer: Arc<Balancer>,
}

/// The balancers of the last snapshot, which the next one keeps for EDS
/// clusters whose endpoints (the same [`LoadAssignment`]) and balancing
/// settings are unchanged: a push of other resources doesn't rebuild
/// Maglev tables and rings, or restart round robin.
#[derive(Debug, Default)]
pub struct Reuse(HashMap<String, (Arc<LoadAssignment>, LbPolicy, LbSettings, Arc<Balancer>)>);

impl Reuse {
    /// What `snapshot` can pass on.
    pub fn of(snapshot: &Snapshot) -> Reuse {
        Reuse(
            snapshot
                .clusters
                .iter()
                .filter(|(_, e)| matches!(e.cluster.discovery, Discovery::Eds(_)))
                .map(|(name, e)| {
                    let kept = (
                        e.assignment.clone(),
                        e.cluster.lb_policy,
                        e.cluster.lb.clone(),
                        e.balancer.clone(),
                    );
                    (name.clone(), kept)
                })
                .collect(),
        )
    }

    fn get(&self, c: &Cluster, assignment: &Arc<LoadAssignment>) -> Option<Arc<Balancer>> {
        let (a, policy, settings, balancer) = self.0.get(&c.name)?;
        (Arc::ptr_eq(a, assignment) && *policy == c.lb_policy && *settings == c.lb)
            .then(|| balancer.clone())
    }
}

impl ClusterEntry {
    /// Picks an endpoint for a request without a hash (consistent-hash
    /// clusters pick at random then).
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        self.balancer.pick(None)
    }

    /// Picks an endpoint for a request with `hash` (its route's hash
    /// policy's result).
    pub fn pick_hashed(&self, hash: Option<u64>) -> Option<&Arc<Endpoint>> {
        self.balancer.pick(hash)
    }
}

/// The config in force.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// What it was built from.
    pub parts: Parts,
    /// Clusters by name.
    pub clusters: HashMap<String, ClusterEntry>,
    /// Outbound HTTP routes by port, from the `0.0.0.0_<port>` listeners,
    /// with their connection manager's header settings.
    outbound_http: HashMap<u16, (Arc<RouteTable>, Arc<crate::forwarded::Config>)>,
}

impl Snapshot {
    /// Assembles a snapshot; fails, naming every dangling cluster
    /// reference, rather than applying part of it.
    pub fn build(parts: Parts) -> Result<Snapshot, Vec<MissingCluster>> {
        Self::build_reusing(parts, &Reuse::default())
    }

    /// As [`Snapshot::build`], keeping the unchanged balancers of `reuse`.
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
        let empty = Arc::new(LoadAssignment::default());
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
        let clusters = parts
            .clusters
            .iter()
            .map(|(name, c)| {
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
                let balancer = match reuse.get(c, &assignment) {
                    Some(kept) => kept,
                    None => Arc::new(Balancer::new(
                        c.lb_policy,
                        &c.lb,
                        &usable,
                        assignment.overprovisioning,
                    )),
                };
                let entry = ClusterEntry {
                    balancer,
                    cluster: c.clone(),
                    assignment,
                };
                (name.clone(), entry)
            })
            .collect();
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
        })
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
        self.clusters.get(name)
    }
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
        let balancer = |s: &Snapshot| s.cluster("outbound|1||a").map(|e| e.balancer.clone());
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
