use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use weft_config::LoadOptions;
use weft_config::load::{load_paths, load_str};

use super::*;

fn snapshot(text: &str) -> RegistrySnapshot {
    let loaded = load_str(text, Path::new("t.yaml"), &LoadOptions::default());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    build(&loaded.resources)
}

fn ep<'a>(snap: &'a RegistrySnapshot, host: &str) -> &'a [Endpoint] {
    let svc = snap
        .services
        .get(&Hostname::new(host))
        .and_then(|v| v.first())
        .expect("service");
    snap.endpoints_of(svc)
}

const SE: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews, reviews.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9443, name: http-metrics, protocol: HTTP2, targetPort: 19443}
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 10.0.0.1, ports: {http: 19080}, labels: {app: reviews, version: v1}, locality: eu/zone-a, weight: 3, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: elsewhere, namespace: other}
spec: {address: 10.0.0.9, labels: {app: reviews}}
"#;

#[test]
fn services_come_from_service_entry_hosts_with_typed_ports() {
    let snap = snapshot(SE);
    let names: Vec<&str> = snap.all_services().map(|s| s.hostname.as_str()).collect();
    assert_eq!(
        names,
        vec!["reviews.example.com", "reviews.shop.svc.cluster.local"]
    );
    let svc = &snap.services[&Hostname::new("reviews.shop.svc.cluster.local")][0];
    assert_eq!(svc.namespace, "shop");
    assert_eq!(svc.resolution, Resolution::Static);
    assert_eq!(svc.location, Location::MeshInternal);
    assert_eq!(svc.ports[0].protocol, Protocol::Http);
    assert_eq!(svc.ports[1].protocol, Protocol::Http2);
    assert_eq!(svc.port(9443).map(|p| p.target_port), Some(19443));
    assert_eq!(svc.source.name, "reviews");
}

#[test]
fn endpoints_are_the_selected_workloads_of_the_namespace() {
    let snap = snapshot(SE);
    let eps = ep(&snap, "reviews.shop.svc.cluster.local");
    assert_eq!(
        eps.len(),
        2,
        "the workload in namespace other is not selected"
    );
    let v1 = &eps[0];
    assert_eq!(
        v1.address,
        EndpointAddress::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert_eq!(
        v1.ports.get(&9080),
        Some(&19080),
        "named port of the workload"
    );
    assert_eq!(
        v1.ports.get(&9443),
        Some(&19443),
        "else the service's targetPort"
    );
    assert_eq!(v1.locality, Locality::parse("eu/zone-a"));
    assert_eq!(v1.weight, 3);
    assert_eq!(v1.service_account, "reviews");
    assert_eq!(v1.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(v1.source.name, "reviews-v1");
    let v2 = &eps[1];
    assert_eq!(
        v2.ports.get(&9080),
        Some(&9080),
        "else the service port itself"
    );
    assert_eq!(v2.weight, 1, "unset weight is 1");
    assert_eq!(v2.health, Health::Healthy);
    // Every host of the entry shares the endpoints.
    assert_eq!(ep(&snap, "reviews.example.com").len(), 2);
}

#[test]
fn ports_of_a_source_are_indexed_once_with_the_first_services_protocol() {
    // A second service selecting reviews-v1 serves 19080 too, as TCP: the
    // first by host name (reviews.example.com, HTTP) decides.
    let text = format!(
        "{SE}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: zz, namespace: shop}}\nspec: {{hosts: [zz.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{{number: 7000, name: tcp, protocol: TCP, targetPort: 19080}}, {{number: 7001, name: tcp-b, protocol: TCP}}], workloadSelector: {{labels: {{version: v1}}}}}}\n"
    );
    let snap = snapshot(&text);
    let key = |ns: &str, name: &str| weft_config::ResourceKey {
        kind: Kind::WorkloadEntry,
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    let v1 = snap.ports_of_source(&key("shop", "reviews-v1"));
    let v1: Vec<(u16, Protocol)> = v1.into_iter().flatten().map(|(p, k)| (*p, *k)).collect();
    assert_eq!(
        v1,
        vec![
            (7001, Protocol::Tcp),
            (19080, Protocol::Http),
            (19443, Protocol::Http2)
        ]
    );
    let v2 = snap.ports_of_source(&key("shop", "reviews-v2"));
    assert_eq!(v2.map(|p| p.len()), Some(2));
    assert_eq!(snap.ports_of_source(&key("other", "elsewhere")), None);
    // The index is a cache: a clone without it, or with it, is equal.
    assert_eq!(snap.clone(), snap);
}

#[test]
fn a_workload_entry_with_a_failed_health_condition_is_unhealthy() {
    let text = SE.replace(
        "spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}",
        "spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}\nstatus:\n  conditions:\n  - {type: Healthy, status: \"False\"}",
    );
    let snap = snapshot(&text);
    let eps = ep(&snap, "reviews.shop.svc.cluster.local");
    assert_eq!(eps[0].health, Health::Healthy);
    assert_eq!(eps[1].health, Health::Unhealthy);
    let text = SE.replace(
        "spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}",
        "spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}\nstatus: {conditions: [{type: Healthy, status: \"True\"}]}",
    );
    assert_eq!(
        ep(&snapshot(&text), "reviews.shop.svc.cluster.local")[1].health,
        Health::Healthy
    );
}

#[test]
fn inline_endpoints_and_dns_names() {
    let snap = snapshot(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext, namespace: shop}\nspec:\n  hosts: [api.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints:\n  - {address: api-1.example.com}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: local, namespace: shop}\nspec:\n  hosts: [local.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints:\n  - {address: unix:///var/run/api.sock}\n",
    );
    let svc = &snap.services[&Hostname::new("api.example.com")][0];
    assert_eq!(svc.location, Location::MeshExternal);
    assert_eq!(svc.resolution, Resolution::Dns);
    let eps = snap.endpoints_of(svc);
    assert_eq!(
        eps[0].address,
        EndpointAddress::Hostname("api-1.example.com".into())
    );
    assert_eq!(eps[0].source.name, "ext");
    let local_svc = &snap.services[&Hostname::new("local.example.com")][0];
    assert_eq!(
        local_svc.ports[0].protocol,
        Protocol::Http,
        "protocol from the port name"
    );
    let local = ep(&snap, "local.example.com");
    assert_eq!(
        local[0].address,
        EndpointAddress::Unix("/var/run/api.sock".into())
    );
}

#[test]
fn export_to_limits_lookups() {
    let snap = snapshot(&SE.replace(
        "  location: MESH_INTERNAL",
        "  location: MESH_INTERNAL\n  exportTo: [\".\"]",
    ));
    let host = Hostname::new("reviews.shop.svc.cluster.local");
    assert_eq!(snap.lookup(&host, "shop").count(), 1);
    assert_eq!(snap.lookup(&host, "other").count(), 0);
}

#[test]
fn the_examples_build_a_registry() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let loaded = load_paths(&[dir], &LoadOptions::default());
    let snap = build(&loaded.resources);
    assert_eq!(snap.all_services().count(), 5);
    assert_eq!(ep(&snap, "reviews.bookinfo.svc.cluster.local").len(), 3);
    assert_eq!(ep(&snap, "details.bookinfo.svc.cluster.local").len(), 2);
}

#[test]
fn file_registry_follows_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), SE).expect("write");
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let registry = FileRegistry::follow(&store).expect("follow");
    assert_eq!(registry.name(), "file");
    assert_eq!(registry.snapshot().version, 1);
    assert_eq!(
        ep(&registry.snapshot(), "reviews.shop.svc.cluster.local").len(),
        2
    );

    // A third workload appears: the registry follows once the store reloads.
    let more = format!(
        "{SE}---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-v3, namespace: shop}}\nspec: {{address: 10.0.0.3, labels: {{app: reviews}}}}\n"
    );
    std::fs::write(dir.path().join("mesh.yaml"), more).expect("write");
    store.reload();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ep(&registry.snapshot(), "reviews.shop.svc.cluster.local").len() != 3 {
        assert!(
            Instant::now() < deadline,
            "registry did not follow: {:#?}",
            registry.snapshot()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(registry.snapshot().version, 2);

    // A config change that touches no service or endpoint publishes nothing.
    let mut sub = registry.subscribe();
    sub.mark_unchanged();
    std::fs::write(
        dir.path().join("other.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
    )
    .expect("write");
    store.reload();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!sub.has_changed().unwrap_or(true));
    assert_eq!(registry.snapshot().version, 2);
}

#[test]
fn only_service_and_workload_entries_are_the_registrys_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), SE).expect("write");
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let first = store.snapshot();
    std::fs::write(
        dir.path().join("vs.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n",
    )
    .expect("write");
    store.reload();
    let routed = store.snapshot();
    assert_ne!(first.version, routed.version);
    assert!(same_inputs(&first, &routed), "a VirtualService is no input");
    std::fs::write(
        dir.path().join("mesh.yaml"),
        SE.replace("10.0.0.2", "10.0.0.22"),
    )
    .expect("write");
    store.reload();
    assert!(
        !same_inputs(&routed, &store.snapshot()),
        "a WorkloadEntry is"
    );
    std::fs::remove_file(dir.path().join("mesh.yaml")).expect("remove");
    store.reload();
    assert!(!same_inputs(&routed, &store.snapshot()), "removals count");
}
