use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};

use super::*;
use crate::translate::test_inputs::TestMesh;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 2, maxRequestsPerConnection: 3, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 50, minHealthPercent: 20}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: other}
spec:
  hosts: [private.other.svc.cluster.local]
  exportTo: ["."]
  resolution: NONE
  ports: [{number: 5432, name: tcp-db, protocol: TCP}]
"#;

fn names(cs: &[Cluster]) -> Vec<&str> {
    cs.iter().map(|c| c.name.as_str()).collect()
}

fn find<'a>(cs: &'a [Cluster], name: &str) -> &'a Cluster {
    cs.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name} in {:?}", names(cs)))
}

fn discovery(c: &Cluster) -> Option<i32> {
    match c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => Some(t),
        _ => None,
    }
}

#[test]
fn one_cluster_per_port_and_subset_with_istio_names() {
    let mesh = TestMesh::new(MESH);
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    assert_eq!(
        names(&cs),
        vec![
            "BlackHoleCluster",
            "PassthroughCluster",
            "outbound|443||api.example.com",
            "outbound|9080|v1|reviews.shop.svc.cluster.local",
            "outbound|9080|v2|reviews.shop.svc.cluster.local",
            "outbound|9080||reviews.shop.svc.cluster.local",
        ],
        "the NONE service in namespace other is exported only there"
    );
    let other = clusters(mesh.inputs(), &Proxy::sidecar("p", "other", &[]));
    assert!(names(&other).contains(&"outbound|5432||private.other.svc.cluster.local"));
}

#[test]
fn static_services_use_eds_dns_services_resolve_names() {
    let mesh = TestMesh::new(MESH);
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    let reviews = find(&cs, "outbound|9080||reviews.shop.svc.cluster.local");
    assert_eq!(discovery(reviews), Some(cluster::DiscoveryType::Eds as i32));
    let eds = reviews.eds_cluster_config.as_ref().expect("eds");
    assert_eq!(eds.service_name, reviews.name);
    let ext = find(&cs, "outbound|443||api.example.com");
    assert_eq!(
        discovery(ext),
        Some(cluster::DiscoveryType::StrictDns as i32)
    );
    let la = ext.load_assignment.as_ref().expect("inline endpoints");
    assert_eq!(
        la.endpoints[0].lb_endpoints.len(),
        1,
        "the host itself when no endpoints are listed"
    );
    let other = clusters(mesh.inputs(), &Proxy::sidecar("p", "other", &[]));
    let db = find(&other, "outbound|5432||private.other.svc.cluster.local");
    assert_eq!(
        discovery(db),
        Some(cluster::DiscoveryType::OriginalDst as i32)
    );
}

#[test]
fn connection_pool_and_outlier_detection_become_limits() {
    let mesh = TestMesh::new(MESH);
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    let c = find(&cs, "outbound|9080|v1|reviews.shop.svc.cluster.local");
    assert_eq!(
        c.connect_timeout.map(|d| (d.seconds, d.nanos)),
        Some((0, 250_000_000))
    );
    let t = &c.circuit_breakers.as_ref().expect("breakers").thresholds[0];
    assert_eq!(t.max_connections.map(|v| v.value), Some(1));
    assert_eq!(t.max_pending_requests.map(|v| v.value), Some(2));
    assert_eq!(
        t.max_requests.map(|v| v.value),
        Some(u32::MAX),
        "unset limits are unlimited"
    );
    assert!(t.track_remaining);
    let options: UpstreamHttpProtocolOptions =
        weft_xds::unpack(&c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS])
            .expect("http options");
    let common = options
        .common_http_protocol_options
        .as_ref()
        .expect("common");
    assert_eq!(common.max_requests_per_connection.map(|v| v.value), Some(3));
    assert_eq!(common.idle_timeout.map(|d| d.seconds), Some(30));
    assert!(matches!(
        options.upstream_protocol_options,
        Some(upstream_http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(_))
    ));
    let o = c.outlier_detection.as_ref().expect("outlier");
    assert_eq!(o.consecutive_5xx.map(|v| v.value), Some(5));
    assert_eq!(o.enforcing_consecutive_5xx.map(|v| v.value), Some(100));
    assert_eq!(o.base_ejection_time.map(|d| d.seconds), Some(180));
    assert_eq!(o.max_ejection_percent.map(|v| v.value), Some(50));
    let panic = c
        .common_lb_config
        .as_ref()
        .and_then(|l| l.healthy_panic_threshold.as_ref())
        .map(|p| p.value);
    assert_eq!(panic, Some(20.0));
    assert_eq!(
        c.lb_policy,
        cluster::LbPolicy::LeastRequest as i32,
        "Istio's default"
    );
}

/// The common HTTP options of a cluster of `mesh` (with its rule's
/// `connection_pool`), and its HTTP/2 options if it has them.
fn pool_options(
    protocol: &str,
    connection_pool: &str,
) -> (
    Option<weft_xds::pb::envoy::config::core::v3::HttpProtocolOptions>,
    Option<weft_xds::pb::envoy::config::core::v3::Http2ProtocolOptions>,
) {
    let mesh = TestMesh::new(&format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: s, namespace: shop}}\nspec:\n  hosts: [s.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: web, protocol: {protocol}}}]\n  endpoints: [{{address: 10.0.0.1}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: s, namespace: shop}}\nspec:\n  host: s\n  trafficPolicy:\n    connectionPool: {connection_pool}\n"
    ));
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    let c = find(&cs, "outbound|80||s.shop.svc.cluster.local");
    let options: UpstreamHttpProtocolOptions =
        weft_xds::unpack(&c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS])
            .expect("http options");
    let h2 = match options.upstream_protocol_options {
        Some(upstream_http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            upstream_http_protocol_options::ExplicitHttpConfig {
                protocol_config:
                    Some(
                        upstream_http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            o,
                        ),
                    ),
            },
        )) => Some(o),
        _ => None,
    };
    (options.common_http_protocol_options, h2)
}

#[test]
fn idle_timeouts_come_from_http_else_tcp_as_istio_maps_them() {
    let idle = |pool: &str| pool_options("HTTP", pool).0.and_then(|c| c.idle_timeout);
    // http.idleTimeout wins; without it tcp.idleTimeout is the pool's.
    assert_eq!(
        idle("{http: {idleTimeout: 30s}, tcp: {idleTimeout: 90s}}").map(|d| d.seconds),
        Some(30)
    );
    assert_eq!(
        idle("{tcp: {idleTimeout: 90s}}").map(|d| d.seconds),
        Some(90)
    );
    assert_eq!(
        idle("{http: {maxRetries: 2}, tcp: {idleTimeout: 2m}}").map(|d| d.seconds),
        Some(120)
    );
    // Neither: no common options at all (Envoy's 1 h).
    assert_eq!(pool_options("HTTP", "{http: {maxRetries: 2}}").0, None);
    // tcp.maxConnectionDuration too.
    let (common, _) = pool_options("HTTP", "{tcp: {maxConnectionDuration: 10m}}");
    let common = common.expect("common options");
    assert_eq!(common.max_connection_duration.map(|d| d.seconds), Some(600));
    assert_eq!(common.idle_timeout, None);
    // http.maxConcurrentStreams on an HTTP/2 cluster.
    let (_, h2) = pool_options("HTTP2", "{http: {maxConcurrentStreams: 8}}");
    assert_eq!(
        h2.and_then(|o| o.max_concurrent_streams).map(|v| v.value),
        Some(8)
    );
    let (_, h2) = pool_options("GRPC", "{http: {maxRetries: 1}}");
    assert_eq!(h2.expect("HTTP/2").max_concurrent_streams, None);
}

#[test]
fn consistent_hash_subsets_use_a_ring() {
    let mesh = TestMesh::new(MESH);
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    let v2 = find(&cs, "outbound|9080|v2|reviews.shop.svc.cluster.local");
    assert_eq!(v2.lb_policy, cluster::LbPolicy::RingHash as i32);
    let Some(cluster::LbConfig::RingHashLbConfig(ring)) = &v2.lb_config else {
        panic!("ring config")
    };
    assert_eq!(ring.minimum_ring_size.map(|v| v.value), Some(2048));
    assert!(
        v2.circuit_breakers.is_some(),
        "the rule's policy still applies to the subset"
    );
}

#[test]
fn the_examples_translate_to_the_clusters_istio_would_name() {
    let mesh = TestMesh::examples();
    let cs = clusters(
        mesh.inputs(),
        &Proxy::sidecar("productpage", "bookinfo", &[("app", "productpage")]),
    );
    let names = names(&cs);
    for want in [
        "outbound|9080||reviews.bookinfo.svc.cluster.local",
        "outbound|9080|v1|reviews.bookinfo.svc.cluster.local",
        "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        "outbound|9080|v3|reviews.bookinfo.svc.cluster.local",
        "outbound|9080|v1|ratings.bookinfo.svc.cluster.local",
        "outbound|8000|v2|httpbin.bookinfo.svc.cluster.local",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:#?}");
    }
    let httpbin = find(&cs, "outbound|8000|v1|httpbin.bookinfo.svc.cluster.local");
    let t = &httpbin
        .circuit_breakers
        .as_ref()
        .expect("breakers")
        .thresholds[0];
    assert_eq!(
        t.max_connections.map(|v| v.value),
        Some(1),
        "the circuit-breaking example"
    );
}

#[test]
fn grpc_ports_speak_http2_upstream_and_tcp_ports_set_no_http_options() {
    let mesh = TestMesh::new(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: greeter, namespace: shop}\nspec:\n  hosts: [greeter.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 50051, name: grpc, protocol: GRPC}, {number: 6379, name: redis, protocol: REDIS}]\n  endpoints: [{address: 10.0.0.1}]\n",
    );
    let cs = clusters(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
    let grpc = find(&cs, "outbound|50051||greeter.shop.svc.cluster.local");
    let options: UpstreamHttpProtocolOptions =
        weft_xds::unpack(&grpc.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS])
            .expect("http options");
    let Some(upstream_http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) =
        options.upstream_protocol_options
    else {
        panic!("explicit config")
    };
    assert!(matches!(
        explicit.protocol_config,
        Some(upstream_http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_))
    ));
    let redis = find(&cs, "outbound|6379||greeter.shop.svc.cluster.local");
    assert!(redis.typed_extension_protocol_options.is_empty());
}

/// Whether a cluster's upstream protocol is the downstream's own.
fn uses_downstream_protocol(c: &Cluster) -> bool {
    let Some(any) = c
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
    else {
        return false;
    };
    let options: UpstreamHttpProtocolOptions = weft_xds::unpack(any).expect("http options");
    matches!(
        options.upstream_protocol_options,
        Some(
            upstream_http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)
        )
    )
}

#[test]
fn sniffed_ports_use_the_downstream_protocol_on_sidecars_only() {
    // Istio's setUpstreamProtocol: a sidecar's clusters (outbound and
    // inbound) for a port without a protocol use USE_DOWNSTREAM_PROTOCOL,
    // so sniffed h2c goes on as h2c; gateways don't sniff and don't.
    let mesh = TestMesh::new(
        r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 10.0.0.7, labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7000, name: api}, {number: 80, name: http, protocol: HTTP}, {number: 5432, name: tcp-db, protocol: TCP}]
  workloadSelector: {labels: {app: api}}
"#,
    );
    let proxy = crate::translate::resolve(
        mesh.inputs(),
        &Proxy {
            pod: "api-1".into(),
            ..Proxy::sidecar("sidecar~10.0.0.7~api-1.shop~shop", "shop", &[])
        },
    );
    let cs = clusters(mesh.inputs(), &proxy);
    let host = "api.shop.svc.cluster.local";
    assert!(uses_downstream_protocol(find(
        &cs,
        &format!("outbound|7000||{host}")
    )));
    assert!(uses_downstream_protocol(find(&cs, "inbound|7000||")));
    assert!(!uses_downstream_protocol(find(
        &cs,
        &format!("outbound|80||{host}")
    )));
    assert!(!uses_downstream_protocol(find(&cs, "inbound|80||")));
    let tcp = find(&cs, &format!("outbound|5432||{host}"));
    assert!(tcp.typed_extension_protocol_options.is_empty());
    let gateway = Proxy {
        kind: ProxyKind::Gateway,
        ..Proxy::sidecar("router~10.0.0.9~gw-1.shop~shop", "shop", &[])
    };
    let cs = clusters(mesh.inputs(), &gateway);
    let sniffed = find(&cs, &format!("outbound|7000||{host}"));
    assert!(sniffed.typed_extension_protocol_options.is_empty());
}

#[test]
fn local_origin_failures_are_split_and_enforced_as_istio() {
    use weft_config::networking::OutlierDetection as Istio;
    let policy = |o: Istio| TrafficPolicy {
        outlier_detection: Some(o),
        ..TrafficPolicy::default()
    };
    let split = outlier_detection(&policy(Istio {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failures: Some(2),
        ..Istio::default()
    }))
    .expect("outlier");
    assert!(split.split_external_local_origin_errors);
    assert_eq!(
        split.consecutive_local_origin_failure.map(|v| v.value),
        Some(2)
    );
    assert_eq!(
        split
            .enforcing_consecutive_local_origin_failure
            .map(|v| v.value),
        Some(100)
    );
    assert_eq!(
        split.enforcing_local_origin_success_rate.map(|v| v.value),
        Some(0)
    );
    // Without the split the local-origin count means nothing (Istio's).
    let unsplit = outlier_detection(&policy(Istio {
        consecutive_local_origin_failures: Some(2),
        ..Istio::default()
    }))
    .expect("outlier");
    assert!(!unsplit.split_external_local_origin_errors);
    assert_eq!(unsplit.consecutive_local_origin_failure, None);
}

#[test]
fn deprecated_consecutive_errors_count_gateway_errors_as_istio() {
    use weft_config::networking::OutlierDetection as Istio;
    let od = |o: Istio| {
        outlier_detection(&TrafficPolicy {
            outlier_detection: Some(o),
            ..TrafficPolicy::default()
        })
        .expect("outlier")
    };
    let value = |v: Option<weft_xds::pb::google::protobuf::UInt32Value>| v.map(|v| v.value);
    let legacy = od(Istio {
        consecutive_errors: 7,
        ..Istio::default()
    });
    assert_eq!(value(legacy.consecutive_gateway_failure), Some(7));
    assert_eq!(
        value(legacy.enforcing_consecutive_gateway_failure),
        Some(100)
    );
    assert_eq!(value(legacy.consecutive_5xx), None);
    assert_eq!(value(legacy.enforcing_consecutive_5xx), Some(0));
    // The newer fields win.
    let both = od(Istio {
        consecutive_errors: 7,
        consecutive_gateway_errors: Some(2),
        consecutive_5xx_errors: Some(4),
        ..Istio::default()
    });
    assert_eq!(value(both.consecutive_gateway_failure), Some(2));
    assert_eq!(value(both.consecutive_5xx), Some(4));
    assert_eq!(value(both.enforcing_consecutive_5xx), Some(100));
    // Zero is unset.
    let none = od(Istio::default());
    assert_eq!(value(none.consecutive_gateway_failure), None);
    assert_eq!(value(none.enforcing_consecutive_gateway_failure), None);
}
