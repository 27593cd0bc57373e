//! RDS translation tests, each over a small mesh in YAML.

use weft_xds::pb::envoy::config::core::v3::data_source::Specifier;
use weft_xds::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use weft_xds::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use weft_xds::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteConfiguration, VirtualHost, WeightedCluster,
};
use weft_xds::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use weft_xds::pb::envoy::r#type::matcher::v3::StringMatcher;
use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use weft_xds::pb::envoy::r#type::v3::FractionalPercent;
use weft_xds::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use weft_xds::pb::google::protobuf::Duration;
use weft_xds::unpack;

use super::*;
use crate::translate::test_inputs::TestMesh;

mod actions;

/// Services in `shop`: reviews (HTTP 9080, a VIP), ratings (HTTP 9080 and
/// 9090), a TCP database, and a `private` service only `shop` sees.
const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [10.96.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: shop}
spec:
  hosts: [private.shop.svc.cluster.local]
  exportTo: ["."]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.4}]
"#;

const REVIEWS: &str = "reviews.shop.svc.cluster.local";

fn shop_proxy() -> Proxy {
    Proxy::sidecar("web-1.shop", "shop", &[("app", "web"), ("version", "v1")])
}

/// The route configurations of `proxy` over SERVICES plus `extra`.
fn rds(extra: &str, proxy: &Proxy) -> Vec<RouteConfiguration> {
    let mesh = TestMesh::new(&format!("{SERVICES}\n---\n{extra}"));
    route_configurations(mesh.inputs(), proxy)
}

fn config(configs: &[RouteConfiguration], port: u16) -> &RouteConfiguration {
    configs
        .iter()
        .find(|c| c.name == port.to_string())
        .expect("route configuration for the port")
}

fn vhost<'a>(configs: &'a [RouteConfiguration], port: u16, host: &str) -> &'a VirtualHost {
    let name = format!("{host}:{port}");
    config(configs, port)
        .virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .expect("virtual host")
}

/// The routes of reviews on 9080 for the shop proxy, with `vs` applied.
fn reviews_routes(vs: &str) -> Vec<Route> {
    vhost(&rds(vs, &shop_proxy()), 9080, REVIEWS).routes.clone()
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

fn cluster(route: &Route) -> &str {
    match &action(route).cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => c,
        other => panic!("not a single cluster: {other:?}"),
    }
}

fn weighted(route: &Route) -> Vec<(String, u32)> {
    match &action(route).cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(WeightedCluster { clusters, .. })) => clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
            .collect(),
        other => panic!("not weighted clusters: {other:?}"),
    }
}

fn header<'a>(route: &'a Route, name: &str) -> &'a HeaderMatcher {
    route
        .r#match
        .as_ref()
        .and_then(|m| m.headers.iter().find(|h| h.name == name))
        .expect("header matcher")
}

fn string_match(h: &HeaderMatcher) -> Option<&MatchPattern> {
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(StringMatcher { match_pattern, .. })) => {
            match_pattern.as_ref()
        }
        _ => None,
    }
}

fn path(route: &Route) -> Option<&PathSpecifier> {
    route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
}

fn millionths(n: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: n,
        denominator: DenominatorType::Million as i32,
    }
}

/// A VirtualService for reviews in `shop` with these `http` routes.
fn reviews_vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: reviews, namespace: shop}}\n\
         spec:\n  hosts: [reviews]\n  http:\n{http}"
    )
}

#[test]
fn one_route_configuration_per_http_port_with_a_virtual_host_per_service() {
    let configs = rds("", &shop_proxy());
    let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["9080", "9090"], "no TCP port 5432");
    let hosts: Vec<&str> = config(&configs, 9080)
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        hosts,
        [
            "private.shop.svc.cluster.local:9080",
            "ratings.shop.svc.cluster.local:9080",
            "reviews.shop.svc.cluster.local:9080",
            "allow_any",
        ]
    );
}

#[test]
fn domains_are_every_name_a_client_may_use() {
    let configs = rds("", &shop_proxy());
    // Names only, as Istio sends sidecars: the route configuration ignores
    // the port in `Host` (the listener already chose it).
    assert_eq!(
        vhost(&configs, 9080, REVIEWS).domains,
        [
            "10.96.0.10",
            "reviews",
            "reviews.shop",
            "reviews.shop.svc",
            "reviews.shop.svc.cluster.local",
        ]
    );
    assert!(
        configs
            .iter()
            .filter(|c| c.name == "9080")
            .all(|c| c.ignore_port_in_host_matching)
    );
    // From another namespace the bare name means a service of that one.
    let other = rds("", &Proxy::sidecar("x", "other", &[]));
    let domains = &vhost(&other, 9080, REVIEWS).domains;
    assert!(domains.contains(&"reviews.shop".to_string()));
    assert!(!domains.iter().any(|d| d == "reviews"));
}

#[test]
fn domains_of_a_non_kubernetes_host_are_the_host_and_its_vip() {
    let svc = TestMesh::new(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {name: api, namespace: shop}\n\
         spec:\n  hosts: [api.example.com]\n  addresses: [192.0.2.1/32, 192.0.2.0/24]\n  \
         location: MESH_EXTERNAL\n  resolution: STATIC\n  \
         ports: [{number: 80, name: http, protocol: HTTP}]\n",
    )
    .service("api.example.com");
    assert_eq!(
        domains(&svc, 80, "shop", PortForms::With),
        [
            "192.0.2.1",
            "192.0.2.1:80",
            "api.example.com",
            "api.example.com:80"
        ]
    );
    assert_eq!(
        domains(&svc, 80, "shop", PortForms::Without),
        ["192.0.2.1", "api.example.com"]
    );
}

#[test]
fn without_a_virtual_service_everything_goes_to_the_whole_service() {
    let routes = reviews_routes("");
    let [route] = routes.as_slice() else {
        panic!("one default route: {routes:?}");
    };
    assert_eq!(route.name, DEFAULT_ROUTE_NAME);
    assert_eq!(path(route), Some(&PathSpecifier::Prefix("/".into())));
    assert_eq!(
        cluster(route),
        "outbound|9080||reviews.shop.svc.cluster.local"
    );
    let a = action(route);
    assert_eq!(a.timeout, Some(Duration::default()), "no timeout");
    let retry = a.retry_policy.as_ref().expect("default retries");
    assert_eq!(retry.num_retries.as_ref().map(|n| n.value), Some(2));
}

#[test]
fn uri_matches_and_case() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {exact: /a}}, {uri: {prefix: /b}, ignoreUriCase: true}, {uri: {regex: '/c/[0-9]+'}}]\n    \
         route: [{destination: {host: reviews}}]\n",
    ));
    assert_eq!(routes.len(), 3);
    assert_eq!(path(&routes[0]), Some(&PathSpecifier::Path("/a".into())));
    assert_eq!(path(&routes[1]), Some(&PathSpecifier::Prefix("/b".into())));
    let case = |r: &Route| {
        r.r#match
            .as_ref()
            .and_then(|m| m.case_sensitive)
            .map(|b| b.value)
    };
    assert_eq!(case(&routes[0]), Some(true));
    assert_eq!(case(&routes[1]), Some(false));
    match path(&routes[2]) {
        Some(PathSpecifier::SafeRegex(r)) => assert_eq!(r.regex, "/c/[0-9]+"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_method_scheme_authority_and_query_matches() {
    let routes = reviews_routes(&reviews_vs(
        "  - match:\n    - headers: {x-a: {exact: one}, x-b: {prefix: tw}, x-c: {regex: 'th.*'}, x-d: {}}\n      \
         withoutHeaders: {x-e: {exact: no}, x-f: {}}\n      \
         method: {exact: GET}\n      scheme: {exact: https}\n      authority: {prefix: reviews}\n      \
         queryParams: {q: {exact: v}, flag: {}}\n    \
         route: [{destination: {host: reviews}}]\n",
    ));
    let r = &routes[0];
    assert_eq!(
        string_match(header(r, "x-a")),
        Some(&MatchPattern::Exact("one".into()))
    );
    assert_eq!(
        string_match(header(r, "x-b")),
        Some(&MatchPattern::Prefix("tw".into()))
    );
    assert!(
        matches!(string_match(header(r, "x-c")), Some(MatchPattern::SafeRegex(re)) if re.regex == "th.*")
    );
    assert_eq!(
        header(r, "x-d").header_match_specifier,
        Some(HeaderMatchSpecifier::PresentMatch(true))
    );
    let e = header(r, "x-e");
    assert!(e.invert_match && e.treat_missing_header_as_empty);
    let f = header(r, "x-f");
    assert!(f.invert_match && !f.treat_missing_header_as_empty, "absent");
    assert_eq!(
        string_match(header(r, ":method")),
        Some(&MatchPattern::Exact("GET".into()))
    );
    assert_eq!(
        string_match(header(r, ":scheme")),
        Some(&MatchPattern::Exact("https".into()))
    );
    assert_eq!(
        string_match(header(r, ":authority")),
        Some(&MatchPattern::Prefix("reviews".into()))
    );
    let query = &r.r#match.as_ref().expect("match").query_parameters;
    let q: Vec<(&str, &Option<QueryParameterMatchSpecifier>)> = query
        .iter()
        .map(|q| (q.name.as_str(), &q.query_parameter_match_specifier))
        .collect();
    assert_eq!(q[0].0, "flag");
    assert_eq!(
        q[0].1,
        &Some(QueryParameterMatchSpecifier::PresentMatch(true))
    );
    assert_eq!(q[1].0, "q");
    assert!(matches!(
        q[1].1,
        Some(QueryParameterMatchSpecifier::StringMatch(_))
    ));
}

#[test]
fn several_matches_make_several_routes_with_one_action() {
    let routes = reviews_routes(&reviews_vs(
        "  - name: api\n    match: [{name: v1, uri: {prefix: /v1}}, {uri: {prefix: /v2}}]\n    \
         route: [{destination: {host: reviews, subset: v1}}]\n",
    ));
    let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api.v1", "api"]);
    assert_eq!(cluster(&routes[0]), cluster(&routes[1]));
}

#[test]
fn port_matches_keep_only_this_ports_routes() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
              metadata: {name: ratings, namespace: shop}\n\
              spec:\n  hosts: [ratings]\n  http:\n  \
              - match: [{port: 9090}]\n    route: [{destination: {host: ratings, subset: grpc}}]\n  \
              - route: [{destination: {host: ratings}}]\n";
    let configs = rds(vs, &shop_proxy());
    let host = "ratings.shop.svc.cluster.local";
    // A match on the port alone is a catch-all there: nothing follows it.
    let on_9090 = &vhost(&configs, 9090, host).routes;
    assert_eq!(on_9090.len(), 1);
    assert_eq!(
        cluster(&on_9090[0]),
        "outbound|9090|grpc|ratings.shop.svc.cluster.local"
    );
    let on_9080 = &vhost(&configs, 9080, host).routes;
    assert_eq!(on_9080.len(), 1, "the 9090 match is left out");
    // Two ports and no port given: the route's own port.
    assert_eq!(
        cluster(&on_9080[0]),
        "outbound|9080||ratings.shop.svc.cluster.local"
    );
}

#[test]
fn source_labels_and_namespace_select_the_proxy() {
    let vs = reviews_vs(
        "  - match: [{sourceLabels: {app: web}, sourceNamespace: shop}]\n    \
         route: [{destination: {host: reviews, subset: web}}]\n  \
         - match: [{sourceLabels: {app: batch}}]\n    route: [{destination: {host: reviews, subset: batch}}]\n  \
         - route: [{destination: {host: reviews, subset: v1}}]\n",
    );
    let names = |proxy: &Proxy| -> Vec<String> {
        vhost(&rds(&vs, proxy), 9080, REVIEWS)
            .routes
            .iter()
            .map(|r| cluster(r).to_string())
            .collect()
    };
    let web = "outbound|9080|web|reviews.shop.svc.cluster.local";
    let v1 = "outbound|9080|v1|reviews.shop.svc.cluster.local";
    // A match on the source alone matches every request of that source:
    // nothing follows it for a proxy it selects.
    assert_eq!(names(&shop_proxy()), [web]);
    assert_eq!(
        names(&Proxy::sidecar("w", "other", &[("app", "web")])),
        [v1]
    );
    assert_eq!(
        names(&Proxy::sidecar("b", "shop", &[("app", "batch")])),
        ["outbound|9080|batch|reviews.shop.svc.cluster.local"]
    );
}

#[test]
fn nothing_follows_a_catch_all_and_no_default_is_added() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /a}}, {uri: {prefix: /}}, {uri: {prefix: /never}}]\n    \
         route: [{destination: {host: reviews, subset: v1}}]\n  \
         - route: [{destination: {host: reviews, subset: v2}}]\n",
    ));
    assert_eq!(routes.len(), 2);
    assert!(matches::is_catch_all(&routes[1]));
    // A VirtualService without a catch-all gets no default route either.
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews}}]\n",
    ));
    assert_eq!(routes.len(), 1);
}

#[test]
fn gateway_only_virtual_services_do_not_apply() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
              metadata: {name: reviews, namespace: shop}\n\
              spec:\n  hosts: [reviews]\n  gateways: [ingress]\n  \
              http: [{route: [{destination: {host: reviews, subset: v9}}]}]\n";
    let routes = vhost(&rds(vs, &shop_proxy()), 9080, REVIEWS).routes.clone();
    assert_eq!(routes[0].name, DEFAULT_ROUTE_NAME);
}

#[test]
fn export_to_hides_services_and_virtual_services() {
    let other = Proxy::sidecar("x", "other", &[]);
    let configs = rds("", &other);
    let hosts: Vec<&str> = config(&configs, 9080)
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert!(!hosts.contains(&"private.shop.svc.cluster.local:9080"));
    assert!(hosts.contains(&"reviews.shop.svc.cluster.local:9080"));
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
              metadata: {name: reviews, namespace: shop}\n\
              spec:\n  hosts: [reviews]\n  exportTo: ['.']\n  \
              http: [{route: [{destination: {host: reviews, subset: v9}}]}]\n";
    assert_eq!(
        vhost(&rds(vs, &other), 9080, REVIEWS).routes[0].name,
        DEFAULT_ROUTE_NAME
    );
    assert_eq!(
        cluster(&vhost(&rds(vs, &shop_proxy()), 9080, REVIEWS).routes[0]),
        "outbound|9080|v9|reviews.shop.svc.cluster.local"
    );
}

#[test]
fn catch_all_virtual_host_follows_the_outbound_policy() {
    let last = |configs: &[RouteConfiguration]| {
        config(configs, 9080)
            .virtual_hosts
            .last()
            .map(|v| v.name.clone())
    };
    // No mesh config: Istio's default, ALLOW_ANY.
    assert_eq!(last(&rds("", &shop_proxy())).as_deref(), Some("allow_any"));
    let mesh = TestMesh::examples();
    let configs = route_configurations(mesh.inputs(), &Proxy::sidecar("p", "bookinfo", &[]));
    assert_eq!(last(&configs).as_deref(), Some("block_all"));
}

#[test]
fn gateways_get_no_sidecar_routes() {
    let mesh = TestMesh::examples();
    let mut gw = Proxy::sidecar("gw", "bookinfo", &[("istio", "ingressgateway")]);
    gw.kind = ProxyKind::Gateway;
    let names: Vec<String> = route_configurations(mesh.inputs(), &gw)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["http.8080"], "only its Gateway servers' routes");
}

#[test]
fn the_most_specific_virtual_service_routes_a_service() {
    let vs = |name: &str, host: &str, subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}, namespace: shop}}\n\
             spec:\n  hosts: ['{host}']\n  \
             http: [{{route: [{{destination: {{host: reviews, subset: {subset}}}}}]}}]\n"
        )
    };
    let extra = format!(
        "{}\n---\n{}",
        vs("wide", "*.shop.svc.cluster.local", "wide"),
        vs("exact", "reviews", "exact")
    );
    let configs = rds(&extra, &shop_proxy());
    let first_cluster = |host: &str| cluster(&vhost(&configs, 9080, host).routes[0]).to_string();
    assert_eq!(
        first_cluster(REVIEWS),
        "outbound|9080|exact|reviews.shop.svc.cluster.local"
    );
    assert_eq!(
        first_cluster("ratings.shop.svc.cluster.local"),
        "outbound|9080|wide|reviews.shop.svc.cluster.local"
    );
}

#[test]
fn a_virtual_service_with_no_route_for_this_port_leaves_the_default() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{port: 7000}]\n    route: [{destination: {host: reviews, subset: v1}}]\n",
    ));
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, DEFAULT_ROUTE_NAME);
}

/// On a gateway, the VirtualServices bound to it that claim one host
/// share its virtual host (Istio merges them on gateways, not sidecars):
/// their routes in VirtualService order, catch-alls last (Istio's
/// `SortVHostRoutes`), so the second one's `/api` is reachable.
#[test]
fn a_gateway_merges_the_virtual_services_of_a_host() {
    let vs = |name: &str, http: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}, namespace: shop}}\n\
             spec:\n  hosts: [www.example.com]\n  gateways: [public]\n  http: {http}\n"
        )
    };
    let extra = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n\
         metadata: {{name: public, namespace: shop}}\n\
         spec:\n  selector: {{app: edge}}\n  \
         servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: ['*']}}]\n\
         ---\n{}---\n{}",
        vs("a-site", "[{route: [{destination: {host: reviews}}]}]"),
        vs(
            "b-api",
            "[{match: [{uri: {prefix: /api}}], route: [{destination: {host: ratings, port: {number: 9080}}}]}]"
        ),
    );
    let mut gw = Proxy::sidecar("edge-1.shop", "shop", &[("app", "edge")]);
    gw.kind = ProxyKind::Gateway;
    let configs = rds(&extra, &gw);
    assert_eq!(configs.len(), 1);
    let rc = &configs[0];
    assert_eq!(rc.name, "http.80");
    assert!(rc.ignore_port_in_host_matching);
    assert_eq!(
        rc.max_direct_response_body_size_bytes.map(|v| v.value),
        Some(1024 * 1024)
    );
    let vhosts: Vec<(&str, &[String])> = rc
        .virtual_hosts
        .iter()
        .map(|v| (v.name.as_str(), v.domains.as_slice()))
        .collect();
    assert_eq!(
        vhosts,
        [("www.example.com:80", &["www.example.com".to_string()][..])]
    );
    let routes: Vec<(Option<&PathSpecifier>, &str)> = rc.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| (path(r), cluster(r)))
        .collect();
    assert_eq!(
        routes,
        [
            (
                Some(&PathSpecifier::Prefix("/api".into())),
                "outbound|9080||ratings.shop.svc.cluster.local"
            ),
            (
                Some(&PathSpecifier::Prefix("/".into())),
                "outbound|9080||reviews.shop.svc.cluster.local"
            ),
        ]
    );
}
