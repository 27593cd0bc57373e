//! The VirtualService features of the `features` service, checked end to
//! end through the client sidecar with curl: redirects (each code,
//! authority, uri, scheme, port and derived port, as Envoy writes the
//! `location`), regex and authority rewrites, direct responses, header
//! operations on requests and responses, and every kind of match. The
//! service has two ports (9080 and 9085) on the `web` app; what no rule
//! matches goes to the app, whose echo starts "web v1". Match rules answer
//! directly with their own name, so a reply says which rule matched.

use crate::harness::{Proxy, Reply, curl};

/// The `features` service: ports 9080 and 9085, both on `app` (a port).
pub fn service(app: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: features, namespace: shop}}
spec:
  hosts: [features.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}, {{number: 9085, name: http-alt, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {app}, http-alt: {app}}}}}]
---
"#
    )
}

/// One rule that answers 200 with `name` when `conditions` (a match
/// entry's fields) hold.
fn rule(conditions: &str, name: &str) -> String {
    format!(
        "  - match: [{{{conditions}}}]\n    directResponse: {{status: 200, body: {{string: {name}}}}}\n"
    )
}

/// The `features` VirtualService.
pub fn routes() -> String {
    let mut yaml = String::from(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: features, namespace: shop}
spec:
  hosts: [features]
  http:
  - match: [{uri: {exact: /redirect/default}}]
    redirect: {uri: /moved}
  - match: [{uri: {prefix: /redirect/query}}]
    redirect: {uri: "/moved?from=redirect", redirectCode: 303}
  - match: [{uri: {prefix: /redirect/authority}}]
    redirect: {authority: elsewhere.example, redirectCode: 302}
  - match: [{uri: {prefix: /redirect/scheme}}]
    redirect: {scheme: https}
  - match: [{uri: {prefix: /redirect/port}}]
    redirect: {port: 8443, redirectCode: 307}
  - match: [{uri: {prefix: /redirect/derive}}]
    redirect: {authority: other.example, derivePort: FROM_REQUEST_PORT, redirectCode: 308}
  - match: [{uri: {prefix: /redirect/https}}]
    redirect: {scheme: https, authority: secure.example, port: 443}
  - match: [{uri: {prefix: /regex/}}]
    rewrite: {uriRegexRewrite: {match: "^/regex/([^/]+)/(.*)$", rewrite: "/swapped/\\2/\\1"}}
    route: [{destination: {host: features}}]
  - match: [{uri: {prefix: /authority}}]
    rewrite: {authority: "rewritten.example:1234"}
    route: [{destination: {host: features}}]
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
    headers: {response: {set: {x-direct: "yes"}}}
  - match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-set: one}, add: {x-add: two}, remove: [x-remove]}
      response: {set: {x-sample-version: overridden}, add: {x-resp-add: three}, remove: [x-sample-name]}
    route:
    - destination: {host: features}
      headers: {request: {set: {x-dest: d}}, response: {add: {x-dest-resp: e}}}
"#,
    );
    for (conditions, name) in [
        ("uri: {exact: /m/exact}", "uri-exact"),
        (r#"uri: {regex: "/m/re/[0-9]+"}"#, "uri-regex"),
        ("uri: {prefix: /m/method}, method: {exact: POST}", "method"),
        (
            r#"uri: {prefix: /m/authority}, authority: {exact: "features.shop:9080"}"#,
            "authority",
        ),
        (
            r#"uri: {prefix: /m/query}, queryParams: {v: {exact: "1"}, q: {regex: "a+"}}"#,
            "query",
        ),
        (
            "uri: {prefix: /m/scheme}, scheme: {exact: https}",
            "scheme-https",
        ),
        (
            "uri: {prefix: /m/scheme}, scheme: {exact: http}",
            "scheme-http",
        ),
        ("uri: {prefix: /m/port}, port: 9085", "port"),
        (
            r#"uri: {prefix: /m/headers}, headers: {x-p: {prefix: pre}, x-r: {regex: "v[0-9]+"}}"#,
            "headers",
        ),
        (
            r#"uri: {prefix: /m/without}, withoutHeaders: {x-block: {exact: "yes"}}"#,
            "without",
        ),
        ("uri: {exact: /m/case}, ignoreUriCase: true", "case"),
    ] {
        yaml.push_str(&rule(conditions, name));
    }
    // Two match entries: either one.
    yaml.push_str("  - match: [{uri: {prefix: /m/or/a}}, {uri: {prefix: /m/or/b}}]\n");
    yaml.push_str("    directResponse: {status: 200, body: {string: either}}\n");
    yaml.push_str("  - route: [{destination: {host: features}}]\n---\n");
    yaml
}

const BASE: &str = "http://features.shop.svc.cluster.local:9080";

fn get(client: &Proxy, url: &str, args: &[&str]) -> Reply {
    curl(url, Some(client.outbound), args)
}

/// Which rule answered: its name, or `app` when the request reached the app.
fn matched(client: &Proxy, url: &str, args: &[&str]) -> String {
    let r = get(client, url, args);
    assert_eq!(r.status, 200, "{url} {args:?}: {r:?}");
    if r.body.starts_with("web v1\n") {
        "app".into()
    } else {
        r.body
    }
}

pub fn check(client: &Proxy) {
    redirects(client);
    rewrites_and_direct_responses(client);
    header_operations(client);
    match_kinds(client);
}

/// Envoy's `location`: the request's scheme and Host unless replaced; a
/// new port replaces the Host's; the request's query kept unless the new
/// path has its own.
fn redirects(client: &Proxy) {
    for (path, status, location) in [
        (
            "/redirect/default?q=1",
            301,
            "http://features.shop.svc.cluster.local:9080/moved?q=1",
        ),
        (
            "/redirect/query?q=1",
            303,
            "http://features.shop.svc.cluster.local:9080/moved?from=redirect",
        ),
        (
            "/redirect/authority/x?q=1",
            302,
            "http://elsewhere.example/redirect/authority/x?q=1",
        ),
        // A new scheme keeps the Host's port unless it is the old
        // scheme's default (Envoy's processRequestHost).
        (
            "/redirect/scheme",
            301,
            "https://features.shop.svc.cluster.local:9080/redirect/scheme",
        ),
        (
            "/redirect/port",
            307,
            "http://features.shop.svc.cluster.local:8443/redirect/port",
        ),
        // FROM_REQUEST_PORT: the port the route serves.
        (
            "/redirect/derive",
            308,
            "http://other.example:9080/redirect/derive",
        ),
        // https on 443: no explicit port (Istio drops it).
        (
            "/redirect/https",
            301,
            "https://secure.example/redirect/https",
        ),
    ] {
        let r = get(client, &format!("{BASE}{path}"), &[]);
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert_eq!(r.header("location"), Some(location), "{path}: {r:?}");
        assert_eq!(
            r.header("x-sample-name"),
            None,
            "{path}: answered by the proxy"
        );
    }
}

fn rewrites_and_direct_responses(client: &Proxy) {
    // A regex rewrite of the path; the query stays, and the original path
    // (with its query, as Envoy keeps it) goes along.
    let r = get(client, &format!("{BASE}/regex/a/b/c?x=1"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .contains("request: GET /swapped/b/c/a?x=1 HTTP/1.1\n"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("header: x-envoy-original-path: /regex/a/b/c?x=1\n"),
        "{}",
        r.body
    );
    // An authority rewrite: the app sees the new Host.
    let r = get(client, &format!("{BASE}/authority/x"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("authority: rewritten.example:1234\n"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("header: host: rewritten.example:1234\n"),
        "{}",
        r.body
    );
    // A direct response: status, body as text, the route's response headers.
    let r = get(client, &format!("{BASE}/direct"), &[]);
    assert_eq!(r.status, 418, "{r:?}");
    assert_eq!(r.body, "short and stout");
    assert_eq!(r.header("content-type"), Some("text/plain"), "{r:?}");
    assert_eq!(r.header("x-direct"), Some("yes"), "{r:?}");
    assert_eq!(r.header("x-sample-name"), None, "{r:?}");
}

/// `set` replaces, `add` appends, `remove` removes, on the request (the
/// app's echo) and the response (curl's headers); the destination's own
/// operations too.
fn header_operations(client: &Proxy) {
    let r = get(
        client,
        &format!("{BASE}/headers"),
        &[
            "-H",
            "x-set: zero",
            "-H",
            "x-add: one",
            "-H",
            "x-remove: bye",
            "-H",
            "x-keep: kept",
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    for seen in [
        "header: x-set: one\n",
        "header: x-add: one\n",
        "header: x-add: two\n",
        "header: x-keep: kept\n",
        "header: x-dest: d\n",
    ] {
        assert!(r.body.contains(seen), "no {seen:?} in {}", r.body);
    }
    for gone in ["x-set: zero", "x-remove"] {
        assert!(!r.body.contains(gone), "{gone:?} in {}", r.body);
    }
    assert_eq!(r.header("x-sample-version"), Some("overridden"), "{r:?}");
    assert_eq!(r.header("x-sample-name"), None, "{r:?}");
    assert_eq!(r.header("x-resp-add"), Some("three"), "{r:?}");
    assert_eq!(r.header("x-dest-resp"), Some("e"), "{r:?}");
}

fn match_kinds(client: &Proxy) {
    let on = |port: u16, path: &str| format!("http://features.shop.svc.cluster.local:{port}{path}");
    let cases: &[(String, &[&str], &str)] = &[
        (on(9080, "/m/exact"), &[], "uri-exact"),
        (on(9080, "/m/exact/more"), &[], "app"),
        (on(9080, "/m/re/123"), &[], "uri-regex"),
        // A regex matches the whole path.
        (on(9080, "/m/re/123/x"), &[], "app"),
        (on(9080, "/m/re/12a"), &[], "app"),
        (on(9080, "/m/method"), &["-X", "POST"], "method"),
        (on(9080, "/m/method"), &[], "app"),
        (
            "http://features.shop:9080/m/authority".into(),
            &[],
            "authority",
        ),
        ("http://features:9080/m/authority".into(), &[], "app"),
        (on(9080, "/m/query?q=aaa&v=1"), &[], "query"),
        (on(9080, "/m/query?v=2&q=aaa"), &[], "app"),
        (on(9080, "/m/query?v=1&q=ab"), &[], "app"),
        (on(9080, "/m/query?v=1"), &[], "app"),
        (on(9080, "/m/scheme"), &[], "scheme-http"),
        (on(9085, "/m/port"), &[], "port"),
        (on(9080, "/m/port"), &[], "app"),
        (
            on(9080, "/m/headers"),
            &["-H", "x-p: prefixed", "-H", "x-r: v12"],
            "headers",
        ),
        (
            on(9080, "/m/headers"),
            &["-H", "x-p: nope", "-H", "x-r: v12"],
            "app",
        ),
        (
            on(9080, "/m/headers"),
            &["-H", "x-p: prefixed", "-H", "x-r: v12x"],
            "app",
        ),
        (on(9080, "/m/without"), &[], "without"),
        (on(9080, "/m/without"), &["-H", "x-block: no"], "without"),
        (on(9080, "/m/without"), &["-H", "x-block: yes"], "app"),
        (on(9080, "/M/Case"), &[], "case"),
        (on(9080, "/m/or/b"), &[], "either"),
        (on(9080, "/m/or/c"), &[], "app"),
    ];
    for (url, args, want) in cases {
        assert_eq!(matched(client, url, args), *want, "{url} {args:?}");
    }
}
