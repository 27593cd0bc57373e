use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use weft_config::LoadOptions;
use weft_config::load::load_str;
use weft_config::store::Snapshot;
use weft_config::{Kind, Resource};

use super::entry::{rfc3339, spec};
use super::*;
use crate::{EndpointAddress, Hostname};

const GRACE: Duration = Duration::from_secs(10);

/// A ServiceEntry selecting `app: vm` and the WorkloadGroup `vm` of `shop`.
const MESH: &str = r#"apiVersion: networking.istio.io/v1
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
  metadata:
    labels: {version: v2, tier: backend}
    annotations: {team: payments}
  template:
    serviceAccount: vm-sa
    ports: {http: 19080}
    labels: {app: vm, version: v1}
    network: net-template
    locality: eu/template-zone
    weight: 3
"#;

fn snapshot(text: &str) -> Arc<Snapshot> {
    let loaded = load_str(text, Path::new("mesh.yaml"), &LoadOptions::default());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    Arc::new(Snapshot {
        version: 1,
        resources: loaded
            .resources
            .into_iter()
            .map(|r| (r.key(), Arc::new(r)))
            .collect(),
        ..Snapshot::default()
    })
}

fn workload(ip: &str) -> Workload {
    Workload {
        proxy: format!("sidecar~{ip}~vm.shop~shop.svc.cluster.local"),
        namespace: "shop".into(),
        group: "vm".into(),
        address: ip.into(),
        ..Workload::default()
    }
}

struct Fixture {
    files: watch::Sender<Arc<Snapshot>>,
    registry: AutoRegistry,
}

fn fixture(text: &str, grace: Duration) -> Fixture {
    let (files, rx) = watch::channel(snapshot(text));
    let registry = AutoRegistry::new(
        rx,
        Config {
            grace_period: grace,
            controller: "weft-test".into(),
        },
    );
    Fixture { files, registry }
}

fn entry(snapshot: &Snapshot, name: &str) -> Option<Arc<Resource>> {
    snapshot.get(Kind::WorkloadEntry, "shop", name).cloned()
}

fn current(registry: &AutoRegistry, name: &str) -> Option<Arc<Resource>> {
    entry(&registry.snapshot(), name)
}

#[tokio::test]
async fn a_connection_makes_its_entry_from_the_group() {
    let f = fixture(MESH, GRACE);
    let r = f.registry.connect(workload("10.0.0.5")).expect("registers");
    assert_eq!(r.outcome(), Outcome::Registered);
    assert_eq!(r.name(), "vm-10.0.0.5");
    let e = current(&f.registry, "vm-10.0.0.5").expect("entry in force");
    let s = spec(&e);
    assert_eq!(s.address, "10.0.0.5");
    assert_eq!(s.service_account, "vm-sa");
    assert_eq!(s.ports.get("http"), Some(&19080));
    assert_eq!(s.weight, 3);
    assert_eq!(
        (s.network.as_str(), s.locality.as_str()),
        ("net-template", "eu/template-zone")
    );
    assert!(is_auto_registered(&e));
    assert_eq!(
        e.source
            .auto_registered_from
            .as_ref()
            .map(|k| (k.kind, k.name.as_str())),
        Some((Kind::WorkloadGroup, "vm"))
    );
    let a = &e.meta.annotations;
    assert_eq!(a.get(GROUP_ANNOTATION).map(String::as_str), Some("vm"));
    assert_eq!(
        a.get(CONTROLLER_ANNOTATION).map(String::as_str),
        Some("weft-test")
    );
    assert_eq!(a.get("team").map(String::as_str), Some("payments"));
    assert!(
        a.get(CONNECTED_AT_ANNOTATION)
            .is_some_and(|t| t.ends_with('Z')),
        "{a:?}"
    );
    assert!(!a.contains_key(DISCONNECTED_AT_ANNOTATION));
    // The registry built from the snapshot in force has it as an endpoint.
    let snap = f.registry.snapshot();
    let reg = crate::file::build(snap.resources.values().map(|r| r.as_ref()));
    let svc = reg
        .services
        .get(&Hostname::new("vm.shop.svc.cluster.local"))
        .and_then(|v| v.first())
        .expect("service");
    let eps = reg.endpoints_of(svc);
    assert_eq!(eps.len(), 1);
    assert_eq!(
        eps[0].address,
        EndpointAddress::Ip("10.0.0.5".parse().expect("ip"))
    );
    assert_eq!(eps[0].ports, [(9080, 19080)].into());
    assert_eq!(eps[0].service_account, "vm-sa");
    // Nothing else of the files changed: the same resources.
    let files = f.files.borrow().clone();
    for (k, r) in &files.resources {
        assert!(
            snap.resources.get(k).is_some_and(|m| Arc::ptr_eq(m, r)),
            "{k}"
        );
    }
}

#[tokio::test]
async fn labels_merge_template_then_group_then_node() {
    let f = fixture(MESH, GRACE);
    let mut w = workload("10.0.0.5");
    w.labels = [("tier".to_string(), "edge".to_string())].into();
    let _r = f.registry.connect(w).expect("registers");
    let e = current(&f.registry, "vm-10.0.0.5").expect("entry");
    let labels: Vec<(&str, &str)> = spec(&e)
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // app from the template, version from the group's metadata over the
    // template's, tier from the node over the group's.
    assert_eq!(labels, [("app", "vm"), ("tier", "edge"), ("version", "v2")]);
    assert_eq!(e.meta.labels, spec(&e).labels);
}

#[tokio::test]
async fn the_nodes_network_and_locality_win_and_the_network_names_the_entry() {
    let f = fixture(MESH, GRACE);
    let mut w = workload("10.0.0.5");
    w.network = "vpc-1".into();
    w.locality = "us/east-1a".into();
    let r = f.registry.connect(w).expect("registers");
    assert_eq!(r.name(), "vm-10.0.0.5-vpc-1");
    let e = current(&f.registry, "vm-10.0.0.5-vpc-1").expect("entry");
    assert_eq!(spec(&e).network, "vpc-1");
    assert_eq!(spec(&e).locality, "us/east-1a");
}

#[test]
fn entry_names_follow_istio() {
    assert_eq!(entry_name("vm", "10.0.0.5", ""), "vm-10.0.0.5");
    assert_eq!(entry_name("vm", "fd00::1", ""), "vm-fd00--1");
    assert_eq!(entry_name("vm", "10.0.0.5", "n1"), "vm-10.0.0.5-n1");
    let long = "g".repeat(300);
    let name = entry_name(&long, "10.0.0.5", "");
    assert_eq!(name.len(), 253);
    assert!(name.ends_with("g-10.0.0.5"), "{name}");
}

#[test]
fn timestamps_are_rfc3339_in_utc() {
    let t = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
    assert_eq!(rfc3339(t), "2023-11-14T22:13:20.12Z");
    assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
}

#[tokio::test(start_paused = true)]
async fn the_entry_outlives_its_last_connection_by_the_grace_period() {
    let f = fixture(MESH, GRACE);
    let mut merged = f.registry.snapshots();
    let r = f.registry.connect(workload("10.0.0.5")).expect("registers");
    drop(r);
    // Kept, marked disconnected.
    let e = current(&f.registry, "vm-10.0.0.5").expect("kept during the grace period");
    assert!(e.meta.annotations.contains_key(DISCONNECTED_AT_ANNOTATION));
    assert!(!e.meta.annotations.contains_key(CONNECTED_AT_ANNOTATION));
    assert_eq!(f.registry.entries().len(), 1);
    merged.borrow_and_update();
    let start = Instant::now();
    merged.changed().await.expect("a snapshot without it");
    assert!(
        start.elapsed() >= GRACE,
        "removed after {:?}",
        start.elapsed()
    );
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
    assert!(Arc::ptr_eq(&f.registry.snapshot(), &f.files.borrow()));
    assert!(f.registry.entries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_within_the_grace_period_keeps_the_entry() {
    let f = fixture(MESH, GRACE);
    drop(f.registry.connect(workload("10.0.0.5")).expect("registers"));
    tokio::time::advance(GRACE / 2).await;
    let again = f.registry.connect(workload("10.0.0.5")).expect("registers");
    let e = current(&f.registry, "vm-10.0.0.5").expect("entry");
    assert!(e.meta.annotations.contains_key(CONNECTED_AT_ANNOTATION));
    // Past the first disconnect's grace period: its timer does nothing.
    tokio::time::sleep(GRACE * 2).await;
    assert!(current(&f.registry, "vm-10.0.0.5").is_some());
    drop(again);
    tokio::time::sleep(GRACE + Duration::from_millis(1)).await;
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
}

#[tokio::test(start_paused = true)]
async fn connections_of_one_workload_share_its_entry() {
    let f = fixture(MESH, GRACE);
    let a = f.registry.connect(workload("10.0.0.5")).expect("registers");
    let b = f.registry.connect(workload("10.0.0.5")).expect("registers");
    let other = f.registry.connect(workload("10.0.0.6")).expect("registers");
    assert_eq!(a.key(), b.key());
    assert_eq!(f.registry.entries().len(), 2);
    drop(a);
    tokio::time::sleep(GRACE * 2).await;
    let e = current(&f.registry, "vm-10.0.0.5").expect("b still connected");
    assert!(e.meta.annotations.contains_key(CONNECTED_AT_ANNOTATION));
    drop(b);
    tokio::time::sleep(GRACE + Duration::from_millis(1)).await;
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
    assert!(current(&f.registry, "vm-10.0.0.6").is_some());
    drop(other);
}

#[tokio::test]
async fn a_file_entry_of_the_same_name_wins() {
    let file_entry = "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm-10.0.0.5, namespace: shop}\nspec: {address: 10.0.0.5, labels: {app: vm, version: file}}\n";
    let f = fixture(&format!("{MESH}{file_entry}"), Duration::ZERO);
    let r = f.registry.connect(workload("10.0.0.5")).expect("registers");
    assert_eq!(r.outcome(), Outcome::FileEntry);
    let e = current(&f.registry, "vm-10.0.0.5").expect("entry");
    assert!(!is_auto_registered(&e));
    assert_eq!(
        spec(&e).labels.get("version").map(String::as_str),
        Some("file")
    );
    assert!(Arc::ptr_eq(&f.registry.snapshot(), &f.files.borrow()));
    // Once the file's entry is deleted, the auto-registered one shows.
    let mut merged = f.registry.snapshots();
    merged.borrow_and_update();
    f.files.send_replace(snapshot(MESH));
    merged.changed().await.expect("republished");
    let e = current(&f.registry, "vm-10.0.0.5").expect("entry");
    assert!(is_auto_registered(&e));
    // Grace period zero: gone with the connection.
    drop(r);
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
}

#[tokio::test]
async fn an_unknown_group_registers_nothing_until_it_appears() {
    let without_group = MESH.split("---").next().expect("the ServiceEntry");
    let f = fixture(without_group, GRACE);
    let r = f.registry.connect(workload("10.0.0.5")).expect("accepted");
    assert_eq!(r.outcome(), Outcome::NoGroup);
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
    assert!(Arc::ptr_eq(&f.registry.snapshot(), &f.files.borrow()));
    // The group is applied while the proxy is connected.
    let mut merged = f.registry.snapshots();
    merged.borrow_and_update();
    f.files.send_replace(snapshot(MESH));
    merged.changed().await.expect("republished");
    assert!(current(&f.registry, "vm-10.0.0.5").is_some());
    // And deleted again: the entry goes with it.
    merged.borrow_and_update();
    f.files.send_replace(snapshot(without_group));
    merged.changed().await.expect("republished");
    assert!(current(&f.registry, "vm-10.0.0.5").is_none());
    drop(r);
}

#[tokio::test]
async fn a_proxy_without_an_address_is_refused() {
    let f = fixture(MESH, GRACE);
    let e = f.registry.connect(workload("")).expect_err("no address");
    assert!(e.to_string().contains("reports no IP"), "{e}");
    assert!(f.registry.entries().is_empty());
}

#[tokio::test]
async fn an_unchanged_group_keeps_the_entrys_arc() {
    let f = fixture(MESH, GRACE);
    let _r = f.registry.connect(workload("10.0.0.5")).expect("registers");
    let before = current(&f.registry, "vm-10.0.0.5").expect("entry");
    // Another resource changes in the files: the entry stays the same Arc.
    let mut merged = f.registry.snapshots();
    merged.borrow_and_update();
    let other = "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: other, namespace: shop}\nspec: {address: 10.0.0.9}\n";
    let mut next = snapshot(&format!("{MESH}{other}"));
    // The group itself is the same Arc as before (as the store keeps it).
    let key = f
        .files
        .borrow()
        .get(Kind::WorkloadGroup, "shop", "vm")
        .map(|r| (r.key(), r.clone()))
        .expect("group");
    Arc::get_mut(&mut next)
        .expect("unique")
        .resources
        .insert(key.0, key.1);
    f.files.send_replace(next);
    merged.changed().await.expect("republished");
    let after = current(&f.registry, "vm-10.0.0.5").expect("entry");
    assert!(Arc::ptr_eq(&before, &after));
}
