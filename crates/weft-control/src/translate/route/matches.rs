//! VirtualService match conditions → Envoy route matches, and whether a
//! condition applies to this proxy and port at all.

use weft_config::networking::{HttpMatchRequest, StringMatch};
use weft_xds::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, Route, RouteMatch,
};
use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use weft_xds::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use weft_xds::pb::google::protobuf::BoolValue;

use super::Cx;

/// The pseudo-header Envoy matches the method on.
pub const HEADER_METHOD: &str = ":method";
/// The pseudo-header Envoy matches the authority (Host) on.
pub const HEADER_AUTHORITY: &str = ":authority";
/// The pseudo-header Envoy matches the scheme on.
pub const HEADER_SCHEME: &str = ":scheme";

/// Header names that match JWT claims (`@request.auth.claims.group`),
/// which only gateways resolve.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// Whether `m` applies to routes for this port and proxy (Istio's
/// `translateRoute` guards and `sourceMatchHTTP`): its `port`, if any, is
/// this one; its `gateways`, if any, include `mesh`; otherwise its
/// `sourceLabels` are all on the proxy and its `sourceNamespace`, if any,
/// is the proxy's.
pub(super) fn applies(cx: &Cx<'_>, m: &HttpMatchRequest, vs_namespace: &str) -> bool {
    source_applies(
        cx,
        m.port,
        &m.gateways,
        &m.source_labels,
        &m.source_namespace,
        vs_namespace,
    )
}

/// The guards HTTP, TCP and TLS matches share: `port`, `gateways`
/// (`mesh` for sidecars; for a gateway, its `namespace/name`, short names
/// in the VirtualService's namespace), `sourceLabels`, `sourceNamespace`.
pub(super) fn source_applies(
    cx: &Cx<'_>,
    port: u32,
    gateways: &[String],
    source_labels: &std::collections::BTreeMap<String, String>,
    source_namespace: &str,
    vs_namespace: &str,
) -> bool {
    if port != 0 && port != u32::from(cx.port) {
        return false;
    }
    if !gateways.is_empty() {
        return match cx.gateways {
            None => gateways.iter().any(|g| g == "mesh"),
            Some(served) => gateways
                .iter()
                .any(|g| served.contains(&qualified_gateway(g, vs_namespace))),
        };
    }
    weft_config::select::selects(source_labels, &cx.proxy.labels)
        && (source_namespace.is_empty() || source_namespace == cx.proxy.namespace)
}

/// A gateway reference (`name` or `namespace/name`) as `namespace/name`.
pub(crate) fn qualified_gateway(reference: &str, namespace: &str) -> String {
    if reference.contains('/') {
        reference.to_string()
    } else {
        format!("{namespace}/{reference}")
    }
}

/// The Envoy match for `m` (`prefix: /` when there is none), or `None`
/// when it matches on something a sidecar cannot see (JWT claims).
pub(super) fn route_match(m: Option<&HttpMatchRequest>) -> Option<RouteMatch> {
    let mut out = RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    };
    let Some(m) = m else {
        return Some(out);
    };
    let mut names = m.headers.keys().chain(m.without_headers.keys());
    if names.any(|h| h.starts_with(JWT_CLAIM_PREFIX)) {
        tracing::debug!("JWT claim matches apply to gateways only; route skipped");
        return None;
    }
    for (name, sm) in &m.headers {
        out.headers.push(header_matcher(name, sm));
    }
    for (name, sm) in &m.without_headers {
        let mut h = header_matcher(name, sm);
        h.invert_match = true;
        // Envoy forbids treat_missing_header_as_empty with present_match.
        h.treat_missing_header_as_empty = !is_present_match(sm);
        out.headers.push(h);
    }
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(uri) = &m.uri {
        if let Some(exact) = &uri.exact {
            out.path_specifier = Some(PathSpecifier::Path(exact.clone()));
        } else if let Some(prefix) = &uri.prefix {
            out.path_specifier = Some(PathSpecifier::Prefix(prefix.clone()));
        } else if let Some(regex) = &uri.regex {
            out.path_specifier = Some(PathSpecifier::SafeRegex(regex_matcher(regex)));
        }
    }
    out.case_sensitive = Some(BoolValue {
        value: !m.ignore_uri_case,
    });
    for (name, sm) in [
        (HEADER_METHOD, &m.method),
        (HEADER_AUTHORITY, &m.authority),
        (HEADER_SCHEME, &m.scheme),
    ] {
        if let Some(sm) = sm {
            out.headers.push(header_matcher(name, sm));
        }
    }
    for (name, sm) in &m.query_params {
        let specifier = if is_present_match(sm) {
            QueryParameterMatchSpecifier::PresentMatch(true)
        } else {
            QueryParameterMatchSpecifier::StringMatch(string_matcher(sm))
        };
        out.query_parameters.push(QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(specifier),
        });
    }
    Some(out)
}

/// Whether an Envoy route matches every request (Istio's
/// `IsCatchAllRoute`): path prefix `/` or regex `.*`, and no header or
/// query conditions.
pub(super) fn is_catch_all(route: &Route) -> bool {
    let Some(m) = &route.r#match else {
        return false;
    };
    let any_path = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => p == "/",
        Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(r)) => r.regex == ".*",
        _ => false,
    };
    any_path
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}

/// An empty match, or Istio's `regex: "*"`, means "present".
fn is_present_match(sm: &StringMatch) -> bool {
    match (&sm.exact, &sm.prefix, &sm.regex) {
        (None, None, None) => true,
        (None, None, Some(r)) => r == "*",
        _ => false,
    }
}

fn header_matcher(name: &str, sm: &StringMatch) -> HeaderMatcher {
    let specifier = if is_present_match(sm) {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(sm))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

/// A VirtualService string match as an Envoy string matcher.
pub(super) fn string_matcher(sm: &StringMatch) -> StringMatcher {
    let pattern = if let Some(exact) = &sm.exact {
        MatchPattern::Exact(exact.clone())
    } else if let Some(prefix) = &sm.prefix {
        MatchPattern::Prefix(prefix.clone())
    } else {
        MatchPattern::SafeRegex(regex_matcher(sm.regex.as_deref().unwrap_or_default()))
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    }
}

/// An RE2 regex matcher. The engine is left unset: Envoy's only engine,
/// and its default, is Google RE2 (the `google_re2` field is deprecated,
/// and Istio no longer sets it).
pub(super) fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_string(),
        ..Default::default()
    }
}
