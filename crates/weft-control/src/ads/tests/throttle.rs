//! The push throttle over loopback: with one permit, a change still
//! reaches every stream, one push at a time.

use super::*;

#[tokio::test]
async fn a_throttle_of_one_pushes_one_at_a_time_and_reaches_every_stream() {
    let (publish, generations) = watch::channel(generation(1, GREETER));
    let server = AdsServer::new(generations).with_push_throttle(1);
    let throttle = server.throttle().clone();
    assert_eq!(throttle.limit(), 1);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_routes(super::super::routes(&server))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut streams = Vec::new();
    for _ in 0..8 {
        // Each on its own connection, as proxies are.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let (tx, rx) = mpsc::channel(8);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        let mut s = Stream { tx, rx };
        s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
            .await;
        let cds = s.recv().await.expect("cds");
        assert_eq!(cds.version_info, "1");
        s.send(ack(&cds, TypeUrl::Cluster, &[])).await;
        streams.push((s, cds.resources.len()));
    }
    assert_eq!(throttle.most(), 0, "first responses are not throttled");

    publish.send_replace(generation(2, &with_service("farewell")));
    for (s, before) in &mut streams {
        let push = s.recv().await.expect("push");
        assert_eq!(push.version_info, "2");
        assert!(push.resources.len() > *before);
        s.send(ack(&push, TypeUrl::Cluster, &[])).await;
    }
    assert_eq!(throttle.most(), 1, "one push at a time");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while throttle.in_flight() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "permits released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(publish);
}
