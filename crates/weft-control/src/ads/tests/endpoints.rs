//! An endpoint-only change — a WorkloadEntry's address or weight — on a
//! stream subscribed to every type: it is pushed as EDS alone, in both
//! protocols; clusters, listeners and routes are not sent again.

use weft_xds::pb::envoy::config::core::v3::{address, socket_address};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};

use super::*;

const CLUSTER: &str = "outbound|50051||greeter.shop.svc.cluster.local";
const ROUTE: &str = "50051";

/// The greeter service, its endpoints the WorkloadEntry `greeter-v1`
/// (at `address`, with `weight`).
fn mesh(address: &str, weight: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{name: greeter, namespace: shop}}\n\
         spec:\n  hosts: [greeter.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  \
         resolution: STATIC\n  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]\n  \
         workloadSelector: {{labels: {{app: greeter}}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: greeter-v1, namespace: shop}}\n\
         spec: {{address: {address}, weight: {weight}, ports: {{grpc: 50052}}, labels: {{app: greeter}}}}\n"
    )
}

/// An Envoy sidecar elsewhere in the mesh (not one of greeter's workloads).
fn sidecar() -> Node {
    Node {
        id: "sidecar~10.1.1.1~web.shop~shop.svc.cluster.local".into(),
        ..Node::default()
    }
}

/// The one endpoint of a load assignment, as `(address:port, weight)`.
fn endpoint(any: &weft_xds::pb::google::protobuf::Any) -> (String, Option<u32>) {
    let la: ClusterLoadAssignment = weft_xds::unpack(any).expect("load assignment");
    assert_eq!(la.cluster_name, CLUSTER);
    let lb: Vec<_> = la.endpoints.iter().flat_map(|l| &l.lb_endpoints).collect();
    assert_eq!(lb.len(), 1, "{la:#?}");
    let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &lb[0].host_identifier else {
        panic!("no endpoint: {la:#?}");
    };
    let Some(address::Address::SocketAddress(sa)) =
        ep.address.as_ref().and_then(|a| a.address.as_ref())
    else {
        panic!("no socket address: {la:#?}");
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = sa.port_specifier else {
        panic!("no port: {la:#?}");
    };
    (
        format!("{}:{port}", sa.address),
        lb[0].load_balancing_weight.map(|w| w.value),
    )
}

/// The four types Envoy subscribes to: every cluster and listener, the
/// greeter's endpoints, the routes of port 50051.
const SUBSCRIPTIONS: [(TypeUrl, &[&str]); 4] = [
    (TypeUrl::Cluster, &[]),
    (TypeUrl::ClusterLoadAssignment, &[CLUSTER]),
    (TypeUrl::Listener, &[]),
    (TypeUrl::RouteConfiguration, &[ROUTE]),
];

#[tokio::test]
async fn an_endpoint_change_pushes_only_eds_state_of_the_world() {
    let mut h = start(generation(1, &mesh("10.0.0.1", 1))).await;
    let mut s = h.sotw().await;
    let mut node = Some(sidecar());
    let mut eds = None;
    for (type_url, names) in SUBSCRIPTIONS {
        s.send(request(type_url, names, node.take())).await;
        let r = s.recv().await.expect("response");
        assert_eq!(r.type_url, type_url.as_str());
        assert!(!r.resources.is_empty(), "{type_url:?}: {r:#?}");
        s.send(ack(&r, type_url, names)).await;
        if type_url == TypeUrl::ClusterLoadAssignment {
            eds = Some(r);
        }
    }
    let eds = eds.expect("eds");
    assert_eq!(
        endpoint(&eds.resources[0]),
        ("10.0.0.1:50052".into(), Some(1))
    );
    s.quiet().await;

    // The workload moves: its endpoints are pushed, nothing else.
    h.publish.send_replace(generation(2, &mesh("10.0.0.2", 1)));
    let push = s.recv().await.expect("push");
    assert_eq!(
        push.type_url,
        TypeUrl::ClusterLoadAssignment.as_str(),
        "{push:#?}"
    );
    assert_eq!(push.version_info, "2");
    assert_eq!(
        endpoint(&push.resources[0]),
        ("10.0.0.2:50052".into(), Some(1))
    );
    s.send(ack(&push, TypeUrl::ClusterLoadAssignment, &[CLUSTER]))
        .await;
    s.quiet().await;

    // Its weight changes: the same.
    h.publish.send_replace(generation(3, &mesh("10.0.0.2", 5)));
    let push = s.recv().await.expect("push");
    assert_eq!(
        push.type_url,
        TypeUrl::ClusterLoadAssignment.as_str(),
        "{push:#?}"
    );
    assert_eq!(
        endpoint(&push.resources[0]),
        ("10.0.0.2:50052".into(), Some(5))
    );
    s.send(ack(&push, TypeUrl::ClusterLoadAssignment, &[CLUSTER]))
        .await;
    s.quiet().await;
    let pushes =
        |t: TypeUrl| h.stats.pushes_by_type[super::super::type_index(t)].load(Ordering::Relaxed);
    assert_eq!(
        [
            TypeUrl::Cluster,
            TypeUrl::Listener,
            TypeUrl::RouteConfiguration
        ]
        .map(pushes),
        [1, 1, 1],
        "only the first responses"
    );
    assert_eq!(pushes(TypeUrl::ClusterLoadAssignment), 3);
}

#[tokio::test]
async fn an_endpoint_change_pushes_only_eds_delta() {
    let mut h = start(generation(1, &mesh("10.0.0.1", 1))).await;
    let mut s = h.delta().await;
    let mut node = Some(sidecar());
    for (type_url, names) in SUBSCRIPTIONS {
        s.send(DeltaDiscoveryRequest {
            node: node.take(),
            type_url: type_url.as_str().into(),
            resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
        let r = s.recv().await.expect("response");
        assert_eq!(r.type_url, type_url.as_str());
        assert!(!r.resources.is_empty(), "{type_url:?}: {r:#?}");
        s.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    }
    s.quiet().await;

    for (version, address, weight) in [(2, "10.0.0.2", 1), (3, "10.0.0.2", 5)] {
        h.publish
            .send_replace(generation(version, &mesh(address, weight)));
        let push = s.recv().await.expect("push");
        assert_eq!(
            push.type_url,
            TypeUrl::ClusterLoadAssignment.as_str(),
            "{push:#?}"
        );
        assert_eq!(push.system_version_info, version.to_string());
        assert!(push.removed_resources.is_empty(), "{push:#?}");
        assert_eq!(push.resources.len(), 1, "{push:#?}");
        assert_eq!(push.resources[0].name, CLUSTER);
        let any = push.resources[0].resource.as_ref().expect("resource");
        assert_eq!(endpoint(any), (format!("{address}:50052"), Some(weight)));
        s.send(DeltaDiscoveryRequest {
            type_url: push.type_url.clone(),
            response_nonce: push.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
        s.quiet().await;
    }
}
