//! One test per analysis message, each on a small mesh that is clean
//! without the resource under test.

use super::analyze;
use crate::diag::{Code, Diagnostic};
use crate::test_util::{lines, load_named, path_of, render};

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
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: 19001}, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: 19002}, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: 18080}, labels: {istio: ingressgateway}, serviceAccount: gateway}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["shop.example.com"]
"#;

fn run(extra: &str) -> Vec<Diagnostic> {
    let text = format!("{MESH}---\n{extra}");
    let loaded = load_named(&text, "mesh.yaml");
    assert!(
        loaded.diagnostics.is_empty(),
        "test mesh must validate clean: {:#?}",
        lines(&loaded)
    );
    analyze(&loaded)
}

/// Asserts exactly one diagnostic, with `code`, at `path`; returns it.
fn one(diags: Vec<Diagnostic>, code: Code, path: &str) -> Diagnostic {
    assert_eq!(diags.len(), 1, "{:#?}", render(&diags));
    let d = diags.into_iter().next().expect("one");
    assert_eq!(d.code, code, "{d}");
    assert_eq!(path_of(&d), path, "{d}");
    assert!(d.line.is_some_and(|l| l > 1), "{d}");
    d
}

#[test]
fn the_base_mesh_is_clean() {
    let d = run(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert!(d.is_empty(), "{:#?}", render(&d));
}

const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec:\n";

#[test]
fn subset_not_found() {
    let d = one(
        run(&format!(
            "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, subset: v9}}\n"
        )),
        Code::ReferencedSubsetNotFound,
        "spec.http[0].route[0].destination.subset",
    );
    assert_eq!(
        d.message,
        "subset \"v9\" is not defined in any DestinationRule for host reviews"
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("define it in DestinationRule shop/reviews, or use one of: v1, v2")
    );
    assert_eq!(
        d.to_string().lines().next(),
        Some(
            "Error [WEFT0101] VirtualService shop/reviews (mesh.yaml:52) spec.http[0].route[0].destination.subset: subset \"v9\" is not defined in any DestinationRule for host reviews"
        )
    );
}

#[test]
fn host_not_found() {
    let d = one(
        run(&format!(
            "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reveiws}}\n"
        )),
        Code::ReferencedHostNotFound,
        "spec.http[0].route[0].destination.host",
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean \"reviews.shop.svc.cluster.local\"?")
    );
}

#[test]
fn mirror_host_not_found() {
    one(
        run(&format!(
            "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n    mirror: {{host: shadow}}\n"
        )),
        Code::ReferencedHostNotFound,
        "spec.http[0].mirror.host",
    );
}

#[test]
fn gateway_not_found() {
    let d = one(
        run(&format!(
            "{VS}  hosts: [shop.example.com]\n  gateways: [gww]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n"
        )),
        Code::ReferencedGatewayNotFound,
        "spec.gateways[0]",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"shop/gw\"?"));
}

#[test]
fn conflicting_virtual_services() {
    let a = format!(
        "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n"
    );
    let b = a.replace("name: reviews,", "name: reviews-2,");
    one(
        run(&format!("{a}---\n{b}")),
        Code::ConflictingVirtualServiceHosts,
        "spec.hosts[0]",
    );
}

#[test]
fn subset_selects_no_workload() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-extra, namespace: other}\nspec:\n  host: reviews.shop.svc.cluster.local\n  subsets:\n  - {name: v3, labels: {version: v3}}\n";
    let d = one(
        run(dr),
        Code::SubsetSelectsNoWorkload,
        "spec.subsets[0].labels",
    );
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("app=reviews,version=v1")),
        "{d}"
    );
}

#[test]
fn mtls_conflict() {
    let pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n";
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain, namespace: other}\nspec:\n  host: reviews.shop.svc.cluster.local\n  trafficPolicy: {tls: {mode: DISABLE}}\n";
    one(
        run(&format!("{pa}---\n{dr}")),
        Code::MtlsConflict,
        "spec.trafficPolicy.tls.mode",
    );
    // PERMISSIVE accepts plaintext: no conflict.
    assert!(run(&format!("{}---\n{dr}", pa.replace("STRICT", "PERMISSIVE"))).is_empty());
}

#[test]
fn selector_matches_nothing() {
    let ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: shop}\nspec:\n  selector: {matchLabels: {app: ratings}}\n  action: DENY\n  rules: [{to: [{operation: {methods: [DELETE], ports: [\"9080\"]}}]}]\n";
    one(
        run(ap),
        Code::SelectorMatchesNothing,
        "spec.selector.matchLabels",
    );
}

#[test]
fn conflicting_destination_rules() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-2, namespace: shop}\nspec: {host: reviews.shop.svc.cluster.local}\n";
    one(run(dr), Code::ConflictingDestinationRules, "spec.host");
}

#[test]
fn conflicting_service_entries() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-2, namespace: shop}\nspec:\n  hosts: [reviews.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: reviews}}\n";
    one(run(se), Code::ConflictingServiceEntries, "spec.hosts[0]");
}

#[test]
fn destination_rule_host_not_found() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: shop}\nspec: {host: ratings}\n";
    one(run(dr), Code::DestinationRuleHostNotFound, "spec.host");
}

#[test]
fn gateway_selects_nothing() {
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: egress, namespace: shop}\nspec:\n  selector: {istio: egressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n";
    one(run(gw), Code::GatewaySelectsNothing, "spec.selector");
}

#[test]
fn unreachable_route() {
    let d = one(
        run(&format!(
            "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, subset: v1}}\n  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    route:\n    - destination: {{host: reviews, subset: v2}}\n"
        )),
        Code::UnreachableRoute,
        "spec.http[1]",
    );
    assert!(
        d.message
            .contains("route http[0] before it matches every request"),
        "{d}"
    );
}

#[test]
fn conflicting_sidecars() {
    let sc = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
    one(
        run(&format!("{sc}---\n{}", sc.replace("name: a,", "name: b,"))),
        Code::ConflictingSidecars,
        "spec",
    );
}

#[test]
fn sidecar_egress_host_not_found() {
    let sc = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a, namespace: shop}\nspec: {egress: [{hosts: [\"shop/ratings.shop.svc.cluster.local\"]}]}\n";
    one(
        run(sc),
        Code::SidecarEgressHostNotFound,
        "spec.egress[0].hosts[0]",
    );
}

#[test]
fn port_not_found() {
    let d = one(
        run(&format!(
            "{VS}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, port: {{number: 9081}}}}\n"
        )),
        Code::ReferencedPortNotFound,
        "spec.http[0].route[0].destination.port.number",
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("reviews.shop.svc.cluster.local has port 9080")
    );
}

#[test]
fn destination_port_required() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec:\n  hosts: [api.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-admin, protocol: HTTP}]\n  endpoints: [{address: 127.0.0.1}]\n";
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: shop}\nspec:\n  hosts: [api]\n  http:\n  - route:\n    - destination: {host: api}\n";
    one(
        run(&format!("{se}---\n{vs}")),
        Code::DestinationPortRequired,
        "spec.http[0].route[0].destination",
    );
}

#[test]
fn port_protocol_unknown() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db, namespace: shop}\nspec:\n  hosts: [db.example.com]\n  resolution: DNS\n  ports: [{number: 7000, name: cache}]\n";
    one(run(se), Code::PortProtocolUnknown, "spec.ports[0]");
}

#[test]
fn workload_without_service() {
    let we = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: stray, namespace: shop}\nspec: {address: 127.0.0.1, labels: {app: stray}}\n";
    one(run(we), Code::WorkloadWithoutService, "spec.labels");
}

#[test]
fn authorization_policy_references() {
    let ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, namespace: shop}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from:\n    - source: {namespaces: [shopp]}\n";
    let d = one(
        run(ap),
        Code::AuthorizationPolicyReference,
        "spec.rules[0].from[0].source.namespaces[0]",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"shop\"?"));
    let ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow, namespace: shop}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/shop/sa/reveiws]}\n";
    let d = one(
        run(ap),
        Code::AuthorizationPolicyReference,
        "spec.rules[0].from[0].source.principals[0]",
    );
    assert_eq!(
        d.hint.as_deref(),
        Some("did you mean \"cluster.local/ns/shop/sa/reviews\"?")
    );
}

#[test]
fn virtual_service_host_not_in_gateway() {
    one(
        run(&format!(
            "{VS}  hosts: [other.example.com]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n"
        )),
        Code::VirtualServiceHostNotInGateway,
        "spec.hosts[0]",
    );
}

#[test]
fn every_analysis_code_has_a_test() {
    // Keep this list in step with the tests above.
    let tested = [
        Code::ReferencedSubsetNotFound,
        Code::ReferencedHostNotFound,
        Code::ReferencedGatewayNotFound,
        Code::ConflictingVirtualServiceHosts,
        Code::SubsetSelectsNoWorkload,
        Code::MtlsConflict,
        Code::SelectorMatchesNothing,
        Code::ConflictingDestinationRules,
        Code::ConflictingServiceEntries,
        Code::DestinationRuleHostNotFound,
        Code::GatewaySelectsNothing,
        Code::UnreachableRoute,
        Code::ConflictingSidecars,
        Code::SidecarEgressHostNotFound,
        Code::ReferencedPortNotFound,
        Code::DestinationPortRequired,
        Code::PortProtocolUnknown,
        Code::WorkloadWithoutService,
        Code::AuthorizationPolicyReference,
        Code::VirtualServiceHostNotInGateway,
    ];
    let analysis: Vec<Code> = Code::ALL
        .iter()
        .copied()
        .filter(|c| c.as_str().starts_with("WEFT01"))
        .collect();
    assert_eq!(analysis, tested);
}
