//! The per-type discovery services: one type per stream, both protocols,
//! and the unary `Fetch*`.

use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use weft_xds::pb::envoy::service::listener::v3::listener_discovery_service_client::ListenerDiscoveryServiceClient;
use weft_xds::pb::envoy::service::route::v3::route_discovery_service_client::RouteDiscoveryServiceClient;

use super::*;

#[tokio::test]
async fn cds_service_state_of_the_world() {
    let h = start(generation(1, GREETER)).await;
    let mut client = ClusterDiscoveryServiceClient::new(h.channel.clone());
    let (tx, rx) = mpsc::channel(8);
    let mut s = Stream {
        tx,
        rx: client
            .stream_clusters(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner(),
    };
    // A per-type stream may leave the type URL out.
    s.send(DiscoveryRequest {
        node: Some(grpc_node()),
        ..DiscoveryRequest::default()
    })
    .await;
    let cds = s.recv().await.expect("cds");
    assert_eq!(cds.type_url, TypeUrl::Cluster.as_str());
    assert!(cds.resources.len() >= 3, "{cds:#?}");
    s.send(ack(&cds, TypeUrl::Cluster, &[])).await;
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    let push = s.recv().await.expect("push");
    assert_eq!(push.version_info, "2");
    assert_eq!(push.resources.len(), cds.resources.len() + 1);

    let status = &h.stats.proxy_statuses()[0];
    assert!(!status.delta && status.service == "CDS", "{status:?}");
}

#[tokio::test]
async fn cds_service_delta_and_the_wrong_type_is_refused() {
    let h = start(generation(1, GREETER)).await;
    let mut client = ClusterDiscoveryServiceClient::new(h.channel.clone());
    let (tx, rx) = mpsc::channel(8);
    let mut s = Stream {
        tx,
        rx: client
            .delta_clusters(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner(),
    };
    s.send(DeltaDiscoveryRequest {
        node: Some(grpc_node()),
        type_url: TypeUrl::Cluster.as_str().into(),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    let cds = s.recv().await.expect("cds");
    assert!(
        cds.resources.iter().any(|r| r.name == GREETER_CLUSTER),
        "{cds:#?}"
    );
    assert_eq!(h.stats.proxy_statuses()[0].service, "CDS");
    assert!(h.stats.proxy_statuses()[0].delta);

    // Listeners on the cluster service: refused, clearly.
    s.send(DeltaDiscoveryRequest {
        type_url: TypeUrl::Listener.as_str().into(),
        resource_names_subscribe: vec![LISTENER.into()],
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    let err = s.recv().await.expect_err("wrong type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("serves only") && err.message().contains("Listener"),
        "{}",
        err.message()
    );

    // And on a state-of-the-world RDS stream.
    let mut rds = RouteDiscoveryServiceClient::new(h.channel.clone());
    let (tx, rx) = mpsc::channel(8);
    let mut s = Stream {
        tx,
        rx: rds
            .stream_routes(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner(),
    };
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let err = s.recv().await.expect_err("wrong type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn fetch_answers_the_current_resources() {
    let h = start(generation(4, GREETER)).await;
    let mut cds = ClusterDiscoveryServiceClient::new(h.channel.clone());
    let all = cds
        .fetch_clusters(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(all.version_info, "4");
    assert!(all.resources.len() >= 3, "{all:#?}");
    let one = cds
        .fetch_clusters(request(
            TypeUrl::Cluster,
            &[GREETER_CLUSTER],
            Some(grpc_node()),
        ))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(one.resources.len(), 1);

    let mut lds = ListenerDiscoveryServiceClient::new(h.channel.clone());
    let listeners = lds
        .fetch_listeners(request(TypeUrl::Listener, &[LISTENER], Some(grpc_node())))
        .await
        .expect("fetch")
        .into_inner();
    let listener: weft_xds::pb::envoy::config::listener::v3::Listener =
        weft_xds::unpack(&listeners.resources[0]).expect("listener");
    assert_eq!(listener.name, LISTENER);

    let err = lds
        .fetch_listeners(request(TypeUrl::Listener, &[], None))
        .await
        .expect_err("no node");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = lds
        .fetch_listeners(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await
        .expect_err("wrong type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // A fetch is not a stream: no proxy stays connected.
    assert!(h.stats.proxy_statuses().is_empty());
}
