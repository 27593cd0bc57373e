use weft_xds::pb::envoy::config::core::v3::{address, socket_address};

use super::*;
use crate::translate::cluster::clusters;
use crate::translate::test_inputs::TestMesh;

const MESH: &str = r#"
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
metadata: {name: r1, namespace: shop}
spec: {address: 10.0.0.1, ports: {http: 19080}, labels: {app: reviews, version: v1}, locality: eu/a, weight: 3, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r2, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}, locality: eu/a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r3, namespace: shop}
spec: {address: 10.0.0.3, labels: {app: reviews, version: v2}, locality: us/b}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v9, labels: {version: v9}}
"#;

fn addresses(la: &ClusterLoadAssignment) -> Vec<(String, u32)> {
    la.endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .filter_map(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                match ep.address.as_ref()?.address.as_ref()? {
                    address::Address::SocketAddress(sa) => match sa.port_specifier {
                        Some(socket_address::PortSpecifier::PortValue(p)) => {
                            Some((sa.address.clone(), p))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

fn assignment(mesh: &TestMesh, name: &str) -> ClusterLoadAssignment {
    load_assignment(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]), name).expect("assignment")
}

#[test]
fn endpoints_by_locality_with_weights_and_ports() {
    let mesh = TestMesh::new(MESH);
    let la = assignment(&mesh, "outbound|9080||reviews.shop.svc.cluster.local");
    assert_eq!(
        addresses(&la),
        vec![
            ("10.0.0.1".to_string(), 19080),
            ("10.0.0.2".to_string(), 9080),
            ("10.0.0.3".to_string(), 9080)
        ]
    );
    let localities: Vec<(String, String, u32)> = la
        .endpoints
        .iter()
        .map(|l| {
            let loc = l.locality.clone().unwrap_or_default();
            (
                loc.region,
                loc.zone,
                l.load_balancing_weight.map_or(0, |w| w.value),
            )
        })
        .collect();
    assert_eq!(
        localities,
        vec![("eu".into(), "a".into(), 4), ("us".into(), "b".into(), 1)]
    );
    let first = &la.endpoints[0].lb_endpoints[0];
    assert_eq!(first.load_balancing_weight.map(|w| w.value), Some(3));
    assert_eq!(first.health_status, HealthStatus::Healthy as i32);
    let workload = first
        .metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get("istio"))
        .and_then(|s| s.fields.get("workload"));
    assert_eq!(
        workload.and_then(|v| v.kind.clone()),
        Some(value::Kind::StringValue("r1;shop;reviews".into()))
    );
}

#[test]
fn subsets_take_the_endpoints_carrying_their_labels() {
    let mesh = TestMesh::new(MESH);
    let v2 = assignment(&mesh, "outbound|9080|v2|reviews.shop.svc.cluster.local");
    assert_eq!(addresses(&v2).len(), 2);
    let v9 = assignment(&mesh, "outbound|9080|v9|reviews.shop.svc.cluster.local");
    assert!(
        v9.endpoints.is_empty(),
        "a subset selecting nothing has no endpoints (503 UH)"
    );
    assert!(
        load_assignment(
            mesh.inputs(),
            &Proxy::sidecar("p", "shop", &[]),
            "outbound|9080|nope|reviews.shop.svc.cluster.local"
        )
        .is_none()
    );
}

#[test]
fn every_eds_cluster_has_an_assignment() {
    let mesh = TestMesh::examples();
    let proxy = Proxy::sidecar("productpage", "bookinfo", &[("app", "productpage")]);
    let cs = clusters(mesh.inputs(), &proxy);
    let las = load_assignments(mesh.inputs(), &proxy, &cs);
    let eds: Vec<&str> = cs
        .iter()
        .filter(|c| c.eds_cluster_config.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let assigned: Vec<&str> = las.iter().map(|l| l.cluster_name.as_str()).collect();
    assert_eq!(eds, assigned);
    let reviews_v3 = las
        .iter()
        .find(|l| l.cluster_name == "outbound|9080|v3|reviews.bookinfo.svc.cluster.local")
        .expect("v3");
    assert_eq!(
        addresses(reviews_v3),
        vec![("127.0.0.1".to_string(), 19085)]
    );
}
