use std::sync::Arc;

use axum::body::to_bytes;
use tokio::sync::watch;
use weft_xds::Resource;

use super::*;
use crate::ads::{Generation, Stats};
use crate::translate::test_inputs::TestMesh;
use crate::translate::{Proxy, ProxyKind, translate};

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn proxies_are_found_by_id_pod_namespace_or_unique_substring() {
    let connected = ids(&[
        "router~127.0.0.1~ingressgateway.bookinfo~bookinfo.svc.cluster.local",
        "sidecar~127.0.0.1~reviews-v1.bookinfo~bookinfo.svc.cluster.local",
        "sidecar~127.0.0.1~reviews-v2.bookinfo~bookinfo.svc.cluster.local",
    ]);
    assert_eq!(
        find_proxy(&connected, &connected[1]),
        Ok(connected[1].clone())
    );
    assert_eq!(
        find_proxy(&connected, "reviews-v2.bookinfo"),
        Ok(connected[2].clone())
    );
    assert_eq!(find_proxy(&connected, "ingress"), Ok(connected[0].clone()));
    assert_eq!(
        find_proxy(&connected, "reviews"),
        Err(ProxyLookupError::Ambiguous {
            query: "reviews".into(),
            matches: connected[1..].to_vec(),
        })
    );
    let unknown = find_proxy(&connected, "ratings").expect_err("unknown");
    assert_eq!(
        unknown,
        ProxyLookupError::Unknown {
            query: "ratings".into(),
            connected: connected.clone(),
        }
    );
    assert_eq!(
        unknown.to_string(),
        "no connected proxy matches \"ratings\""
    );
}

/// What `proxy` would be sent from the examples, as `Stats::sent` holds it.
fn sent_for(mesh: &TestMesh, proxy: &Proxy) -> BTreeMap<TypeUrl, Sent> {
    fn packed<R: Resource>(items: &[R]) -> Sent {
        Sent::new(
            "3".into(),
            items.iter().map(pack).collect::<Vec<_>>().into(),
        )
    }
    let r = translate(mesh.inputs(), proxy);
    [
        (TypeUrl::Cluster, packed(&r.clusters)),
        (TypeUrl::ClusterLoadAssignment, packed(&r.endpoints)),
        (TypeUrl::Listener, packed(&r.listeners)),
        (TypeUrl::RouteConfiguration, packed(&r.routes)),
    ]
    .into_iter()
    .collect()
}

fn productpage() -> Proxy {
    let mut p = Proxy::sidecar(
        "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
        "bookinfo",
        &[("app", "productpage"), ("version", "v1")],
    );
    p.pod = "productpage-v1".into();
    p
}

/// Every filter's `typedConfig` (an `Any`) was rendered with its "@type".
fn assert_anys_rendered(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            if let Some(tc) = m.get("typedConfig") {
                assert!(tc.get("@type").is_some(), "{path}.typedConfig: {tc}");
            }
            for (k, x) in m {
                assert_anys_rendered(x, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                assert_anys_rendered(x, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn a_sidecars_dump_has_envoys_shape() {
    let mesh = TestMesh::examples();
    let dump = config_dump_json(&sent_for(&mesh, &productpage())).expect("dump");
    let configs = dump["configs"].as_array().expect("configs");
    let types: Vec<&str> = configs
        .iter()
        .map(|c| c["@type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types,
        [
            "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        ]
    );
    assert_anys_rendered(&dump, "");

    let clusters = &configs[0];
    assert_eq!(clusters["versionInfo"], "3");
    let reviews_v1 = clusters["dynamicActiveClusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["cluster"]["name"] == "outbound|9080|v1|reviews.bookinfo.svc.cluster.local")
        .expect("reviews v1 cluster");
    assert_eq!(reviews_v1["versionInfo"], "3");
    assert_eq!(
        reviews_v1["cluster"]["@type"],
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
    assert_eq!(reviews_v1["cluster"]["type"], "EDS");
    assert_eq!(
        reviews_v1["cluster"]["metadata"]["filterMetadata"]["istio"]["config"],
        "/apis/networking.istio.io/v1alpha3/namespaces/bookinfo/destination-rule/reviews"
    );
    assert!(
        reviews_v1["cluster"]["connectTimeout"]
            .as_str()
            .is_some_and(|t| t.ends_with('s')),
        "{reviews_v1}"
    );

    let listeners = configs[1]["dynamicListeners"]
        .as_array()
        .expect("listeners");
    let l9080 = listeners
        .iter()
        .find(|l| l["name"] == "0.0.0.0_9080")
        .expect("outbound 9080 listener");
    let hcm = &l9080["activeState"]["listener"]["filterChains"][0]["filters"][0]["typedConfig"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["rds"]["routeConfigName"], "9080");

    let routes = configs[2]["dynamicRouteConfigs"]
        .as_array()
        .expect("routes");
    let r9080 = routes
        .iter()
        .find(|r| r["routeConfig"]["name"] == "9080")
        .expect("route 9080");
    let vhosts = r9080["routeConfig"]["virtualHosts"]
        .as_array()
        .expect("vhosts");
    let reviews = vhosts
        .iter()
        .find(|v| v["name"] == "reviews.bookinfo.svc.cluster.local:9080")
        .expect("reviews vhost");
    assert_eq!(
        reviews["routes"][0]["metadata"]["filterMetadata"]["istio"]["config"],
        "/apis/networking.istio.io/v1alpha3/namespaces/bookinfo/virtual-service/reviews"
    );

    let endpoints = configs[3]["dynamicEndpointConfigs"]
        .as_array()
        .expect("eds");
    assert!(
        endpoints.iter().any(|e| e["endpointConfig"]["clusterName"]
            == "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"),
        "{endpoints:?}"
    );
}

#[test]
fn gateway_and_grpc_dumps_render_too() {
    let mesh = TestMesh::examples();
    let mut gw = Proxy::sidecar(
        "router~127.0.0.1~ingressgateway.bookinfo~bookinfo.svc.cluster.local",
        "bookinfo",
        &[("istio", "ingressgateway")],
    );
    gw.kind = ProxyKind::Gateway;
    let mut grpc = Proxy::sidecar("grpc-client", "bookinfo", &[]);
    grpc.kind = ProxyKind::Grpc;
    for proxy in [gw, grpc] {
        let dump = config_dump_json(&sent_for(&mesh, &proxy)).expect("dump");
        assert_anys_rendered(&dump, "");
        assert!(
            !dump["configs"][1]["dynamicListeners"]
                .as_array()
                .expect("listeners")
                .is_empty(),
            "{}: {dump}",
            proxy.id
        );
    }
}

#[test]
fn nothing_sent_gives_empty_sections() {
    let dump = config_dump_json(&BTreeMap::new()).expect("dump");
    assert_eq!(
        dump,
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"},
            {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"},
        ]})
    );
}

fn state(stats: Arc<Stats>) -> DebugState {
    let (_tx, generations) = watch::channel(Arc::new(Generation::default()));
    DebugState { stats, generations }
}

async fn get(state: &DebugState, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let query = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let response = handler(State(state.clone()), Query(query)).await;
    let status = response.status();
    let body = to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).expect("json body"))
}

#[tokio::test]
async fn missing_or_unknown_proxies_are_client_errors() {
    let state = state(Arc::new(Stats::default()));
    let (status, body) = get(&state, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("/debug/config_dump?proxy=ID")),
        "{body}"
    );
    assert_eq!(body["proxies"], json!([]));
    let (status, body) = get(&state, &[("proxy", "nope")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no connected proxy matches \"nope\"");
}

#[tokio::test]
async fn a_connected_proxy_is_dumped_by_id_or_name() {
    use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
    use weft_xds::pb::envoy::config::core::v3::Node;
    use weft_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

    let mesh = TestMesh::examples();
    let (_publish, generations) = watch::channel(Arc::new(Generation::new(
        1,
        Arc::new(mesh.config),
        Arc::new(mesh.registry),
    )));
    let server = crate::ads::AdsServer::new(generations.clone());
    let stats = server.stats().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(server))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: productpage().id,
            ..Node::default()
        }),
        type_url: TypeUrl::Cluster.as_str().into(),
        ..DiscoveryRequest::default()
    })
    .await
    .expect("send");
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let cds = tokio::time::timeout(std::time::Duration::from_secs(5), responses.message())
        .await
        .expect("a CDS response within 5 s")
        .expect("ok")
        .expect("open");

    let state = DebugState { stats, generations };
    for (key, value) in [
        ("proxy", productpage().id),
        ("proxyID", productpage().id),
        ("proxy", "productpage-v1.bookinfo".to_string()),
    ] {
        let (status, body) = get(&state, &[(key, &value)]).await;
        assert_eq!(status, StatusCode::OK, "{key}={value}: {body}");
        let clusters = body["configs"][0]["dynamicActiveClusters"]
            .as_array()
            .expect("clusters");
        assert_eq!(clusters.len(), cds.resources.len());
        assert_eq!(body["configs"][0]["versionInfo"], cds.version_info);
        // Only CDS was asked for: the other sections are empty.
        assert!(body["configs"][1].get("dynamicListeners").is_none());
    }
    let (status, body) = get(&state, &[("proxy", "ratings")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["proxies"], json!([productpage().id]));
}
