//! The per-type discovery services: one type per stream, both protocols,
//! for each of CDS, EDS, LDS and RDS (mounted through `routes`, and as
//! the generated services), a request of another type refused, and the
//! unary `Fetch*`.

use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryServiceServer;
use weft_xds::pb::envoy::service::endpoint::v3::endpoint_discovery_service_client::EndpointDiscoveryServiceClient;
use weft_xds::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;
use weft_xds::pb::envoy::service::listener::v3::listener_discovery_service_client::ListenerDiscoveryServiceClient;
use weft_xds::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryServiceServer;
use weft_xds::pb::envoy::service::route::v3::route_discovery_service_client::RouteDiscoveryServiceClient;
use weft_xds::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryServiceServer;

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

/// A state-of-the-world stream on the per-type service of `type_url`.
async fn sotw_on(
    channel: &Channel,
    type_url: TypeUrl,
) -> Stream<DiscoveryRequest, DiscoveryResponse> {
    let (tx, rx) = mpsc::channel(8);
    let rx = ReceiverStream::new(rx);
    let response = match type_url {
        TypeUrl::Cluster => {
            ClusterDiscoveryServiceClient::new(channel.clone())
                .stream_clusters(rx)
                .await
        }
        TypeUrl::ClusterLoadAssignment => {
            EndpointDiscoveryServiceClient::new(channel.clone())
                .stream_endpoints(rx)
                .await
        }
        TypeUrl::Listener => {
            ListenerDiscoveryServiceClient::new(channel.clone())
                .stream_listeners(rx)
                .await
        }
        TypeUrl::RouteConfiguration => {
            RouteDiscoveryServiceClient::new(channel.clone())
                .stream_routes(rx)
                .await
        }
        other => panic!("no per-type service for {other:?}"),
    };
    Stream {
        tx,
        rx: response.expect("stream").into_inner(),
    }
}

/// A delta stream on the per-type service of `type_url`.
async fn delta_on(
    channel: &Channel,
    type_url: TypeUrl,
) -> Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
    let (tx, rx) = mpsc::channel(8);
    let rx = ReceiverStream::new(rx);
    let response = match type_url {
        TypeUrl::Cluster => {
            ClusterDiscoveryServiceClient::new(channel.clone())
                .delta_clusters(rx)
                .await
        }
        TypeUrl::ClusterLoadAssignment => {
            EndpointDiscoveryServiceClient::new(channel.clone())
                .delta_endpoints(rx)
                .await
        }
        TypeUrl::Listener => {
            ListenerDiscoveryServiceClient::new(channel.clone())
                .delta_listeners(rx)
                .await
        }
        TypeUrl::RouteConfiguration => {
            RouteDiscoveryServiceClient::new(channel.clone())
                .delta_routes(rx)
                .await
        }
        other => panic!("no per-type service for {other:?}"),
    };
    Stream {
        tx,
        rx: response.expect("stream").into_inner(),
    }
}

/// What a per-type stream test of one type subscribes to, the config
/// that changes its resources, and the name of the one resource that
/// change pushes on a delta stream.
struct Case {
    type_url: TypeUrl,
    names: &'static [&'static str],
    changed: String,
    pushed: String,
}

/// EDS, LDS and RDS for the greeter's proxyless client: its endpoints
/// move; a second service adds a listener; a VirtualService timeout
/// changes its routes.
fn eds_lds_rds() -> [Case; 3] {
    [
        Case {
            type_url: TypeUrl::ClusterLoadAssignment,
            names: &[GREETER_CLUSTER],
            changed: GREETER.replace("50052", "50053"),
            pushed: GREETER_CLUSTER.into(),
        },
        Case {
            type_url: TypeUrl::Listener,
            names: &[],
            changed: with_service("farewell"),
            pushed: LISTENER.replace("greeter", "farewell"),
        },
        Case {
            type_url: TypeUrl::RouteConfiguration,
            names: &[LISTENER],
            changed: format!(
                "{GREETER}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                 metadata: {{name: greeter, namespace: shop}}\n\
                 spec:\n  hosts: [greeter.shop.svc.cluster.local]\n  \
                 http: [{{timeout: 3s, route: [{{destination: {{host: greeter.shop.svc.cluster.local}}}}]}}]\n"
            ),
            pushed: LISTENER.into(),
        },
    ]
}

/// A request of the wrong type on the per-type stream of `served`: the
/// stream ends with INVALID_ARGUMENT naming both types and the way out.
fn assert_refused(err: &Status, served: TypeUrl, sent: TypeUrl) {
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let m = err.message();
    assert!(
        m.contains(&format!(
            "this is the {} discovery service",
            served.short_name()
        )) && m.contains(&format!(
            "serves only {} resources, not {}",
            served.as_str(),
            sent.as_str()
        )) && m.contains("Aggregated Discovery Service"),
        "{m}"
    );
}

/// The type every test sends where it doesn't belong.
fn wrong_type(served: TypeUrl) -> TypeUrl {
    if served == TypeUrl::Cluster {
        TypeUrl::Listener
    } else {
        TypeUrl::Cluster
    }
}

/// Subscribes on the state-of-the-world service of `case.type_url`,
/// ACKs, publishes `case.changed` and checks the push; then a request
/// of another type ends the stream.
async fn sotw_case(h: &Harness, case: &Case, version: u64) {
    let t = case.type_url;
    let mut s = sotw_on(&h.channel, t).await;
    s.send(request(t, case.names, Some(grpc_node()))).await;
    let first = s.recv().await.expect("first response");
    assert_eq!(first.type_url, t.as_str(), "{first:#?}");
    assert!(!first.resources.is_empty(), "{first:#?}");
    s.send(ack(&first, t, case.names)).await;
    let status = h.stats.proxy_statuses();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(
        !status[0].delta && status[0].service == t.short_name(),
        "{status:?}"
    );

    h.publish.send_replace(generation(version, &case.changed));
    let push = s.recv().await.expect("push");
    assert_eq!(
        (push.type_url.as_str(), push.version_info.as_str()),
        (t.as_str(), version.to_string().as_str())
    );
    assert_ne!(
        push.resources, first.resources,
        "{t:?}: the change is in the push"
    );
    s.send(ack(&push, t, case.names)).await;

    let wrong = wrong_type(t);
    s.send(request(wrong, &[], None)).await;
    assert_refused(&s.recv().await.expect_err("wrong type"), t, wrong);
}

/// [`sotw_case`] on the delta service.
async fn delta_case(h: &Harness, case: &Case, version: u64) {
    let t = case.type_url;
    let mut s = delta_on(&h.channel, t).await;
    let subscribe = |names: &[&str], node: Option<Node>, t: TypeUrl| DeltaDiscoveryRequest {
        node,
        type_url: t.as_str().into(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..DeltaDiscoveryRequest::default()
    };
    let ack = |r: &DeltaDiscoveryResponse| DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    };
    s.send(subscribe(case.names, Some(grpc_node()), t)).await;
    let first = s.recv().await.expect("first response");
    assert_eq!(first.type_url, t.as_str(), "{first:#?}");
    assert!(!first.resources.is_empty(), "{first:#?}");
    s.send(ack(&first)).await;
    let status = h.stats.proxy_statuses();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(
        status[0].delta && status[0].service == t.short_name(),
        "{status:?}"
    );

    h.publish.send_replace(generation(version, &case.changed));
    let push = s.recv().await.expect("push");
    assert_eq!(
        (push.type_url.as_str(), push.system_version_info.as_str()),
        (t.as_str(), version.to_string().as_str())
    );
    let names: Vec<&str> = push.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, [case.pushed.as_str()], "{t:?}: only what changed");
    assert!(push.removed_resources.is_empty(), "{push:#?}");
    s.send(ack(&push)).await;

    let wrong = wrong_type(t);
    s.send(subscribe(&[], None, wrong)).await;
    assert_refused(&s.recv().await.expect_err("wrong type"), t, wrong);
}

#[tokio::test]
async fn eds_lds_and_rds_services_state_of_the_world() {
    for case in eds_lds_rds() {
        let h = start(generation(1, GREETER)).await;
        sotw_case(&h, &case, 2).await;
    }
}

#[tokio::test]
async fn eds_lds_and_rds_services_delta() {
    for case in eds_lds_rds() {
        let h = start(generation(1, GREETER)).await;
        delta_case(&h, &case, 2).await;
    }
}

/// The generated services mounted as they are, without [`super::super::routes`]:
/// their own `Stream*` and `Delta*` methods (the `per_type_service!`
/// implementations) serve the same streams.
#[tokio::test]
async fn the_generated_per_type_services_serve_the_same_streams() {
    let cds = Case {
        type_url: TypeUrl::Cluster,
        names: &[],
        changed: with_service("farewell"),
        pushed: GREETER_CLUSTER.replace("greeter", "farewell"),
    };
    let [eds, lds, rds] = eds_lds_rds();
    for case in [cds, eds, lds, rds] {
        for delta in [false, true] {
            let h = start_generated(generation(1, GREETER)).await;
            if delta {
                delta_case(&h, &case, 2).await;
            } else {
                sotw_case(&h, &case, 2).await;
            }
        }
    }
}

/// A server with the four generated per-type services mounted directly.
async fn start_generated(first: Arc<Generation>) -> Harness {
    let (publish, generations) = watch::channel(first);
    let server = AdsServer::new(generations);
    let stats = server.stats().clone();
    let shares = server.shares.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_service(ClusterDiscoveryServiceServer::new(server.clone()))
            .add_service(EndpointDiscoveryServiceServer::new(server.clone()))
            .add_service(ListenerDiscoveryServiceServer::new(server.clone()))
            .add_service(RouteDiscoveryServiceServer::new(server))
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
