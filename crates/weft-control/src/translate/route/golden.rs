//! The golden RDS tests: the route configurations of the productpage
//! sidecar and of the ingress gateway over `examples/`, as JSON, against
//! `tests/golden/rds-productpage.json` and `rds-ingressgateway.json`.
//! `WEFT_BLESS=1 cargo test -p weft-control` rewrites the files.
//!
//! The JSON is built by hand from the fields translation emits (prost's
//! `Debug` output is not stable), in Envoy's field names.

use serde_json::{Map, Value, json};
use weft_xds::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use weft_xds::pb::envoy::config::core::v3::{
    HeaderValueOption, RuntimeFractionalPercent, data_source,
};
use weft_xds::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
use weft_xds::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HashPolicy, HostRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::weighted_cluster::cluster_weight;
use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use weft_xds::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use weft_xds::pb::envoy::r#type::matcher::v3::StringMatcher;
use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use weft_xds::pb::envoy::r#type::v3::FractionalPercent;
use weft_xds::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use weft_xds::pb::google::protobuf::Any;
use weft_xds::unpack;

use super::actions::{CORS_FILTER, FAULT_FILTER};
use super::route_configurations;
use crate::translate::Proxy;
use crate::translate::test_inputs::{TestMesh, check_golden, duration_json};

#[test]
fn productpage_routes_match_the_golden_file() {
    let mesh = TestMesh::examples();
    let proxy = Proxy::sidecar(
        "productpage-v1.bookinfo",
        "bookinfo",
        &[("app", "productpage"), ("version", "v1")],
    );
    let configs = route_configurations(mesh.inputs(), &proxy);
    let got = Value::Array(configs.iter().map(route_config_json).collect());
    check_golden("rds-productpage.json", &got);
}

/// The Bookinfo gateway (`bookinfo/gateway.yaml`): route configuration
/// `http.8080` for its HTTP server, the bound VirtualService's routes.
#[test]
fn ingress_gateway_routes_match_the_golden_file() {
    let mesh = TestMesh::examples();
    let proxy = crate::translate::test_inputs::ingress_gateway();
    // Resolved as the server resolves a node: its labels (and so the
    // Gateway selecting it) from its WorkloadEntry, found by pod name.
    let configs = crate::translate::translate(mesh.inputs(), &proxy).routes;
    assert_eq!(configs.len(), 1, "one HTTP server port");
    let got = Value::Array(configs.iter().map(route_config_json).collect());
    check_golden("rds-ingressgateway.json", &got);
}

/// A route configuration as JSON (the fields translation emits).
pub(crate) fn route_config_json(rc: &RouteConfiguration) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(rc.name));
    o.insert(
        "virtual_hosts".into(),
        rc.virtual_hosts.iter().map(virtual_host_json).collect(),
    );
    if let Some(v) = &rc.validate_clusters {
        o.insert("validate_clusters".into(), json!(v.value));
    }
    if let Some(v) = &rc.max_direct_response_body_size_bytes {
        o.insert("max_direct_response_body_size_bytes".into(), json!(v.value));
    }
    if rc.ignore_port_in_host_matching {
        o.insert("ignore_port_in_host_matching".into(), json!(true));
    }
    Value::Object(o)
}

fn virtual_host_json(vh: &VirtualHost) -> Value {
    json!({
        "name": vh.name,
        "domains": vh.domains,
        "routes": vh.routes.iter().map(route_json).collect::<Vec<_>>(),
        "include_request_attempt_count": vh.include_request_attempt_count,
    })
}

fn route_json(r: &Route) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(r.name));
    if let Some(m) = &r.r#match {
        o.insert("match".into(), match_json(m));
    }
    match &r.action {
        Some(Action::Route(a)) => {
            o.insert("route".into(), action_json(a));
        }
        Some(Action::Redirect(rd)) => {
            let mut m = Map::new();
            put_str(&mut m, "host_redirect", &rd.host_redirect);
            if rd.port_redirect != 0 {
                m.insert("port_redirect".into(), json!(rd.port_redirect));
            }
            let code =
                RedirectResponseCode::try_from(rd.response_code).map_or("?", |c| c.as_str_name());
            m.insert("response_code".into(), json!(code));
            if let Some(PathRewriteSpecifier::PathRedirect(p)) = &rd.path_rewrite_specifier {
                m.insert("path_redirect".into(), json!(p));
            }
            if let Some(SchemeRewriteSpecifier::SchemeRedirect(s)) = &rd.scheme_rewrite_specifier {
                m.insert("scheme_redirect".into(), json!(s));
            }
            o.insert("redirect".into(), Value::Object(m));
        }
        Some(Action::DirectResponse(d)) => {
            let body = d.body.as_ref().and_then(|b| match &b.specifier {
                Some(data_source::Specifier::InlineString(s)) => Some(json!({"inline_string": s})),
                Some(data_source::Specifier::InlineBytes(b)) => Some(json!({"inline_bytes": b})),
                _ => None,
            });
            o.insert(
                "direct_response".into(),
                json!({"status": d.status, "body": body}),
            );
        }
        _ => {}
    }
    if let Some(d) = &r.decorator {
        o.insert("decorator".into(), json!({"operation": d.operation}));
    }
    put_str(&mut o, "stat_prefix", &r.stat_prefix);
    header_ops_json(
        &mut o,
        [&r.request_headers_to_add, &r.response_headers_to_add],
        [&r.request_headers_to_remove, &r.response_headers_to_remove],
    );
    if !r.typed_per_filter_config.is_empty() {
        let mut names: Vec<&String> = r.typed_per_filter_config.keys().collect();
        names.sort();
        let mut m = Map::new();
        for name in names {
            let any = &r.typed_per_filter_config[name];
            m.insert(name.clone(), filter_config_json(name, any));
        }
        o.insert("typed_per_filter_config".into(), Value::Object(m));
    }
    Value::Object(o)
}

fn match_json(m: &RouteMatch) -> Value {
    let mut o = Map::new();
    match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => {
            o.insert("prefix".into(), json!(p));
        }
        Some(PathSpecifier::Path(p)) => {
            o.insert("path".into(), json!(p));
        }
        Some(PathSpecifier::SafeRegex(r)) => {
            o.insert("safe_regex".into(), json!({"regex": r.regex}));
        }
        _ => {}
    }
    if let Some(c) = &m.case_sensitive {
        o.insert("case_sensitive".into(), json!(c.value));
    }
    if !m.headers.is_empty() {
        o.insert(
            "headers".into(),
            m.headers.iter().map(header_json).collect(),
        );
    }
    if !m.query_parameters.is_empty() {
        let qs = m.query_parameters.iter().map(|q| {
            let spec = match &q.query_parameter_match_specifier {
                Some(QueryParameterMatchSpecifier::PresentMatch(p)) => json!({"present_match": p}),
                Some(QueryParameterMatchSpecifier::StringMatch(s)) => {
                    json!({"string_match": string_matcher_json(s)})
                }
                None => json!({}),
            };
            json!({"name": q.name, "match": spec})
        });
        o.insert("query_parameters".into(), qs.collect());
    }
    Value::Object(o)
}

fn header_json(h: &HeaderMatcher) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(h.name));
    match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::PresentMatch(p)) => {
            o.insert("present_match".into(), json!(p));
        }
        Some(HeaderMatchSpecifier::StringMatch(s)) => {
            o.insert("string_match".into(), string_matcher_json(s));
        }
        _ => {}
    }
    if h.invert_match {
        o.insert("invert_match".into(), json!(true));
    }
    if h.treat_missing_header_as_empty {
        o.insert("treat_missing_header_as_empty".into(), json!(true));
    }
    Value::Object(o)
}

fn string_matcher_json(s: &StringMatcher) -> Value {
    match &s.match_pattern {
        Some(MatchPattern::Exact(v)) => json!({"exact": v}),
        Some(MatchPattern::Prefix(v)) => json!({"prefix": v}),
        Some(MatchPattern::SafeRegex(r)) => json!({"safe_regex": {"regex": r.regex}}),
        _ => json!({}),
    }
}

fn action_json(a: &RouteAction) -> Value {
    let mut o = Map::new();
    match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => {
            o.insert("cluster".into(), json!(c));
        }
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let clusters = w.clusters.iter().map(|c| {
                let mut m = Map::new();
                m.insert("name".into(), json!(c.name));
                m.insert("weight".into(), json!(c.weight.as_ref().map(|w| w.value)));
                header_ops_json(
                    &mut m,
                    [&c.request_headers_to_add, &c.response_headers_to_add],
                    [&c.request_headers_to_remove, &c.response_headers_to_remove],
                );
                if let Some(cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h)) =
                    &c.host_rewrite_specifier
                {
                    m.insert("host_rewrite_literal".into(), json!(h));
                }
                Value::Object(m)
            });
            o.insert(
                "weighted_clusters".into(),
                json!({"clusters": clusters.collect::<Vec<_>>()}),
            );
        }
        _ => {}
    }
    if let Some(t) = &a.timeout {
        o.insert("timeout".into(), duration_json(t));
    }
    #[allow(deprecated)]
    if let Some(t) = &a.max_grpc_timeout {
        o.insert("max_grpc_timeout".into(), duration_json(t));
    }
    put_str(&mut o, "prefix_rewrite", &a.prefix_rewrite);
    if let Some(rr) = &a.regex_rewrite {
        let regex = rr.pattern.as_ref().map(|p| p.regex.clone());
        o.insert(
            "regex_rewrite".into(),
            json!({"pattern": {"regex": regex}, "substitution": rr.substitution}),
        );
    }
    if let Some(HostRewriteSpecifier::HostRewriteLiteral(h)) = &a.host_rewrite_specifier {
        o.insert("host_rewrite_literal".into(), json!(h));
    }
    if let Some(r) = &a.retry_policy {
        o.insert("retry_policy".into(), retry_json(r));
    }
    if !a.request_mirror_policies.is_empty() {
        let mirrors = a.request_mirror_policies.iter().map(|m| {
            json!({
                "cluster": m.cluster,
                "runtime_fraction": m.runtime_fraction.as_ref().map(runtime_fraction_json),
                "trace_sampled": m.trace_sampled.as_ref().map(|t| t.value),
            })
        });
        o.insert("request_mirror_policies".into(), mirrors.collect());
    }
    if !a.hash_policy.is_empty() {
        o.insert(
            "hash_policy".into(),
            a.hash_policy.iter().map(hash_json).collect(),
        );
    }
    Value::Object(o)
}

fn retry_json(r: &RetryPolicy) -> Value {
    let mut o = Map::new();
    o.insert("retry_on".into(), json!(r.retry_on));
    o.insert(
        "num_retries".into(),
        json!(r.num_retries.as_ref().map(|n| n.value)),
    );
    if let Some(t) = &r.per_try_timeout {
        o.insert("per_try_timeout".into(), duration_json(t));
    }
    if !r.retriable_status_codes.is_empty() {
        o.insert(
            "retriable_status_codes".into(),
            json!(r.retriable_status_codes),
        );
    }
    if !r.retry_host_predicate.is_empty() {
        let names: Vec<&str> = r
            .retry_host_predicate
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        o.insert("retry_host_predicate".into(), json!(names));
    }
    if let Some(p) = &r.retry_priority {
        o.insert("retry_priority".into(), json!(p.name));
    }
    o.insert(
        "host_selection_retry_max_attempts".into(),
        json!(r.host_selection_retry_max_attempts),
    );
    if let Some(b) = &r.retry_back_off {
        o.insert(
            "retry_back_off".into(),
            json!({"base_interval": b.base_interval.as_ref().map(duration_json)}),
        );
    }
    Value::Object(o)
}

fn hash_json(h: &HashPolicy) -> Value {
    match &h.policy_specifier {
        Some(PolicySpecifier::Header(x)) => json!({"header": {"header_name": x.header_name}}),
        Some(PolicySpecifier::Cookie(c)) => json!({"cookie": {
            "name": c.name,
            "ttl": c.ttl.as_ref().map(duration_json),
            "path": c.path,
        }}),
        Some(PolicySpecifier::ConnectionProperties(c)) => {
            json!({"connection_properties": {"source_ip": c.source_ip}})
        }
        Some(PolicySpecifier::QueryParameter(q)) => json!({"query_parameter": {"name": q.name}}),
        _ => json!({}),
    }
}

fn filter_config_json(name: &str, any: &Any) -> Value {
    if name == FAULT_FILTER {
        let Ok(f) = unpack::<HttpFault>(any) else {
            return json!("undecodable");
        };
        let delay = f.delay.as_ref().map(|d| {
            let fixed = match &d.fault_delay_secifier {
                Some(FaultDelaySecifier::FixedDelay(t)) => Some(duration_json(t)),
                _ => None,
            };
            json!({"fixed_delay": fixed, "percentage": d.percentage.as_ref().map(percent_json)})
        });
        let abort = f.abort.as_ref().map(|a| {
            let mut m = Map::new();
            match a.error_type {
                Some(ErrorType::HttpStatus(s)) => m.insert("http_status".into(), json!(s)),
                Some(ErrorType::GrpcStatus(s)) => m.insert("grpc_status".into(), json!(s)),
                _ => None,
            };
            m.insert(
                "percentage".into(),
                json!(a.percentage.as_ref().map(percent_json)),
            );
            Value::Object(m)
        });
        return json!({"delay": delay, "abort": abort});
    }
    if name == CORS_FILTER {
        let Ok(c) = unpack::<CorsPolicy>(any) else {
            return json!("undecodable");
        };
        return json!({
            "allow_origin_string_match":
                c.allow_origin_string_match.iter().map(string_matcher_json).collect::<Vec<_>>(),
            "allow_methods": c.allow_methods,
            "allow_headers": c.allow_headers,
            "expose_headers": c.expose_headers,
            "max_age": c.max_age,
            "allow_credentials": c.allow_credentials.map(|b| b.value),
        });
    }
    json!({"type_url": any.type_url})
}

fn header_ops_json(
    o: &mut Map<String, Value>,
    [req_add, resp_add]: [&Vec<HeaderValueOption>; 2],
    [req_remove, resp_remove]: [&Vec<String>; 2],
) {
    let adds = |list: &Vec<HeaderValueOption>| -> Value {
        list.iter()
            .map(|h| {
                let hv = h.header.clone().unwrap_or_default();
                let action =
                    HeaderAppendAction::try_from(h.append_action).map_or("?", |a| a.as_str_name());
                json!({"key": hv.key, "value": hv.value, "append_action": action})
            })
            .collect()
    };
    if !req_add.is_empty() {
        o.insert("request_headers_to_add".into(), adds(req_add));
    }
    if !resp_add.is_empty() {
        o.insert("response_headers_to_add".into(), adds(resp_add));
    }
    if !req_remove.is_empty() {
        o.insert("request_headers_to_remove".into(), json!(req_remove));
    }
    if !resp_remove.is_empty() {
        o.insert("response_headers_to_remove".into(), json!(resp_remove));
    }
}

fn put_str(o: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        o.insert(key.into(), json!(value));
    }
}

fn percent_json(p: &FractionalPercent) -> Value {
    let denominator = DenominatorType::try_from(p.denominator).map_or("?", |d| d.as_str_name());
    json!({"numerator": p.numerator, "denominator": denominator})
}

fn runtime_fraction_json(r: &RuntimeFractionalPercent) -> Value {
    json!({"default_value": r.default_value.as_ref().map(percent_json)})
}
