//! Endpoints (EDS `ClusterLoadAssignment`s, and the static endpoints of
//! a cluster) in Weft's own form: an address, a weight, health, priority
//! and locality, plus the live count of requests each one has in flight
//! (what least-request balancing reads).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use weft_xds::pb::envoy::config::core::v3::{self as core, HealthStatus, address, socket_address};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};

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
    /// Whether it may get traffic (EDS health UNKNOWN, HEALTHY or DEGRADED).
    pub healthy: bool,
    /// Its priority (0 is tried first).
    pub priority: u32,
    /// `region/zone/subzone`.
    pub locality: String,
    /// Requests in flight to it now.
    #[serde(skip)]
    pub active: AtomicU32,
}

impl Endpoint {
    /// A healthy endpoint of weight 1 (tests and static clusters).
    pub fn new(address: Address) -> Self {
        Endpoint {
            address,
            weight: 1,
            healthy: true,
            priority: 0,
            locality: String::new(),
            active: AtomicU32::new(0),
        }
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
}

/// A request in flight to an endpoint (see [`Endpoint::start_request`]).
#[derive(Debug)]
pub struct ActiveRequest(Arc<Endpoint>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoints of one cluster.
#[derive(Debug, Default)]
pub struct LoadAssignment {
    /// The cluster (or EDS service) name.
    pub cluster: String,
    /// Every endpoint, healthy or not.
    pub endpoints: Vec<Arc<Endpoint>>,
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
                    address,
                    weight: e.load_balancing_weight.map_or(1, |w| w.value.max(1)),
                    healthy: matches!(
                        health,
                        HealthStatus::Unknown | HealthStatus::Healthy | HealthStatus::Degraded
                    ),
                    priority: locality.priority,
                    locality: name.clone(),
                    active: AtomicU32::new(0),
                }));
                index += 1;
            }
        }
        Ok(LoadAssignment {
            cluster: cla.cluster_name.clone(),
            endpoints,
        })
    }
}

impl LoadAssignment {
    /// The endpoints traffic goes to: the healthy ones of the lowest
    /// priority that has any (priority failover).
    pub fn serving(&self) -> Vec<Arc<Endpoint>> {
        let Some(best) = self
            .endpoints
            .iter()
            .filter(|e| e.healthy)
            .map(|e| e.priority)
            .min()
        else {
            return Vec::new();
        };
        self.endpoints
            .iter()
            .filter(|e| e.healthy && e.priority == best)
            .cloned()
            .collect()
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
    fn converts_and_fails_over_by_priority() {
        let cla = ClusterLoadAssignment {
            cluster_name: "outbound|9080||reviews".into(),
            endpoints: vec![
                LocalityLbEndpoints {
                    lb_endpoints: vec![lb("127.0.0.1", 1, HealthStatus::Unhealthy)],
                    ..Default::default()
                },
                LocalityLbEndpoints {
                    priority: 1,
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
        let serving: Vec<String> = la.serving().iter().map(|e| e.address.to_string()).collect();
        assert_eq!(serving, vec!["127.0.0.2:2", "reviews.example:3"]);
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
