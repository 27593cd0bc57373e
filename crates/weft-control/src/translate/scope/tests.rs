use weft_xds::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use super::*;
use crate::translate::test_inputs::TestMesh;
use crate::translate::{Resources, translate};

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec: {hosts: [a.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: other}
spec: {hosts: [b.other.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: other}
spec: {hosts: [c.other.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.3}]}
"#;

fn hosts_sent(yaml: &str, labels: &[(&str, &str)]) -> Vec<String> {
    let mesh = TestMesh::new(&format!("{SERVICES}---\n{yaml}"));
    let r = translate(mesh.inputs(), &Proxy::sidecar("p", "shop", labels));
    let mut hosts: Vec<String> = r
        .clusters
        .iter()
        .filter_map(|c| c.name.rsplit('|').next().map(str::to_string))
        .filter(|h| h.ends_with(".svc.cluster.local"))
        .collect();
    hosts.dedup();
    hosts
}

#[test]
fn a_namespace_sidecar_limits_what_proxies_receive() {
    let sidecar = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\", \"other/b.other.svc.cluster.local\"]}]}\n";
    assert_eq!(
        hosts_sent(sidecar, &[]),
        vec!["a.shop.svc.cluster.local", "b.other.svc.cluster.local"]
    );
}

#[test]
fn a_workload_sidecar_beats_the_namespace_one_and_the_root_one_applies_last() {
    let ns = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
    let workload = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\nspec: {workloadSelector: {labels: {app: x}}, egress: [{hosts: [\"other/*\"]}]}\n";
    let both = format!("{ns}---\n{workload}");
    assert_eq!(
        hosts_sent(&both, &[("app", "x")]),
        vec!["b.other.svc.cluster.local", "c.other.svc.cluster.local"]
    );
    assert_eq!(
        hosts_sent(&both, &[("app", "y")]),
        vec!["a.shop.svc.cluster.local"]
    );
    let root = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: istio-system}\nspec: {egress: [{hosts: [\"*/c.other.svc.cluster.local\"]}]}\n";
    assert_eq!(hosts_sent(root, &[]), vec!["c.other.svc.cluster.local"]);
}

#[test]
fn a_sidecar_does_not_scope_a_gateway_of_its_namespace() {
    let sidecar = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
    let mesh = TestMesh::new(&format!("{SERVICES}---\n{sidecar}"));
    let gateway = Proxy {
        kind: crate::translate::proxy::ProxyKind::Gateway,
        ..Proxy::sidecar(
            "router~10.0.0.9~gw.shop~shop.svc.cluster.local",
            "shop",
            &[],
        )
    };
    assert!(sidecar_for(mesh.inputs(), &gateway).is_none());
    let r = translate(mesh.inputs(), &gateway);
    let hosts: std::collections::BTreeSet<&str> = r
        .clusters
        .iter()
        .filter_map(|c| c.name.rsplit('|').next())
        .filter(|h| h.ends_with(".svc.cluster.local"))
        .collect();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    // The namespace's sidecars are scoped by it.
    let sidecar = Proxy::sidecar("p", "shop", &[]);
    assert!(sidecar_for(mesh.inputs(), &sidecar).is_some());
}

#[test]
fn without_a_sidecar_everything_visible_is_sent() {
    assert_eq!(hosts_sent("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: d, namespace: elsewhere}\nspec: {egress: [{hosts: [\"./*\"]}]}\n", &[]).len(), 3);
}

/// Services on shared ports: reviews (9080, 9090) and ratings (9080) in
/// `shop`, telemetry (9080, 15014) and an egress gateway (80) in
/// `istio-system`.
const PORTS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec: {hosts: [reviews.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: http-admin, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec: {hosts: [ratings.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9080, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: telemetry, namespace: istio-system}
spec: {hosts: [telemetry.istio-system.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 9080, name: http, protocol: HTTP}, {number: 15014, name: http-monitoring, protocol: HTTP}], endpoints: [{address: 10.0.0.3}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egressgw, namespace: istio-system}
spec: {hosts: [egressgw.istio-system.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.4}]}
"#;

const REVIEWS: &str = "reviews.shop.svc.cluster.local";
const RATINGS: &str = "ratings.shop.svc.cluster.local";
const TELEMETRY: &str = "telemetry.istio-system.svc.cluster.local";

/// A Sidecar in `shop` with this spec (flow-style YAML).
fn sidecar(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: shop}}\nspec: {spec}\n"
    )
}

/// What a `shop` sidecar with `interception` is sent, given `extra`
/// config beside [`PORTS`].
fn sent(extra: &str, interception: Interception, labels: &[(&str, &str)]) -> Resources {
    let mesh = TestMesh::new(&format!("{PORTS}---\n{extra}"));
    let proxy = Proxy {
        interception,
        ..Proxy::sidecar("p", "shop", labels)
    };
    translate(mesh.inputs(), &proxy)
}

fn outbound_clusters(r: &Resources) -> Vec<&str> {
    r.clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("outbound|"))
        .collect()
}

fn route_names(r: &Resources) -> Vec<&str> {
    r.routes.iter().map(|c| c.name.as_str()).collect()
}

fn listener_names(r: &Resources) -> Vec<&str> {
    r.listeners.iter().map(|l| l.name.as_str()).collect()
}

fn route<'a>(r: &'a Resources, name: &str) -> &'a RouteConfiguration {
    r.routes
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no route configuration {name} in {:?}", route_names(r)))
}

fn vhost_names(rc: &RouteConfiguration) -> Vec<&str> {
    rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect()
}

fn listener<'a>(r: &'a Resources, name: &str) -> &'a Listener {
    r.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", listener_names(r)))
}

fn typed(c: &FilterChain) -> &weft_xds::pb::google::protobuf::Any {
    match &c.filters.first().expect("a filter").config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any,
        other => panic!("not typed: {other:?}"),
    }
}

fn hcm(c: &FilterChain) -> HttpConnectionManager {
    weft_xds::unpack(typed(c)).expect("an HTTP connection manager")
}

fn tcp_cluster(c: &FilterChain) -> String {
    let proxy: TcpProxy = weft_xds::unpack(typed(c)).expect("a TCP proxy");
    match proxy.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("not one cluster: {other:?}"),
    }
}

fn bind_to_port(l: &Listener) -> bool {
    l.bind_to_port.as_ref().is_none_or(|b| b.value)
}

/// The catch-all virtual host's action: its cluster, or its direct
/// response status.
fn catch_all_action(rc: &RouteConfiguration) -> (String, Result<String, u32>) {
    let vh: &VirtualHost = rc.virtual_hosts.last().expect("a catch-all");
    let action = match &vh.routes[0].action {
        Some(Action::Route(r)) => match &r.cluster_specifier {
            Some(ClusterSpecifier::Cluster(c)) => Ok(c.clone()),
            other => panic!("{other:?}"),
        },
        Some(Action::DirectResponse(d)) => Err(d.status),
        other => panic!("{other:?}"),
    };
    (vh.name.clone(), action)
}

fn virtual_outbound_cluster(r: &Resources) -> String {
    let vo = listener(r, "virtualOutbound");
    tcp_cluster(vo.default_filter_chain.as_ref().expect("a default chain"))
}

#[test]
fn an_egress_listener_port_scopes_its_hosts_to_that_port_and_the_catch_all_takes_the_rest() {
    let r = sent(
        &sidecar(&format!(
            "{{egress: [{{port: {{number: 9080, protocol: HTTP, name: http}}, hosts: [\"./{REVIEWS}\"]}}, {{hosts: [\"istio-system/*\"]}}]}}"
        )),
        Interception::Redirect,
        &[],
    );
    // RDS: port 9080 is the first listener's: reviews only (not ratings,
    // not telemetry, which the catch-all imports on 9080 too).
    assert_eq!(
        vhost_names(route(&r, "9080")),
        vec![format!("{REVIEWS}:9080").as_str(), "allow_any"]
    );
    // The other ports are the catch-all's: telemetry's 15014, the egress
    // gateway's 80; reviews' 9090 is imported by no listener.
    assert_eq!(route_names(&r), vec!["15014", "80", "9080"]);
    assert_eq!(
        vhost_names(route(&r, "15014")),
        vec![format!("{TELEMETRY}:15014").as_str(), "allow_any"]
    );
    // LDS follows: no 9090 listener.
    let names = listener_names(&r);
    assert!(names.contains(&"0.0.0.0_9080") && names.contains(&"0.0.0.0_15014"));
    assert!(!names.contains(&"0.0.0.0_9090"), "{names:?}");
    assert_eq!(
        rds_of(listener(&r, "0.0.0.0_9080")).as_deref(),
        Some("9080")
    );
    // CDS is the union of what each listener imports (Istio's
    // SidecarScope): reviews on 9080 only, telemetry on both its ports.
    assert_eq!(
        outbound_clusters(&r),
        vec![
            format!("outbound|15014||{TELEMETRY}").as_str(),
            "outbound|80||egressgw.istio-system.svc.cluster.local",
            &format!("outbound|9080||{REVIEWS}"),
            &format!("outbound|9080||{TELEMETRY}"),
        ]
    );
}

fn rds_of(l: &Listener) -> Option<String> {
    l.filter_chains
        .iter()
        .find(|c| {
            c.filters
                .first()
                .is_some_and(|f| f.name == crate::translate::listener::HCM_FILTER)
        })
        .and_then(|c| match hcm(c).route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
}

#[test]
fn without_a_catch_all_ports_no_egress_listener_names_are_not_visible() {
    let r = sent(
        &sidecar(
            "{egress: [{port: {number: 9080, protocol: HTTP, name: http}, hosts: [\"./*\"]}]}",
        ),
        Interception::Redirect,
        &[],
    );
    assert_eq!(route_names(&r), vec!["9080"]);
    assert_eq!(
        vhost_names(route(&r, "9080")),
        vec![
            format!("{RATINGS}:9080").as_str(),
            &format!("{REVIEWS}:9080"),
            "allow_any"
        ]
    );
    assert_eq!(
        outbound_clusters(&r),
        vec![
            format!("outbound|9080||{RATINGS}").as_str(),
            &format!("outbound|9080||{REVIEWS}"),
        ]
    );
    let names = listener_names(&r);
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("_9090") || n.ends_with("_15014")),
        "{names:?}"
    );
}

#[test]
fn an_egress_listener_port_proxies_with_its_own_protocol() {
    // Declared HTTP, imported on a TCP egress listener: a TCP proxy, no routes.
    let r = sent(
        &sidecar(&format!(
            "{{egress: [{{port: {{number: 9080, protocol: TCP, name: tcp}}, hosts: [\"./{RATINGS}\"]}}]}}"
        )),
        Interception::Redirect,
        &[],
    );
    assert!(route_names(&r).is_empty(), "{:?}", route_names(&r));
    let l = listener(&r, "0.0.0.0_9080");
    assert_eq!(l.filter_chains.len(), 1);
    assert_eq!(
        tcp_cluster(&l.filter_chains[0]),
        format!("outbound|9080||{RATINGS}")
    );
}

#[test]
fn bind_puts_the_listener_on_that_address() {
    let spec = |extra: &str| {
        sidecar(&format!(
            "{{egress: [{{port: {{number: 9080, protocol: HTTP, name: http}}, bind: 127.0.0.2{extra}, hosts: [\"./*\"]}}]}}"
        ))
    };
    // Captured: found by original destination, not bound.
    let r = sent(&spec(""), Interception::Redirect, &[]);
    let l = listener(&r, "127.0.0.2_9080");
    assert!(!listener_names(&r).contains(&"0.0.0.0_9080"));
    assert_eq!(
        l.address,
        Some(crate::translate::envoy::socket_address("127.0.0.2", 9080))
    );
    assert!(!bind_to_port(l));
    assert_eq!(rds_of(l).as_deref(), Some("9080"));
    assert_eq!(
        hcm(&l.filter_chains[0]).stat_prefix,
        "outbound_127.0.0.2_9080"
    );
    // captureMode NONE: the app dials it, the proxy binds it.
    let r = sent(&spec(", captureMode: NONE"), Interception::Redirect, &[]);
    assert!(bind_to_port(listener(&r, "127.0.0.2_9080")));
    // Explicit mode: bound on `bind`; without `bind`, `0.0.0.0_9080`
    // stays unbound (reached through the HTTP-proxy port).
    let r = sent(&spec(""), Interception::None, &[]);
    assert!(bind_to_port(listener(&r, "127.0.0.2_9080")));
    let r = sent(
        &sidecar(
            "{egress: [{port: {number: 9080, protocol: HTTP, name: http}, hosts: [\"./*\"]}]}",
        ),
        Interception::None,
        &[],
    );
    assert!(!bind_to_port(listener(&r, "0.0.0.0_9080")));
    // A catch-all's bind holds for every port it gets.
    let r = sent(
        &sidecar("{egress: [{bind: 127.0.0.3, hosts: [\"./*\"]}]}"),
        Interception::Redirect,
        &[],
    );
    let names = listener_names(&r);
    assert!(
        names.contains(&"127.0.0.3_9080") && names.contains(&"127.0.0.3_9090"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("0.0.0.0_")),
        "{names:?}"
    );
}

/// A Sidecar in `shop` selecting `app: locked`, with this
/// `outboundTrafficPolicy` (and egress hosts, if given).
fn locked(policy: &str, egress: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: locked, namespace: shop}}\nspec: {{workloadSelector: {{labels: {{app: locked}}}}, outboundTrafficPolicy: {policy}{egress}}}\n"
    )
}

const REGISTRY_ONLY_MESH: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";

#[test]
fn a_sidecars_registry_only_blackholes_unknown_destinations_for_its_proxies_only() {
    // The mesh allows any (no mesh config: Istio's default).
    let config = locked("{mode: REGISTRY_ONLY}", "");
    let locked = sent(&config, Interception::Redirect, &[("app", "locked")]);
    assert_eq!(
        catch_all_action(route(&locked, "9080")),
        ("block_all".into(), Err(502))
    );
    assert_eq!(virtual_outbound_cluster(&locked), BLACKHOLE);
    // It scopes nothing: every service is still sent.
    assert_eq!(outbound_clusters(&locked).len(), 6);
    let open = sent(&config, Interception::Redirect, &[("app", "open")]);
    assert_eq!(
        catch_all_action(route(&open, "9080")),
        ("allow_any".into(), Ok(PASSTHROUGH.into()))
    );
    assert_eq!(virtual_outbound_cluster(&open), PASSTHROUGH);
}

#[test]
fn a_sidecars_allow_any_overrides_the_mesh_and_may_name_an_egress_proxy() {
    let egress = "{mode: ALLOW_ANY, egressProxy: {host: egressgw.istio-system.svc.cluster.local, port: {number: 80}}}";
    let config = format!("{REGISTRY_ONLY_MESH}---\n{}", locked(egress, ""));
    let gw = "outbound|80||egressgw.istio-system.svc.cluster.local";
    let r = sent(&config, Interception::Redirect, &[("app", "locked")]);
    assert_eq!(
        catch_all_action(route(&r, "9080")),
        ("allow_any".into(), Ok(gw.into()))
    );
    assert_eq!(virtual_outbound_cluster(&r), gw);
    assert!(outbound_clusters(&r).contains(&gw));
    // Others keep the mesh's REGISTRY_ONLY.
    let other = sent(&config, Interception::Redirect, &[("app", "open")]);
    assert_eq!(virtual_outbound_cluster(&other), BLACKHOLE);
    // Plain ALLOW_ANY: the original destination.
    let config = format!(
        "{REGISTRY_ONLY_MESH}---\n{}",
        locked("{mode: ALLOW_ANY}", "")
    );
    let r = sent(&config, Interception::Redirect, &[("app", "locked")]);
    assert_eq!(virtual_outbound_cluster(&r), PASSTHROUGH);
    // An egress proxy outside the proxy's egress hosts has no cluster
    // here: unknown traffic is dropped rather than sent to none.
    let config = locked(egress, ", egress: [{hosts: [\"./*\"]}]");
    let r = sent(&config, Interception::Redirect, &[("app", "locked")]);
    assert!(!outbound_clusters(&r).contains(&gw));
    assert_eq!(
        catch_all_action(route(&r, "9080")),
        ("block_all".into(), Err(502))
    );
    assert_eq!(virtual_outbound_cluster(&r), BLACKHOLE);
}

#[test]
fn a_sidecar_with_only_an_outbound_policy_is_its_own_shape() {
    let mesh = TestMesh::new(&format!(
        "{PORTS}---\n{}",
        locked("{mode: REGISTRY_ONLY}", "")
    ));
    let uses = crate::cache::LabelUses::of(mesh.inputs());
    let key = |app: &str| {
        let proxy = Proxy::sidecar("p", "shop", &[("app", app)]);
        crate::cache::Key::of(&crate::translate::resolve(mesh.inputs(), &proxy), &uses)
    };
    assert_ne!(key("locked"), key("open"));
    assert_eq!(key("open"), key("other"));
}
