//! `weft control` as a user runs it: a real process serving ADS from a
//! directory of YAML, read by a real gRPC xDS client (tonic) — state of
//! the world and delta — following edits to the files, and stopping
//! cleanly on SIGTERM.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{curl, start};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use weft_xds::pb::google::protobuf::{Struct, Value, value};

fn node() -> Node {
    let meta: HashMap<String, Value> = [(
        "GENERATOR".to_string(),
        Value {
            kind: Some(value::Kind::StringValue("grpc".into())),
        },
    )]
    .into_iter()
    .collect();
    Node {
        id: "sidecar~127.0.0.1~client.bookinfo~bookinfo.svc.cluster.local".into(),
        metadata: Some(Struct { fields: meta }),
        ..Node::default()
    }
}

async fn next(rx: &mut tonic::Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    tokio::time::timeout(Duration::from_secs(5), rx.message())
        .await
        .expect("a response within 5 s")
        .expect("stream ok")
        .expect("stream open")
}

// Multi-threaded: the client's connection must make progress while the
// test blocks on curl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_examples_and_follows_edits() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_examples(dir.path());
    let (mut control, port, debug_port) = start(dir.path());
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();

    let listener = "reviews.bookinfo.svc.cluster.local:9080";
    tx.send(DiscoveryRequest {
        node: Some(node()),
        type_url: TypeUrl::Listener.as_str().into(),
        resource_names: vec![listener.into()],
        ..DiscoveryRequest::default()
    })
    .await
    .expect("send");
    let lds = next(&mut responses).await;
    assert_eq!(lds.resources.len(), 1);

    tx.send(DiscoveryRequest {
        type_url: TypeUrl::Cluster.as_str().into(),
        ..DiscoveryRequest::default()
    })
    .await
    .expect("send");
    let cds = next(&mut responses).await;
    let names: Vec<String> = cds
        .resources
        .iter()
        .map(|a| {
            weft_xds::unpack::<weft_xds::pb::envoy::config::cluster::v3::Cluster>(a)
                .expect("cluster")
                .name
        })
        .collect();
    assert!(
        names.contains(&"outbound|9080|v3|reviews.bookinfo.svc.cluster.local".to_string()),
        "{names:#?}"
    );
    tx.send(DiscoveryRequest {
        type_url: TypeUrl::Cluster.as_str().into(),
        version_info: cds.version_info.clone(),
        response_nonce: cds.nonce.clone(),
        ..DiscoveryRequest::default()
    })
    .await
    .expect("ack");

    // The debug API shows the proxy, what it was sent and what it ACKed.
    // (polled: the ACK was just sent)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let syncz = curl(debug_port, "/debug/syncz");
        let proxies: serde_json::Value = serde_json::from_str(&syncz).expect("syncz json");
        assert_eq!(
            proxies[0]["id"], "sidecar~127.0.0.1~client.bookinfo~bookinfo.svc.cluster.local",
            "{syncz}"
        );
        let cds = &proxies[0]["types"]["CDS"];
        if cds["acked"] == cds["sent"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "CDS never shown as ACKed: {syncz}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy-status",
            "--debug-addr",
            &format!("127.0.0.1:{debug_port}"),
        ])
        .output()
        .expect("proxy-status");
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("sidecar~127.0.0.1~client.bookinfo")
            && row.contains("   ADS   ")
            && row.contains("SYNCED (16)"),
        "{table}"
    );
    let metrics = curl(debug_port, "/metrics");
    assert!(metrics.contains("\npilot_xds 1\n"), "{metrics}");
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"cds\"} 1\n"),
        "{metrics}"
    );

    // A new service in the files reaches the connected client, no restart.
    std::fs::write(
        dir.path().join("extra.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: extra, namespace: bookinfo}\nspec:\n  hosts: [extra.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
    )
    .expect("write");
    let push = next(&mut responses).await;
    assert_eq!(push.type_url, TypeUrl::Cluster.as_str());
    assert_ne!(push.version_info, cds.version_info);
    assert_eq!(push.resources.len(), cds.resources.len() + 1);

    // A broken file changes nothing the client sees: the last good config stays.
    std::fs::write(dir.path().join("extra.yaml"), "kind: [\n").expect("write");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), responses.message())
            .await
            .is_err(),
        "no push for a broken file"
    );

    // SIGTERM stops it cleanly.
    let pid = control.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = control.0.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "weft control did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn copy_examples(dir: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo");
    for entry in std::fs::read_dir(&examples).expect("examples") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
}

async fn next_delta(rx: &mut tonic::Streaming<DeltaDiscoveryResponse>) -> DeltaDiscoveryResponse {
    tokio::time::timeout(Duration::from_secs(5), rx.message())
        .await
        .expect("a response within 5 s")
        .expect("stream ok")
        .expect("stream open")
}

fn delta_ack(r: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_client_gets_only_what_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_examples(dir.path());
    let (_control, port, debug_port) = start(dir.path());
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();

    // All clusters (the legacy wildcard), then one cluster's endpoints.
    tx.send(DeltaDiscoveryRequest {
        node: Some(node()),
        type_url: TypeUrl::Cluster.as_str().into(),
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .expect("send");
    let cds = next_delta(&mut responses).await;
    let reviews = "outbound|9080||reviews.bookinfo.svc.cluster.local";
    assert!(
        cds.resources.iter().any(|r| r.name == reviews),
        "{:#?}",
        cds.resources.iter().map(|r| &r.name).collect::<Vec<_>>()
    );
    tx.send(delta_ack(&cds)).await.expect("ack");
    tx.send(DeltaDiscoveryRequest {
        type_url: TypeUrl::ClusterLoadAssignment.as_str().into(),
        resource_names_subscribe: vec![reviews.into()],
        ..DeltaDiscoveryRequest::default()
    })
    .await
    .expect("send");
    let eds = next_delta(&mut responses).await;
    assert_eq!(eds.type_url, TypeUrl::ClusterLoadAssignment.as_str());
    assert_eq!(eds.resources.len(), 1);
    tx.send(delta_ack(&eds)).await.expect("ack");

    // A new file: just its cluster arrives.
    let extra = dir.path().join("extra.yaml");
    std::fs::write(
        &extra,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: extra, namespace: bookinfo}\nspec:\n  hosts: [extra.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
    )
    .expect("write");
    let push = next_delta(&mut responses).await;
    assert_eq!(push.type_url, TypeUrl::Cluster.as_str());
    let added: Vec<&str> = push.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(added, ["outbound|443||extra.example.com"], "{push:#?}");
    assert_ne!(push.system_version_info, cds.system_version_info);
    tx.send(delta_ack(&push)).await.expect("ack");

    // The file goes: so does the cluster.
    std::fs::remove_file(&extra).expect("remove");
    let push = next_delta(&mut responses).await;
    assert!(push.resources.is_empty(), "{push:#?}");
    assert_eq!(push.removed_resources, ["outbound|443||extra.example.com"]);
    tx.send(delta_ack(&push)).await.expect("ack");

    // syncz says it is a delta stream; the pushes were timed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let syncz = curl(debug_port, "/debug/syncz");
        let proxies: serde_json::Value = serde_json::from_str(&syncz).expect("syncz json");
        assert_eq!(proxies[0]["delta"], true, "{syncz}");
        assert_eq!(proxies[0]["service"], "ADS", "{syncz}");
        let status = &proxies[0]["types"]["CDS"];
        if status["acked"] == push.system_version_info.as_str() {
            // Everything it holds: the first set again.
            assert_eq!(status["resources"], cds.resources.len(), "{syncz}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "CDS never shown as ACKed: {syncz}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = curl(debug_port, "/metrics");
    assert!(
        metrics.contains("pilot_proxy_convergence_time_count 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"cds\"} 3\n"),
        "{metrics}"
    );
}

#[test]
fn proxy_status_without_a_control_plane_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["proxy-status", "--debug-addr", "127.0.0.1:1"])
        .output()
        .expect("proxy-status");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read http://127.0.0.1:1/debug/syncz")
            && err.contains("is `weft control` running"),
        "{err}"
    );
}

/// A small mesh for `weft proxy-config`: reviews (two versions, subsets,
/// header routing and outlier detection), an external TLS API on DNS, and
/// the productpage workload the test's sidecar is.
const SHOP: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: shop}
spec:
  hosts: [productpage.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: shop}
spec:
  hosts: [api.payments.example]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 127.0.0.11, ports: {http: 9080}, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 127.0.0.12, ports: {http: 9080}, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-v1, namespace: shop}
spec: {address: 127.0.0.13, ports: {http: 9080}, labels: {app: productpage, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5, interval: 10s}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

const PRODUCTPAGE: &str = "sidecar~127.0.0.13~productpage-v1.shop~shop.svc.cluster.local";

fn sidecar_node(id: &str) -> Node {
    let meta: HashMap<String, Value> = [(
        "INTERCEPTION_MODE".to_string(),
        Value {
            kind: Some(value::Kind::StringValue("NONE".into())),
        },
    )]
    .into_iter()
    .collect();
    Node {
        id: id.into(),
        metadata: Some(Struct { fields: meta }),
        ..Node::default()
    }
}

/// Subscribes to `names` of `type_url` (all: none), ACKs the response
/// (repeating the names, as an ACK must) and returns it.
async fn request(
    tx: &mpsc::Sender<DiscoveryRequest>,
    rx: &mut tonic::Streaming<DiscoveryResponse>,
    node: Option<Node>,
    type_url: TypeUrl,
    names: Vec<String>,
) -> DiscoveryResponse {
    tx.send(DiscoveryRequest {
        node,
        type_url: type_url.as_str().into(),
        resource_names: names.clone(),
        ..DiscoveryRequest::default()
    })
    .await
    .expect("send");
    let response = next(rx).await;
    assert_eq!(response.type_url, type_url.as_str());
    tx.send(DiscoveryRequest {
        type_url: type_url.as_str().into(),
        version_info: response.version_info.clone(),
        response_nonce: response.nonce.clone(),
        resource_names: names,
        ..DiscoveryRequest::default()
    })
    .await
    .expect("ack");
    response
}

fn weft(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("run weft")
}

/// Subscribes like Envoy (CDS, EDS for its EDS clusters, LDS, RDS for the
/// routes its listeners name) and checks `/debug/config_dump` and every
/// `weft proxy-config` table against what a user would read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_config_shows_what_a_sidecar_was_sent() {
    use weft_xds::pb::envoy::config::cluster::v3::Cluster;
    use weft_xds::pb::envoy::config::listener::v3::{Listener, filter};
    use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::RouteSpecifier,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("shop.yaml"), SHOP).expect("write");
    let (_control, port, debug_port) = start(dir.path());
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let cds = request(
        &tx,
        &mut responses,
        Some(sidecar_node(PRODUCTPAGE)),
        TypeUrl::Cluster,
        vec![],
    )
    .await;
    let eds_names: Vec<String> = cds
        .resources
        .iter()
        .map(|a| weft_xds::unpack::<Cluster>(a).expect("cluster"))
        .filter(|c| c.eds_cluster_config.is_some())
        .map(|c| c.name)
        .collect();
    let eds = request(
        &tx,
        &mut responses,
        None,
        TypeUrl::ClusterLoadAssignment,
        eds_names.clone(),
    )
    .await;
    assert_eq!(eds.resources.len(), eds_names.len());
    let lds = request(&tx, &mut responses, None, TypeUrl::Listener, vec![]).await;
    let mut route_names: Vec<String> = lds
        .resources
        .iter()
        .map(|a| weft_xds::unpack::<Listener>(a).expect("listener"))
        .flat_map(|l| l.filter_chains)
        .flat_map(|c| c.filters)
        .filter_map(|f| match f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) => {
                weft_xds::unpack::<HttpConnectionManager>(&any).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect();
    route_names.sort();
    route_names.dedup();
    let rds = request(
        &tx,
        &mut responses,
        None,
        TypeUrl::RouteConfiguration,
        route_names.clone(),
    )
    .await;
    assert_eq!(rds.resources.len(), route_names.len(), "{route_names:?}");

    // The dump, as curl shows it (proxyID= like Istio's).
    let dump: serde_json::Value = serde_json::from_str(&curl(
        debug_port,
        &format!("/debug/config_dump?proxyID={PRODUCTPAGE}"),
    ))
    .expect("dump json");
    let configs = dump["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 4, "{dump}");
    assert_eq!(
        configs[0]["@type"],
        "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
    );
    assert_eq!(configs[0]["versionInfo"], cds.version_info);
    assert_eq!(
        configs[0]["dynamicActiveClusters"].as_array().map(Vec::len),
        Some(cds.resources.len())
    );
    assert_eq!(
        configs[1]["dynamicListeners"][0]["activeState"]["listener"]["@type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );

    let addr = format!("127.0.0.1:{debug_port}");
    let table = |args: &[&str]| {
        let mut all = vec!["proxy-config"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--debug-addr", &addr]);
        let out = weft(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let clusters = "\
SERVICE FQDN                           PORT     SUBSET     DIRECTION     TYPE             DESTINATION RULE
                                       9080     -          inbound       STATIC
BlackHoleCluster                       -        -          -             STATIC
PassthroughCluster                     -        -          -             ORIGINAL_DST
api.payments.example                   443      -          outbound      STRICT_DNS
productpage.shop.svc.cluster.local     9080     -          outbound      EDS
reviews.shop.svc.cluster.local         9080     -          outbound      EDS              reviews.shop
reviews.shop.svc.cluster.local         9080     v1         outbound      EDS              reviews.shop
reviews.shop.svc.cluster.local         9080     v2         outbound      EDS              reviews.shop
";
    let listeners = "\
ADDRESSES  PORT MATCH                                 DESTINATION
0.0.0.0    443  SNI: api.payments.example; Trans: tls Cluster: outbound|443||api.payments.example
0.0.0.0    9080 ALL                                   Route: 9080
127.0.0.13 9080 ALL                                   Cluster: inbound|9080||
";
    let routes = "\
NAME     VHOST NAME                                  DOMAINS                           MATCH                   VIRTUAL SERVICE
9080     productpage.shop.svc.cluster.local:9080     productpage, productpage.shop     /*
9080     reviews.shop.svc.cluster.local:9080         reviews, reviews.shop             /* [end-user=jason]     reviews.shop
9080     reviews.shop.svc.cluster.local:9080         reviews, reviews.shop             /*                      reviews.shop
";
    let endpoints = "\
ENDPOINT                     STATUS      OUTLIER CHECK     CLUSTER
127.0.0.1:9080               HEALTHY     -                 inbound|9080||
api.payments.example:443     HEALTHY     -                 outbound|443||api.payments.example
127.0.0.13:9080              HEALTHY     -                 outbound|9080||productpage.shop.svc.cluster.local
127.0.0.11:9080              HEALTHY     ENABLED           outbound|9080||reviews.shop.svc.cluster.local
127.0.0.12:9080              HEALTHY     ENABLED           outbound|9080||reviews.shop.svc.cluster.local
127.0.0.11:9080              HEALTHY     ENABLED           outbound|9080|v1|reviews.shop.svc.cluster.local
127.0.0.12:9080              HEALTHY     ENABLED           outbound|9080|v2|reviews.shop.svc.cluster.local
";
    // The full id, its pod.namespace, or a unique part of it.
    assert_eq!(table(&["clusters", PRODUCTPAGE]), clusters);
    assert_eq!(table(&["clusters", "productpage-v1.shop"]), clusters);
    assert_eq!(table(&["listeners", "productpage"]), listeners);
    assert_eq!(table(&["routes", "productpage-v1.shop"]), routes);
    assert_eq!(table(&["endpoints", "productpage-v1.shop"]), endpoints);
    assert_eq!(
        table(&["all", "productpage-v1.shop"]),
        [clusters, listeners, routes, endpoints].join("\n")
    );
    // Filters, as istioctl's.
    assert_eq!(
        table(&[
            "clusters",
            "productpage-v1.shop",
            "--fqdn",
            "reviews",
            "--subset",
            "v2"
        ]),
        "\
SERVICE FQDN                       PORT     SUBSET     DIRECTION     TYPE     DESTINATION RULE
reviews.shop.svc.cluster.local     9080     v2         outbound      EDS      reviews.shop
"
    );
    assert_eq!(
        table(&[
            "clusters",
            "productpage-v1.shop",
            "--direction",
            "inbound",
            "--port",
            "9080"
        ])
        .lines()
        .count(),
        2
    );
    assert_eq!(
        table(&[
            "endpoints",
            "productpage-v1.shop",
            "--cluster",
            "outbound|9080|v1|reviews.shop.svc.cluster.local"
        ]),
        "\
ENDPOINT            STATUS      OUTLIER CHECK     CLUSTER
127.0.0.11:9080     HEALTHY     ENABLED           outbound|9080|v1|reviews.shop.svc.cluster.local
"
    );
    assert_eq!(
        table(&["listeners", "productpage-v1.shop", "--port", "443"])
            .lines()
            .count(),
        2
    );

    // -o json: the section's resources as proto3 JSON.
    let json: serde_json::Value = serde_json::from_str(&table(&[
        "clusters",
        "productpage-v1.shop",
        "--subset",
        "v1",
        "-o",
        "json",
    ]))
    .expect("clusters json");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(
        json[0]["name"],
        "outbound|9080|v1|reviews.shop.svc.cluster.local"
    );
    assert_eq!(json[0]["type"], "EDS");
    assert_eq!(json[0]["outlierDetection"]["interval"], "10s");
    assert_eq!(json[0]["outlierDetection"]["consecutive5xx"], 5);
    let json: serde_json::Value =
        serde_json::from_str(&table(&["listeners", "productpage-v1.shop", "-o", "json"]))
            .expect("listeners json");
    assert_eq!(
        json[1]["filterChains"][0]["filters"][0]["typedConfig"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    let all: serde_json::Value =
        serde_json::from_str(&table(&["all", "productpage-v1.shop", "-o", "json"]))
            .expect("all json");
    assert_eq!(all, dump);

    // Unknown and ambiguous proxies: exit 1 and the candidates.
    let out = weft(&["proxy-config", "clusters", "ratings", "--debug-addr", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "weft proxy-config: no connected proxy matches \"ratings\"\n    connected proxies:\n      {PRODUCTPAGE}\n"
        )
    );
    assert!(out.stdout.is_empty());
    let reviews = "sidecar~127.0.0.11~reviews-v1.shop~shop.svc.cluster.local";
    let (tx2, rx2) = mpsc::channel(8);
    let mut responses2 = client
        .stream_aggregated_resources(ReceiverStream::new(rx2))
        .await
        .expect("second stream")
        .into_inner();
    request(
        &tx2,
        &mut responses2,
        Some(sidecar_node(reviews)),
        TypeUrl::Cluster,
        vec![],
    )
    .await;
    let out = weft(&["proxy-config", "routes", "shop", "--debug-addr", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "weft proxy-config: \"shop\" matches 2 connected proxies; give one of their ids\n    matching proxies:\n      {reviews}\n      {PRODUCTPAGE}\n"
        )
    );
    // The second proxy asked for clusters only: its other tables are empty.
    assert_eq!(
        table(&["routes", "reviews-v1.shop"]),
        "NAME     VHOST NAME     DOMAINS     MATCH     VIRTUAL SERVICE\n"
    );
    drop(tx);
}

#[test]
fn proxy_config_without_a_control_plane_says_so() {
    let out = weft(&[
        "proxy-config",
        "clusters",
        "x",
        "--debug-addr",
        "127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "weft proxy-config: cannot read http://127.0.0.1:1/debug/config_dump?proxy=x: "
        ) && err.contains("is `weft control` running with --debug-addr 127.0.0.1:1?"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// Two documents for `configz_shows_the_problems_in_the_files`: a valid
/// ServiceEntry, then a VirtualService whose flow list is never closed
/// (a YAML syntax error on line 14).
const SYNTAX_BROKEN: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: extra, namespace: shop}
spec:
  hosts: [extra.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [reviews
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
";

/// A VirtualService for ratings with the weight on line 10 set to `weight`.
fn ratings_vs(weight: i32) -> String {
    format!(
        "# ratings, one destination\n\
         apiVersion: networking.istio.io/v1\n\
         kind: VirtualService\n\
         metadata: {{name: ratings, namespace: shop}}\n\
         spec:\n  \
         hosts: [productpage]\n  \
         http:\n  \
         - route:\n    \
         - destination: {{host: productpage}}\n      \
         weight: {weight}\n"
    )
}

/// `/debug/configz`, as JSON.
fn configz(debug_port: u16) -> serde_json::Value {
    serde_json::from_str(&curl(debug_port, "/debug/configz")).expect("configz json")
}

/// Polls `/debug/configz` until `done` holds (5 s at most).
fn configz_until(
    debug_port: u16,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = configz(debug_port);
        if done(&c) {
            return c;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {c:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The resource `kind namespace/name` of a configz answer, if listed.
fn listed<'a>(c: &'a serde_json::Value, kind: &str, name: &str) -> Option<&'a serde_json::Value> {
    c["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["namespace"] == "shop" && r["name"] == name)
}

/// The diagnostics of a configz answer with this code, as
/// `(file name, line, field path, resource name)`.
fn problems(c: &serde_json::Value, code: &str) -> Vec<(String, u64, String, String)> {
    c["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == code)
        .map(|d| {
            let file = d["file"].as_str().unwrap_or_default();
            let name = Path::new(file)
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            (
                name,
                d["line"].as_u64().unwrap_or_default(),
                d["path"].as_str().unwrap_or_default().to_string(),
                d["resource"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn errors(c: &serde_json::Value) -> usize {
    c["diagnostics"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| d["severity"] == "Error").count())
}

/// `/debug/configz` over files with a YAML syntax error and an invalid
/// resource: both are reported with file, line and (for the invalid
/// field) its path, everything else is listed; fixing the files clears
/// the errors and lists the fixed resources; breaking them again keeps
/// their last good versions, shown as stale.
#[test]
fn configz_shows_the_problems_in_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("shop.yaml"), SHOP).expect("write");
    let syntax = dir.path().join("syntax.yaml");
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&syntax, SYNTAX_BROKEN).expect("write");
    std::fs::write(&invalid, ratings_vs(-5)).expect("write");
    let (_control, _xds, debug_port) = start(dir.path());

    let c = configz(debug_port);
    assert_eq!(
        problems(&c, "WEFT0002"),
        [("syntax.yaml".into(), 14, String::new(), String::new())],
        "{c:#}"
    );
    assert_eq!(
        problems(&c, "WEFT0020"),
        [(
            "invalid.yaml".into(),
            10,
            "spec.http[0].route[0].weight".into(),
            "ratings".into()
        )],
        "{c:#}"
    );
    assert_eq!(errors(&c), 2, "{c:#}");
    // The rest is in force: all of shop.yaml, with where each resource is,
    // and the good document before the broken one.
    let resources = c["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 9, "{c:#}");
    let reviews = listed(&c, "DestinationRule", "reviews").expect("reviews rule");
    assert!(
        reviews["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("shop.yaml")),
        "{reviews}"
    );
    assert_eq!(reviews["line"], 46, "{reviews}");
    let extra = listed(&c, "ServiceEntry", "extra").expect("extra");
    assert_eq!(
        (&extra["line"], &extra["stale"]),
        (&1.into(), &false.into())
    );
    assert!(listed(&c, "VirtualService", "broken").is_none(), "{c:#}");
    assert!(listed(&c, "VirtualService", "ratings").is_none(), "{c:#}");
    assert!(resources.iter().all(|r| r["stale"] == false), "{c:#}");

    // Fixed: the errors go, the resources come.
    let fixed = SYNTAX_BROKEN.replace("[reviews\n", "[reviews]\n");
    std::fs::write(&syntax, &fixed).expect("write");
    std::fs::write(&invalid, ratings_vs(100)).expect("write");
    let version = c["version"].as_u64().expect("version");
    let c = configz_until(debug_port, "errors not cleared", |c| {
        errors(c) == 0 && c["resources"].as_array().map(Vec::len) == Some(11)
    });
    assert!(c["version"].as_u64() > Some(version), "{c:#}");
    assert!(
        c["diagnostics"].as_array().is_some_and(Vec::is_empty),
        "{c:#}"
    );
    let broken = listed(&c, "VirtualService", "broken").expect("broken VS, fixed");
    assert_eq!(
        (&broken["line"], &broken["stale"]),
        (&9.into(), &false.into())
    );
    let ratings = listed(&c, "VirtualService", "ratings").expect("ratings VS, fixed");
    assert_eq!(ratings["line"], 2, "{ratings}");

    // Broken again: the last good versions stay, marked stale, and say why.
    std::fs::write(&syntax, SYNTAX_BROKEN).expect("write");
    std::fs::write(&invalid, ratings_vs(-5)).expect("write");
    let c = configz_until(debug_port, "errors not shown again", |c| errors(c) == 2);
    assert_eq!(c["resources"].as_array().map(Vec::len), Some(11), "{c:#}");
    for name in ["broken", "ratings"] {
        let r = listed(&c, "VirtualService", name).expect("kept");
        assert_eq!(r["stale"], true, "{name}: {c:#}");
    }
    // The document before the broken one still reads: current, not stale.
    let extra = listed(&c, "ServiceEntry", "extra").expect("extra");
    assert_eq!(extra["stale"], false, "{c:#}");
    let mut kept: Vec<(String, String)> = problems(&c, "WEFT0010")
        .into_iter()
        .map(|p| (p.0, p.3))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("invalid.yaml".into(), "ratings".into()),
            ("syntax.yaml".into(), "broken".into())
        ],
        "{c:#}"
    );
    assert!(
        listed(&c, "DestinationRule", "reviews").is_some_and(|r| r["stale"] == false),
        "{c:#}"
    );
}
