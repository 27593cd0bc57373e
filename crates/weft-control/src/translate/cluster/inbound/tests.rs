use weft_xds::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use weft_xds::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config},
};

use super::*;
use crate::translate::test_inputs::TestMesh;
use crate::translate::translate;

/// The workload `api-1` in `shop`, serving `api` on 9080 (HTTP) and 9090
/// (gRPC).
const WORKLOAD: &str = r#"
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
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: api}}
"#;

/// The Sidecar's `inboundConnectionPool`.
const POOL: &str = "{tcp: {maxConnections: 7, connectTimeout: 2s}, http: {http1MaxPendingRequests: 3, http2MaxRequests: 11, maxRequestsPerConnection: 4, idleTimeout: 30s, h2UpgradePolicy: UPGRADE}}";

/// The inbound clusters of `api-1`'s sidecar, with `sidecar` beside
/// [`WORKLOAD`].
fn inbound(sidecar: &str) -> Vec<Cluster> {
    let mesh = TestMesh::new(&format!("{WORKLOAD}---\n{sidecar}"));
    let proxy = Proxy {
        pod: "api-1".into(),
        ..Proxy::sidecar(
            "sidecar~10.0.0.7~api-1.shop~shop.svc.cluster.local",
            "shop",
            &[],
        )
    };
    translate(mesh.inputs(), &proxy)
        .clusters
        .into_iter()
        .filter(|c| c.name.starts_with("inbound|"))
        .collect()
}

fn find<'a>(cs: &'a [Cluster], name: &str) -> &'a Cluster {
    cs.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

/// `(max connections, max pending, max requests, max retries)`.
fn limits(c: &Cluster) -> (u32, u32, u32, u32) {
    let t: &Thresholds = &c.circuit_breakers.as_ref().expect("breakers").thresholds[0];
    let v = |x: Option<weft_xds::pb::google::protobuf::UInt32Value>| x.map_or(0, |v| v.value);
    (
        v(t.max_connections),
        v(t.max_pending_requests),
        v(t.max_requests),
        v(t.max_retries),
    )
}

fn options(c: &Cluster) -> UpstreamHttpProtocolOptions {
    weft_xds::unpack(&c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS])
        .expect("http options")
}

fn is_http2(o: &UpstreamHttpProtocolOptions) -> bool {
    matches!(
        o.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    _
                )),
            }
        ))
    )
}

#[test]
fn the_sidecars_inbound_connection_pool_limits_every_inbound_cluster() {
    let cs = inbound(&format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: api, namespace: shop}}\nspec: {{workloadSelector: {{labels: {{app: api}}}}, inboundConnectionPool: {POOL}}}\n"
    ));
    assert_eq!(
        cs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["inbound|9080||", "inbound|9090||"]
    );
    let max = u32::MAX;
    for c in &cs {
        assert_eq!(limits(c), (7, 3, 11, max), "{}", c.name);
        assert_eq!(c.connect_timeout.map(|d| d.seconds), Some(2), "{}", c.name);
        let common = options(c).common_http_protocol_options.expect("common");
        assert_eq!(common.idle_timeout.map(|d| d.seconds), Some(30));
        assert_eq!(common.max_requests_per_connection.map(|v| v.value), Some(4));
    }
    // No HTTP/2 upgrade inbound (Istio upgrades outbound clusters only);
    // the gRPC port stays HTTP/2.
    assert!(!is_http2(&options(find(&cs, "inbound|9080||"))));
    assert!(is_http2(&options(find(&cs, "inbound|9090||"))));
}

#[test]
fn an_ingress_listeners_connection_pool_overrides_the_sidecars() {
    let cs = inbound(&format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: api, namespace: shop}}
spec:
  workloadSelector: {{labels: {{app: api}}}}
  inboundConnectionPool: {POOL}
  ingress:
  - port: {{number: 9080, protocol: HTTP, name: http}}
    defaultEndpoint: 127.0.0.1:8080
    connectionPool: {{tcp: {{maxConnections: 1}}}}
  - port: {{number: 9090, protocol: GRPC, name: grpc}}
    defaultEndpoint: 127.0.0.1:8090
"#
    ));
    let max = u32::MAX;
    // The port's pool replaces the Sidecar's whole (Istio's
    // InboundConnectionPoolForPort): no pending limit from it.
    let own = find(&cs, "inbound|9080||");
    assert_eq!(limits(own), (1, max, max, max));
    assert_eq!(own.connect_timeout.map(|d| d.seconds), Some(10));
    assert_eq!(options(own).common_http_protocol_options, None);
    assert_eq!(limits(find(&cs, "inbound|9090||")), (7, 3, 11, max));
}

#[test]
fn without_a_pool_inbound_clusters_get_no_circuit_breakers() {
    let cs = inbound(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: api, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert_eq!(cs.len(), 2);
    assert!(cs.iter().all(|c| c.circuit_breakers.is_none()));
}
