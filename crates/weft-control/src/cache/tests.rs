//! The cache: which proxies share which part, and what a change
//! translates again.

use std::sync::atomic::Ordering;

use super::*;
use crate::translate::Interception;
use crate::translate::test_inputs::TestMesh;

const TYPES: [TypeUrl; 4] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
];

/// A service `api` with three workloads (v1, v2, v1 again), a client
/// service, and `extra` appended.
fn mesh(api_2_address: &str, extra: &str) -> TestMesh {
    TestMesh::new(&format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: shop}}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: api}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 10.0.1.1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: api-1, namespace: shop}}
spec: {{address: 10.0.0.1, labels: {{app: api, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: api-2, namespace: shop}}
spec: {{address: {api_2_address}, labels: {{app: api, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: api-3, namespace: shop}}
spec: {{address: 10.0.0.3, labels: {{app: api, version: v1}}}}
{extra}"#
    ))
}

fn generation(version: u64, mesh: TestMesh) -> Arc<Generation> {
    Arc::new(Generation::new(
        version,
        Arc::new(mesh.config),
        Arc::new(mesh.registry),
    ))
}

fn workload(name: &str) -> Proxy {
    Proxy {
        pod: name.to_string(),
        interception: Interception::None,
        ..Proxy::sidecar(&format!("sidecar~10.0.0.9~{name}.shop~shop"), "shop", &[])
    }
}

fn names(p: &Packed) -> Vec<&str> {
    p.names.iter().map(String::as_str).collect()
}

#[test]
fn workloads_of_one_shape_share_the_outbound_part_and_keep_their_own() {
    let cache = Translations::default();
    let g = generation(1, mesh("10.0.0.2", ""));
    let one = cache.get(&g, &workload("api-1"));
    let two = cache.get(&g, &workload("api-2"));
    assert!(
        Arc::ptr_eq(&one.shared, &two.shared),
        "labels select nothing"
    );
    for t in TYPES {
        assert!(
            one.of(t, false).0.all.same_buffer(&two.of(t, false).0.all),
            "{t}"
        );
    }
    assert!(!Arc::ptr_eq(&one.own, &two.own));
    assert_eq!(
        names(two.own.of(TypeUrl::Listener)),
        ["10.0.0.2_80"],
        "the inbound listener binds the workload's own address"
    );
    assert_eq!(names(two.own.of(TypeUrl::Cluster)), ["inbound|80||"]);
    assert!(
        !names(one.shared.of(TypeUrl::Cluster))
            .iter()
            .any(|n| n.starts_with("inbound|"))
    );
    assert_eq!(cache.shapes(), (1, 2));
    assert_eq!(cache.made.shared.load(Ordering::Relaxed), 1);

    // The two parts together are what translate gives the proxy alone.
    for (proxy, t) in [(workload("api-1"), &one), (workload("api-2"), &two)] {
        let direct = translate::translate(g.inputs(), &proxy);
        let mut clusters: Vec<&str> = names(t.shared.of(TypeUrl::Cluster));
        clusters.extend(names(t.own.of(TypeUrl::Cluster)));
        clusters.sort_unstable();
        let expected: Vec<&str> = direct.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(clusters, expected);
    }

    // A proxy without a workload has no own part, and shares the rest
    // (no inbound listener, otherwise the same outbound view).
    let client = cache.get(&g, &workload("not-a-workload"));
    assert!(Arc::ptr_eq(&client.shared, &one.shared));
    assert!(client.own.of(TypeUrl::Listener).names.is_empty());
}

#[test]
fn source_labels_split_shapes_by_what_they_select() {
    let vs = r#"---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.shop.svc.cluster.local]
  http:
  - match: [{sourceLabels: {version: v1}}]
    route: [{destination: {host: web.shop.svc.cluster.local}}]
    timeout: 3s
  - route: [{destination: {host: web.shop.svc.cluster.local}}]
"#;
    let cache = Translations::default();
    let g = generation(1, mesh("10.0.0.2", vs));
    let one = cache.get(&g, &workload("api-1"));
    let two = cache.get(&g, &workload("api-2"));
    let three = cache.get(&g, &workload("api-3"));
    assert!(!Arc::ptr_eq(&one.shared, &two.shared), "v1 matches, v2 not");
    assert!(Arc::ptr_eq(&one.shared, &three.shared), "both v1");
    let routes = |t: &Translation| t.shared.of(TypeUrl::RouteConfiguration).all.clone();
    assert_ne!(routes(&one), routes(&two));
    assert_eq!(cache.shapes(), (2, 3));
}

#[test]
fn a_workload_entry_change_translates_only_that_workloads_own_part() {
    let cache = Translations::default();
    let g1 = generation(1, mesh("10.0.0.2", ""));
    let before: Vec<Translation> = ["api-1", "api-2", "api-3"]
        .iter()
        .map(|w| cache.get(&g1, &workload(w)))
        .collect();
    assert_eq!(cache.made.own.load(Ordering::Relaxed), 3);
    let shared_made = cache.made.shared.load(Ordering::Relaxed);

    // api-2 moves: its endpoint and its inbound listener change.
    let g2 = generation(2, mesh("10.0.0.22", ""));
    let after: Vec<Translation> = ["api-1", "api-2", "api-3"]
        .iter()
        .map(|w| cache.get(&g2, &workload(w)))
        .collect();
    assert_eq!(cache.made.own.load(Ordering::Relaxed), 4, "only api-2's");
    assert!(Arc::ptr_eq(&before[0].own, &after[0].own));
    assert!(Arc::ptr_eq(&before[2].own, &after[2].own));
    assert!(!Arc::ptr_eq(&before[1].own, &after[1].own));
    assert_eq!(names(after[1].own.of(TypeUrl::Listener)), ["10.0.0.22_80"]);
    // The shared part is translated once more for all three; only its
    // endpoints changed, so the other types keep their buffers.
    assert_eq!(cache.made.shared.load(Ordering::Relaxed), shared_made + 1);
    assert!(Arc::ptr_eq(&after[0].shared, &after[1].shared));
    let (old, new) = (&before[0].shared, &after[0].shared);
    assert!(!Segment::same_buffer(
        &old.of(TypeUrl::ClusterLoadAssignment).all,
        &new.of(TypeUrl::ClusterLoadAssignment).all
    ));
    for t in [
        TypeUrl::Cluster,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
    ] {
        assert!(old.of(t).all.same_buffer(&new.of(t).all), "{t}");
    }

    // A lagging stream still gets its own generation's resources, and
    // doesn't evict the newer ones.
    let lagging = cache.get(&g1, &workload("api-2"));
    assert_eq!(lagging.version, 1);
    assert_eq!(names(lagging.own.of(TypeUrl::Listener)), ["10.0.0.2_80"]);
    assert_eq!(cache.shapes(), (1, 3));
}

#[test]
fn locality_splits_shapes_only_where_a_policy_reads_it() {
    let mesh = |rule: &str| {
        TestMesh::new(&format!(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 10.0.1.1, locality: r/a}}, {{address: 10.0.1.2, locality: r/b}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: in-a, namespace: shop}}
spec: {{address: 10.0.0.1, labels: {{app: c}}, locality: r/a}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: in-b, namespace: shop}}
spec: {{address: 10.0.0.2, labels: {{app: c}}, locality: r/b}}
{rule}"#
        ))
    };
    let cache = Translations::default();
    let g = generation(1, mesh(""));
    let a = cache.get(&g, &workload("in-a"));
    let b = cache.get(&g, &workload("in-b"));
    assert!(
        Arc::ptr_eq(&a.shared, &b.shared),
        "no policy reads locality"
    );

    let outlier = r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}}
"#;
    let g = generation(2, mesh(outlier));
    let a = cache.get(&g, &workload("in-a"));
    let b = cache.get(&g, &workload("in-b"));
    assert!(!Arc::ptr_eq(&a.shared, &b.shared), "locality failover");
    let eds = |t: &Translation| t.shared.of(TypeUrl::ClusterLoadAssignment).all.clone();
    assert_ne!(eds(&a), eds(&b), "each prefers its own zone");
}

mod incremental;
