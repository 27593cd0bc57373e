//! WorkloadEntry auto-registration through real streams and the real
//! pipeline of `weft control` (files → [`AutoRegistry`] → file registry →
//! debounced generations): a VM's proxy that connects with
//! `AUTO_REGISTER_GROUP` gets its own inbound config at once and becomes
//! an endpoint in another proxy's EDS, until the grace period after its
//! last stream closes.

use std::time::Instant;

use weft_config::store::Snapshot;
use weft_registry::autoregister::Config;
use weft_registry::{AutoRegistry, FileRegistry, Registry};

use super::*;

const VM_MESH: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: shop}
spec:
  hosts: [vm.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: vm, namespace: shop}
spec:
  template: {serviceAccount: vm, ports: {http: 19080}, labels: {app: vm}}
"#;
const VM_CLUSTER: &str = "outbound|9080||vm.shop.svc.cluster.local";
const GRACE: Duration = Duration::from_millis(400);

/// A server fed by the control plane's own pipeline over `yaml`, with a
/// grace period of [`GRACE`].
async fn start_mesh(yaml: &str) -> (Harness, AutoRegistry) {
    let files: Snapshot = TestMesh::new(yaml).config;
    let (_files, rx) = watch::channel(Arc::new(files));
    let auto = AutoRegistry::new(
        rx,
        Config {
            grace_period: GRACE,
            controller: "test".into(),
        },
    );
    // The files never change here; their sender may go.
    let registry = FileRegistry::follow_snapshots(auto.snapshots()).expect("registry");
    let first = Generation::new(1, auto.snapshot(), registry.snapshot());
    let (publish, generations) = watch::channel(Arc::new(first));
    tokio::spawn(crate::server::publish_generations(
        auto.snapshots(),
        registry,
        publish.clone(),
        Duration::from_millis(10),
        Duration::from_millis(100),
    ));
    let server = AdsServer::new(generations).with_auto_registration(auto.clone());
    (serve(server, publish).await, auto)
}

/// A VM's sidecar at `ip` asking to be registered from `group`.
fn vm_node(ip: &str, group: &str) -> Node {
    let s = |v: &str| Value {
        kind: Some(value::Kind::StringValue(v.into())),
    };
    let fields: HashMap<String, Value> = [
        ("AUTO_REGISTER_GROUP".to_string(), s(group)),
        ("INTERCEPTION_MODE".to_string(), s("NONE")),
    ]
    .into_iter()
    .collect();
    Node {
        id: format!("sidecar~{ip}~vm-host.shop~shop.svc.cluster.local"),
        metadata: Some(Struct { fields }),
        ..Node::default()
    }
}

fn delta_subscribe(type_url: TypeUrl, node: Node) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(node),
        type_url: type_url.as_str().into(),
        ..DeltaDiscoveryRequest::default()
    }
}

/// The `ip:port` endpoints of a state-of-the-world EDS response.
fn endpoints(r: &DiscoveryResponse) -> Vec<String> {
    use weft_xds::pb::envoy::config::core::v3::address::Address;
    use weft_xds::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use weft_xds::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    let mut out = Vec::new();
    for any in &r.resources {
        let cla: ClusterLoadAssignment = weft_xds::unpack(any).expect("load assignment");
        for lb in cla.endpoints.iter().flat_map(|g| &g.lb_endpoints) {
            let Some(HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
                continue;
            };
            if let Some(Address::SocketAddress(a)) =
                e.address.as_ref().and_then(|a| a.address.as_ref())
            {
                let port = match a.port_specifier {
                    Some(PortSpecifier::PortValue(p)) => p,
                    _ => 0,
                };
                out.push(format!("{}:{port}", a.address));
            }
        }
    }
    out
}

/// The other proxy: a proxyless client watching the VM service's EDS.
async fn watch_vm_endpoints(
    h: &mut Harness,
) -> (
    Stream<DiscoveryRequest, DiscoveryResponse>,
    DiscoveryResponse,
) {
    let mut client = h.sotw().await;
    client
        .send(request(
            TypeUrl::ClusterLoadAssignment,
            &[VM_CLUSTER],
            Some(grpc_node()),
        ))
        .await;
    let eds = client.recv().await.expect("eds");
    client
        .send(ack(&eds, TypeUrl::ClusterLoadAssignment, &[VM_CLUSTER]))
        .await;
    (client, eds)
}

/// Waits (5 s at most) until `ok` holds.
async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_registering_proxy_is_an_endpoint_until_the_grace_period_after_it_leaves() {
    let (mut h, auto) = start_mesh(VM_MESH).await;
    let (mut client, eds) = watch_vm_endpoints(&mut h).await;
    assert_eq!(endpoints(&eds), Vec::<String>::new(), "no VM yet");

    // The VM connects (delta) and asks for its clusters: its first
    // response already has its inbound cluster, from the entry made for it.
    let mut vm = h.delta().await;
    vm.send(delta_subscribe(TypeUrl::Cluster, vm_node("10.1.2.3", "vm")))
        .await;
    let cds = vm.recv().await.expect("cds");
    let names: Vec<&str> = cds.resources.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"inbound|19080||"), "{names:?}");
    assert_eq!(auto.entries().len(), 1);

    // The client's EDS gains it, at the template's port.
    let push = client.recv().await.expect("eds push");
    assert_eq!(endpoints(&push), ["10.1.2.3:19080"]);
    client
        .send(ack(&push, TypeUrl::ClusterLoadAssignment, &[VM_CLUSTER]))
        .await;

    // The VM goes; its endpoint stays for the grace period, then goes.
    let gone = Instant::now();
    drop(vm);
    let push = client.recv().await.expect("eds push");
    assert!(
        gone.elapsed() >= GRACE,
        "removed after {:?}",
        gone.elapsed()
    );
    assert_eq!(endpoints(&push), Vec::<String>::new());
    assert!(auto.entries().is_empty());
}

#[tokio::test]
async fn streams_of_one_vm_share_its_entry_until_the_last_closes() {
    let (mut h, auto) = start_mesh(VM_MESH).await;
    let (mut client, _) = watch_vm_endpoints(&mut h).await;
    // One stream of each protocol, from the same VM.
    let mut sotw = h.sotw().await;
    sotw.send(request(
        TypeUrl::Cluster,
        &[],
        Some(vm_node("10.1.2.3", "vm")),
    ))
    .await;
    sotw.recv().await.expect("cds");
    let mut delta = h.delta().await;
    delta
        .send(delta_subscribe(TypeUrl::Cluster, vm_node("10.1.2.3", "vm")))
        .await;
    delta.recv().await.expect("cds");
    let push = client.recv().await.expect("eds push");
    assert_eq!(endpoints(&push), ["10.1.2.3:19080"]);
    client
        .send(ack(&push, TypeUrl::ClusterLoadAssignment, &[VM_CLUSTER]))
        .await;

    // One closes: the other keeps the entry connected, no timer runs.
    drop(sotw);
    eventually("the sotw stream gone", || {
        h.stats.connected.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(
        auto.entries()
            .into_iter()
            .map(|(_, up)| up)
            .collect::<Vec<_>>(),
        [true]
    );
    // The last closes: gone after the grace period.
    let gone = Instant::now();
    drop(delta);
    let push = client.recv().await.expect("eds push");
    assert!(
        gone.elapsed() >= GRACE,
        "removed after {:?}",
        gone.elapsed()
    );
    assert_eq!(endpoints(&push), Vec::<String>::new());
}

#[tokio::test]
async fn a_proxy_naming_an_unknown_group_is_served_unregistered() {
    let (mut h, auto) = start_mesh(VM_MESH).await;
    let mut vm = h.delta().await;
    vm.send(delta_subscribe(
        TypeUrl::Cluster,
        vm_node("10.1.2.3", "nope"),
    ))
    .await;
    let cds = vm.recv().await.expect("served");
    let names: Vec<&str> = cds.resources.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&VM_CLUSTER), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("inbound|")),
        "{names:?}"
    );
    assert!(
        auto.snapshot()
            .of_kind(weft_config::Kind::WorkloadEntry)
            .next()
            .is_none()
    );
}
