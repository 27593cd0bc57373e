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
        row.starts_with("sidecar~127.0.0.1~client.bookinfo") && row.contains("SYNCED (16)"),
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
