//! Incremental (delta) xDS on ADS.

use super::*;

type Delta = Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

fn subscribe(type_url: TypeUrl, names: &[&str], node: Option<Node>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node,
        type_url: type_url.as_str().into(),
        resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn unsubscribe(type_url: TypeUrl, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.as_str().into(),
        resource_names_unsubscribe: names.iter().map(|s| s.to_string()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn ack(r: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

/// Receives the next response, which must be of `type_url`.
async fn recv(s: &mut Delta, type_url: TypeUrl) -> DeltaDiscoveryResponse {
    let r = s.recv().await.expect("response");
    assert_eq!(r.type_url, type_url.as_str(), "{r:#?}");
    r
}

#[tokio::test]
async fn wildcard_cds_named_eds_and_pushes_of_changes_only() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    // Legacy wildcard: the first CDS request names nothing.
    s.send(subscribe(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let cds = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(cds.system_version_info, "1");
    assert!(names(&cds).contains(&GREETER_CLUSTER), "{cds:#?}");
    assert!(
        cds.resources.len() >= 3,
        "greeter + BlackHole + Passthrough"
    );
    assert!(cds.removed_resources.is_empty());
    for r in &cds.resources {
        assert_eq!(r.version.len(), 16, "{r:?}");
        let any = r.resource.as_ref().expect("resource");
        let c: weft_xds::pb::envoy::config::cluster::v3::Cluster =
            weft_xds::unpack(any).expect("cluster");
        assert_eq!(c.name, r.name);
    }
    s.send(ack(&cds)).await;

    // Named EDS.
    s.send(subscribe(
        TypeUrl::ClusterLoadAssignment,
        &[GREETER_CLUSTER],
        None,
    ))
    .await;
    let eds = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(names(&eds), [GREETER_CLUSTER]);
    s.send(ack(&eds)).await;
    s.quiet().await;

    // A new service: only its cluster is sent; greeter's endpoints are
    // unchanged, so no EDS.
    let farewell = GREETER_CLUSTER.replace("greeter", "farewell");
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    let push = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(push.system_version_info, "2");
    assert_eq!(names(&push), [farewell.as_str()]);
    s.send(ack(&push)).await;
    s.quiet().await;

    // The service goes away: it is removed, nothing else is sent.
    h.publish.send_replace(generation(3, GREETER));
    let push = recv(&mut s, TypeUrl::Cluster).await;
    assert!(push.resources.is_empty(), "{push:#?}");
    assert_eq!(push.removed_resources, [farewell.as_str()]);
    s.send(ack(&push)).await;
    s.quiet().await;

    // Unsubscribing one name under the wildcard: still covered, so sent again.
    s.send(unsubscribe(TypeUrl::Cluster, &[GREETER_CLUSTER]))
        .await;
    let again = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(names(&again), [GREETER_CLUSTER]);
    assert!(again.removed_resources.is_empty());
    s.send(ack(&again)).await;
    s.quiet().await;

    // The config dump sees everything the proxy holds, not just the last delta.
    let sent = h.stats.sent(&grpc_node().id).expect("connected");
    assert_eq!(sent[&TypeUrl::Cluster].resources.len(), cds.resources.len());
    assert_eq!(sent[&TypeUrl::Cluster].version, "3");
    assert_eq!(sent[&TypeUrl::ClusterLoadAssignment].resources.len(), 1);
    let status = &h.stats.proxy_statuses()[0];
    assert!(status.delta && status.service == "ADS", "{status:?}");
    let cds_status = &status.types["CDS"];
    assert_eq!(cds_status.acked.as_deref(), Some("3"), "{status:?}");
    assert_eq!(cds_status.sent.as_deref(), Some("3"), "{status:?}");
    assert_eq!(cds_status.resources, cds.resources.len());
    // Two pushes from published generations were timed.
    assert_eq!(h.stats.convergence.snapshot().2, 2);
    assert!(
        h.stats.pushes_by_type[super::super::type_index(TypeUrl::Cluster)].load(Ordering::Relaxed)
            >= 3
    );
}

#[tokio::test]
async fn missing_names_wait_and_unsubscribe_stops_updates() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    let farewell = GREETER_CLUSTER.replace("greeter", "farewell");
    // Explicit wildcard for CDS, then EDS for a cluster that doesn't exist yet.
    s.send(subscribe(TypeUrl::Cluster, &["*"], Some(grpc_node())))
        .await;
    let cds = recv(&mut s, TypeUrl::Cluster).await;
    assert!(names(&cds).contains(&GREETER_CLUSTER));
    s.send(ack(&cds)).await;
    s.send(subscribe(
        TypeUrl::ClusterLoadAssignment,
        &[GREETER_CLUSTER, &farewell],
        None,
    ))
    .await;
    let eds = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(names(&eds), [GREETER_CLUSTER]);
    assert_eq!(eds.removed_resources, [farewell.as_str()], "does not exist");
    s.send(ack(&eds)).await;

    // It appears: CDS gets the cluster, EDS the remembered subscription.
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    let push = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(names(&push), [farewell.as_str()]);
    s.send(ack(&push)).await;
    let push = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(names(&push), [farewell.as_str()]);
    s.send(ack(&push)).await;

    // Unsubscribed from greeter's endpoints: a change to both services'
    // endpoints sends only farewell's.
    s.send(unsubscribe(
        TypeUrl::ClusterLoadAssignment,
        &[GREETER_CLUSTER],
    ))
    .await;
    // (an unsubscription has no answer; this request's answer shows it was read)
    s.send(subscribe(TypeUrl::Listener, &[LISTENER], None))
        .await;
    let lds = recv(&mut s, TypeUrl::Listener).await;
    s.send(ack(&lds)).await;
    let moved = with_service("farewell").replace("50052", "50053");
    h.publish.send_replace(generation(3, &moved));
    let push = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(names(&push), [farewell.as_str()], "{push:#?}");
    assert!(push.removed_resources.is_empty());
    s.send(ack(&push)).await;
    s.quiet().await;

    // Unsubscribing the wildcard stops CDS pushes too.
    s.send(unsubscribe(TypeUrl::Cluster, &["*"])).await;
    s.send(subscribe(
        TypeUrl::ClusterLoadAssignment,
        &[GREETER_CLUSTER],
        None,
    ))
    .await;
    let eds = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(names(&eds), [GREETER_CLUSTER]);
    s.send(ack(&eds)).await;
    h.publish.send_replace(generation(4, GREETER));
    let push = recv(&mut s, TypeUrl::ClusterLoadAssignment).await;
    assert_eq!(push.removed_resources, [farewell.as_str()], "{push:#?}");
    assert_eq!(names(&push), [GREETER_CLUSTER], "its endpoint moved back");
    s.send(ack(&push)).await;
    s.quiet().await;
}

#[tokio::test]
async fn initial_resource_versions_suppress_what_the_proxy_has() {
    let mut h = start(generation(1, &with_service("farewell"))).await;
    let mut first = h.delta().await;
    first
        .send(subscribe(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let cds = recv(&mut first, TypeUrl::Cluster).await;
    assert!(cds.resources.len() >= 4, "{cds:#?}");
    drop(first);

    // Reconnecting with what it holds: one resource at an old version, one
    // the server no longer has.
    let mut initial: HashMap<String, String> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    initial.insert(GREETER_CLUSTER.into(), "0123456789abcdef".into());
    initial.insert("outbound|1||gone.shop.svc.cluster.local".into(), "1".into());
    let mut s = h.delta().await;
    s.send(DeltaDiscoveryRequest {
        initial_resource_versions: initial,
        ..subscribe(TypeUrl::Cluster, &[], Some(grpc_node()))
    })
    .await;
    let again = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(names(&again), [GREETER_CLUSTER], "{again:#?}");
    assert_eq!(
        again.removed_resources,
        ["outbound|1||gone.shop.svc.cluster.local"]
    );
    // Still, it holds (and the config dump shows) the whole set.
    let sent = h.stats.sent(&grpc_node().id).expect("connected");
    assert_eq!(sent[&TypeUrl::Cluster].resources.len(), cds.resources.len());
}

#[tokio::test]
async fn a_nack_is_counted_and_nothing_is_resent() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    s.send(subscribe(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let cds = recv(&mut s, TypeUrl::Cluster).await;
    s.send(ack(&cds)).await;
    h.publish
        .send_replace(generation(2, &with_service("farewell")));
    let push = recv(&mut s, TypeUrl::Cluster).await;

    s.send(DeltaDiscoveryRequest {
        error_detail: nack_status("cluster farewell rejected"),
        ..ack(&push)
    })
    .await;
    s.quiet().await;
    assert_eq!(h.stats.nacks.load(Ordering::Relaxed), 1);
    let cds_index = super::super::type_index(TypeUrl::Cluster);
    assert_eq!(h.stats.nacks_by_type[cds_index].load(Ordering::Relaxed), 1);
    let status = &h.stats.proxy_statuses()[0];
    assert_eq!(
        status.types["CDS"].nacked,
        Some(("2".to_string(), "cluster farewell rejected".to_string()))
    );

    // A stale nonce is no ACK; but a subscription change in it counts.
    s.send(ack(&cds)).await;
    let later = "outbound|1||later.shop.svc.cluster.local";
    s.send(DeltaDiscoveryRequest {
        resource_names_subscribe: vec![later.into()],
        ..ack(&cds)
    })
    .await;
    let missing = recv(&mut s, TypeUrl::Cluster).await;
    assert!(missing.resources.is_empty(), "nothing resent: {missing:#?}");
    assert_eq!(missing.removed_resources, [later]);
    let status = &h.stats.proxy_statuses()[0];
    assert_eq!(
        status.types["CDS"].acked.as_deref(),
        Some("1"),
        "{status:?}"
    );
    assert!(status.types["CDS"].nacked.is_some(), "{status:?}");
    s.send(ack(&missing)).await;

    // Something changes: it is sent.
    h.publish.send_replace(generation(3, GREETER));
    let push = recv(&mut s, TypeUrl::Cluster).await;
    assert_eq!(push.system_version_info, "3");
    assert_eq!(push.removed_resources.len(), 1, "{push:#?}");
}

#[tokio::test]
async fn bad_delta_requests_end_only_their_own_stream() {
    let mut h = start(generation(1, GREETER)).await;
    let mut good = h.delta().await;
    good.send(subscribe(TypeUrl::Listener, &[LISTENER], Some(grpc_node())))
        .await;
    let lds = recv(&mut good, TypeUrl::Listener).await;

    let mut no_node = h.delta().await;
    no_node
        .send(subscribe(TypeUrl::Listener, &[LISTENER], None))
        .await;
    let err = no_node.recv().await.expect_err("no node");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("no node"), "{}", err.message());

    let mut unknown = h.delta().await;
    let mut r = subscribe(TypeUrl::Listener, &[], Some(grpc_node()));
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
    good.send(ack(&lds)).await;
    good.send(subscribe(TypeUrl::RouteConfiguration, &[LISTENER], None))
        .await;
    let rds = recv(&mut good, TypeUrl::RouteConfiguration).await;
    assert_eq!(names(&rds), [LISTENER]);
}
