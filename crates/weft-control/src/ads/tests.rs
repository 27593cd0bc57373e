//! The xDS server over loopback, driven by tonic's generated clients:
//! state of the world here, delta ([`delta`]), the per-type services
//! ([`services`]), generation consistency under a racing publisher
//! ([`consistency`]), the push throttle ([`throttle`]) and WorkloadEntry
//! auto-registration ([`autoregister`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Channel, Server};
use tonic::{Status, Streaming};
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use weft_xds::pb::google::protobuf::{Struct, Value, value};
use weft_xds::pb::google::rpc;

use super::{AdsServer, Generation, Stats};
use crate::translate::test_inputs::TestMesh;

mod autoregister;
mod body;
mod consistency;
mod delta;
mod endpoints;
mod services;
mod throttle;
mod vhds;

const GREETER: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: greeter, namespace: shop}\nspec:\n  hosts: [greeter.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 50051, name: grpc, protocol: GRPC}]\n  endpoints: [{address: 127.0.0.1, ports: {grpc: 50052}}]\n";
const LISTENER: &str = "greeter.shop.svc.cluster.local:50051";
const GREETER_CLUSTER: &str = "outbound|50051||greeter.shop.svc.cluster.local";

fn generation(version: u64, yaml: &str) -> Arc<Generation> {
    let mesh = TestMesh::new(yaml);
    Arc::new(Generation::new(
        version,
        Arc::new(mesh.config),
        Arc::new(mesh.registry),
    ))
}

/// The greeter service and a copy of it named `name`.
fn with_service(name: &str) -> String {
    format!("{GREETER}---\n{}", GREETER.replace("greeter", name))
}

fn grpc_node() -> Node {
    let fields: HashMap<String, Value> = [(
        "GENERATOR".to_string(),
        Value {
            kind: Some(value::Kind::StringValue("grpc".into())),
        },
    )]
    .into_iter()
    .collect();
    Node {
        id: "sidecar~127.0.0.1~client.shop~shop.svc.cluster.local".into(),
        metadata: Some(Struct { fields }),
        ..Node::default()
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    publish: watch::Sender<Arc<Generation>>,
    stats: Arc<Stats>,
    shares: Arc<super::share::Shares>,
    channel: Channel,
    client: AggregatedDiscoveryServiceClient<Channel>,
}

async fn start(first: Arc<Generation>) -> Harness {
    start_with(first, super::stream::ANSWER_WAIT).await
}

/// A server whose streams hold a generation at most `answer_wait` for
/// an unanswered response.
async fn start_with(first: Arc<Generation>, answer_wait: Duration) -> Harness {
    let (publish, generations) = watch::channel(first);
    let server = AdsServer::new(generations).with_answer_wait(answer_wait);
    serve(server, publish).await
}

/// Serves `server` (whose generations `publish` sends) on loopback.
async fn serve(server: AdsServer, publish: watch::Sender<Arc<Generation>>) -> Harness {
    let stats = server.stats().clone();
    let shares = server.shares.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_routes(super::routes(&server))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    Harness {
        addr,
        publish,
        stats,
        shares,
        client: AggregatedDiscoveryServiceClient::new(channel.clone()),
        channel,
    }
}

impl Harness {
    /// Where the server listens.
    fn channel_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A state-of-the-world ADS stream.
    async fn sotw(&mut self) -> Stream<DiscoveryRequest, DiscoveryResponse> {
        let (tx, rx) = mpsc::channel(8);
        let response = self
            .client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream");
        Stream {
            tx,
            rx: response.into_inner(),
        }
    }

    /// A delta ADS stream.
    async fn delta(&mut self) -> Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
        let (tx, rx) = mpsc::channel(8);
        let response = self
            .client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream");
        Stream {
            tx,
            rx: response.into_inner(),
        }
    }
}

/// One stream from the client's side: requests in, responses out.
struct Stream<Q, R> {
    tx: mpsc::Sender<Q>,
    rx: Streaming<R>,
}

impl<Q: std::fmt::Debug, R: std::fmt::Debug> Stream<Q, R> {
    async fn send(&self, r: Q) {
        self.tx.send(r).await.expect("send");
    }

    async fn recv(&mut self) -> Result<R, Status> {
        match tokio::time::timeout(Duration::from_secs(5), self.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(Status::cancelled("stream ended")),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no response within 5 s"),
        }
    }

    /// Asserts nothing arrives for a while.
    async fn quiet(&mut self) {
        let r = tokio::time::timeout(Duration::from_millis(300), self.rx.message()).await;
        assert!(r.is_err(), "unexpected message: {r:?}");
    }
}

fn request(type_url: TypeUrl, names: &[&str], node: Option<Node>) -> DiscoveryRequest {
    DiscoveryRequest {
        node,
        type_url: type_url.as_str().into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        ..DiscoveryRequest::default()
    }
}

fn ack(r: &DiscoveryResponse, type_url: TypeUrl, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: r.version_info.clone(),
        response_nonce: r.nonce.clone(),
        ..request(type_url, names, None)
    }
}

fn nack_status(message: &str) -> Option<rpc::Status> {
    Some(rpc::Status {
        code: 3,
        message: message.into(),
        details: vec![],
    })
}

#[tokio::test]
async fn subscribe_ack_push_on_change_and_nack() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.sotw().await;
    s.send(request(TypeUrl::Listener, &[LISTENER], Some(grpc_node())))
        .await;
    let lds = s.recv().await.expect("lds");
    assert_eq!(lds.type_url, TypeUrl::Listener.as_str());
    assert_eq!(lds.version_info, "1");
    assert_eq!(lds.resources.len(), 1);
    let listener: weft_xds::pb::envoy::config::listener::v3::Listener =
        weft_xds::unpack(&lds.resources[0]).expect("listener");
    assert_eq!(listener.name, LISTENER);
    s.send(ack(&lds, TypeUrl::Listener, &[LISTENER])).await;

    // CDS, all clusters.
    s.send(request(TypeUrl::Cluster, &[], None)).await;
    let cds = s.recv().await.expect("cds");
    assert!(
        cds.resources.len() >= 3,
        "greeter + BlackHole + Passthrough"
    );
    s.send(ack(&cds, TypeUrl::Cluster, &[])).await;
    s.quiet().await;

    // A change that only adds a service pushes CDS, not the named listener.
    let more = format!("{GREETER}---\n{}", GREETER.replace("greeter", "farewell"));
    h.publish.send_replace(generation(2, &more));
    let push = s.recv().await.expect("push");
    assert_eq!(
        (push.type_url.as_str(), push.version_info.as_str()),
        (TypeUrl::Cluster.as_str(), "2")
    );
    assert!(push.resources.len() > cds.resources.len());

    // A NACK is counted and answered with nothing.
    let nack = DiscoveryRequest {
        error_detail: nack_status("cluster rejected"),
        ..ack(&push, TypeUrl::Cluster, &[])
    };
    s.send(nack).await;
    s.quiet().await;
    assert_eq!(h.stats.nacks.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.connected.load(Ordering::Relaxed), 1);

    // What it was sent is kept for the config dump, per type.
    let sent = h.stats.sent(&grpc_node().id).expect("connected");
    assert_eq!(sent[&TypeUrl::Cluster].version, "2");
    assert_eq!(
        sent[&TypeUrl::Cluster].resources.len(),
        push.resources.len()
    );
    assert_eq!(sent[&TypeUrl::Listener].resources.len(), 1);
    assert!(h.stats.sent("nobody").is_none());
}

#[tokio::test]
async fn a_second_client_gets_the_current_generation() {
    let mut h = start(generation(1, GREETER)).await;
    h.publish.send_replace(generation(7, GREETER));
    let mut s = h.sotw().await;
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    assert_eq!(s.recv().await.expect("cds").version_info, "7");
}

#[tokio::test]
async fn bad_requests_end_only_their_own_stream() {
    let mut h = start(generation(1, GREETER)).await;
    let mut good = h.sotw().await;
    good.send(request(TypeUrl::Listener, &[LISTENER], Some(grpc_node())))
        .await;
    let lds = good.recv().await.expect("lds");

    let mut no_node = h.sotw().await;
    no_node
        .send(request(TypeUrl::Listener, &[LISTENER], None))
        .await;
    let err = no_node.recv().await.expect_err("no node");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("no node"), "{}", err.message());

    let mut unknown = h.sotw().await;
    let mut r = request(TypeUrl::Listener, &[], Some(grpc_node()));
    r.type_url = "type.googleapis.com/envoy.config.cluster.v2.Cluster".into();
    unknown.send(r).await;
    let err = unknown.recv().await.expect_err("unknown type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("unknown xDS type URL"),
        "{}",
        err.message()
    );

    // The first stream is still served.
    good.send(ack(&lds, TypeUrl::Listener, &[LISTENER])).await;
    good.send(request(TypeUrl::Cluster, &[], None)).await;
    assert_eq!(
        good.recv().await.expect("cds").type_url,
        TypeUrl::Cluster.as_str()
    );
}

#[tokio::test]
async fn a_newer_generation_waits_for_the_answer() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.sotw().await;
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let cds = s.recv().await.expect("cds");
    // Not answered yet: generation 2 waits.
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    s.quiet().await;
    s.send(ack(&cds, TypeUrl::Cluster, &[])).await;
    let push = s.recv().await.expect("push");
    assert_eq!(push.version_info, "2");
}

#[tokio::test]
async fn a_proxy_that_never_answers_still_gets_newer_config() {
    let mut h = start_with(generation(1, GREETER), Duration::from_millis(100)).await;
    let mut s = h.sotw().await;
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let cds = s.recv().await.expect("cds");
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    let push = s.recv().await.expect("push after the wait");
    assert_eq!(push.version_info, "2");
    assert!(push.resources.len() > cds.resources.len());
}

/// `n` services, each on `port`: big responses.
fn many_services(n: usize, port: u16) -> String {
    (0..n)
        .map(|i| {
            GREETER
                .replace("greeter", &format!("svc{i}"))
                .replace("50051", &port.to_string())
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_back_only_itself() {
    let meshes = [many_services(60, 7000), many_services(60, 7001)];
    let mut h = start_with(generation(1, &meshes[0]), Duration::from_millis(1)).await;
    // The stuck client has its own connection, as every proxy does, with
    // HTTP/2's smallest windows so that its unread responses back up into
    // the server quickly.
    let mut stuck_client = AggregatedDiscoveryServiceClient::new(
        Channel::from_shared(format!("http://{}", h.channel_addr()))
            .expect("uri")
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .connect()
            .await
            .expect("connect"),
    );
    let (stuck_tx, rx) = mpsc::channel(8);
    let _stuck = stuck_client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("stream");
    let mut stuck_node = grpc_node();
    stuck_node.id = "sidecar~127.0.0.2~stuck.shop~shop.svc.cluster.local".into();
    stuck_tx
        .send(request(TypeUrl::Cluster, &[], Some(stuck_node.clone())))
        .await
        .expect("send");

    let mut s = h.sotw().await;
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let mut last = s.recv().await.expect("cds");
    let generations = 30;
    for version in 2..=generations {
        h.publish
            .send_replace(generation(version, &meshes[(version as usize - 1) % 2]));
        s.send(ack(&last, TypeUrl::Cluster, &[])).await;
        last = s.recv().await.expect("push");
        assert_eq!(last.version_info, version.to_string());
    }
    assert!(last.encoded_len() > 10_000, "{}", last.encoded_len());
    // The stuck one is still connected, and behind.
    let statuses = h.stats.proxy_statuses();
    let stuck = statuses
        .iter()
        .find(|p| p.id == stuck_node.id)
        .expect("stuck proxy connected");
    let sent: u64 = stuck.types["CDS"]
        .sent
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("sent");
    assert!(sent < generations, "{stuck:?}");
}
