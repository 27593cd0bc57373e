use weft_xds::pb::envoy::config::cluster::v3::cluster::common_lb_config::LocalityConfigSpecifier;
use weft_xds::pb::envoy::config::core::v3 as core;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::*;
use crate::translate::endpoint::load_assignment;
use crate::translate::test_inputs::TestMesh;
use crate::translate::{cluster, resolve};

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: east-a, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, locality: us-east/a/r1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: east-b, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}, locality: us-east/b/r1, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: west, namespace: shop}
spec: {address: 10.0.0.3, labels: {app: reviews, version: v1}, locality: us-west/a/r1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: eu, namespace: shop}
spec: {address: 10.0.0.4, labels: {app: reviews, version: v2}, locality: eu/a/r1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: shop}
spec: {address: 10.0.1.1, labels: {app: client, version: v2}, locality: us-east/a/r1}
"#;

const OUTLIER: &str = "outlierDetection: {consecutive5xxErrors: 5, interval: 10s}";

fn rule(traffic_policy: &str) -> String {
    format!(
        "{SERVICE}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: shop}}\nspec:\n  host: reviews\n  trafficPolicy: {{{traffic_policy}}}\n  subsets: [{{name: v1, labels: {{version: v1}}}}]\n"
    )
}

/// The client proxy, resolved (locality from its WorkloadEntry).
fn client(mesh: &TestMesh) -> Proxy {
    let proxy = Proxy {
        pod: "client".into(),
        ..Proxy::sidecar(
            "sidecar~10.0.1.1~client.shop~shop.svc.cluster.local",
            "shop",
            &[],
        )
    };
    resolve(mesh.inputs(), &proxy)
}

/// (region, priority, weight) per locality, in the order sent.
fn priorities(mesh: &TestMesh, proxy: &Proxy, cluster: &str) -> Vec<(String, u32, u32)> {
    let la: ClusterLoadAssignment =
        load_assignment(mesh.inputs(), proxy, cluster).expect("load assignment");
    la.endpoints
        .iter()
        .map(|l| {
            let loc = l.locality.clone().unwrap_or_default();
            (
                format!("{}/{}", loc.region, loc.zone),
                l.priority,
                l.load_balancing_weight.map_or(0, |w| w.value),
            )
        })
        .collect()
}

const ALL: &str = "outbound|9080||reviews.shop.svc.cluster.local";

#[test]
fn the_proxy_takes_its_workload_entrys_locality_unless_the_node_has_one() {
    let mesh = TestMesh::new(SERVICE);
    assert_eq!(client(&mesh).locality, Locality::parse("us-east/a/r1"));
    let from_node = Proxy {
        pod: "client".into(),
        locality: Locality::parse("eu/a"),
        ..Proxy::sidecar(
            "sidecar~10.0.1.1~client.shop~shop.svc.cluster.local",
            "shop",
            &[],
        )
    };
    assert_eq!(
        resolve(mesh.inputs(), &from_node).locality,
        Locality::parse("eu/a")
    );
    let node = core::Node {
        id: "sidecar~10.0.1.1~client.shop~shop.svc.cluster.local".into(),
        locality: Some(core::Locality {
            region: "ap".into(),
            zone: "z".into(),
            sub_zone: String::new(),
        }),
        ..core::Node::default()
    };
    let p = Proxy::from_node(Some(&node)).expect("node");
    assert_eq!(p.locality, Locality::parse("ap/z"));
}

#[test]
fn without_outlier_detection_every_locality_has_priority_zero() {
    let mesh = TestMesh::new(&rule("loadBalancer: {simple: ROUND_ROBIN}"));
    let p = priorities(&mesh, &client(&mesh), ALL);
    assert_eq!(p.len(), 4);
    assert!(p.iter().all(|(_, prio, _)| *prio == 0), "{p:?}");
}

#[test]
fn with_outlier_detection_closer_localities_come_first() {
    let mesh = TestMesh::new(&rule(OUTLIER));
    // Same subzone 0; same region, other zone: 2 → 1; other regions: 3 → 2.
    assert_eq!(
        priorities(&mesh, &client(&mesh), ALL),
        vec![
            ("us-east/a".to_string(), 0, 1),
            ("us-east/b".to_string(), 1, 3),
            ("eu/a".to_string(), 2, 1),
            ("us-west/a".to_string(), 2, 1),
        ]
    );
    // Subsets too: v1 is in us-east/a and us-west/a.
    let v1 = "outbound|9080|v1|reviews.shop.svc.cluster.local";
    assert_eq!(
        priorities(&mesh, &client(&mesh), v1),
        vec![
            ("us-east/a".to_string(), 0, 1),
            ("us-west/a".to_string(), 1, 1)
        ]
    );
}

#[test]
fn failover_sends_a_regions_traffic_to_the_named_region_next() {
    let mesh = TestMesh::new(&rule(&format!(
        "{OUTLIER}, loadBalancer: {{localityLbSetting: {{failover: [{{from: us-east, to: eu}}]}}}}"
    )));
    assert_eq!(
        priorities(&mesh, &client(&mesh), ALL),
        vec![
            ("us-east/a".to_string(), 0, 1),
            ("us-east/b".to_string(), 1, 3),
            ("eu/a".to_string(), 2, 1),
            ("us-west/a".to_string(), 3, 1),
        ]
    );
    let c = cluster::clusters(mesh.inputs(), &client(&mesh))
        .into_iter()
        .find(|c| c.name == ALL)
        .expect("cluster");
    assert!(matches!(
        c.common_lb_config.and_then(|l| l.locality_config_specifier),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
    ));
}

#[test]
fn distribute_sets_weights_and_drops_unlisted_localities() {
    let mesh = TestMesh::new(&rule(
        "loadBalancer: {localityLbSetting: {distribute: [{from: eu/*, to: {eu/*: 100}}, {from: us-east/*, to: {us-east/*: 80, us-west/*: 20}}]}}",
    ));
    // us-east's 80 is shared 1:3 by its two localities' own weights.
    assert_eq!(
        priorities(&mesh, &client(&mesh), ALL),
        vec![
            ("us-east/a".to_string(), 0, 20),
            ("us-east/b".to_string(), 0, 60),
            ("us-west/a".to_string(), 0, 20),
        ]
    );
}

#[test]
fn failover_priority_orders_by_matching_labels_first() {
    let mesh = TestMesh::new(&rule(&format!(
        "{OUTLIER}, loadBalancer: {{localityLbSetting: {{failoverPriority: [version, topology.kubernetes.io/region]}}}}"
    )));
    // The client is version v2 in us-east: v2 in us-east first, then the
    // other v2 (eu), then every v1.
    assert_eq!(
        priorities(&mesh, &client(&mesh), ALL),
        vec![
            ("us-east/b".to_string(), 0, 3),
            ("eu/a".to_string(), 1, 1),
            ("us-east/a".to_string(), 2, 1),
            ("us-west/a".to_string(), 2, 1),
        ]
    );
    // `key=value` compares with the value given, not the proxy's.
    let mesh = TestMesh::new(&rule(&format!(
        "{OUTLIER}, loadBalancer: {{localityLbSetting: {{failoverPriority: [version=v1]}}}}"
    )));
    let p = priorities(&mesh, &client(&mesh), ALL);
    let first: Vec<&str> = p
        .iter()
        .filter(|(_, prio, _)| *prio == 0)
        .map(|(l, _, _)| l.as_str())
        .collect();
    assert_eq!(first, ["us-east/a", "us-west/a"], "{p:?}");
}

#[test]
fn disabled_here_or_in_the_mesh_means_no_priorities() {
    let mesh = TestMesh::new(&rule(&format!(
        "{OUTLIER}, loadBalancer: {{localityLbSetting: {{enabled: false}}}}"
    )));
    let p = priorities(&mesh, &client(&mesh), ALL);
    assert!(p.iter().all(|(_, prio, _)| *prio == 0), "{p:?}");

    let mesh_off = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    localityLbSetting: {{enabled: false}}\n",
        rule(OUTLIER)
    );
    let mesh = TestMesh::new(&mesh_off);
    assert_eq!(
        mesh.config
            .mesh
            .locality_lb_setting
            .as_ref()
            .and_then(|s| s.enabled),
        Some(false)
    );
    let p = priorities(&mesh, &client(&mesh), ALL);
    assert!(p.iter().all(|(_, prio, _)| *prio == 0), "{p:?}");
}

#[test]
fn locality_patterns() {
    let l = Locality::parse("us-east/a/r1");
    for (pattern, want) in [
        ("us-east", true),
        ("us-east/*", true),
        ("us-east/a", true),
        ("us-east/a/r1", true),
        ("us-east/a/r2", false),
        ("us-east/b", false),
        ("*", true),
        ("*/a", true),
        ("us-west/*", false),
        ("", false),
    ] {
        assert_eq!(matches(&l, pattern), want, "{pattern}");
    }
}
