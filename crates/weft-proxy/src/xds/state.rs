//! The ADS client's state machine, free of sockets: what was received,
//! what is applied, what to send next. The stream loop in [`super`] feeds
//! it responses and deadlines and sends the requests it returns.
//!
//! Per response of a type: every resource is converted (`TryFrom`); one
//! failure NACKs the whole response (the error names the resource) and the
//! last good config stays. A converted response is *pending* until the
//! config it makes is whole: a route or listener naming a cluster CDS
//! doesn't have waits (the control plane may send the cluster next); new
//! EDS clusters wait for their endpoints and new listeners for their
//! routes (Envoy's warming). When whole, the snapshot is applied and every
//! pending response ACKed together. Past the warming deadline, dangling
//! cluster references are NACKed; clusters and listeners still warming are
//! applied without their endpoints or routes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener as XdsListener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;
use weft_xds::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use weft_xds::pb::google::protobuf::Any;
use weft_xds::pb::google::rpc::Status;

use crate::cluster::{Cluster, Discovery};
use crate::endpoint::LoadAssignment;
use crate::listener::Listener;
use crate::route::RouteTable;
use crate::snapshot::{MissingCluster, Parts, Reuse, Snapshot};

/// The types the proxy subscribes to, in the order it applies them.
pub const TYPES: [TypeUrl; 4] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
];

/// One type's converted resources.
#[derive(Clone, Debug)]
enum Converted {
    Clusters(BTreeMap<String, Arc<Cluster>>),
    Assignments(BTreeMap<String, Arc<LoadAssignment>>),
    Listeners(BTreeMap<String, Arc<Listener>>),
    Routes(BTreeMap<String, Arc<RouteTable>>),
}

#[derive(Clone, Debug)]
struct Pending {
    converted: Converted,
    version: String,
    nonce: String,
}

/// What the client knows of one type.
#[derive(Debug, Default)]
struct TypeState {
    /// Whether it was asked for on this stream.
    requested: bool,
    /// Names subscribed to (EDS, RDS).
    names: BTreeSet<String>,
    /// The version last applied (ACKed).
    version: String,
    /// The nonce of the last response received.
    nonce: String,
    /// Whether a response arrived since the names last changed.
    answered: bool,
    pending: Option<Pending>,
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
    types: BTreeMap<TypeUrl, TypeState>,
    applied: Parts,
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
    pub requests: Vec<DiscoveryRequest>,
    /// A new snapshot to swap in.
    pub snapshot: Option<Snapshot>,
}

impl State {
    /// A fresh state for `node`.
    pub fn new(node: Node, warm_timeout: Duration) -> Self {
        State {
            node,
            types: TYPES.iter().map(|t| (*t, TypeState::default())).collect(),
            applied: Parts::default(),
            reuse: Reuse::default(),
            warm_timeout,
            deadline: None,
            node_sent: false,
            complete: false,
            last_rejection: None,
        }
    }

    /// When [`State::on_deadline`] should be called.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A new stream: forget nonces and pending responses (the server
    /// sends everything again), subscribe to CDS. LDS follows the first
    /// CDS response, EDS and RDS follow the names those bring (Envoy's order).
    pub fn start_stream(&mut self) -> Vec<DiscoveryRequest> {
        self.node_sent = false;
        self.deadline = None;
        for t in self.types.values_mut() {
            t.requested = false;
            t.nonce.clear();
            t.pending = None;
        }
        let mut out = vec![self.request(TypeUrl::Cluster, None)];
        // Reconnecting with a config: ask for everything at once.
        if self.complete {
            for t in [
                TypeUrl::ClusterLoadAssignment,
                TypeUrl::Listener,
                TypeUrl::RouteConfiguration,
            ] {
                if !t.subscribed_by_name() || !self.state(t).names.is_empty() {
                    out.push(self.request(t, None));
                }
            }
        }
        out
    }

    fn state(&mut self, t: TypeUrl) -> &mut TypeState {
        self.types.entry(t).or_default()
    }

    /// A request for `t` with its current version, nonce and names.
    fn request(&mut self, t: TypeUrl, error: Option<String>) -> DiscoveryRequest {
        let node = (!self.node_sent).then(|| self.node.clone());
        self.node_sent = true;
        let s = self.state(t);
        s.requested = true;
        DiscoveryRequest {
            version_info: s.version.clone(),
            node,
            resource_names: s.names.iter().cloned().collect(),
            type_url: t.as_str().to_string(),
            response_nonce: s.nonce.clone(),
            error_detail: error.map(|message| Status {
                code: tonic::Code::InvalidArgument as i32,
                message,
                details: Vec::new(),
            }),
            ..DiscoveryRequest::default()
        }
    }

    /// Handles one response.
    pub fn on_response(&mut self, r: DiscoveryResponse, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        let Ok(t) = r.type_url.parse::<TypeUrl>() else {
            tracing::warn!(target: "weft::xds", type_url = %r.type_url, "response of a type never asked for; ignored");
            return out;
        };
        if !TYPES.contains(&t) {
            return out;
        }
        self.state(t).nonce = r.nonce.clone();
        let converted = match convert(t, &r.resources) {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(target: "weft::xds", r#type = t.short_name(), version = %r.version_info, %error, "rejecting (NACK) an update; keeping the last good config");
                self.last_rejection = Some(Rejection {
                    type_url: t.short_name(),
                    version: r.version_info.clone(),
                    error: error.clone(),
                });
                self.state(t).pending = None;
                out.requests.push(self.request(t, Some(error)));
                return out;
            }
        };
        tracing::debug!(target: "weft::xds", r#type = t.short_name(), version = %r.version_info, resources = r.resources.len(), "received");
        // Subscriptions follow what was received, applied or not.
        match &converted {
            Converted::Clusters(clusters) => {
                let names: BTreeSet<String> = clusters
                    .values()
                    .filter_map(|c| match &c.discovery {
                        Discovery::Eds(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                self.resubscribe(TypeUrl::ClusterLoadAssignment, names, &mut out);
                if !self.state(TypeUrl::Listener).requested {
                    out.requests.push(self.request(TypeUrl::Listener, None));
                }
            }
            Converted::Listeners(listeners) => {
                let names: BTreeSet<String> = listeners
                    .values()
                    .flat_map(|l| l.rds_names().map(str::to_string))
                    .collect();
                self.resubscribe(TypeUrl::RouteConfiguration, names, &mut out);
            }
            Converted::Assignments(_) | Converted::Routes(_) => self.state(t).answered = true,
        }
        self.state(t).pending = Some(Pending {
            converted,
            version: r.version_info,
            nonce: r.nonce,
        });
        self.try_apply(now, false, &mut out);
        out
    }

    /// Handles the warming deadline.
    pub fn on_deadline(&mut self, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        self.try_apply(now, true, &mut out);
        out
    }

    fn resubscribe(&mut self, t: TypeUrl, names: BTreeSet<String>, out: &mut Outcome) {
        let s = self.state(t);
        if s.names == names && s.requested {
            return;
        }
        s.answered = names.is_empty();
        s.names = names;
        out.requests.push(self.request(t, None));
    }

    fn candidate(&self) -> Parts {
        let mut parts = self.applied.clone();
        for (t, s) in &self.types {
            let Some(p) = &s.pending else { continue };
            parts.versions.insert(t.short_name(), p.version.clone());
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
                Converted::Routes(r) => parts.routes = r.clone(),
            }
        }
        parts
    }

    /// Whether new clusters still wait for endpoints or new listeners for routes.
    fn warming(&self, parts: &Parts) -> bool {
        let eds = &self.types[&TypeUrl::ClusterLoadAssignment];
        let rds = &self.types[&TypeUrl::RouteConfiguration];
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
        eds_waiting || rds_waiting
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
                    tracing::warn!(target: "weft::xds", "warming timed out: applying clusters without endpoints or listeners without routes");
                }
                self.applied = snapshot.parts.clone();
                let pending: Vec<TypeUrl> = TYPES
                    .iter()
                    .copied()
                    .filter(|t| self.types[t].pending.is_some())
                    .collect();
                for t in pending {
                    if let Some(p) = self.state(t).pending.take() {
                        let s = self.state(t);
                        s.version = p.version;
                        s.nonce = p.nonce;
                        out.requests.push(self.request(t, None));
                    }
                }
                self.deadline = None;
                let listeners_in = self.types[&TypeUrl::Listener].requested
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
                let pending: Vec<TypeUrl> = TYPES
                    .iter()
                    .copied()
                    .filter(|t| self.types[t].pending.is_some())
                    .collect();
                for t in pending {
                    if let Some(p) = self.state(t).pending.take() {
                        self.last_rejection = Some(Rejection {
                            type_url: t.short_name(),
                            version: p.version,
                            error: error.clone(),
                        });
                        self.state(t).nonce = p.nonce;
                        out.requests.push(self.request(t, Some(error.clone())));
                    }
                }
            }
            Err(_) => {
                self.deadline.get_or_insert(now + self.warm_timeout);
            }
        }
    }
}

/// Converts every resource of a response, or says which one failed and why.
fn convert(t: TypeUrl, resources: &[Any]) -> Result<Converted, String> {
    fn each<X, M, E>(
        resources: &[Any],
        name: fn(&X) -> &str,
        conv: impl Fn(&X) -> Result<M, E>,
    ) -> Result<BTreeMap<String, Arc<M>>, String>
    where
        X: prost::Message + prost::Name + Default,
        E: std::fmt::Display,
    {
        let mut out = BTreeMap::new();
        for any in resources {
            let x: X = weft_xds::unpack(any).map_err(|e| e.to_string())?;
            let m = conv(&x).map_err(|e| e.to_string())?;
            if out.insert(name(&x).to_string(), Arc::new(m)).is_some() {
                return Err(format!("{} {:?} is sent twice", X::NAME, name(&x)));
            }
        }
        Ok(out)
    }
    Ok(match t {
        TypeUrl::Cluster => {
            let clusters =
                each::<XdsCluster, _, _>(resources, |c| &c.name, |x| Cluster::try_from(x))?;
            let plaintext = clusters
                .values()
                .filter(|c| c.tls_not_originated == crate::cluster::UpstreamTls::Requested)
                .count();
            if plaintext > 0 {
                tracing::warn!(
                    target: "weft::xds",
                    clusters = plaintext,
                    "DestinationRules ask for TLS to some clusters; this proxy can't originate TLS yet and sends plaintext to them (see /config_dump: tls_not_originated)"
                );
            }
            Converted::Clusters(clusters)
        }
        TypeUrl::ClusterLoadAssignment => {
            Converted::Assignments(each::<ClusterLoadAssignment, _, _>(
                resources,
                |c| &c.cluster_name,
                |x| LoadAssignment::try_from(x),
            )?)
        }
        TypeUrl::Listener => Converted::Listeners(each::<XdsListener, _, _>(
            resources,
            |l| &l.name,
            |x| Listener::try_from(x),
        )?),
        TypeUrl::RouteConfiguration => Converted::Routes(each::<RouteConfiguration, _, _>(
            resources,
            |r| &r.name,
            |x| RouteTable::try_from(x),
        )?),
        TypeUrl::Secret => return Err("secrets are not subscribed to".into()),
        TypeUrl::VirtualHost => return Err("virtual hosts (VHDS) are not subscribed to".into()),
    })
}

#[cfg(test)]
mod tests;
