//! Endpoints (EDS `ClusterLoadAssignment`s, and the static endpoints of
//! a cluster) in Weft's own form: an address, a weight, health, priority
//! and locality (with the locality's weight), plus the live count of
//! requests each one has in flight (what least-request balancing reads)
//! and its outlier-detection state.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use weft_xds::pb::envoy::config::core::v3::{self as core, HealthStatus, address, socket_address};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};

use crate::outlier::HostOutlier;

/// Why an xDS endpoint can't be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No address, or one of a kind the proxy can't dial.
    #[error("endpoint {index} of {cluster}: {reason}")]
    BadAddress {
        /// The cluster.
        cluster: String,
        /// The endpoint's position in the assignment.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Where an endpoint listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Address {
    /// An IP and port.
    Socket(SocketAddr),
    /// A host name (DNS clusters), resolved when connecting.
    Host(String, u16),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Socket(a) => write!(f, "{a}"),
            Address::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

impl Address {
    /// Reads an Envoy `Address`; a unix pipe is not supported yet.
    pub fn from_xds(a: Option<&core::Address>) -> Result<Address, String> {
        let Some(address::Address::SocketAddress(s)) = a.and_then(|a| a.address.as_ref()) else {
            return Err("has no socket address (unix pipes are not supported yet)".into());
        };
        let port = match s.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => {
                u16::try_from(p).map_err(|_| format!("port {p} is out of range"))?
            }
            _ => return Err(format!("{} has no port number", s.address)),
        };
        if s.address.is_empty() {
            return Err("has an empty address".into());
        }
        let host = s.address.trim_start_matches('[').trim_end_matches(']');
        Ok(match host.parse() {
            Ok(ip) => Address::Socket(SocketAddr::new(ip, port)),
            Err(_) => Address::Host(host.to_string(), port),
        })
    }
}

/// One endpoint of a cluster.
#[derive(Debug, serde::Serialize)]
pub struct Endpoint {
    /// Where to connect.
    pub address: Address,
    /// Its load-balancing weight (at least 1).
    pub weight: u32,
    /// Whether it counts as healthy (EDS health UNKNOWN or HEALTHY;
    /// UNHEALTHY, DRAINING, TIMEOUT and DEGRADED don't). Unhealthy
    /// endpoints get traffic only in panic mode.
    pub healthy: bool,
    /// Its priority (0 is tried first).
    pub priority: u32,
    /// `region/zone/subzone`.
    pub locality: String,
    /// Its locality's EDS weight (`0`: none given; locality-weighted
    /// balancing then skips the locality, as Envoy does).
    pub locality_weight: u32,
    /// Requests in flight to it now.
    #[serde(skip)]
    pub active: AtomicU32,
    /// Its outlier detection state (ejected or not, consecutive failures).
    #[serde(skip)]
    pub outlier: HostOutlier,
    /// `address` as `host:port` ([`crate::pool::endpoint_key`]), written
    /// once: the key of its upstream pool and what is dialled.
    #[serde(skip)]
    key: Arc<str>,
}

impl Endpoint {
    /// A healthy endpoint of weight 1 (tests and static clusters).
    pub fn new(address: Address) -> Self {
        Endpoint {
            key: crate::pool::endpoint_key(&address).into(),
            address,
            weight: 1,
            healthy: true,
            priority: 0,
            locality: String::new(),
            locality_weight: 0,
            active: AtomicU32::new(0),
            outlier: HostOutlier::default(),
        }
    }

    /// The same endpoint with no requests counted (for a config of its own).
    pub fn fresh_copy(&self) -> Endpoint {
        Endpoint {
            address: self.address.clone(),
            key: self.key.clone(),
            weight: self.weight,
            healthy: self.healthy,
            priority: self.priority,
            locality: self.locality.clone(),
            locality_weight: self.locality_weight,
            active: AtomicU32::new(0),
            outlier: HostOutlier::default(),
        }
    }

    /// Its `host:port`: the key of its upstream pool and what is dialled.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// Counts a request in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveRequest(self.clone())
    }

    /// Requests in flight now.
    pub fn active_requests(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether it may take traffic outside panic mode: healthy by EDS and
    /// not ejected by outlier detection.
    pub fn is_healthy(&self) -> bool {
        self.healthy && !self.outlier.is_ejected()
    }
}

/// A request in flight to an endpoint (see [`Endpoint::start_request`]).
#[derive(Debug)]
pub struct ActiveRequest(Arc<Endpoint>);

impl ActiveRequest {
    /// The endpoint.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Envoy's default overprovisioning factor, in percent (1.4).
pub const DEFAULT_OVERPROVISIONING: u32 = 140;

/// The endpoints of one cluster.
#[derive(Debug)]
pub struct LoadAssignment {
    /// The cluster (or EDS service) name.
    pub cluster: String,
    /// Every endpoint, healthy or not.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// How overprovisioned priorities and localities are, in percent
    /// (`policy.overprovisioning_factor`; default 140).
    pub overprovisioning: u32,
}

impl Default for LoadAssignment {
    fn default() -> Self {
        LoadAssignment {
            cluster: String::new(),
            endpoints: Vec::new(),
            overprovisioning: DEFAULT_OVERPROVISIONING,
        }
    }
}

impl LoadAssignment {
    /// Whether `other` lists the same endpoints with the same weights,
    /// health, priorities and localities (request counts aside): an EDS
    /// update that changes nothing keeps the old one, its counts and its
    /// balancer.
    pub fn same_endpoints(&self, other: &LoadAssignment) -> bool {
        self.cluster == other.cluster
            && self.overprovisioning == other.overprovisioning
            && self.endpoints.len() == other.endpoints.len()
            && self.endpoints.iter().zip(&other.endpoints).all(|(a, b)| {
                a.address == b.address
                    && a.weight == b.weight
                    && a.healthy == b.healthy
                    && a.priority == b.priority
                    && a.locality == b.locality
                    && a.locality_weight == b.locality_weight
            })
    }
}

impl TryFrom<&ClusterLoadAssignment> for LoadAssignment {
    type Error = EndpointError;

    fn try_from(cla: &ClusterLoadAssignment) -> Result<Self, Self::Error> {
        let mut endpoints = Vec::new();
        let mut index = 0;
        for locality in &cla.endpoints {
            let name = locality
                .locality
                .as_ref()
                .map(|l| {
                    [&l.region, &l.zone, &l.sub_zone]
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .filter(|s| s != "//")
                .unwrap_or_default();
            for e in &locality.lb_endpoints {
                let bad = |reason: String| EndpointError::BadAddress {
                    cluster: cla.cluster_name.clone(),
                    index,
                    reason,
                };
                let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                    return Err(bad("names no endpoint".into()));
                };
                let address = Address::from_xds(ep.address.as_ref()).map_err(bad)?;
                let health = HealthStatus::try_from(e.health_status).unwrap_or_default();
                endpoints.push(Arc::new(Endpoint {
                    key: crate::pool::endpoint_key(&address).into(),
                    address,
                    weight: e.load_balancing_weight.map_or(1, |w| w.value.max(1)),
                    healthy: matches!(health, HealthStatus::Unknown | HealthStatus::Healthy),
                    priority: locality.priority,
                    locality: name.clone(),
                    locality_weight: locality.load_balancing_weight.map_or(0, |w| w.value),
                    active: AtomicU32::new(0),
                    outlier: HostOutlier::default(),
                }));
                index += 1;
            }
        }
        let overprovisioning = cla
            .policy
            .as_ref()
            .and_then(|p| p.overprovisioning_factor)
            .map_or(DEFAULT_OVERPROVISIONING, |f| f.value);
        Ok(LoadAssignment {
            cluster: cla.cluster_name.clone(),
            endpoints,
            overprovisioning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::pb::envoy::config::endpoint::v3::{
        Endpoint as XdsEndpoint, LbEndpoint, LocalityLbEndpoints,
    };
    use weft_xds::pb::google::protobuf::UInt32Value;

    fn lb(ip: &str, port: u32, health: HealthStatus) -> LbEndpoint {
        LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(XdsEndpoint {
                address: Some(core::Address {
                    address: Some(address::Address::SocketAddress(core::SocketAddress {
                        address: ip.into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            health_status: health as i32,
            load_balancing_weight: Some(UInt32Value { value: 3 }),
            ..Default::default()
        }
    }

    #[test]
    fn converts_health_weights_priorities_and_localities() {
        let cla = ClusterLoadAssignment {
            cluster_name: "outbound|9080||reviews".into(),
            endpoints: vec![
                LocalityLbEndpoints {
                    lb_endpoints: vec![lb("127.0.0.1", 1, HealthStatus::Unhealthy)],
                    ..Default::default()
                },
                LocalityLbEndpoints {
                    priority: 1,
                    locality: Some(core::Locality {
                        region: "us".into(),
                        zone: "east-1".into(),
                        sub_zone: "a".into(),
                    }),
                    load_balancing_weight: Some(UInt32Value { value: 7 }),
                    lb_endpoints: vec![
                        lb("127.0.0.2", 2, HealthStatus::Healthy),
                        lb("reviews.example", 3, HealthStatus::Unknown),
                    ],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let la = LoadAssignment::try_from(&cla).expect("converts");
        assert_eq!(la.endpoints.len(), 3);
        assert_eq!(la.endpoints[1].weight, 3);
        let healthy: Vec<(String, u32)> = la
            .endpoints
            .iter()
            .filter(|e| e.healthy)
            .map(|e| (e.address.to_string(), e.priority))
            .collect();
        assert_eq!(
            healthy,
            vec![("127.0.0.2:2".into(), 1), ("reviews.example:3".into(), 1)]
        );
        assert_eq!(la.endpoints[1].locality, "us/east-1/a");
        assert_eq!(la.endpoints[1].locality_weight, 7);
        assert_eq!(la.overprovisioning, DEFAULT_OVERPROVISIONING);
        let again = LoadAssignment::try_from(&cla).expect("converts");
        assert!(la.same_endpoints(&again));
        // Draining, timed out and degraded endpoints don't count as healthy.
        for h in [
            HealthStatus::Draining,
            HealthStatus::Timeout,
            HealthStatus::Degraded,
        ] {
            let mut cla = cla.clone();
            cla.endpoints[1].lb_endpoints[0].health_status = h as i32;
            let changed = LoadAssignment::try_from(&cla).expect("converts");
            assert!(!changed.endpoints[1].healthy, "{h:?}");
            assert!(!changed.same_endpoints(&la));
        }
    }

    #[test]
    fn endpoints_without_address_are_rejected_with_the_cluster_named() {
        let cla = ClusterLoadAssignment {
            cluster_name: "outbound|9080||reviews".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint::default()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = LoadAssignment::try_from(&cla).expect_err("no address");
        assert!(e.to_string().contains("outbound|9080||reviews"), "{e}");
    }
}
