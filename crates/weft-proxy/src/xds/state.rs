//! The ADS client's state machine, free of sockets: what was received,
//! what is applied, what to send next. The stream loop in [`super`] feeds
//! it responses and deadlines and sends the requests it returns. One
//! machine serves both protocols: state of the world ([`State::on_response`])
//! and delta ([`State::on_delta_response`], in [`delta`]) differ only in how
//! a response becomes the whole set of a type and how requests are
//! written; warming, consistency, ACK/NACK and snapshots are shared.
//!
//! Per response of a type: every resource is converted (`TryFrom`); one
//! failure NACKs the whole response (the error names the resource) and the
//! last good config stays. A converted response is *pending* until the
//! config it makes is whole: a route or listener naming a cluster CDS
//! doesn't have waits (the control plane may send the cluster next); new
//! EDS clusters wait for their endpoints, new listeners for their routes
//! and route configurations with `vhds` for their virtual hosts ([`vhds`];
//! Envoy's warming). When whole, the snapshot is applied and every pending
//! response ACKed together. Past the warming deadline, dangling cluster
//! references are NACKed; clusters, listeners and route configurations
//! still warming are applied without their endpoints, routes or virtual
//! hosts.
//!
//! Delta: a response's resources and `removed_resources` are applied onto
//! the set held (pending, else applied), so a pending response and the
//! next one of its type compose; a NACKed delta response changes nothing.
//! The proxy subscribes to EDS names from clusters, RDS names from
//! listeners and VHDS names from route configurations as they come and go
//! (CDS and LDS are wildcards), and a new stream sends what it holds as
//! `initial_resource_versions`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use weft_xds::pb::google::rpc::Status;

use crate::cluster::Discovery;
use crate::route::RouteTable;
use crate::snapshot::{MissingCluster, Parts, Reuse, Snapshot};

mod convert;
mod delta;
mod kind;
pub mod vhds;

pub use kind::{KINDS, Kind, Protocol, Request};

use convert::Converted;
use vhds::{Assembled, Group};

#[derive(Clone, Debug)]
struct Pending {
    converted: Converted,
    version: String,
    nonce: String,
    /// Delta: each resource's version, as held after this response.
    versions: BTreeMap<String, String>,
}

/// What the client knows of one type.
#[derive(Debug, Default)]
struct TypeState {
    /// Whether it was asked for on this stream.
    requested: bool,
    /// Names subscribed to (EDS, RDS, VHDS).
    names: BTreeSet<String>,
    /// The version last applied (ACKed).
    version: String,
    /// The nonce of the last response received.
    nonce: String,
    /// Whether the names subscribed to are answered (SotW: a response
    /// came since they changed; delta: each was sent or said absent).
    answered: bool,
    pending: Option<Pending>,
    /// Delta: the names the server was told on this stream.
    sent: BTreeSet<String>,
    /// Delta: each applied resource's version.
    versions: BTreeMap<String, String>,
    /// Delta: names subscribed to that the server says don't exist.
    absent: BTreeSet<String>,
}

/// What the last NACK said, for the admin API.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rejection {
    /// The type (`CDS`, ...).
    pub type_url: &'static str,
    /// The rejected version.
    pub version: String,
    /// Why.
    pub error: String,
}

/// The client's state across streams.
#[derive(Debug)]
pub struct State {
    node: Node,
    protocol: Protocol,
    types: BTreeMap<Kind, TypeState>,
    applied: Parts,
    /// RDS as applied (before VHDS's virtual hosts are added).
    rds: BTreeMap<String, Arc<RouteTable>>,
    /// VHDS's virtual hosts as applied, by route configuration.
    vhosts: BTreeMap<String, Arc<Group>>,
    /// Route configurations updated since their last VHDS response: the
    /// next one naming them replaces their virtual hosts.
    refresh: BTreeSet<String>,
    /// Route tables of VHDS configurations, kept while unchanged.
    assembled: Assembled,
    /// The applied snapshot's balancers, for the next one.
    reuse: Reuse,
    warm_timeout: Duration,
    deadline: Option<Instant>,
    node_sent: bool,
    /// Set once a whole config was applied.
    pub complete: bool,
    /// The last NACK.
    pub last_rejection: Option<Rejection>,
}

/// What handling an event produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests to send, in order.
    pub requests: Vec<Request>,
    /// A new snapshot to swap in.
    pub snapshot: Option<Snapshot>,
}

impl State {
    /// A fresh state-of-the-world state for `node`.
    pub fn new(node: Node, warm_timeout: Duration) -> Self {
        Self::with_protocol(node, warm_timeout, Protocol::Sotw)
    }

    /// A fresh state for `node` speaking `protocol`; delta says
    /// [`vhds::CLIENT_FEATURE`] in the node's `client_features`.
    pub fn with_protocol(mut node: Node, warm_timeout: Duration, protocol: Protocol) -> Self {
        if protocol == Protocol::Delta
            && !node
                .client_features
                .iter()
                .any(|f| f == vhds::CLIENT_FEATURE)
        {
            node.client_features.push(vhds::CLIENT_FEATURE.to_string());
        }
        State {
            node,
            protocol,
            types: KINDS.iter().map(|k| (*k, TypeState::default())).collect(),
            applied: Parts::default(),
            rds: BTreeMap::new(),
            vhosts: BTreeMap::new(),
            refresh: BTreeSet::new(),
            assembled: Assembled::default(),
            reuse: Reuse::default(),
            warm_timeout,
            deadline: None,
            node_sent: false,
            complete: false,
            last_rejection: None,
        }
    }

    /// The protocol it speaks.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// When [`State::on_deadline`] should be called.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A new stream: forget nonces and pending responses (the server
    /// sends everything again, or with delta what changed from the
    /// versions held), subscribe to CDS. LDS follows the first CDS
    /// response, EDS, RDS and VHDS follow the names those bring (Envoy's
    /// order).
    pub fn start_stream(&mut self) -> Vec<Request> {
        self.node_sent = false;
        self.deadline = None;
        self.refresh.clear();
        for t in self.types.values_mut() {
            t.requested = false;
            t.nonce.clear();
            t.pending = None;
            t.sent.clear();
            t.absent.clear();
        }
        let mut out = vec![self.request(Kind::Cluster, None)];
        // Reconnecting with a config: ask for everything at once.
        if self.complete {
            for k in [
                Kind::Endpoints,
                Kind::Listener,
                Kind::Routes,
                Kind::VirtualHosts,
            ] {
                if !k.by_name() || !self.state(k).names.is_empty() {
                    out.push(self.request(k, None));
                }
            }
        }
        out
    }

    fn state(&mut self, k: Kind) -> &mut TypeState {
        self.types.entry(k).or_default()
    }

    /// A request for `k`: its version or the changes to its names, the
    /// last nonce, and `error` for a NACK.
    fn request(&mut self, k: Kind, error: Option<String>) -> Request {
        let node = (!self.node_sent).then(|| self.node.clone());
        self.node_sent = true;
        let error_detail = error.map(|message| Status {
            code: tonic::Code::InvalidArgument as i32,
            message,
            details: Vec::new(),
        });
        match self.protocol {
            Protocol::Delta => Request::Delta(self.delta_request(k, node, error_detail)),
            Protocol::Sotw => {
                let s = self.state(k);
                s.requested = true;
                Request::Sotw(DiscoveryRequest {
                    version_info: s.version.clone(),
                    node,
                    resource_names: s.names.iter().cloned().collect(),
                    type_url: k.type_url().to_string(),
                    response_nonce: s.nonce.clone(),
                    error_detail,
                    ..DiscoveryRequest::default()
                })
            }
        }
    }

    /// Handles one state-of-the-world response.
    pub fn on_response(&mut self, r: DiscoveryResponse, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        let Some(k) = Kind::parse(&r.type_url).filter(|k| *k != Kind::VirtualHosts) else {
            tracing::warn!(target: "weft::xds", type_url = %r.type_url, "response of a type never asked for; ignored");
            return out;
        };
        self.state(k).nonce = r.nonce.clone();
        match convert::convert_all(k, &r.resources) {
            Ok(converted) => {
                tracing::debug!(target: "weft::xds", r#type = k.short_name(), version = %r.version_info, resources = r.resources.len(), "received");
                let received = Received {
                    converted,
                    version: r.version_info,
                    nonce: r.nonce,
                    versions: BTreeMap::new(),
                };
                self.received(k, received, now, &mut out);
            }
            Err(error) => {
                // A newer state of the world replaces what was pending.
                self.state(k).pending = None;
                self.reject(k, r.version_info, error, &mut out);
            }
        }
        out
    }

    /// Handles the warming deadline.
    pub fn on_deadline(&mut self, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        self.try_apply(now, true, &mut out);
        out
    }

    /// NACKs the last response of `k`.
    fn reject(&mut self, k: Kind, version: String, error: String, out: &mut Outcome) {
        tracing::warn!(target: "weft::xds", r#type = k.short_name(), %version, %error, "rejecting (NACK) an update; keeping the last good config");
        self.last_rejection = Some(Rejection {
            type_url: k.short_name(),
            version,
            error: error.clone(),
        });
        out.requests.push(self.request(k, Some(error)));
    }

    /// Takes a converted response: subscriptions follow what it brings
    /// (applied or not), then it is pending until the config is whole.
    fn received(&mut self, k: Kind, r: Received, now: Instant, out: &mut Outcome) {
        let delta = self.protocol == Protocol::Delta;
        match &r.converted {
            Converted::Clusters(clusters) => {
                let names: BTreeSet<String> = clusters
                    .values()
                    .filter_map(|c| match &c.discovery {
                        Discovery::Eds(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                self.resubscribe(Kind::Endpoints, names, out);
                if !self.state(Kind::Listener).requested {
                    out.requests.push(self.request(Kind::Listener, None));
                }
            }
            Converted::Listeners(listeners) => {
                let names: BTreeSet<String> = listeners
                    .values()
                    .flat_map(|l| l.rds_names().map(str::to_string))
                    .collect();
                self.resubscribe(Kind::Routes, names, out);
            }
            Converted::Assignments(_) | Converted::Routes(_) | Converted::VirtualHosts(_) => {}
        }
        self.state(k).pending = Some(Pending {
            converted: r.converted,
            version: r.version,
            nonce: r.nonce,
            versions: r.versions,
        });
        if delta && k == Kind::Routes {
            self.resubscribe(Kind::VirtualHosts, self.vhds_names(), out);
        }
        if !delta {
            self.state(k).answered = true;
        } else if k.by_name() {
            self.reanswer(k);
        }
        self.try_apply(now, false, out);
    }

    fn resubscribe(&mut self, k: Kind, names: BTreeSet<String>, out: &mut Outcome) {
        let delta = self.protocol == Protocol::Delta;
        let s = self.state(k);
        if s.names == names && (s.requested || (k == Kind::VirtualHosts && names.is_empty())) {
            // VHDS is asked for only once there is something to ask.
            return;
        }
        s.absent.retain(|n| names.contains(n));
        s.names = names;
        if delta {
            self.reanswer(k);
        } else {
            let s = self.state(k);
            s.answered = s.names.is_empty();
        }
        out.requests.push(self.request(k, None));
        if delta && k == Kind::Routes {
            // Route configurations unsubscribed from take their virtual hosts along.
            self.resubscribe(Kind::VirtualHosts, self.vhds_names(), out);
        }
    }

    /// The route configurations to ask VHDS for: those subscribed to and
    /// held (pending, else applied) that have `vhds`.
    fn vhds_names(&self) -> BTreeSet<String> {
        let subscribed = &self.types[&Kind::Routes].names;
        self.newest_rds()
            .iter()
            .filter(|(name, t)| t.vhds() && subscribed.contains(*name))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Delta: whether every name of `k` is held or said absent.
    fn reanswer(&mut self, k: Kind) {
        let s = &self.types[&k];
        let answered = s
            .names
            .iter()
            .all(|n| s.absent.contains(n) || self.holds(k, n));
        self.state(k).answered = answered;
    }

    /// Whether `name` of `k` is held (pending, else applied).
    fn holds(&self, k: Kind, name: &str) -> bool {
        if let Some(p) = &self.types[&k].pending {
            return p.converted.contains(name);
        }
        match k {
            Kind::Cluster => self.applied.clusters.contains_key(name),
            Kind::Endpoints => self.applied.assignments.contains_key(name),
            Kind::Listener => self.applied.listeners.contains_key(name),
            Kind::Routes => self.rds.contains_key(name),
            Kind::VirtualHosts => self.vhosts.contains_key(name),
        }
    }

    /// RDS as it will be (pending, else applied).
    fn newest_rds(&self) -> &BTreeMap<String, Arc<RouteTable>> {
        match &self.types[&Kind::Routes].pending {
            Some(Pending {
                converted: Converted::Routes(r),
                ..
            }) => r,
            _ => &self.rds,
        }
    }

    /// VHDS's groups as they will be (pending, else applied).
    fn newest_vhosts(&self) -> &BTreeMap<String, Arc<Group>> {
        match &self.types[&Kind::VirtualHosts].pending {
            Some(Pending {
                converted: Converted::VirtualHosts(v),
                ..
            }) => v,
            _ => &self.vhosts,
        }
    }

    fn candidate(&mut self) -> Parts {
        let mut parts = self.applied.clone();
        let mut routes_changed = false;
        for (k, s) in &self.types {
            let Some(p) = &s.pending else { continue };
            parts.versions.insert(k.short_name(), p.version.clone());
            match &p.converted {
                Converted::Clusters(c) => parts.clusters = c.clone(),
                Converted::Assignments(a) => {
                    // Unchanged endpoints keep their request counts and balancer.
                    parts.assignments = a
                        .iter()
                        .map(|(name, new)| {
                            let kept = self
                                .applied
                                .assignments
                                .get(name)
                                .filter(|old| old.same_endpoints(new));
                            (name.clone(), kept.unwrap_or(new).clone())
                        })
                        .collect()
                }
                Converted::Listeners(l) => parts.listeners = l.clone(),
                Converted::Routes(_) | Converted::VirtualHosts(_) => routes_changed = true,
            }
        }
        if routes_changed {
            let mut assembled = std::mem::take(&mut self.assembled);
            let groups = self.newest_vhosts();
            parts.routes = self
                .newest_rds()
                .iter()
                .map(|(name, raw)| {
                    let table = assembled
                        .table(raw, groups.get(name))
                        .unwrap_or_else(|error| {
                            tracing::warn!(target: "weft::xds", %error, "route configuration without its virtual hosts");
                            raw.clone()
                        });
                    (name.clone(), table)
                })
                .collect();
            self.assembled = assembled;
        }
        parts
    }

    /// Whether new clusters still wait for endpoints, new listeners for
    /// routes, or route configurations with `vhds` for virtual hosts.
    fn warming(&self, parts: &Parts) -> bool {
        let eds = &self.types[&Kind::Endpoints];
        let rds = &self.types[&Kind::Routes];
        let eds_waiting = !eds.answered
            && parts.clusters.values().any(|c| match &c.discovery {
                Discovery::Eds(s) => !parts.assignments.contains_key(s),
                _ => false,
            });
        let rds_waiting = !rds.answered
            && parts
                .listeners
                .values()
                .flat_map(|l| l.rds_names())
                .any(|n| !parts.routes.contains_key(n));
        let groups = self.newest_vhosts();
        let vhds_waiting = self
            .vhds_names()
            .iter()
            .any(|name| self.refresh.contains(name) || !groups.contains_key(name));
        eds_waiting || rds_waiting || vhds_waiting
    }

    fn pending_kinds(&self) -> Vec<Kind> {
        KINDS
            .iter()
            .copied()
            .filter(|k| self.types[k].pending.is_some())
            .collect()
    }

    fn try_apply(&mut self, now: Instant, expired: bool, out: &mut Outcome) {
        if self.types.values().all(|s| s.pending.is_none()) {
            self.deadline = None;
            return;
        }
        let parts = self.candidate();
        let warming = self.warming(&parts);
        if warming && !expired {
            self.deadline.get_or_insert(now + self.warm_timeout);
            return;
        }
        match Snapshot::build_reusing(parts, &self.reuse) {
            Ok(snapshot) => {
                self.reuse = Reuse::of(&snapshot);
                if warming {
                    tracing::warn!(target: "weft::xds", "warming timed out: applying clusters without endpoints, listeners without routes or route configurations without virtual hosts");
                }
                self.applied = snapshot.parts.clone();
                for k in self.pending_kinds() {
                    if let Some(p) = self.state(k).pending.take() {
                        match p.converted {
                            Converted::Routes(r) => self.rds = r,
                            Converted::VirtualHosts(v) => self.vhosts = v,
                            _ => {}
                        }
                        let s = self.state(k);
                        s.version = p.version;
                        s.nonce = p.nonce;
                        s.versions = p.versions;
                        out.requests.push(self.request(k, None));
                    }
                }
                if warming {
                    // Applied as they are: what comes later is an update.
                    self.refresh.clear();
                    for (name, t) in &self.rds {
                        if t.vhds() && !self.vhosts.contains_key(name) {
                            self.vhosts.insert(name.clone(), Arc::default());
                        }
                    }
                }
                let rds = &self.rds;
                self.vhosts
                    .retain(|n, _| rds.get(n).is_some_and(|t| t.vhds()));
                self.assembled.retain(|n| rds.contains_key(n));
                self.deadline = None;
                let listeners_in = self.types[&Kind::Listener].requested
                    && self.applied.versions.contains_key("LDS");
                if listeners_in
                    && self.applied.versions.contains_key("CDS")
                    && !self.warming(&snapshot.parts)
                {
                    self.complete = true;
                }
                out.snapshot = Some(snapshot);
            }
            Err(missing) if expired => {
                let error = missing
                    .iter()
                    .map(MissingCluster::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(target: "weft::xds", %error, "rejecting (NACK) updates that reference missing clusters; keeping the last good config");
                self.deadline = None;
                self.refresh.clear();
                for k in self.pending_kinds() {
                    if let Some(p) = self.state(k).pending.take() {
                        self.last_rejection = Some(Rejection {
                            type_url: k.short_name(),
                            version: p.version,
                            error: error.clone(),
                        });
                        self.state(k).nonce = p.nonce;
                        out.requests.push(self.request(k, Some(error.clone())));
                    }
                }
            }
            Err(_) => {
                self.deadline.get_or_insert(now + self.warm_timeout);
            }
        }
    }
}

/// A response made into the whole set of its type.
struct Received {
    converted: Converted,
    version: String,
    nonce: String,
    versions: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests;
