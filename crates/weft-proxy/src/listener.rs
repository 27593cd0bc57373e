//! Listeners (LDS) in Weft's own form, and the sockets that serve them.
//!
//! A listener is an address (bound or not), and filter chains chosen by
//! destination port, server name and sniffed protocol; each chain ends in
//! an HTTP connection manager (routes by RDS name or inline) or a TCP
//! proxy. In explicit mode the outbound `0.0.0.0_<port>` listeners are
//! only looked up (by the port of a proxied request) and the bound inbound
//! listeners are served by [`serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::{
    FilterChain as XdsChain, Listener as XdsListener, filter,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use crate::endpoint::Address;
use crate::route::{HeaderOps, RouteTable, Target, WeightedCluster};

pub mod select;
pub mod serve;

pub use select::ConnectionInfo;

pub use weft_xds::names::{HCM_FILTER, TCP_PROXY_FILTER};

/// "No idle timeout": long enough never to matter, short enough for
/// `Instant` arithmetic.
const NO_IDLE_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Why a listener can't be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("listener {listener}: {reason}")]
pub struct ListenerError {
    /// The listener.
    pub listener: String,
    /// What is wrong.
    pub reason: String,
}

/// Which way a listener's traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Direction {
    /// To the proxy's own workload.
    Inbound,
    /// From the workload to services.
    Outbound,
    /// Not said.
    Unspecified,
}

/// A listener.
#[derive(Debug)]
pub struct Listener {
    /// Its name (`0.0.0.0_9080`, `127.0.0.1_19080`).
    pub name: String,
    /// Its address, if it has a socket address.
    pub address: Option<SocketAddr>,
    /// Whether the proxy binds it itself.
    pub bind: bool,
    /// Which way.
    pub direction: Direction,
    /// Its filter chains, in order.
    pub chains: Vec<FilterChain>,
    /// The chain for connections no chain matches.
    pub default_chain: Option<FilterChain>,
}

/// A filter chain.
#[derive(Debug)]
pub struct FilterChain {
    /// Its name.
    pub name: String,
    /// Only for this destination port.
    pub destination_port: Option<u16>,
    /// Only for these server names (TLS SNI, or the host of an explicit `CONNECT`).
    pub server_names: Vec<String>,
    /// Only for this transport (`tls`, `raw_buffer`).
    pub transport_protocol: String,
    /// Only for these sniffed application protocols (`http/1.1`, `h2c`).
    pub application_protocols: Vec<String>,
    /// What serves the connection.
    pub filter: NetworkFilter,
    /// A TCP proxy's idle timeout (the TcpProxy's `idle_timeout`; Envoy's
    /// default 1 h; `0s` in the config turns it off, here a century).
    pub tcp_idle_timeout: Duration,
    /// How long a TCP proxy's connection may last, then both sides are
    /// closed (the TcpProxy's `max_downstream_connection_duration`;
    /// `None`, also for `0s`: no limit).
    pub tcp_max_duration: Option<Duration>,
    /// An HTTP connection manager's header settings (`x-forwarded-for`,
    /// `x-request-id`, ...; defaults for TCP chains).
    pub forwarded: Arc<crate::forwarded::Config>,
}

/// The terminal network filter of a chain.
#[derive(Debug)]
pub enum NetworkFilter {
    /// HTTP, with routes.
    Http(Routes),
    /// TCP to a cluster (or a weighted split).
    Tcp(Target),
}

/// Where an HTTP connection manager's routes are.
#[derive(Debug)]
pub enum Routes {
    /// Fetched over RDS under this name.
    Rds(String),
    /// In the listener.
    Inline(Arc<RouteTable>),
}

impl FilterChain {
    /// Whether it is HTTP only when the traffic is sniffed as HTTP.
    pub fn sniffed(&self) -> bool {
        !self.application_protocols.is_empty()
    }
}

impl Listener {
    /// The HTTP chain for plain-text traffic (the one the explicit proxy uses).
    pub fn http_chain(&self) -> Option<&FilterChain> {
        self.chains
            .iter()
            .chain(self.default_chain.as_ref())
            .find(|c| matches!(c.filter, NetworkFilter::Http(_)) && c.transport_protocol != "tls")
    }

    /// The TCP chain for a connection to `server_name` (a `CONNECT` host, or
    /// SNI): the one naming it, else one naming none.
    pub fn tcp_chain(&self, server_name: &str) -> Option<&FilterChain> {
        let tcp = || {
            self.chains
                .iter()
                .chain(self.default_chain.as_ref())
                .filter(|c| matches!(c.filter, NetworkFilter::Tcp(_)))
        };
        tcp()
            .find(|c| {
                c.server_names
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(server_name))
            })
            .or_else(|| tcp().find(|c| c.server_names.is_empty() && c.transport_protocol != "tls"))
    }

    /// The RDS names its chains fetch.
    pub fn rds_names(&self) -> impl Iterator<Item = &str> {
        self.chains
            .iter()
            .chain(self.default_chain.as_ref())
            .filter_map(|c| match &c.filter {
                NetworkFilter::Http(Routes::Rds(n)) => Some(n.as_str()),
                _ => None,
            })
    }
}

impl TryFrom<&XdsListener> for Listener {
    type Error = ListenerError;

    fn try_from(l: &XdsListener) -> Result<Self, Self::Error> {
        let err = |reason: String| ListenerError {
            listener: l.name.clone(),
            reason,
        };
        if l.name.is_empty() {
            return Err(err("has no name".into()));
        }
        let address = match &l.address {
            None => None,
            Some(a) => match Address::from_xds(Some(a)).map_err(err)? {
                Address::Socket(s) => Some(s),
                Address::Host(h, _) => return Err(err(format!("address {h} is not an IP"))),
            },
        };
        let chains = l
            .filter_chains
            .iter()
            .map(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let default_chain = l
            .default_filter_chain
            .as_ref()
            .map(chain)
            .transpose()
            .map_err(err)?;
        Ok(Listener {
            name: l.name.clone(),
            address,
            bind: l.bind_to_port.as_ref().is_none_or(|b| b.value) && l.api_listener.is_none(),
            direction: match TrafficDirection::try_from(l.traffic_direction) {
                Ok(TrafficDirection::Inbound) => Direction::Inbound,
                Ok(TrafficDirection::Outbound) => Direction::Outbound,
                _ => Direction::Unspecified,
            },
            chains,
            default_chain,
        })
    }
}

fn chain(c: &XdsChain) -> Result<FilterChain, String> {
    let name = if c.name.is_empty() {
        "(unnamed)".to_string()
    } else {
        c.name.clone()
    };
    let m = c.filter_chain_match.clone().unwrap_or_default();
    let terminal = c
        .filters
        .iter()
        .rev()
        .find(|f| f.name == HCM_FILTER || f.name == TCP_PROXY_FILTER)
        .ok_or_else(|| {
            format!("filter chain {name} has neither an HTTP connection manager nor a TCP proxy")
        })?;
    let Some(filter::ConfigType::TypedConfig(any)) = &terminal.config_type else {
        return Err(format!(
            "filter chain {name}: {} has no typed config",
            terminal.name
        ));
    };
    let mut tcp_idle_timeout = crate::tcp::DEFAULT_IDLE_TIMEOUT;
    let mut tcp_max_duration = None;
    let mut forwarded = crate::forwarded::Config::default();
    let filter = if terminal.name == HCM_FILTER {
        let hcm: HttpConnectionManager =
            weft_xds::unpack(any).map_err(|e| format!("filter chain {name}: {e}"))?;
        forwarded = crate::forwarded::Config::try_from(&hcm)
            .map_err(|e| format!("filter chain {name}: {e}"))?;
        NetworkFilter::Http(match hcm.route_specifier {
            Some(RouteSpecifier::Rds(r)) => Routes::Rds(r.route_config_name),
            Some(RouteSpecifier::RouteConfig(rc)) => Routes::Inline(Arc::new(
                RouteTable::try_from(&rc).map_err(|e| format!("filter chain {name}: {e}"))?,
            )),
            _ => {
                return Err(format!(
                    "filter chain {name}: scoped routes are not supported"
                ));
            }
        })
    } else {
        let tcp: TcpProxy =
            weft_xds::unpack(any).map_err(|e| format!("filter chain {name}: {e}"))?;
        if let Some(d) = &tcp.idle_timeout {
            tcp_idle_timeout = crate::cluster::proto_duration(d)
                .map_err(|e| format!("filter chain {name}: idle_timeout {e}"))?;
            if tcp_idle_timeout.is_zero() {
                tcp_idle_timeout = NO_IDLE_TIMEOUT;
            }
        }
        if let Some(d) = &tcp.max_downstream_connection_duration {
            let max = crate::cluster::proto_duration(d).map_err(|e| {
                format!("filter chain {name}: max_downstream_connection_duration {e}")
            })?;
            tcp_max_duration = Some(max).filter(|m| !m.is_zero());
        }
        NetworkFilter::Tcp(match tcp.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => Target::Cluster(c),
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                let clusters: Vec<WeightedCluster> = w
                    .clusters
                    .into_iter()
                    .filter(|c| c.weight > 0)
                    .map(|c| WeightedCluster {
                        name: c.name,
                        weight: c.weight,
                        request_headers: HeaderOps::default(),
                        response_headers: HeaderOps::default(),
                        host_rewrite: None,
                    })
                    .collect();
                let total = clusters.iter().map(|c| u64::from(c.weight)).sum();
                if total == 0 {
                    return Err(format!("filter chain {name}: TCP split has no weight"));
                }
                Target::Weighted { clusters, total }
            }
            None => return Err(format!("filter chain {name}: TCP proxy names no cluster")),
        })
    };
    Ok(FilterChain {
        name,
        destination_port: m
            .destination_port
            .map(|p| {
                u16::try_from(p.value)
                    .map_err(|_| format!("destination port {} out of range", p.value))
            })
            .transpose()?,
        server_names: m.server_names,
        transport_protocol: m.transport_protocol,
        application_protocols: m.application_protocols,
        filter,
        tcp_idle_timeout,
        tcp_max_duration,
        forwarded: Arc::new(forwarded),
    })
}

#[cfg(test)]
mod tests {
    use weft_xds::pb::envoy::config::listener::v3::Filter;
    use weft_xds::pb::google::protobuf::Duration as PbDuration;

    use super::*;

    fn tcp_chain(tcp: &TcpProxy) -> XdsChain {
        XdsChain {
            name: "tcp".into(),
            filters: vec![Filter {
                name: TCP_PROXY_FILTER.into(),
                config_type: Some(filter::ConfigType::TypedConfig(weft_xds::pack(tcp))),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_tcp_proxys_durations_are_read() {
        let secs = |seconds| Some(PbDuration { seconds, nanos: 0 });
        let mut tcp = TcpProxy {
            stat_prefix: "outbound|9000||db".into(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(
                "outbound|9000||db".into(),
            )),
            idle_timeout: secs(30),
            max_downstream_connection_duration: secs(600),
            ..Default::default()
        };
        let c = chain(&tcp_chain(&tcp)).expect("converts");
        assert_eq!(c.tcp_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.tcp_max_duration, Some(Duration::from_secs(600)));
        // Unset or zero: no limit (Envoy's).
        tcp.max_downstream_connection_duration = secs(0);
        assert_eq!(
            chain(&tcp_chain(&tcp)).expect("zero").tcp_max_duration,
            None
        );
        tcp.max_downstream_connection_duration = None;
        assert_eq!(
            chain(&tcp_chain(&tcp)).expect("unset").tcp_max_duration,
            None
        );
        tcp.max_downstream_connection_duration = secs(-1);
        let e = chain(&tcp_chain(&tcp)).expect_err("negative");
        assert!(e.contains("max_downstream_connection_duration"), "{e}");
    }
}
