use super::hosts::host_matches;
use super::*;
use crate::diag::{Code, Severity};
use crate::load::{LoadOptions, Loaded, load_file};
use crate::test_util::{self, clean, lines, load, path_of, samples};

/// A VirtualService with `spec` (flow or block YAML on one line).
fn load_vs(spec: &str) -> Loaded {
    load(&format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: t, namespace: shop}}\nspec: {spec}\n"
    ))
}

/// Asserts that `spec` yields `code` at `path`, and that the resource is
/// rejected exactly when the code is an error.
#[track_caller]
fn expect(spec: &str, code: Code, path: &str) -> Loaded {
    let l = load_vs(spec);
    test_util::expect(&l, code, path);
    l
}

#[track_caller]
fn message_at(l: &Loaded, path: &str) -> String {
    l.diagnostics
        .iter()
        .find(|d| d.path.is_some() && path_of(d) == path)
        .map(|d| d.message.clone())
        .unwrap_or_else(|| panic!("no diagnostic at {path}: {:#?}", lines(l)))
}

const ROUTE: &str = "route: [{destination: {host: a}}]";

fn http(route: &str) -> String {
    format!("{{hosts: [a], http: [{{{route}}}]}}")
}

const FULL: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: full
  namespace: shop
spec:
  hosts:
  - reviews.shop.svc.cluster.local
  - "*.example.com"
  - "*-api.internal.example.org"
  gateways:
  - mesh
  - istio-system/ingress
  - public-gw
  exportTo: [".", istio-system]
  http:
  - name: api
    match:
    - name: v2
      uri: {prefix: /api/v2/}
      scheme: {exact: https}
      method: {exact: GET}
      authority: {regex: "^api\\.example\\.com(:[0-9]+)?$"}
      headers:
        x-user: {exact: jason}
        x-present: {}
        ":method": {prefix: G}
      port: 8080
      sourceLabels: {app: frontend}
      gateways: [mesh]
      queryParams:
        debug: {exact: "1"}
      ignoreUriCase: true
      withoutHeaders:
        x-skip: {regex: "*"}
        x-other: {prefix: "no"}
      sourceNamespace: web
      statPrefix: api_v2
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 75
      headers:
        request:
          set: {x-route: v2}
          add: {x-trace: "%REQ(x-request-id)% and 100%%"}
          remove: [x-internal]
        response:
          set: {cache-control: no-store}
          remove: [server]
    - destination: {host: reviews, subset: v1}
      weight: 25
    rewrite: {uri: /v2/, authority: reviews.internal}
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: 5xx,connect-failure,503,unavailable,retriable-status-codes
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: true
      backoff: 50ms
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 0.5}}
      abort: {httpStatus: 503, percentage: {value: 0.1}}
    mirrors:
    - destination: {host: reviews-shadow}
      percentage: {value: 5}
    corsPolicy:
      allowOrigins:
      - exact: https://example.com
      - regex: "https://.*\\.example\\.com"
      allowMethods: [GET, POST]
      allowHeaders: [content-type, x-custom]
      exposeHeaders: [x-request-id]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    headers:
      request: {set: {x-gw: "1"}}
      response: {add: {x-served-by: weft}}
  - name: grpc-abort
    match: [{uri: {prefix: /grpc.Health/}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}
    route: [{destination: {host: health}}]
  - name: legacy
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: new.example.com, port: 8443, scheme: https, redirectCode: 308}
  - name: same-port
    match: [{uri: {exact: /old2}}]
    redirect: {derivePort: FROM_REQUEST_PORT, scheme: https}
  - name: health
    match: [{uri: {exact: /healthz}}]
    directResponse: {status: 200, body: {string: ok}}
  - name: binary
    match: [{uri: {exact: /bin}}]
    directResponse: {status: 503, body: {bytes: aGVsbG8=}}
  - name: items
    match: [{uri: {regex: "/items/[0-9]+"}}]
    rewrite:
      uriRegexRewrite: {match: "^/items/([0-9]+)$", rewrite: "/item?id=\\1"}
    route: [{destination: {host: items}}]
    mirror: {host: items-shadow, subset: canary}
    mirrorPercentage: {value: 10}
  - name: delegated
    match: [{uri: {prefix: /reviews/}}]
    delegate: {name: reviews-routes, namespace: reviews}
  tls:
  - match:
    - sniHosts: [login.example.com]
      destinationSubnets: [10.0.0.0/8, 2001:db8::1]
      port: 443
      sourceLabels: {app: client}
      gateways: [mesh]
      sourceNamespace: web
    route:
    - destination: {host: login, port: {number: 443}}
      weight: 60
    - destination: {host: login-canary, port: {number: 443}}
      weight: 40
  tcp:
  - match:
    - destinationSubnets: [10.1.0.0/16]
      port: 27017
      sourceSubnet: 10.2.0.0/16
      sourceLabels: {app: client}
      gateways: [mesh]
      sourceNamespace: web
    route:
    - destination: {host: mongo.backup.svc.cluster.local, port: {number: 5555}}
"#;

#[test]
fn fully_populated_virtual_service_is_clean() {
    let l = load(FULL);
    clean(&l);
    let vs = l.resources[0]
        .spec_as::<VirtualService>()
        .expect("a VirtualService");
    assert_eq!(vs.hosts.len(), 3);
    let api = &vs.http[0];
    let m = &api.matches[0];
    assert_eq!(
        m.uri.as_ref().and_then(|u| u.prefix.as_deref()),
        Some("/api/v2/")
    );
    assert!(m.ignore_uri_case);
    assert_eq!(m.port, 8080);
    assert_eq!(m.stat_prefix, "api_v2");
    assert_eq!(m.headers.get("x-present"), Some(&StringMatch::default()));
    assert_eq!(api.route[0].weight, 75);
    assert_eq!(
        api.route[0]
            .destination
            .as_ref()
            .and_then(|d| d.port.as_ref())
            .map(|p| p.number),
        Some(9080)
    );
    assert_eq!(api.timeout, Some(Duration::from_secs(10)));
    let retries = api.retries.as_ref().expect("retries");
    assert_eq!(retries.attempts, 3);
    assert_eq!(retries.retry_ignore_previous_hosts, Some(true));
    assert_eq!(retries.backoff, Some(Duration::from_millis(50)));
    let cors = api.cors_policy.as_ref().expect("cors");
    assert_eq!(cors.unmatched_preflights, UnmatchedPreflights::Ignore);
    assert_eq!(cors.max_age, Some(Duration::from_secs(86_400)));
    assert_eq!(api.mirrors[0].percentage, Some(Percent { value: 5.0 }));
    let fault = api.fault.as_ref().expect("fault");
    assert_eq!(fault.abort.as_ref().and_then(|a| a.http_status), Some(503));
    assert_eq!(
        vs.http[3].redirect.as_ref().and_then(|r| r.derive_port),
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(
        vs.http[2].redirect.as_ref().and_then(|r| r.port),
        Some(8443)
    );
    assert_eq!(
        vs.http[5]
            .direct_response
            .as_ref()
            .and_then(|d| d.body.as_ref())
            .and_then(|b| b.bytes.as_deref()),
        Some("aGVsbG8=")
    );
    assert_eq!(
        vs.http[6]
            .rewrite
            .as_ref()
            .and_then(|r| r.uri_regex_rewrite.as_ref())
            .map(|r| r.matches.as_str()),
        Some("^/items/([0-9]+)$")
    );
    assert_eq!(
        vs.http[7].delegate,
        Some(Delegate {
            name: "reviews-routes".into(),
            namespace: "reviews".into()
        })
    );
    assert_eq!(
        vs.tls[0].matches[0].sni_hosts,
        vec!["login.example.com".to_string()]
    );
    assert_eq!(vs.tcp[0].matches[0].source_subnet, "10.2.0.0/16");
    assert_eq!(
        vs.export_to,
        vec![".".to_string(), "istio-system".to_string()]
    );
}

#[test]
fn snake_case_and_unknown_fields() {
    let l = load_vs(
        "{hosts: [a], http: [{route: [{destination: {host: a}}], cors_policy: {allow_origins: [{exact: x}]}}]}",
    );
    clean(&l);
    let l = expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}, wieght: 5}]}]}",
        Code::UnknownField,
        "spec.http[0].route[0].wieght",
    );
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("did you mean \"weight\"?")
    );
    expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}}], redirect: {derivePort: FROM_REQUEST}}]}",
        Code::InvalidValue,
        "spec.http[0].redirect.derivePort",
    );
}

#[test]
fn gateway_only_features_are_clean_on_gateways() {
    // JWT claim routing, `*` host and AUTO_PASSTHROUGH SNI hosts are fine
    // on a VirtualService bound to gateways only.
    clean(&load_vs(
        "{hosts: ['*'], gateways: [ingress], http: [{match: [{headers: {'@request.auth.claims.group': {exact: admin}, '@request.auth.claims[nested][key]': {prefix: a}}}], route: [{destination: {host: a}}]}]}",
    ));
    clean(&load_vs(
        "{hosts: ['outbound_.80_._.e2e.foobar.mesh'], gateways: [ingress], tls: [{match: [{sniHosts: ['outbound_.80_._.e2e.foobar.mesh']}], route: [{destination: {host: a}}]}]}",
    ));
    // A single destination needs no weight.
    clean(&load_vs(
        "{hosts: [a], tcp: [{route: [{destination: {host: a}}]}]}",
    ));
}

#[test]
fn delegate_virtual_service_has_no_hosts() {
    clean(&load_vs(&format!("{{http: [{{{ROUTE}}}]}}")));
    expect(
        &format!("{{gateways: [gw], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.gateways",
    );
    expect(
        "{tls: [{match: [{sniHosts: [a]}], route: [{destination: {host: a}}]}]}",
        Code::InvalidValue,
        "spec.tls",
    );
    expect(
        "{tcp: [{route: [{destination: {host: a}}]}]}",
        Code::InvalidValue,
        "spec.tcp",
    );
    expect(
        "{http: [{delegate: {name: b}}]}",
        Code::InvalidValue,
        "spec.http[0].delegate",
    );
}

#[test]
fn root_route_delegates() {
    expect(
        &http("delegate: {}"),
        Code::RequiredField,
        "spec.http[0].delegate.name",
    );
    expect(
        &http("delegate: {name: Bad_Name, namespace: x}"),
        Code::InvalidValue,
        "spec.http[0].delegate.name",
    );
    expect(
        &http("delegate: {name: b, namespace: Bad.NS}"),
        Code::InvalidValue,
        "spec.http[0].delegate.namespace",
    );
    expect(
        &http(&format!("delegate: {{name: b}}, {ROUTE}")),
        Code::ConflictingFields,
        "spec.http[0].route",
    );
    expect(
        &http("delegate: {name: b}, redirect: {uri: /x}"),
        Code::ConflictingFields,
        "spec.http[0].redirect",
    );
    expect(
        &http("delegate: {name: b}, directResponse: {status: 200}"),
        Code::ConflictingFields,
        "spec.http[0].directResponse",
    );
}

#[test]
fn needs_a_route_kind() {
    let l = expect("{hosts: [a]}", Code::RequiredField, "spec");
    assert_eq!(
        message_at(&l, "spec"),
        "http, tcp or tls must be provided in virtual service"
    );
}

#[test]
fn hosts() {
    let l = expect(
        &format!("{{hosts: ['*'], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    assert!(
        message_at(&l, "spec.hosts[0]")
            .contains("not allowed for virtual services bound to the mesh")
    );
    expect(
        &format!("{{hosts: ['*'], gateways: [mesh, gw], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    expect(
        &format!("{{hosts: [a_b.com], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    expect(
        &format!("{{hosts: [ok, 'a.*.com'], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[1]",
    );
    expect(
        &format!("{{hosts: [foo.123], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    let l = expect(
        &format!("{{hosts: ['*.foo.com', a.foo.com], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[1]",
    );
    assert_eq!(
        message_at(&l, "spec.hosts[1]"),
        "duplicate hosts in virtual service: *.foo.com & a.foo.com"
    );
    expect(
        &format!("{{hosts: [a, A], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.hosts[1]",
    );
    // IP addresses are allowed as hosts.
    clean(&load_vs(&format!(
        "{{hosts: [10.0.0.1, '::1'], http: [{{{ROUTE}}}]}}"
    )));
    // The AUTO_PASSTHROUGH form must be well formed.
    expect(
        "{hosts: ['outbound_.x_._'], gateways: [gw], tls: [{match: [{sniHosts: ['outbound_.x_._']}], route: [{destination: {host: a}}]}]}",
        Code::InvalidValue,
        "spec.hosts[0]",
    );
}

#[test]
fn gateway_names() {
    for bad in ["a/", "/b", "Bad/gw", "ns/Bad", "UPPER", "a.b.*"] {
        expect(
            &format!("{{hosts: [a], gateways: ['{bad}'], http: [{{{ROUTE}}}]}}"),
            Code::InvalidValue,
            "spec.gateways[0]",
        );
    }
    let l = expect(
        &format!("{{hosts: [a], gateways: [gw.istio-system], http: [{{{ROUTE}}}]}}"),
        Code::Deprecated,
        "spec.gateways[0]",
    );
    assert_eq!(l.resources.len(), 1);
    assert!(message_at(&l, "spec.gateways[0]").contains("\"istio-system/gw\""));
    expect(
        &format!("{{hosts: [a], gateways: [gw, gw], http: [{{{ROUTE}}}]}}"),
        Code::Suspicious,
        "spec.gateways[1]",
    );
    expect(
        &http(&format!("match: [{{gateways: ['x/']}}], {ROUTE}")),
        Code::InvalidValue,
        "spec.http[0].match[0].gateways[0]",
    );
}

#[test]
fn http_route_actions() {
    expect(&http("name: x"), Code::RequiredField, "spec.http[0].route");
    expect(
        &http(&format!("{ROUTE}, redirect: {{uri: /x}}")),
        Code::ConflictingFields,
        "spec.http[0].redirect",
    );
    expect(
        &http("redirect: {uri: /x}, fault: {abort: {httpStatus: 500}}"),
        Code::ConflictingFields,
        "spec.http[0].fault",
    );
    expect(
        &http("redirect: {uri: /x}, rewrite: {uri: /y}"),
        Code::ConflictingFields,
        "spec.http[0].rewrite",
    );
    expect(
        &http("redirect: {uri: /x}, directResponse: {status: 200}"),
        Code::ConflictingFields,
        "spec.http[0].directResponse",
    );
    expect(
        &http(&format!("{ROUTE}, directResponse: {{status: 200}}")),
        Code::ConflictingFields,
        "spec.http[0].directResponse",
    );
    expect(
        &http("directResponse: {status: 200}, fault: {abort: {httpStatus: 500}}"),
        Code::ConflictingFields,
        "spec.http[0].fault",
    );
    expect(
        &http("directResponse: {status: 200}, rewrite: {uri: /y}"),
        Code::ConflictingFields,
        "spec.http[0].rewrite",
    );
}

#[test]
fn route_weights() {
    // Istio's galley sample: 75 + 15 in a delegate VirtualService.
    let l = expect(
        "{http: [{route: [{destination: {host: c, subset: v1}, weight: 75}, {destination: {host: c, subset: v2}, weight: 15}]}]}",
        Code::InvalidValue,
        "spec.http[0].route",
    );
    assert_eq!(
        message_at(&l, "spec.http[0].route"),
        "weight 75 + 15 = 90: route weights must add up to 100"
    );
    let l = expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}}, {destination: {host: b}}, {destination: {host: c}}]}]}",
        Code::InvalidValue,
        "spec.http[0].route",
    );
    assert!(message_at(&l, "spec.http[0].route").starts_with("weights 0 + 0 + 0 = 0"));
    expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}, weight: 150}]}]}",
        Code::InvalidValue,
        "spec.http[0].route[0].weight",
    );
    expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}, weight: -5}, {destination: {host: b}, weight: 105}]}]}",
        Code::InvalidValue,
        "spec.http[0].route[0].weight",
    );
    expect(
        "{hosts: [a], tls: [{match: [{sniHosts: [a]}], route: [{destination: {host: a}, weight: 50}, {destination: {host: b}, weight: 20}]}]}",
        Code::InvalidValue,
        "spec.tls[0].route",
    );
    expect(
        "{hosts: [a], tcp: [{route: [{destination: {host: a}, weight: 50}, {destination: {host: b}}]}]}",
        Code::InvalidValue,
        "spec.tcp[0].route",
    );
}

#[test]
fn destinations() {
    expect(
        &http("route: [{weight: 100}]"),
        Code::RequiredField,
        "spec.http[0].route[0].destination",
    );
    expect(
        &http("route: [{destination: {subset: v1}}]"),
        Code::RequiredField,
        "spec.http[0].route[0].destination.host",
    );
    for bad in ["'*'", "10.0.0.1", "a..b", "'a*'"] {
        expect(
            &http(&format!("route: [{{destination: {{host: {bad}}}}}]")),
            Code::InvalidValue,
            "spec.http[0].route[0].destination.host",
        );
    }
    expect(
        &http("route: [{destination: {host: a, subset: V_1}}]"),
        Code::InvalidValue,
        "spec.http[0].route[0].destination.subset",
    );
    expect(
        &http("route: [{destination: {host: a, port: {number: 70000}}}]"),
        Code::InvalidValue,
        "spec.http[0].route[0].destination.port.number",
    );
    expect(
        &http("route: [{destination: {host: a, port: {}}}]"),
        Code::InvalidValue,
        "spec.http[0].route[0].destination.port.number",
    );
}

#[test]
fn string_matches() {
    // Istio's galley sample: a look-ahead is not RE2.
    let l = load(
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: ecma-not-v2\nspec:\n  hosts:\n  - \"*\"\n  gateways:\n  - bookinfo-gateway\n  http:\n  - match:\n    - uri:\n        regex: \"^(?!.<path to match here>.).*\"\n    route:\n    - destination:\n        host: productpage\n",
    );
    let d = l
        .diagnostics
        .iter()
        .find(|d| d.code == Code::InvalidValue)
        .expect("regex error");
    assert_eq!(
        d.path.as_ref().map(|p| p.to_string()).as_deref(),
        Some("spec.http[0].match[0].uri.regex")
    );
    assert_eq!(d.line, Some(13));
    assert!(l.resources.is_empty());

    let m = |cond: &str| http(&format!("match: [{{{cond}}}], {ROUTE}"));
    expect(
        &m("uri: {exact: /a, prefix: /b}"),
        Code::ConflictingFields,
        "spec.http[0].match[0].uri",
    );
    expect(&m("uri: {}"), Code::Suspicious, "spec.http[0].match[0].uri");
    clean(&load_vs(&m("uri: {prefix: ''}")));
    expect(
        &m("scheme: {prefix: ''}"),
        Code::InvalidValue,
        "spec.http[0].match[0].scheme.prefix",
    );
    expect(
        &m("authority: {regex: ''}"),
        Code::InvalidValue,
        "spec.http[0].match[0].authority.regex",
    );
    expect(
        &m("headers: {x-a: {prefix: ''}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].headers[x-a].prefix",
    );
    expect(
        &m("headers: {x-a: {regex: '('}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].headers[x-a].regex",
    );
    expect(
        &m("headers: {'x a': {exact: b}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].headers[x a]",
    );
    expect(
        &m("withoutHeaders: {x-a: {regex: '[z'}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].withoutHeaders[x-a].regex",
    );
    expect(
        &m("queryParams: {q: {prefix: ''}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].queryParams[q].prefix",
    );
    let long = "a".repeat(1025);
    expect(
        &m(&format!("uri: {{regex: {long}}}")),
        Code::InvalidValue,
        "spec.http[0].match[0].uri.regex",
    );
    expect(
        &m("method: {exact: get}"),
        Code::Suspicious,
        "spec.http[0].match[0].method.exact",
    );
    // JWT claims need a gateway-only VirtualService.
    expect(
        &m("headers: {'@request.auth.claims.group': {exact: a}}"),
        Code::InvalidValue,
        "spec.http[0].match[0].headers[@request.auth.claims.group]",
    );
    expect(
        "{hosts: [a], gateways: [gw], http: [{match: [{headers: {'@request.auth.claims.': {exact: a}}}], route: [{destination: {host: a}}]}]}",
        Code::InvalidValue,
        "spec.http[0].match[0].headers[@request.auth.claims.]",
    );
}

#[test]
fn match_sources_and_ports() {
    let m = |cond: &str| http(&format!("match: [{{{cond}}}], {ROUTE}"));
    expect(
        &m("port: 70000"),
        Code::InvalidValue,
        "spec.http[0].match[0].port",
    );
    expect(
        &m("sourceLabels: {app: '*'}"),
        Code::InvalidValue,
        "spec.http[0].match[0].sourceLabels[app]",
    );
    expect(
        &m("sourceNamespace: Bad_NS"),
        Code::InvalidValue,
        "spec.http[0].match[0].sourceNamespace",
    );
    expect(
        "{hosts: [a], gateways: [gw], http: [{match: [{sourceLabels: {app: x}}], route: [{destination: {host: a}}]}]}",
        Code::Suspicious,
        "spec.http[0].match[0].sourceLabels",
    );
}

#[test]
fn header_operations() {
    let h = |ops: &str| http(&format!("headers: {{{ops}}}, {ROUTE}"));
    expect(
        &h("request: {set: {':path': /x}}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.set[:path]",
    );
    expect(
        &h("response: {set: {host: x}}"),
        Code::InvalidValue,
        "spec.http[0].headers.response.set[host]",
    );
    expect(
        &h("response: {add: {':authority': x}}"),
        Code::InvalidValue,
        "spec.http[0].headers.response.add[:authority]",
    );
    expect(
        &h("request: {remove: [Host]}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.remove[0]",
    );
    expect(
        &h("request: {remove: ['']}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.remove[0]",
    );
    expect(
        &h("request: {set: {'bad name': x}}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.set[bad name]",
    );
    expect(
        &h("request: {set: {x-a: '50%'}}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.set[x-a]",
    );
    expect(
        &h("request: {set: {x-a: '%FOO'}}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.set[x-a]",
    );
    expect(
        &h("request: {add: {x-a: \"a\\u0001b\"}}"),
        Code::InvalidValue,
        "spec.http[0].headers.request.add[x-a]",
    );
    expect(
        "{hosts: [a], http: [{route: [{destination: {host: a}, headers: {response: {remove: [':status']}}}]}]}",
        Code::InvalidValue,
        "spec.http[0].route[0].headers.response.remove[0]",
    );
    // The request authority may be set once, here or by rewrite.
    clean(&load_vs(&h(
        "request: {set: {':authority': new.example.com}}",
    )));
    expect(
        &http(&format!(
            "rewrite: {{authority: a.com}}, headers: {{request: {{set: {{host: b.com}}}}}}, {ROUTE}"
        )),
        Code::ConflictingFields,
        "spec.http[0].headers.request.set[host]",
    );
}

#[test]
fn timeouts_and_retries() {
    expect(
        &http(&format!("timeout: 0s, {ROUTE}")),
        Code::InvalidValue,
        "spec.http[0].timeout",
    );
    expect(
        &http(&format!("timeout: 1500us, {ROUTE}")),
        Code::InvalidValue,
        "spec.http[0].timeout",
    );
    expect(
        &http(&format!("timeout: -1s, {ROUTE}")),
        Code::WrongType,
        "spec.http[0].timeout",
    );
    let r = |retries: &str| http(&format!("retries: {{{retries}}}, {ROUTE}"));
    expect(
        &r("attempts: -1"),
        Code::InvalidValue,
        "spec.http[0].retries.attempts",
    );
    let l = expect(
        &r("perTryTimeout: 2s"),
        Code::InvalidValue,
        "spec.http[0].retries.attempts",
    );
    assert!(message_at(&l, "spec.http[0].retries.attempts").contains("attempts are set to 0"));
    expect(
        &r("attempts: 2, perTryTimeout: 0s"),
        Code::InvalidValue,
        "spec.http[0].retries.perTryTimeout",
    );
    expect(
        &r("attempts: 2, backoff: 0s"),
        Code::InvalidValue,
        "spec.http[0].retries.backoff",
    );
    let l = expect(
        &r("attempts: 2, retryOn: '5xx,bogus'"),
        Code::InvalidValue,
        "spec.http[0].retries.retryOn",
    );
    assert_eq!(
        message_at(&l, "spec.http[0].retries.retryOn"),
        "\"bogus\" is not a valid retryOn policy"
    );
    let l = expect(
        &r("attempts: 2, retryOn: '5xx, reset'"),
        Code::InvalidValue,
        "spec.http[0].retries.retryOn",
    );
    assert!(
        l.diagnostics[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("without spaces"))
    );
    expect(
        &r("attempts: 2, retryOn: '599'"),
        Code::InvalidValue,
        "spec.http[0].retries.retryOn",
    );
    clean(&load_vs(&r("attempts: 0")));
}

#[test]
fn faults() {
    let f = |fault: &str| http(&format!("fault: {{{fault}}}, {ROUTE}"));
    expect(&f(""), Code::RequiredField, "spec.http[0].fault");
    expect(
        &f("delay: {percentage: {value: 5}}"),
        Code::RequiredField,
        "spec.http[0].fault.delay.fixedDelay",
    );
    expect(
        &f("delay: {fixedDelay: 1s, exponentialDelay: 1s}"),
        Code::ConflictingFields,
        "spec.http[0].fault.delay.exponentialDelay",
    );
    expect(
        &f("delay: {exponentialDelay: 1s}"),
        Code::InvalidValue,
        "spec.http[0].fault.delay.exponentialDelay",
    );
    expect(
        &f("delay: {fixedDelay: 0s}"),
        Code::InvalidValue,
        "spec.http[0].fault.delay.fixedDelay",
    );
    expect(
        &f("delay: {fixedDelay: 1s, percentage: {value: 101}}"),
        Code::InvalidValue,
        "spec.http[0].fault.delay.percentage.value",
    );
    expect(
        &f("delay: {fixedDelay: 1s, percentage: {value: 0.00001}}"),
        Code::InvalidValue,
        "spec.http[0].fault.delay.percentage.value",
    );
    let l = expect(
        &f("delay: {fixedDelay: 1s, percent: 50}"),
        Code::Deprecated,
        "spec.http[0].fault.delay.percent",
    );
    assert_eq!(l.resources.len(), 1);
    expect(
        &f("delay: {fixedDelay: 1s, percent: 150}"),
        Code::InvalidValue,
        "spec.http[0].fault.delay.percent",
    );
    expect(
        &f("abort: {httpStatus: 600}"),
        Code::InvalidValue,
        "spec.http[0].fault.abort.httpStatus",
    );
    expect(
        &f("abort: {httpStatus: 199}"),
        Code::InvalidValue,
        "spec.http[0].fault.abort.httpStatus",
    );
    let l = expect(
        &f("abort: {grpcStatus: UNAVAILBLE}"),
        Code::InvalidValue,
        "spec.http[0].fault.abort.grpcStatus",
    );
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("did you mean \"UNAVAILABLE\"?")
    );
    expect(
        &f("abort: {http2Error: CANCEL}"),
        Code::InvalidValue,
        "spec.http[0].fault.abort.http2Error",
    );
    expect(
        &f("abort: {httpStatus: 500, grpcStatus: INTERNAL}"),
        Code::ConflictingFields,
        "spec.http[0].fault.abort",
    );
    expect(
        &f("abort: {percentage: {value: 5}}"),
        Code::Suspicious,
        "spec.http[0].fault.abort",
    );
}

#[test]
fn mirroring() {
    expect(
        &http(&format!(
            "mirror: {{host: m}}, mirrors: [{{destination: {{host: n}}}}], {ROUTE}"
        )),
        Code::ConflictingFields,
        "spec.http[0].mirrors",
    );
    expect(
        &http(&format!("mirrors: [{{percentage: {{value: 5}}}}], {ROUTE}")),
        Code::RequiredField,
        "spec.http[0].mirrors[0].destination",
    );
    expect(
        &http(&format!(
            "mirrors: [{{destination: {{host: m}}, percentage: {{value: 500}}}}], {ROUTE}"
        )),
        Code::InvalidValue,
        "spec.http[0].mirrors[0].percentage.value",
    );
    expect(
        &http(&format!("mirror: {{host: '*'}}, {ROUTE}")),
        Code::InvalidValue,
        "spec.http[0].mirror.host",
    );
    expect(
        &http(&format!(
            "mirror: {{host: m}}, mirrorPercentage: {{value: 150}}, {ROUTE}"
        )),
        Code::InvalidValue,
        "spec.http[0].mirrorPercentage.value",
    );
    let l = expect(
        &http(&format!("mirror: {{host: m}}, mirrorPercent: 50, {ROUTE}")),
        Code::Deprecated,
        "spec.http[0].mirrorPercent",
    );
    assert_eq!(l.resources.len(), 1);
    expect(
        &http(&format!("mirror: {{host: m}}, mirrorPercent: 150, {ROUTE}")),
        Code::InvalidValue,
        "spec.http[0].mirrorPercent",
    );
    expect(
        &http(&format!("mirrorPercentage: {{value: 10}}, {ROUTE}")),
        Code::Suspicious,
        "spec.http[0].mirrorPercentage",
    );
}

#[test]
fn redirects() {
    let r = |redirect: &str| http(&format!("redirect: {{{redirect}}}"));
    expect(&r(""), Code::InvalidValue, "spec.http[0].redirect");
    expect(
        &r("redirectCode: 301"),
        Code::InvalidValue,
        "spec.http[0].redirect",
    );
    let l = expect(
        &r("uri: /x, redirectCode: 305"),
        Code::InvalidValue,
        "spec.http[0].redirect.redirectCode",
    );
    assert!(message_at(&l, "spec.http[0].redirect.redirectCode").contains("not supported"));
    expect(
        &r("uri: /x, redirectCode: 200"),
        Code::InvalidValue,
        "spec.http[0].redirect.redirectCode",
    );
    expect(
        &r("scheme: ftp"),
        Code::InvalidValue,
        "spec.http[0].redirect.scheme",
    );
    expect(
        &r("port: 0"),
        Code::InvalidValue,
        "spec.http[0].redirect.port",
    );
    expect(
        &r("port: 80, derivePort: FROM_PROTOCOL_DEFAULT"),
        Code::ConflictingFields,
        "spec.http[0].redirect.derivePort",
    );
}

#[test]
fn direct_responses() {
    let d = |resp: &str| http(&format!("directResponse: {{{resp}}}"));
    expect(
        &d("body: {string: x}"),
        Code::RequiredField,
        "spec.http[0].directResponse.status",
    );
    expect(
        &d("status: 700"),
        Code::InvalidValue,
        "spec.http[0].directResponse.status",
    );
    expect(
        &d("status: 200, body: {string: a, bytes: YQ==}"),
        Code::ConflictingFields,
        "spec.http[0].directResponse.body",
    );
    expect(
        &d("status: 200, body: {bytes: 'not base64!'}"),
        Code::InvalidValue,
        "spec.http[0].directResponse.body.bytes",
    );
    expect(
        &d("status: 200, body: {}"),
        Code::Suspicious,
        "spec.http[0].directResponse.body",
    );
    let big = "x".repeat(1024 * 1024 + 1);
    expect(
        &d(&format!("status: 200, body: {{string: {big}}}")),
        Code::InvalidValue,
        "spec.http[0].directResponse.body",
    );
    let large = "x".repeat(200 * 1024);
    let l = expect(
        &d(&format!("status: 200, body: {{string: {large}}}")),
        Code::Suspicious,
        "spec.http[0].directResponse.body",
    );
    assert_eq!(l.resources.len(), 1);
}

#[test]
fn rewrites() {
    let r = |rewrite: &str| http(&format!("rewrite: {{{rewrite}}}, {ROUTE}"));
    expect(&r(""), Code::InvalidValue, "spec.http[0].rewrite");
    expect(
        &r("uri: /a, uriRegexRewrite: {match: a, rewrite: b}"),
        Code::ConflictingFields,
        "spec.http[0].rewrite.uriRegexRewrite",
    );
    expect(
        &r("uriRegexRewrite: {rewrite: b}"),
        Code::RequiredField,
        "spec.http[0].rewrite.uriRegexRewrite.match",
    );
    expect(
        &r("uriRegexRewrite: {match: a}"),
        Code::RequiredField,
        "spec.http[0].rewrite.uriRegexRewrite.rewrite",
    );
    expect(
        &r("uriRegexRewrite: {match: '(?=a)', rewrite: b}"),
        Code::InvalidValue,
        "spec.http[0].rewrite.uriRegexRewrite.match",
    );
}

#[test]
fn cors() {
    let c = |cors: &str| http(&format!("corsPolicy: {{{cors}}}, {ROUTE}"));
    expect(
        &c("allowOrigins: [{}]"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.allowOrigins[0]",
    );
    expect(
        &c("allowOrigins: [{exact: ''}]"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.allowOrigins[0].exact",
    );
    expect(
        &c("allowOrigins: [{regex: '(?!x)'}]"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.allowOrigins[0].regex",
    );
    let l = expect(
        &c("allowMethods: [GET, get]"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.allowMethods[1]",
    );
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("methods are uppercase: \"GET\"")
    );
    expect(
        &c("allowHeaders: ['bad header']"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.allowHeaders[0]",
    );
    expect(
        &c("exposeHeaders: ['']"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.exposeHeaders[0]",
    );
    expect(
        &c("maxAge: 1500ms"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.maxAge",
    );
    expect(
        &c("maxAge: 0s"),
        Code::InvalidValue,
        "spec.http[0].corsPolicy.maxAge",
    );
    let l = expect(
        &c("allowOrigin: [a.com]"),
        Code::Deprecated,
        "spec.http[0].corsPolicy.allowOrigin",
    );
    assert_eq!(l.resources.len(), 1);
    clean(&load_vs(&c("allowHeaders: ['*'], allowMethods: ['*']")));
}

#[test]
fn tls_routes() {
    let t = |route: &str| format!("{{hosts: ['*.example.com'], tls: [{{{route}}}]}}");
    let dest = "route: [{destination: {host: a}}]";
    expect(&t(dest), Code::RequiredField, "spec.tls[0].match");
    expect(
        &t(&format!("match: [{{port: 443}}], {dest}")),
        Code::RequiredField,
        "spec.tls[0].match[0].sniHosts",
    );
    let l = expect(
        &t(&format!("match: [{{sniHosts: [other.org]}}], {dest}")),
        Code::InvalidValue,
        "spec.tls[0].match[0].sniHosts[0]",
    );
    assert!(message_at(&l, "spec.tls[0].match[0].sniHosts[0]").contains("not a compatible subset"));
    expect(
        &t(&format!(
            "match: [{{sniHosts: ['a..example.com']}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tls[0].match[0].sniHosts[0]",
    );
    expect(
        &t(&format!("match: [{{sniHosts: [10.0.0.1]}}], {dest}")),
        Code::Suspicious,
        "spec.tls[0].match[0].sniHosts[0]",
    );
    expect(
        &t("match: [{sniHosts: [a.example.com]}]"),
        Code::RequiredField,
        "spec.tls[0].route",
    );
    expect(
        &t(&format!(
            "match: [{{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/99]}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tls[0].match[0].destinationSubnets[0]",
    );
    expect(
        &t(&format!(
            "match: [{{sniHosts: [a.example.com], port: 99999}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tls[0].match[0].port",
    );
    expect(
        &t(&format!(
            "match: [{{sniHosts: [a.example.com], sourceNamespace: 'a b'}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tls[0].match[0].sourceNamespace",
    );
    // A wildcard SNI host within a wildcard VirtualService host is fine.
    clean(&load_vs(&t(&format!(
        "match: [{{sniHosts: ['*.example.com', a.example.com]}}], {dest}"
    ))));
}

#[test]
fn tcp_routes() {
    let t = |route: &str| format!("{{hosts: [a], tcp: [{{{route}}}]}}");
    let dest = "route: [{destination: {host: a}}]";
    expect(
        &t("match: [{port: 80}]"),
        Code::RequiredField,
        "spec.tcp[0].route",
    );
    expect(
        &t(&format!("match: [{{sourceSubnet: nope}}], {dest}")),
        Code::InvalidValue,
        "spec.tcp[0].match[0].sourceSubnet",
    );
    expect(
        &t(&format!(
            "match: [{{destinationSubnets: [300.0.0.1]}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tcp[0].match[0].destinationSubnets[0]",
    );
    expect(
        &t(&format!("match: [{{port: 65536}}], {dest}")),
        Code::InvalidValue,
        "spec.tcp[0].match[0].port",
    );
    expect(
        &t(&format!(
            "match: [{{sourceLabels: {{'a/b/c': x}}}}], {dest}"
        )),
        Code::InvalidValue,
        "spec.tcp[0].match[0].sourceLabels[a/b/c]",
    );
    expect(
        &t(&format!("match: [{{gateways: ['']}}], {dest}")),
        Code::InvalidValue,
        "spec.tcp[0].match[0].gateways[0]",
    );
    expect(
        &t("route: [{destination: {host: '*'}}]"),
        Code::InvalidValue,
        "spec.tcp[0].route[0].destination.host",
    );
}

#[test]
fn export_to() {
    expect(
        &format!("{{hosts: [a], exportTo: [a, a], http: [{{{ROUTE}}}]}}"),
        Code::InvalidValue,
        "spec.exportTo[1]",
    );
}

#[test]
fn host_overlap() {
    assert!(host_matches("*.foo.com", "a.foo.com"));
    assert!(host_matches("*.com", "*.foo.com"));
    assert!(host_matches("*", "anything"));
    assert!(host_matches("A.com", "a.COM"));
    assert!(!host_matches("a.foo.com", "b.foo.com"));
    assert!(!host_matches("*.foo.com", "foo.com"));
}

/// Istio's own samples for VirtualService and Gateway (see
/// `shared/istio-samples/README.md`).
#[test]
fn istio_samples_for_virtual_services_and_gateways() {
    let dir = samples();
    let mut clean = vec![
        dir.join("datasets-head/networking-v1-VirtualService.yaml"),
        dir.join("datasets-head/networking-v1-Gateway.yaml"),
    ];
    for entry in std::fs::read_dir(dir.join("bookinfo")).expect("bookinfo") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("virtual-service") || name.starts_with("bookinfo-gateway") {
            clean.push(path);
        }
    }
    for file in clean {
        let l = load_file(&file, &LoadOptions::default());
        assert!(!l.resources.is_empty(), "{}", file.display());
        assert!(
            l.diagnostics.is_empty(),
            "{}: {:#?}",
            file.display(),
            lines(&l)
        );
    }
    for (file, path) in [
        (
            "galley-2021/networking-v1alpha3-VirtualService-invalid.yaml",
            "spec.http[0].route",
        ),
        (
            "galley-2021/networking-v1alpha3-VirtualService-regexp-invalid.yaml",
            "spec.http[0].match[0].uri.regex",
        ),
        (
            "galley-2021/networking-v1beta-Gateway-invalid.yaml",
            "spec.servers",
        ),
    ] {
        let l = load_file(&dir.join(file), &LoadOptions::default());
        assert!(l.resources.is_empty(), "{file} should be rejected");
        assert!(
            l.diagnostics.iter().any(|d| d.severity == Severity::Error
                && d.path.as_ref().map(|p| p.to_string()).as_deref() == Some(path)),
            "{file}: want an error at {path}: {:#?}",
            lines(&l)
        );
    }
}
