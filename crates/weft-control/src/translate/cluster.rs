//! CDS: one cluster per service port, and one per DestinationRule subset
//! and port, named as Istio names them (`outbound|9080|v1|reviews...`).
//!
//! The traffic policy in force for each (see [`super::policy`]) becomes
//! the cluster's load balancer, circuit breakers (connection pool limits)
//! and outlier detection. How endpoints are found follows the service's
//! resolution: STATIC → EDS, DNS → STRICT_DNS, DNS_ROUND_ROBIN →
//! LOGICAL_DNS, NONE → ORIGINAL_DST.

use weft_config::duration::Duration;
use weft_config::networking::{
    ConsistentHashLb, H2UpgradePolicy, Protocol, SimpleLb, TrafficPolicy,
};
use weft_registry::{EndpointAddress, Resolution, Service};
use weft_xds::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, circuit_breakers, cluster,
};
use weft_xds::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions, RoutingPriority,
};
use weft_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use weft_xds::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttpProtocolOptions,
    http_protocol_options as upstream_http_protocol_options,
};
use weft_xds::pb::envoy::r#type::v3::Percent;

use super::envoy::{ads, duration, istio_config_metadata, pipe, socket_address, u32_value};
use super::names::outbound_cluster;
use super::policy::{destination_rule_for, effective_policy};
use super::{Inputs, Proxy, ProxyKind};
use super::{locality, tls};

pub use inbound::inbound_clusters;
pub use weft_xds::names::HTTP_PROTOCOL_OPTIONS;

mod inbound;

/// Connect timeout when neither the DestinationRule nor the mesh sets one
/// (Istio's default).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A cluster that drops everything (unknown destinations under
/// `REGISTRY_ONLY`).
pub const BLACKHOLE: &str = "BlackHoleCluster";
/// A cluster that forwards to the original destination (`ALLOW_ANY`).
pub const PASSTHROUGH: &str = "PassthroughCluster";
/// Inbound traffic to a port no service declares, passed to the original
/// destination (captured sidecars only).
pub const INBOUND_PASSTHROUGH: &str = "InboundPassthroughCluster";

/// The clusters `proxy` is sent, sorted by name: [`outbound_clusters`]
/// and [`inbound_clusters`].
pub fn clusters(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Cluster> {
    let mut out = outbound_clusters(inputs, proxy);
    out.extend(inbound_clusters(inputs, proxy));
    super::names::sort_dedup_by_name(out, |c| &c.name)
}

/// The clusters to services (and the blackhole and passthrough ones),
/// sorted by name: what every proxy of a shape shares (see
/// [`super::translate_shared`]).
pub fn outbound_clusters(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Cluster> {
    let mut out = vec![blackhole(), passthrough()];
    for service in inputs.registry.all_services() {
        if !proxy.sees(service) {
            continue;
        }
        let found = destination_rule_for(inputs, proxy, service);
        let rule = found.map(|(_, dr)| dr);
        let from_rule = |mut c: Cluster| {
            if let Some((r, _)) = found {
                c.metadata = Some(istio_config_metadata(
                    "destination-rule",
                    r.namespace(),
                    r.name(),
                ));
            }
            c
        };
        for port in service
            .ports
            .iter()
            .filter(|p| proxy.sees_port(service, p.number))
        {
            let policy = rule
                .map(|dr| effective_policy(dr, None, port.number))
                .unwrap_or_default();
            out.extend(
                service_cluster(inputs, proxy, service, port.number, "", &policy).map(from_rule),
            );
            for subset in rule.map(|dr| dr.subsets.as_slice()).unwrap_or_default() {
                let policy = rule
                    .map(|dr| effective_policy(dr, Some(subset), port.number))
                    .unwrap_or_default();
                out.extend(
                    service_cluster(inputs, proxy, service, port.number, &subset.name, &policy)
                        .map(from_rule),
                );
            }
        }
    }
    super::names::sort_dedup_by_name(out, |c| &c.name)
}

/// Whether `proxy` is sent the cluster `outbound|<port>|<subset>|<host>`:
/// a service `host` it sees on `port` whose endpoints Weft can address,
/// and, for a subset, a DestinationRule (as the proxy sees it) defining
/// it. What [`outbound_clusters`] makes, without making it.
pub fn is_sent(inputs: Inputs<'_>, proxy: &Proxy, host: &str, port: u32, subset: &str) -> bool {
    let Ok(port) = u16::try_from(port) else {
        return false;
    };
    let Some(declared) = inputs
        .registry
        .services
        .get(&weft_registry::Hostname::new(host))
    else {
        return false;
    };
    declared.iter().any(|service| {
        service.port(port).is_some()
            && service.resolution != Resolution::DynamicDns
            && proxy.sees_port(service, port)
            && (subset.is_empty()
                || destination_rule_for(inputs, proxy, service)
                    .is_some_and(|(_, dr)| dr.subsets.iter().any(|s| s.name == subset)))
    })
}

/// An application address: `unix://path`, `host:port` or `[v6]:port`.
pub fn app_address(app: &str) -> Option<weft_xds::pb::envoy::config::core::v3::Address> {
    if let Some(path) = app.strip_prefix("unix://") {
        return Some(pipe(path));
    }
    let (host, port) = app.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| socket_address(host, port))
}

/// The cluster for one port (and subset) of a service; `None` for
/// services whose endpoints Weft can't address yet (dynamic DNS).
fn service_cluster(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    service: &Service,
    port: u16,
    subset: &str,
    policy: &TrafficPolicy,
) -> Option<Cluster> {
    let name = outbound_cluster(port, subset, service.hostname.as_str());
    let mesh_timeout = inputs.config.mesh.connect_timeout;
    let tcp = policy.connection_pool.as_ref().and_then(|c| c.tcp.as_ref());
    let connect_timeout = tcp
        .and_then(|t| t.connect_timeout)
        .or(mesh_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(duration(connect_timeout.get())),
        circuit_breakers: Some(circuit_breakers(policy)),
        outlier_detection: outlier_detection(policy),
        ..Cluster::default()
    };
    apply_load_balancer(&mut c, policy);
    if locality::weighted(locality::setting(inputs, Some(policy)), Some(policy)) {
        c.common_lb_config
            .get_or_insert_default()
            .locality_config_specifier = Some(
            cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                cluster::common_lb_config::LocalityWeightedLbConfig::default(),
            ),
        );
    }
    let mut http2 = false;
    let protocol = service.port(port).map(|p| p.protocol);
    let options = match protocol {
        Some(p) if proxy.kind == ProxyKind::Sidecar => sidecar_protocol_options(p, policy),
        Some(p) if p.is_http() => Some(http_protocol_options(p, policy)),
        _ => None,
    };
    if let Some(options) = options {
        http2 = matches!(
            options.upstream_protocol_options,
            Some(upstream_http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                upstream_http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        upstream_http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)
                    ),
                }
            ))
        );
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.to_string(), weft_xds::pack(&options));
    }
    let discovery = match service.resolution {
        Resolution::Static => {
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(ads()),
                service_name: name,
            });
            cluster::DiscoveryType::Eds
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            c.load_assignment = Some(dns_load_assignment(inputs, service, port, &name));
            if service.resolution == Resolution::Dns {
                cluster::DiscoveryType::StrictDns
            } else {
                cluster::DiscoveryType::LogicalDns
            }
        }
        Resolution::Passthrough => {
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
            c.lb_config = None;
            cluster::DiscoveryType::OriginalDst
        }
        Resolution::DynamicDns => return None,
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(discovery as i32));
    tls::apply(
        inputs,
        &mut c,
        policy.tls.as_ref(),
        &tls::Upstream {
            service,
            endpoints: inputs.registry.endpoints_of(service),
            http2,
            proxy_kind: proxy.kind,
        },
    );
    Some(c)
}

/// The endpoints of a DNS cluster: the endpoints' names (or, with none,
/// the service host itself) on the port each serves.
fn dns_load_assignment(
    inputs: Inputs<'_>,
    service: &Service,
    port: u16,
    name: &str,
) -> ClusterLoadAssignment {
    let endpoints = inputs.registry.endpoints_of(service);
    let mut lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .filter_map(|e| {
            let target = e.ports.get(&port).copied().unwrap_or(port);
            let address = match &e.address {
                EndpointAddress::Hostname(h) => socket_address(h, target),
                EndpointAddress::Ip(ip) => socket_address(&ip.to_string(), target),
                EndpointAddress::Unix(_) => return None,
            };
            Some(dns_endpoint(address, e.weight))
        })
        .collect();
    if endpoints.is_empty() {
        let target = service.port(port).map_or(port, |p| p.target_port);
        lb_endpoints.push(dns_endpoint(
            socket_address(service.hostname.as_str(), target),
            1,
        ));
    }
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

fn dns_endpoint(
    address: weft_xds::pb::envoy::config::core::v3::Address,
    weight: u32,
) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
            weft_xds::pb::envoy::config::endpoint::v3::Endpoint {
                address: Some(address),
                ..Default::default()
            },
        )),
        load_balancing_weight: Some(u32_value(weight.max(1))),
        ..LbEndpoint::default()
    }
}

/// A sidecar's upstream HTTP settings for a port: [`http_protocol_options`]
/// for HTTP-family ports; for a port without a protocol (sniffed) the
/// downstream's own protocol (`use_downstream_protocol_config`), as
/// Istio's `setUpstreamProtocol` does for sidecars — h2c sniffed from a
/// client goes on as h2c, HTTP/1.1 as HTTP/1.1 (a gRPC app on an
/// unnamed port works). Gateways don't get it: they don't sniff.
fn sidecar_protocol_options(
    protocol: Protocol,
    policy: &TrafficPolicy,
) -> Option<UpstreamHttpProtocolOptions> {
    if protocol.is_http() {
        return Some(http_protocol_options(protocol, policy));
    }
    if protocol != Protocol::Unsupported {
        return None;
    }
    let mut options = http_protocol_options(protocol, policy);
    if !matches!(
        options.upstream_protocol_options,
        Some(upstream_http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            upstream_http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    upstream_http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)
                ),
            }
        ))
    ) {
        options.upstream_protocol_options = Some(
            upstream_http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                upstream_http_protocol_options::UseDownstreamHttpConfig {
                    http_protocol_options: Some(Http1ProtocolOptions::default()),
                    http2_protocol_options: Some(Http2ProtocolOptions::default()),
                    ..Default::default()
                },
            ),
        );
    }
    Some(options)
}

/// The upstream HTTP settings of an HTTP-family port: HTTP/2 for HTTP2 and
/// gRPC ports (and when the rule asks to upgrade), the client's own
/// protocol when the rule says so, else HTTP/1.1; from the connection
/// pool as Istio's `applyConnectionPool` maps it: the idle timeout
/// (`http.idleTimeout`, else `tcp.idleTimeout`), requests per connection,
/// `tcp.maxConnectionDuration`, and `http.maxConcurrentStreams` on an
/// HTTP/2 cluster; no common options when none of these is set.
fn http_protocol_options(
    protocol: Protocol,
    policy: &TrafficPolicy,
) -> UpstreamHttpProtocolOptions {
    use upstream_http_protocol_options::explicit_http_config::ProtocolConfig;
    use upstream_http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
    };
    let pool = policy.connection_pool.as_ref();
    let http = pool.and_then(|c| c.http.as_ref());
    let tcp = pool.and_then(|c| c.tcp.as_ref());
    let h2_options = || Http2ProtocolOptions {
        max_concurrent_streams: http
            .and_then(|h| positive(h.max_concurrent_streams))
            .map(u32_value),
        ..Http2ProtocolOptions::default()
    };
    let upgrade = http.is_some_and(|h| h.h2_upgrade_policy == H2UpgradePolicy::Upgrade);
    let protocol_options = if http.is_some_and(|h| h.use_client_protocol) {
        UpstreamProtocolOptions::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
            http_protocol_options: Some(Http1ProtocolOptions::default()),
            http2_protocol_options: Some(Http2ProtocolOptions::default()),
            ..Default::default()
        })
    } else if protocol.is_http2() || upgrade {
        UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(h2_options())),
        })
    } else {
        UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::HttpProtocolOptions(
                Http1ProtocolOptions::default(),
            )),
        })
    };
    let common = HttpProtocolOptions {
        idle_timeout: http
            .and_then(|h| h.idle_timeout)
            .or(tcp.and_then(|t| t.idle_timeout))
            .map(|d| duration(d.get())),
        max_requests_per_connection: http
            .and_then(|h| positive(h.max_requests_per_connection))
            .map(u32_value),
        max_connection_duration: tcp
            .and_then(|t| t.max_connection_duration)
            .map(|d| duration(d.get())),
        ..HttpProtocolOptions::default()
    };
    UpstreamHttpProtocolOptions {
        common_http_protocol_options: (common != HttpProtocolOptions::default()).then_some(common),
        upstream_protocol_options: Some(protocol_options),
        ..UpstreamHttpProtocolOptions::default()
    }
}

fn positive(n: i32) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// Istio's circuit breakers: every limit at its maximum unless the
/// connection pool sets it.
fn circuit_breakers(policy: &TrafficPolicy) -> CircuitBreakers {
    let pool = policy.connection_pool.as_ref();
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let limit = |n: Option<i32>| u32_value(n.and_then(positive).unwrap_or(u32::MAX));
    CircuitBreakers {
        thresholds: vec![circuit_breakers::Thresholds {
            priority: RoutingPriority::Default as i32,
            max_connections: Some(limit(tcp.map(|t| t.max_connections))),
            max_pending_requests: Some(limit(http.map(|h| h.http1_max_pending_requests))),
            max_requests: Some(limit(http.map(|h| h.http2_max_requests))),
            max_retries: Some(limit(http.map(|h| h.max_retries))),
            track_remaining: true,
            ..Default::default()
        }],
        ..CircuitBreakers::default()
    }
}

/// Outlier detection as Istio maps it: each consecutive-error setting is
/// enforced (100%) when above zero (local-origin failures only with
/// `splitExternalLocalOriginErrors`); `minHealthPercent` is the panic
/// threshold; success-rate ejection stays off. The deprecated
/// `consecutiveErrors` counts gateway errors (502/503/504 and connection
/// failures), enforced, with 5xx ejection off — Istio's mapping since
/// istio/api#617 — unless `consecutiveGatewayErrors` or
/// `consecutive5xxErrors` is given, which wins.
fn outlier_detection(policy: &TrafficPolicy) -> Option<OutlierDetection> {
    let o = policy.outlier_detection.as_ref()?;
    let enforce = |n: Option<u32>| n.map(|n| u32_value(if n > 0 { 100 } else { 0 }));
    let split = o.split_external_local_origin_errors;
    let gateway_errors = o
        .consecutive_gateway_errors
        .or(positive(o.consecutive_errors));
    Some(OutlierDetection {
        consecutive_5xx: o.consecutive_5xx_errors.map(u32_value),
        enforcing_consecutive_5xx: enforce(o.consecutive_5xx_errors).or(Some(u32_value(0))),
        consecutive_gateway_failure: gateway_errors.map(u32_value),
        enforcing_consecutive_gateway_failure: enforce(gateway_errors),
        interval: o.interval.map(|d| duration(d.get())),
        base_ejection_time: o.base_ejection_time.map(|d| duration(d.get())),
        max_ejection_percent: positive(o.max_ejection_percent).map(u32_value),
        enforcing_success_rate: Some(u32_value(0)),
        // Local-origin failures counted apart, as Istio: enforced when
        // given, and no local-origin success-rate ejection.
        split_external_local_origin_errors: o.split_external_local_origin_errors,
        consecutive_local_origin_failure: split
            .then_some(o.consecutive_local_origin_failures)
            .flatten()
            .filter(|n| *n > 0)
            .map(u32_value),
        enforcing_consecutive_local_origin_failure: split
            .then_some(o.consecutive_local_origin_failures)
            .flatten()
            .filter(|n| *n > 0)
            .map(|_| u32_value(100)),
        enforcing_local_origin_success_rate: split.then(|| u32_value(0)),
        ..OutlierDetection::default()
    })
}

/// The load balancer: LEAST_REQUEST by default (Istio's), the simple
/// policy asked for, or a ring hash / Maglev for consistent hashing (the
/// hash key itself goes on the routes).
fn apply_load_balancer(c: &mut Cluster, policy: &TrafficPolicy) {
    let lb = policy.load_balancer.as_ref();
    c.lb_policy = cluster::LbPolicy::LeastRequest as i32;
    if let Some(hash) = lb.and_then(|l| l.consistent_hash.as_ref()) {
        apply_consistent_hash(c, hash);
    } else if let Some(simple) = lb.and_then(|l| l.simple) {
        c.lb_policy = match simple {
            SimpleLb::RoundRobin => cluster::LbPolicy::RoundRobin,
            SimpleLb::Random => cluster::LbPolicy::Random,
            SimpleLb::Passthrough => cluster::LbPolicy::ClusterProvided,
            _ => cluster::LbPolicy::LeastRequest,
        } as i32;
        if simple == SimpleLb::Passthrough {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::OriginalDst as i32,
            ));
        }
    }
    if let Some(min) = policy
        .outlier_detection
        .as_ref()
        .map(|o| o.min_health_percent)
        .filter(|p| *p >= 0)
    {
        c.common_lb_config
            .get_or_insert_default()
            .healthy_panic_threshold = Some(Percent {
            value: f64::from(min),
        });
    }
}

fn apply_consistent_hash(c: &mut Cluster, hash: &ConsistentHashLb) {
    if let Some(maglev) = &hash.maglev {
        c.lb_policy = cluster::LbPolicy::Maglev as i32;
        let table_size =
            (maglev.table_size > 0).then_some(weft_xds::pb::google::protobuf::UInt64Value {
                value: maglev.table_size,
            });
        c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
            table_size,
        }));
    } else {
        c.lb_policy = cluster::LbPolicy::RingHash as i32;
        let size = hash
            .ring_hash
            .as_ref()
            .map_or(hash.minimum_ring_size, |r| r.minimum_ring_size);
        let minimum_ring_size =
            (size > 0).then_some(weft_xds::pb::google::protobuf::UInt64Value { value: size });
        c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size,
                ..Default::default()
            },
        ));
    }
}

fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE.to_string(),
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT.get())),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        ..Cluster::default()
    }
}

fn passthrough() -> Cluster {
    Cluster {
        name: PASSTHROUGH.to_string(),
        connect_timeout: Some(duration(DEFAULT_CONNECT_TIMEOUT.get())),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests;
