//! Clusters (CDS) in Weft's own form: how endpoints are found, how one is
//! picked, how to talk to it.

use std::time::Duration;

use weft_xds::pb::envoy::config::cluster::v3::{Cluster as XdsCluster, cluster};
use weft_xds::pb::envoy::config::core::v3::Http2ProtocolOptions;
use weft_xds::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use weft_xds::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};

use crate::breaker::Limits;
use crate::endpoint::LoadAssignment;
use crate::outlier::OutlierConfig;
use crate::pool::PoolSettings;

pub use weft_xds::names::HTTP_PROTOCOL_OPTIONS;
use weft_xds::names::TLS_SOCKET;

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a cluster can't be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cluster {cluster}: {reason}")]
pub struct ClusterError {
    /// The cluster's name.
    pub cluster: String,
    /// What is wrong.
    pub reason: String,
}

/// How a cluster picks an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Least request, power of two choices (Istio's default).
    LeastRequest,
    /// Weighted random.
    Random,
    /// Consistent hashing on a ring (Ketama); the key comes from the
    /// route's hash policy.
    RingHash,
    /// Consistent hashing with a Maglev lookup table.
    Maglev,
    /// The cluster decides (original destination).
    ClusterProvided,
}

/// How a cluster's balancer is tuned: CDS `lb_config` and
/// `common_lb_config`, with Envoy's defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LbSettings {
    /// Ring hash: fewest entries on the ring (default 1024).
    pub ring_min: u64,
    /// Ring hash: most entries on the ring (default 8M).
    pub ring_max: u64,
    /// Maglev: lookup table size, a prime (default 65537).
    pub maglev_table_size: u64,
    /// Least request: endpoints compared per pick when weights are equal
    /// (default 2).
    pub choice_count: u32,
    /// Least request with unequal weights: the exponent of
    /// `weight / (active + 1) ^ bias` (default 1.0).
    pub active_request_bias: f64,
    /// Below this percentage of healthy endpoints a priority uses all of
    /// its endpoints (default 50; 0 turns panic mode off).
    pub panic_threshold: f64,
    /// Whether localities are balanced by their EDS weights
    /// (`locality_weighted_lb_config`).
    pub locality_weighted: bool,
}

impl Default for LbSettings {
    fn default() -> Self {
        LbSettings {
            ring_min: 1024,
            ring_max: 8 * 1024 * 1024,
            maglev_table_size: 65537,
            choice_count: 2,
            active_request_bias: 1.0,
            panic_threshold: 50.0,
            locality_weighted: false,
        }
    }
}

/// Envoy's largest ring and Maglev table.
const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

impl LbSettings {
    /// Reads a cluster's settings; rejects sizes Envoy rejects.
    fn from_xds(c: &XdsCluster) -> Result<LbSettings, String> {
        let mut out = LbSettings::default();
        match &c.lb_config {
            Some(cluster::LbConfig::RingHashLbConfig(r)) => {
                if let Some(min) = &r.minimum_ring_size {
                    out.ring_min = min.value;
                }
                if let Some(max) = &r.maximum_ring_size {
                    out.ring_max = max.value;
                }
                if out.ring_max > MAX_RING_SIZE || out.ring_min > out.ring_max {
                    return Err(format!(
                        "ring size {}..{} is invalid (at most {MAX_RING_SIZE}, minimum not above maximum)",
                        out.ring_min, out.ring_max
                    ));
                }
                out.ring_min = out.ring_min.max(1);
                if r.hash_function != 0 {
                    return Err("ring hash function MURMUR_HASH_2 is not supported".into());
                }
            }
            Some(cluster::LbConfig::MaglevLbConfig(m)) => {
                if let Some(size) = &m.table_size {
                    if size.value > MAX_MAGLEV_TABLE_SIZE || !is_prime(size.value) {
                        return Err(format!(
                            "maglev table size {} must be a prime of at most {MAX_MAGLEV_TABLE_SIZE}",
                            size.value
                        ));
                    }
                    out.maglev_table_size = size.value;
                }
            }
            Some(cluster::LbConfig::LeastRequestLbConfig(l)) => {
                if let Some(n) = &l.choice_count {
                    if n.value < 2 {
                        return Err(format!("least request choice_count {} is below 2", n.value));
                    }
                    out.choice_count = n.value;
                }
                if let Some(b) = &l.active_request_bias {
                    if !(b.default_value >= 0.0 && b.default_value.is_finite()) {
                        return Err(format!(
                            "active_request_bias {} is not a non-negative number",
                            b.default_value
                        ));
                    }
                    out.active_request_bias = b.default_value;
                }
            }
            _ => {}
        }
        if let Some(common) = &c.common_lb_config {
            if let Some(p) = &common.healthy_panic_threshold {
                out.panic_threshold = p.value.clamp(0.0, 100.0);
            }
            out.locality_weighted = matches!(
                common.locality_config_specifier,
                Some(
                    cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_)
                )
            );
        }
        Ok(out)
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Discovery {
    /// EDS, under this service name.
    Eds(String),
    /// Listed in the cluster (STATIC, STRICT_DNS, LOGICAL_DNS: host names
    /// are resolved when connecting).
    Static,
    /// The request's own destination (PassthroughCluster; in explicit mode
    /// the authority of the proxied request).
    OriginalDst,
}

/// The HTTP version spoken to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (prior knowledge).
    Http2,
    /// Whatever the downstream spoke.
    Downstream,
}

/// A cluster.
#[derive(Debug, serde::Serialize)]
pub struct Cluster {
    /// Its name (`outbound|9080|v1|reviews.shop.svc.cluster.local`).
    pub name: String,
    /// Where its endpoints come from.
    pub discovery: Discovery,
    /// How one is picked.
    pub lb_policy: LbPolicy,
    /// The balancer's settings.
    pub lb: LbSettings,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// The HTTP version to the upstream.
    pub protocol: UpstreamProtocol,
    /// How long a pooled connection with no request in flight is kept
    /// (`common_http_protocol_options.idle_timeout`; `None`: Envoy's
    /// default, 1 h; zero: for ever).
    pub idle_timeout: Option<Duration>,
    /// Requests per upstream connection at most (`None`: no limit; Istio's
    /// `maxRequestsPerConnection`).
    pub max_requests_per_connection: Option<u32>,
    /// Streams in flight per HTTP/2 connection at most
    /// (`http2_protocol_options.max_concurrent_streams`; Istio's
    /// `maxConcurrentStreams`; `None`: Envoy's default, 2^31 - 1).
    pub max_concurrent_streams: Option<u32>,
    /// How long an upstream connection may live, then it drains
    /// (`common_http_protocol_options.max_connection_duration`; Istio's
    /// `tcp.maxConnectionDuration`; `None` or zero: for ever).
    pub max_connection_duration: Option<Duration>,
    /// Circuit breaker limits (`circuit_breakers`, DEFAULT priority).
    pub limits: Limits,
    /// Outlier detection, when the cluster has it.
    pub outlier: Option<OutlierConfig>,
    /// The endpoints listed in the cluster itself (non-EDS clusters).
    #[serde(skip)]
    pub load_assignment: Option<LoadAssignment>,
    /// What TLS the control plane asked for. This proxy does not originate
    /// TLS yet: its traffic is plaintext either way, and `/config_dump`
    /// says so here.
    pub tls_not_originated: UpstreamTls,
}

impl Cluster {
    /// How its upstream connection pools dial and keep connections.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            connect_timeout: self.connect_timeout,
            idle_timeout: match self.idle_timeout {
                None => Some(crate::pool::DEFAULT_IDLE_TIMEOUT),
                Some(t) if t.is_zero() => None,
                Some(t) => Some(t),
            },
            max_requests_per_connection: self.max_requests_per_connection,
            max_concurrent_streams: self
                .max_concurrent_streams
                .unwrap_or(crate::pool::DEFAULT_MAX_CONCURRENT_STREAMS),
            max_connection_duration: self.max_connection_duration.filter(|d| !d.is_zero()),
        }
    }
}

/// TLS the control plane asked a cluster to use upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTls {
    /// None: plaintext, as asked.
    #[default]
    None,
    /// A TLS transport socket (a DestinationRule's `tls`, e.g. ISTIO_MUTUAL).
    Requested,
    /// Auto mTLS: TLS for endpoints marked as having a sidecar.
    AutoMtls,
}

impl TryFrom<&XdsCluster> for Cluster {
    type Error = ClusterError;

    fn try_from(c: &XdsCluster) -> Result<Self, Self::Error> {
        let err = |reason: String| ClusterError {
            cluster: c.name.clone(),
            reason,
        };
        if c.name.is_empty() {
            return Err(err("has no name".into()));
        }
        use cluster::DiscoveryType as D;
        let discovery_type = match &c.cluster_discovery_type {
            Some(cluster::ClusterDiscoveryType::Type(t)) => {
                D::try_from(*t).map_err(|_| err(format!("unknown discovery type {t}")))?
            }
            Some(cluster::ClusterDiscoveryType::ClusterType(t)) => {
                return Err(err(format!(
                    "custom cluster type {} is not supported",
                    t.name
                )));
            }
            None => D::Static,
        };
        let discovery = match discovery_type {
            D::Eds => Discovery::Eds(
                c.eds_cluster_config
                    .as_ref()
                    .map(|e| e.service_name.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| c.name.clone()),
            ),
            D::Static | D::StrictDns | D::LogicalDns => Discovery::Static,
            D::OriginalDst => Discovery::OriginalDst,
        };
        let load_assignment = match (&discovery, &c.load_assignment) {
            (Discovery::Static, Some(cla)) => {
                Some(LoadAssignment::try_from(cla).map_err(|e| err(e.to_string()))?)
            }
            _ => None,
        };
        use cluster::LbPolicy as P;
        let lb_policy = match P::try_from(c.lb_policy) {
            Ok(P::RoundRobin) => LbPolicy::RoundRobin,
            Ok(P::LeastRequest) => LbPolicy::LeastRequest,
            Ok(P::Random) => LbPolicy::Random,
            Ok(P::RingHash) => LbPolicy::RingHash,
            Ok(P::Maglev) => LbPolicy::Maglev,
            Ok(P::ClusterProvided) => LbPolicy::ClusterProvided,
            Ok(P::LoadBalancingPolicyConfig) | Err(_) => {
                return Err(err(format!(
                    "load balancing policy {} is not supported",
                    c.lb_policy
                )));
            }
        };
        let lb = LbSettings::from_xds(c).map_err(err)?;
        let connect_timeout = c
            .connect_timeout
            .as_ref()
            .map(|d| proto_duration(d).map_err(|e| err(format!("connect_timeout {e}"))))
            .transpose()?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut protocol = UpstreamProtocol::Http1;
        let mut idle_timeout = None;
        let mut max_requests_per_connection = None;
        let mut max_concurrent_streams = None;
        let mut max_connection_duration = None;
        let streams_of =
            |o: &Http2ProtocolOptions| o.max_concurrent_streams.map(|n| n.value).filter(|n| *n > 0);
        if let Some(any) = c
            .typed_extension_protocol_options
            .get(HTTP_PROTOCOL_OPTIONS)
        {
            let options: HttpProtocolOptions =
                weft_xds::unpack(any).map_err(|e| err(format!("{HTTP_PROTOCOL_OPTIONS}: {e}")))?;
            protocol = match &options.upstream_protocol_options {
                Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match &e.protocol_config {
                    Some(ProtocolConfig::Http2ProtocolOptions(o)) => {
                        max_concurrent_streams = streams_of(o);
                        UpstreamProtocol::Http2
                    }
                    Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                        return Err(err("HTTP/3 upstreams are not supported".into()));
                    }
                    _ => UpstreamProtocol::Http1,
                },
                Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(d)) => {
                    max_concurrent_streams = d.http2_protocol_options.as_ref().and_then(streams_of);
                    UpstreamProtocol::Downstream
                }
                Some(UpstreamProtocolOptions::AutoConfig(_)) => UpstreamProtocol::Downstream,
                None => UpstreamProtocol::Http1,
            };
            let common = options.common_http_protocol_options;
            max_requests_per_connection = common
                .as_ref()
                .and_then(|o| o.max_requests_per_connection)
                .map(|n| n.value)
                .filter(|n| *n > 0);
            max_connection_duration = common
                .as_ref()
                .and_then(|o| o.max_connection_duration.as_ref())
                .map(|d| proto_duration(d).map_err(|e| err(format!("max_connection_duration {e}"))))
                .transpose()?;
            idle_timeout = common
                .and_then(|o| o.idle_timeout)
                .map(|d| proto_duration(&d).map_err(|e| err(format!("idle_timeout {e}"))))
                .transpose()?;
        }
        #[allow(deprecated)]
        if let Some(o) = &c.http2_protocol_options {
            protocol = UpstreamProtocol::Http2;
            max_concurrent_streams = max_concurrent_streams.or(streams_of(o));
        }
        let tls_not_originated = if c
            .transport_socket
            .as_ref()
            .is_some_and(|t| t.name == TLS_SOCKET)
        {
            UpstreamTls::Requested
        } else if c
            .transport_socket_matches
            .iter()
            .filter_map(|m| m.transport_socket.as_ref())
            .any(|t| t.name == TLS_SOCKET)
        {
            UpstreamTls::AutoMtls
        } else {
            UpstreamTls::None
        };
        let limits = c
            .circuit_breakers
            .as_ref()
            .map(Limits::from)
            .unwrap_or_default();
        let outlier = c
            .outlier_detection
            .as_ref()
            .map(OutlierConfig::try_from)
            .transpose()
            .map_err(err)?;
        Ok(Cluster {
            name: c.name.clone(),
            discovery,
            lb_policy,
            lb,
            connect_timeout,
            protocol,
            idle_timeout,
            max_requests_per_connection,
            max_concurrent_streams,
            max_connection_duration,
            limits,
            outlier,
            load_assignment,
            tls_not_originated,
        })
    }
}

/// A protobuf duration as a std one; negative ones are errors.
pub fn proto_duration(d: &weft_xds::pb::google::protobuf::Duration) -> Result<Duration, String> {
    let secs = u64::try_from(d.seconds).map_err(|_| format!("{}s is negative", d.seconds))?;
    let nanos = u32::try_from(d.nanos).map_err(|_| format!("{}ns is negative", d.nanos))?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::ExplicitHttpConfig;

    #[test]
    fn eds_cluster_with_http2() {
        let options = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        let mut c = XdsCluster {
            name: "outbound|9090||greeter".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            lb_policy: cluster::LbPolicy::RoundRobin as i32,
            connect_timeout: Some(weft_xds::pb::google::protobuf::Duration {
                seconds: 2,
                nanos: 0,
            }),
            ..Default::default()
        };
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.into(), weft_xds::pack(&options));
        let m = Cluster::try_from(&c).expect("converts");
        assert_eq!(m.discovery, Discovery::Eds("outbound|9090||greeter".into()));
        assert_eq!(m.tls_not_originated, UpstreamTls::None);
        // A TLS transport socket (ISTIO_MUTUAL, or auto mTLS's socket match)
        // is flagged: this proxy still sends plaintext there.
        let mut tls = c.clone();
        tls.transport_socket_matches = vec![cluster::TransportSocketMatch {
            name: "tlsMode-istio".into(),
            transport_socket: Some(weft_xds::pb::envoy::config::core::v3::TransportSocket {
                name: TLS_SOCKET.into(),
                config_type: None,
            }),
            ..Default::default()
        }];
        assert_eq!(
            Cluster::try_from(&tls)
                .expect("converts")
                .tls_not_originated,
            UpstreamTls::AutoMtls
        );
        tls.transport_socket = tls.transport_socket_matches[0].transport_socket.clone();
        assert_eq!(
            Cluster::try_from(&tls)
                .expect("converts")
                .tls_not_originated,
            UpstreamTls::Requested
        );
        assert_eq!(m.protocol, UpstreamProtocol::Http2);
        assert_eq!(m.lb_policy, LbPolicy::RoundRobin);
        assert_eq!(m.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn lb_settings_follow_envoy_and_reject_what_envoy_rejects() {
        use weft_xds::pb::google::protobuf::UInt64Value;
        let mut c = XdsCluster {
            name: "outbound|9080||reviews".into(),
            lb_policy: cluster::LbPolicy::RingHash as i32,
            lb_config: Some(cluster::LbConfig::RingHashLbConfig(
                cluster::RingHashLbConfig {
                    minimum_ring_size: Some(UInt64Value { value: 2048 }),
                    ..Default::default()
                },
            )),
            common_lb_config: Some(cluster::CommonLbConfig {
                healthy_panic_threshold: Some(weft_xds::pb::envoy::r#type::v3::Percent {
                    value: 30.0,
                }),
                locality_config_specifier: Some(
                    cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                        Default::default(),
                    ),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = Cluster::try_from(&c).expect("converts");
        assert_eq!(m.lb_policy, LbPolicy::RingHash);
        assert_eq!((m.lb.ring_min, m.lb.ring_max), (2048, 8 << 20));
        assert_eq!(m.lb.panic_threshold, 30.0);
        assert!(m.lb.locality_weighted);
        c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: 4096 }),
                maximum_ring_size: Some(UInt64Value { value: 1024 }),
                ..Default::default()
            },
        ));
        assert!(Cluster::try_from(&c).is_err(), "minimum above maximum");
        c.lb_policy = cluster::LbPolicy::Maglev as i32;
        c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
            table_size: Some(UInt64Value { value: 65536 }),
        }));
        let e = Cluster::try_from(&c).expect_err("not a prime");
        assert!(e.to_string().contains("prime"), "{e}");
        c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
            table_size: Some(UInt64Value { value: 251 }),
        }));
        let m = Cluster::try_from(&c).expect("a prime");
        assert_eq!(
            (m.lb_policy, m.lb.maglev_table_size),
            (LbPolicy::Maglev, 251)
        );
        assert_eq!(
            Cluster::try_from(&XdsCluster {
                name: "x".into(),
                ..Default::default()
            })
            .expect("defaults")
            .lb,
            LbSettings::default()
        );
    }

    #[test]
    fn max_connection_duration_is_read_into_the_pool_settings() {
        use weft_xds::pb::envoy::config::core::v3::HttpProtocolOptions as Common;
        let with = |seconds| {
            let options = HttpProtocolOptions {
                common_http_protocol_options: Some(Common {
                    max_connection_duration: Some(weft_xds::pb::google::protobuf::Duration {
                        seconds,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut c = XdsCluster {
                name: "outbound|9080||reviews".into(),
                ..Default::default()
            };
            c.typed_extension_protocol_options
                .insert(HTTP_PROTOCOL_OPTIONS.into(), weft_xds::pack(&options));
            Cluster::try_from(&c)
        };
        let m = with(600).expect("converts");
        assert_eq!(m.max_connection_duration, Some(Duration::from_secs(600)));
        assert_eq!(
            m.pool_settings().max_connection_duration,
            Some(Duration::from_secs(600))
        );
        // Zero, as unset: connections live on.
        let zero = with(0).expect("converts");
        assert_eq!(zero.pool_settings().max_connection_duration, None);
        let e = with(-5).expect_err("negative");
        assert!(e.to_string().contains("max_connection_duration"), "{e}");
        let unset = Cluster::try_from(&XdsCluster {
            name: "x".into(),
            ..Default::default()
        })
        .expect("defaults");
        assert_eq!(unset.pool_settings().max_connection_duration, None);
    }

    #[test]
    fn bad_clusters_name_themselves() {
        let c = XdsCluster {
            name: "outbound|1||x".into(),
            lb_policy: 99,
            ..Default::default()
        };
        let e = Cluster::try_from(&c).expect_err("bad policy");
        assert!(e.to_string().contains("outbound|1||x"), "{e}");
    }
}
