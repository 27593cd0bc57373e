use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::lb_endpoint;

use super::*;
use crate::translate::endpoint::load_assignment;
use crate::translate::test_inputs::TestMesh;
use crate::translate::{Proxy, cluster};

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r1, namespace: shop}
spec: {address: 10.0.0.1, serviceAccount: reviews, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: r2, namespace: shop}
spec: {address: 10.0.0.2, serviceAccount: reviews-v2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: TLS}]
"#;

fn mesh_with(rules: &str) -> TestMesh {
    TestMesh::new(&format!("{SERVICE}{rules}"))
}

fn proxy() -> Proxy {
    Proxy::sidecar(
        "sidecar~10.0.1.1~client.shop~shop.svc.cluster.local",
        "shop",
        &[],
    )
}

fn cluster_named(mesh: &TestMesh, proxy: &Proxy, name: &str) -> Cluster {
    cluster::clusters(mesh.inputs(), proxy)
        .into_iter()
        .find(|c| c.name == name)
        .expect("cluster")
}

fn context_of(socket: &TransportSocket) -> UpstreamTlsContext {
    assert_eq!(socket.name, TLS_SOCKET);
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => {
            weft_xds::unpack(any).expect("UpstreamTlsContext")
        }
        None => panic!("no config"),
    }
}

fn sans(ctx: &UpstreamTlsContext) -> (Vec<String>, String) {
    let common = ctx.common_tls_context.as_ref().expect("common");
    match &common.validation_context_type {
        Some(common_tls_context::ValidationContextType::CombinedValidationContext(c)) => {
            #[allow(deprecated)]
            let names = c
                .default_validation_context
                .as_ref()
                .map(|v| {
                    v.match_subject_alt_names
                        .iter()
                        .filter_map(|m| match &m.match_pattern {
                            Some(string_matcher::MatchPattern::Exact(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let root = c
                .validation_context_sds_secret_config
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            (names, root)
        }
        other => panic!("validation: {other:?}"),
    }
}

fn rule(host: &str, tls: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r-{}, namespace: shop}}\nspec:\n  host: {host}\n  trafficPolicy: {{tls: {{{tls}}}}}\n",
        host.replace('.', "-")
    )
}

#[test]
fn istio_mutual_uses_sds_the_cluster_name_as_sni_and_the_services_identities() {
    let mesh = mesh_with(&rule("reviews", "mode: ISTIO_MUTUAL"));
    let name = "outbound|9080||reviews.shop.svc.cluster.local";
    let c = cluster_named(&mesh, &proxy(), name);
    assert!(c.transport_socket_matches.is_empty());
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    assert_eq!(ctx.sni, name);
    let common = ctx.common_tls_context.clone().expect("common");
    assert_eq!(
        common.tls_certificate_sds_secret_configs[0].name,
        SDS_DEFAULT
    );
    assert_eq!(common.alpn_protocols, ["istio-peer-exchange", "istio"]);
    assert_eq!(
        sans(&ctx),
        (
            vec![
                "spiffe://cluster.local/ns/shop/sa/reviews".to_string(),
                "spiffe://cluster.local/ns/shop/sa/reviews-v2".to_string()
            ],
            SDS_ROOT.to_string()
        )
    );
    // gRPC speaks HTTP/2: ALPN says so.
    let grpc = cluster_named(
        &mesh,
        &proxy(),
        "outbound|9090||reviews.shop.svc.cluster.local",
    );
    let ctx = context_of(grpc.transport_socket.as_ref().expect("tls"));
    assert_eq!(
        ctx.common_tls_context.expect("common").alpn_protocols,
        ["istio-peer-exchange", "istio", "h2"]
    );
}

#[test]
fn the_mesh_trust_domain_and_explicit_names_are_used() {
    let text = format!(
        "{SERVICE}{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    trustDomain: example.org\n",
        rule("reviews", "mode: ISTIO_MUTUAL")
    );
    let mesh = TestMesh::new(&text);
    let c = cluster_named(
        &mesh,
        &proxy(),
        "outbound|9080||reviews.shop.svc.cluster.local",
    );
    let (names, _) = sans(&context_of(c.transport_socket.as_ref().expect("tls")));
    assert_eq!(names[0], "spiffe://example.org/ns/shop/sa/reviews");

    let mesh = mesh_with(&rule(
        "reviews",
        "mode: ISTIO_MUTUAL, sni: reviews.internal, subjectAltNames: [spiffe://x/ns/a/sa/b]",
    ));
    let c = cluster_named(
        &mesh,
        &proxy(),
        "outbound|9080||reviews.shop.svc.cluster.local",
    );
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    assert_eq!(ctx.sni, "reviews.internal");
    assert_eq!(sans(&ctx).0, ["spiffe://x/ns/a/sa/b"]);
}

#[test]
fn simple_and_mutual_read_files_through_sds() {
    let mesh = mesh_with(&rule(
        "api.example.com",
        "mode: SIMPLE, caCertificates: /etc/ca.pem, sni: api.example.com",
    ));
    let c = cluster_named(&mesh, &proxy(), "outbound|443||api.example.com");
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    assert_eq!(ctx.sni, "api.example.com");
    assert_eq!(sans(&ctx).1, "file-root:/etc/ca.pem");
    let common = ctx.common_tls_context.clone().expect("common");
    assert!(common.tls_certificate_sds_secret_configs.is_empty());

    let mesh = mesh_with(&rule(
        "api.example.com",
        "mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem",
    ));
    let c = cluster_named(&mesh, &proxy(), "outbound|443||api.example.com");
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    let common = ctx.common_tls_context.clone().expect("common");
    assert_eq!(
        common.tls_certificate_sds_secret_configs[0].name,
        "file-cert:/c.pem~/k.pem"
    );
    // No CA given: the system's.
    assert_eq!(sans(&ctx).1, "file-root:system");

    let mesh = mesh_with(&rule(
        "api.example.com",
        "mode: SIMPLE, insecureSkipVerify: true",
    ));
    let c = cluster_named(&mesh, &proxy(), "outbound|443||api.example.com");
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    assert!(matches!(
        ctx.common_tls_context
            .and_then(|c| c.validation_context_type),
        Some(common_tls_context::ValidationContextType::ValidationContext(_))
    ));
}

#[test]
fn credential_name_is_for_gateways_only() {
    let mesh = mesh_with(&rule(
        "api.example.com",
        "mode: SIMPLE, credentialName: api-ca",
    ));
    let c = cluster_named(&mesh, &proxy(), "outbound|443||api.example.com");
    assert!(c.transport_socket.is_none());
    let gateway = Proxy {
        kind: ProxyKind::Gateway,
        ..proxy()
    };
    let c = cluster_named(&mesh, &gateway, "outbound|443||api.example.com");
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    assert_eq!(sans(&ctx).1, "kubernetes://api-ca-cacert");
}

#[test]
fn auto_mtls_matches_endpoints_with_a_sidecar() {
    let mesh = mesh_with("");
    let name = "outbound|9080||reviews.shop.svc.cluster.local";
    let c = cluster_named(&mesh, &proxy(), name);
    assert!(c.transport_socket.is_none());
    let matches: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(matches, ["tlsMode-istio", "tlsMode-disabled"]);
    assert_eq!(
        c.transport_socket_matches[0].r#match,
        Some(tls_mode_struct("istio"))
    );
    // The endpoint with the label carries the match metadata; the other doesn't.
    let la = load_assignment(mesh.inputs(), &proxy(), name).expect("eds");
    let marked: Vec<bool> = la
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            e.metadata
                .as_ref()
                .is_some_and(|m| m.filter_metadata.contains_key(TRANSPORT_SOCKET_MATCH))
        })
        .collect();
    assert_eq!(marked, [true, false]);
    assert!(la.endpoints[0].lb_endpoints.iter().all(|e| matches!(
        e.host_identifier,
        Some(lb_endpoint::HostIdentifier::Endpoint(_))
    )));
    // External services and DISABLE get none.
    let ext = cluster_named(&mesh, &proxy(), "outbound|443||api.example.com");
    assert!(ext.transport_socket_matches.is_empty() && ext.transport_socket.is_none());
    let mesh = mesh_with(&rule("reviews", "mode: DISABLE"));
    let c = cluster_named(&mesh, &proxy(), name);
    assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());
    // And the mesh can turn it off.
    let text = format!(
        "{SERVICE}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    enableAutoMtls: false\n"
    );
    let mesh = TestMesh::new(&text);
    assert!(
        cluster_named(&mesh, &proxy(), name)
            .transport_socket_matches
            .is_empty()
    );
}

#[test]
fn grpc_clients_get_certificate_providers_and_no_socket_matches() {
    let grpc = Proxy {
        kind: ProxyKind::Grpc,
        ..proxy()
    };
    let name = "outbound|9090||reviews.shop.svc.cluster.local";
    let mesh = mesh_with("");
    let c = cluster_named(&mesh, &grpc, name);
    assert!(c.transport_socket_matches.is_empty() && c.transport_socket.is_none());

    let mesh = mesh_with(&rule("reviews", "mode: ISTIO_MUTUAL"));
    let c = cluster_named(&mesh, &grpc, name);
    let ctx = context_of(c.transport_socket.as_ref().expect("tls"));
    let common = ctx.common_tls_context.expect("common");
    assert!(common.tls_certificate_sds_secret_configs.is_empty());
    assert_eq!(
        common
            .tls_certificate_provider_instance
            .map(|i| (i.instance_name, i.certificate_name)),
        Some(("default".to_string(), "default".to_string()))
    );
    match common.validation_context_type {
        Some(common_tls_context::ValidationContextType::ValidationContext(v)) => {
            assert_eq!(
                v.ca_certificate_provider_instance
                    .map(|i| i.certificate_name),
                Some("ROOTCA".to_string())
            );
        }
        other => panic!("{other:?}"),
    }
    let mesh = mesh_with(&rule("api.example.com", "mode: SIMPLE"));
    assert!(
        cluster_named(&mesh, &grpc, "outbound|443||api.example.com")
            .transport_socket
            .is_none()
    );
}
