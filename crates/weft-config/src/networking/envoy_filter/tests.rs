use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, found, indent, lines, load_spec};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1alpha3", "EnvoyFilter", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

/// Loads `spec`, asserting one resource and no diagnostic but the note
/// every EnvoyFilter gets.
#[track_caller]
fn clean(spec: &str) -> Loaded {
    let l = load(spec);
    let others: Vec<_> = found(&l)
        .into_iter()
        .filter(|(code, _)| *code != Code::NotSupported)
        .collect();
    assert!(others.is_empty(), "{spec}\n{:#?}", lines(&l));
    assert_eq!(l.resources.len(), 1);
    l
}

/// One patch, `applyTo` and the rest given.
#[track_caller]
fn expect_patch(patch: &str, code: Code, path: &str) {
    expect(&format!("configPatches:\n-\n{}", indent(patch)), code, path);
}

const FULL: &str = r#"workloadSelector: {labels: {app: reviews}}
priority: -10
configPatches:
- applyTo: HTTP_FILTER
  match:
    context: SIDECAR_INBOUND
    proxy: {proxyVersion: '^1\.2[0-9].*', metadata: {ISTIO_VERSION: "1.24"}}
    listener:
      portNumber: 8080
      portName: http
      name: 0.0.0.0_8080
      listenerFilter: envoy.filters.listener.tls_inspector
      filterChain:
        name: inbound
        sni: reviews.example.com
        transportProtocol: raw_buffer
        applicationProtocols: "h2,http/1.1"
        destinationPort: 8080
        filter:
          name: envoy.filters.network.http_connection_manager
          subFilter: {name: envoy.filters.http.router}
  patch:
    operation: INSERT_BEFORE
    value:
      name: envoy.filters.http.lua
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
        inlineCode: "function envoy_on_request(h) end"
- applyTo: HTTP_FILTER
  patch: {operation: ADD, filterClass: AUTHZ, value: {name: my-wasm}}
- applyTo: HTTP_ROUTE
  match:
    context: GATEWAY
    routeConfiguration:
      portNumber: 443
      portName: https
      gateway: istio-system/gw
      name: https.443.https.gw.istio-system
      vhost:
        name: "example.com:443"
        domainName: example.com
        route: {name: default, action: ROUTE}
  patch: {operation: MERGE, value: {timeout: 5s}}
- applyTo: CLUSTER
  match:
    context: SIDECAR_OUTBOUND
    cluster: {portNumber: 80, service: reviews.prod.svc.cluster.local, subset: v1, name: outbound|80|v1|reviews}
  patch: {operation: REMOVE}
- applyTo: HTTP_FILTER
  match:
    context: WAYPOINT
    waypoint:
      filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}
      route: {name: default}
  patch: {operation: INSERT_BEFORE, value: {name: x}}
- applyTo: LISTENER_FILTER
  match: {listener: {portNumber: 15006}}
  patch: {operation: INSERT_FIRST, value: {name: envoy.filters.listener.proxy_protocol}}
- applyTo: EXTENSION_CONFIG
  patch: {operation: ADD, value: {name: ns/my-wasm}}
- applyTo: BOOTSTRAP
  patch: {operation: MERGE, value: {stats_flush_interval: 10s}}
- applyTo: NETWORK_FILTER
  match: {listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy}}}}
  patch: {operation: REPLACE, value: {name: envoy.filters.network.tcp_proxy}}
- applyTo: VIRTUAL_HOST
  match: {routeConfiguration: {vhost: {name: "a:80"}}}
  patch: {operation: ADD, value: {name: extra, domains: ["*"]}}
- applyTo: FILTER_CHAIN
  match: {listener: {name: virtualInbound}}
  patch: {operation: MERGE, value: {name: x}}
- applyTo: LISTENER
  patch: {operation: ADD, value: {name: extra}}
- applyTo: ROUTE_CONFIGURATION
  match: {routeConfiguration: {portNumber: 80}}
  patch: {operation: MERGE, value: {validate_clusters: false}}
"#;

#[test]
fn fully_populated_filter_loads_with_only_the_note() {
    let l = clean(FULL);
    assert_eq!(l.diagnostics.len(), 1);
    assert_eq!(l.diagnostics[0].code, Code::NotSupported);
    let ef = l.resources[0]
        .spec_as::<EnvoyFilter>()
        .expect("an EnvoyFilter");
    assert_eq!(ef.priority, -10);
    assert_eq!(ef.config_patches.len(), 13);
    let p = ef.config_patches[0].patch.as_ref().expect("patch");
    assert_eq!(p.operation, PatchOperation::InsertBefore);
    assert_eq!(
        p.value
            .as_ref()
            .and_then(|v| v.get("typed_config"))
            .and_then(|t| t.get("@type")),
        Some(&serde_json::Value::String(
            "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua".into()
        ))
    );
    clean(
        "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\nconfigPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]\n",
    );
}

#[test]
fn only_v1alpha3_is_served() {
    let text =
        "apiVersion: networking.istio.io/v1\nkind: EnvoyFilter\nmetadata: {name: t}\nspec: {}\n";
    let l = test_util::load(text);
    assert_eq!(l.diagnostics[0].code, Code::UnsupportedVersion);
}

#[test]
fn selection() {
    expect(
        "workloadSelector: {labels: {app: \"*\"}}\nconfigPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]\n",
        Code::InvalidValue,
        "spec.workloadSelector.labels[app]",
    );
    expect(
        "workloadSelector: {}\nconfigPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]\n",
        Code::Suspicious,
        "spec.workloadSelector",
    );
    expect(
        "workloadSelector: {labels: {a: b}}\ntargetRefs: [{kind: Gateway, name: gw}]\nconfigPatches: [{applyTo: CLUSTER, patch: {operation: REMOVE}}]\n",
        Code::ConflictingFields,
        "spec",
    );
    expect(
        "targetRefs: [{kind: Gateway}]\n",
        Code::RequiredField,
        "spec.targetRefs[0].name",
    );
    expect(
        "targetRefs: [{name: gw}]\n",
        Code::RequiredField,
        "spec.targetRefs[0].kind",
    );
    expect(
        "targetRefs: [{kind: Gateway, name: gw, namespace: other}]\n",
        Code::InvalidValue,
        "spec.targetRefs[0].namespace",
    );
    expect("priority: 1\n", Code::Suspicious, "spec");
}

#[test]
fn patches() {
    let p = "spec.configPatches[0]";
    expect_patch(
        "patch: {operation: REMOVE}\n",
        Code::RequiredField,
        &format!("{p}.applyTo"),
    );
    expect_patch(
        "applyTo: INVALID\npatch: {operation: REMOVE}\n",
        Code::RequiredField,
        &format!("{p}.applyTo"),
    );
    expect_patch(
        "applyTo: HTTP_FILTER\npatch: {operation: SMASH}\n",
        Code::InvalidValue,
        &format!("{p}.patch.operation"),
    );
    expect_patch(
        "applyTo: CLUSTERS\npatch: {operation: REMOVE}\n",
        Code::InvalidValue,
        &format!("{p}.applyTo"),
    );
    expect_patch(
        "applyTo: LISTENER\n",
        Code::RequiredField,
        &format!("{p}.patch"),
    );
    expect_patch(
        "applyTo: LISTENER\npatch: {}\n",
        Code::RequiredField,
        &format!("{p}.patch.operation"),
    );
    for op in [
        "ADD",
        "MERGE",
        "INSERT_BEFORE",
        "INSERT_AFTER",
        "INSERT_FIRST",
        "REPLACE",
    ] {
        expect_patch(
            &format!("applyTo: HTTP_FILTER\npatch: {{operation: {op}}}\n"),
            Code::RequiredField,
            &format!("{p}.patch.value"),
        );
    }
    expect_patch(
        "applyTo: HTTP_FILTER\npatch: {operation: ADD, value: [1, 2]}\n",
        Code::InvalidValue,
        &format!("{p}.patch.value"),
    );
    expect_patch(
        "applyTo: ROUTE_CONFIGURATION\npatch: {operation: ADD, value: {a: 1}}\n",
        Code::Suspicious,
        &format!("{p}.patch.operation"),
    );
    expect_patch(
        "applyTo: CLUSTER\npatch: {operation: INSERT_FIRST, value: {a: 1}}\n",
        Code::Suspicious,
        &format!("{p}.patch.operation"),
    );
    expect_patch(
        "applyTo: CLUSTER\npatch: {operation: ADD, filterClass: AUTHN, value: {a: 1}}\n",
        Code::Suspicious,
        &format!("{p}.patch.filterClass"),
    );
}

#[test]
fn matches() {
    let m = "spec.configPatches[0].match";
    let remove = "patch: {operation: REMOVE}\n";
    expect_patch(
        &format!(
            "applyTo: LISTENER\nmatch: {{proxy: {{proxyVersion: \"%#@~++==`24c234`\"}}}}\n{remove}"
        ),
        Code::InvalidValue,
        &format!("{m}.proxy.proxyVersion"),
    );
    expect_patch(
        &format!("applyTo: LISTENER\nmatch: {{cluster: {{}}}}\n{remove}"),
        Code::InvalidValue,
        m,
    );
    expect_patch(
        &format!("applyTo: VIRTUAL_HOST\nmatch: {{cluster: {{}}}}\n{remove}"),
        Code::InvalidValue,
        m,
    );
    expect_patch(
        &format!("applyTo: CLUSTER\nmatch: {{listener: {{}}}}\n{remove}"),
        Code::InvalidValue,
        m,
    );
    expect_patch(
        &format!("applyTo: CLUSTER\nmatch: {{listener: {{}}, cluster: {{}}}}\n{remove}"),
        Code::ConflictingFields,
        m,
    );
    expect_patch(
        "applyTo: BOOTSTRAP\nmatch: {cluster: {}}\npatch: {operation: MERGE, value: {a: 1}}\n",
        Code::Suspicious,
        m,
    );
    let filter = |apply: &str, f: &str| {
        format!(
            "applyTo: {apply}\nmatch: {{listener: {{filterChain: {{sni: \"124\", filter: {f}}}}}}}\n{remove}"
        )
    };
    let fp = format!("{m}.listener.filterChain.filter");
    expect_patch(
        &filter("NETWORK_FILTER", "{}"),
        Code::RequiredField,
        &format!("{fp}.name"),
    );
    expect_patch(
        &filter("NETWORK_FILTER", "{name: random, subFilter: {}}"),
        Code::InvalidValue,
        &format!("{fp}.subFilter"),
    );
    expect_patch(
        &filter("HTTP_FILTER", "{name: random, subFilter: {name: a}}"),
        Code::InvalidValue,
        &format!("{fp}.subFilter"),
    );
    expect_patch(
        &filter(
            "HTTP_FILTER",
            "{name: envoy.filters.network.http_connection_manager, subFilter: {}}",
        ),
        Code::RequiredField,
        &format!("{fp}.subFilter.name"),
    );
    expect_patch(&filter("FILTER_CHAIN", "{name: a}"), Code::Suspicious, &fp);
    expect_patch(
        &filter("HTTP_FILTER", "{name: envoy.http_connection_manager}"),
        Code::Deprecated,
        &fp,
    );
    expect_patch(
        &filter(
            "HTTP_FILTER",
            "{name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.router}}",
        ),
        Code::Deprecated,
        &format!("{fp}.subFilter.name"),
    );
}

#[test]
fn waypoint_patches() {
    let m = "spec.configPatches[0].match";
    let value = "patch: {operation: MERGE, value: {a: 1}}\n";
    for apply in [
        "LISTENER",
        "LISTENER_FILTER",
        "BOOTSTRAP",
        "EXTENSION_CONFIG",
    ] {
        expect_patch(
            &format!("applyTo: {apply}\nmatch: {{context: WAYPOINT}}\n{value}"),
            Code::InvalidValue,
            &format!("{m}.context"),
        );
    }
    let hcm = "envoy.filters.network.http_connection_manager";
    expect_patch(
        &format!(
            "applyTo: ROUTE_CONFIGURATION\nmatch: {{context: WAYPOINT, waypoint: {{filter: {{name: {hcm}}}}}}}\n{value}"
        ),
        Code::InvalidValue,
        &format!("{m}.waypoint.filter"),
    );
    expect_patch(
        &format!(
            "applyTo: CLUSTER\nmatch: {{context: WAYPOINT, waypoint: {{route: {{name: r}}}}}}\n{value}"
        ),
        Code::InvalidValue,
        &format!("{m}.waypoint.route"),
    );
    expect_patch(
        &format!("applyTo: HTTP_FILTER\nmatch: {{context: WAYPOINT, waypoint: {{}}}}\n{value}"),
        Code::RequiredField,
        &format!("{m}.waypoint.filter"),
    );
    expect_patch(
        &format!(
            "applyTo: HTTP_FILTER\nmatch: {{context: WAYPOINT, waypoint: {{filter: {{name: fake}}}}}}\n{value}"
        ),
        Code::InvalidValue,
        &format!("{m}.waypoint.filter.name"),
    );
    expect_patch(
        &format!(
            "applyTo: HTTP_FILTER\nmatch: {{context: WAYPOINT, waypoint: {{filter: {{name: {hcm}}}}}}}\n{value}"
        ),
        Code::InvalidValue,
        &format!("{m}.waypoint.filter"),
    );
    expect_patch(
        &format!("applyTo: CLUSTER\nmatch: {{context: WAYPOINT, cluster: {{}}}}\n{value}"),
        Code::InvalidValue,
        m,
    );
}

#[test]
fn nested_repetitions_are_found_like_go() {
    for ok in [
        r"^1\.2[0-9].*",
        "a+?",
        "(?i)a",
        r"\++",
        "[+*]+",
        "a{2,3}b*",
        "(a*)*",
        "x{,}",
    ] {
        assert_eq!(nested_repetition(ok), None, "{ok}");
    }
    assert_eq!(
        nested_repetition("%#@~++==`24c234`").as_deref(),
        Some("invalid nested repetition operator: `++`")
    );
    for bad in ["a**", "a+?*", "a{2}{3}", "a?+"] {
        assert!(nested_repetition(bad).is_some(), "{bad}");
    }
}
