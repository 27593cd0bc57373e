//! HTTP route rules: one action per route, delegates, match conditions
//! (string matches, header names, JWT claims) and header operations.

use std::collections::BTreeMap;

use super::checks::{Scope, check_route_destinations, check_source_namespace, check_source_scope};
use super::hosts::check_gateway_names;
use super::policies::{
    check_cors, check_direct_response, check_fault, check_mirrors, check_redirect, check_retries,
    check_rewrite,
};
use super::*;
use crate::diag::Code;
use crate::validate::{
    Validator, check_duration, check_port, check_regex, check_selector_labels, is_dns1123_label,
    is_dns1123_subdomain, is_token,
};

/// Largest regex Istio accepts (Envoy's RE2 program size, approximated).
const MAX_REGEX_LEN: usize = 1024;

/// HTTP/2 pseudo-headers a match may name.
const PSEUDO_HEADERS: &[&str] = &[":method", ":scheme", ":authority", ":path", ":status"];

/// The prefix of header-match keys that match JWT claims.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// Checks one HTTP route: its action, matches, headers and policies.
pub(super) fn check_http_route(v: &mut Validator, r: &HttpRoute, scope: &Scope<'_>) {
    check_http_actions(v, r, scope);
    v.each("match", &r.matches, |v, m| check_http_match(v, m, scope));
    if let Some(h) = &r.headers {
        v.field("headers", |v| check_headers(v, h));
    }
    check_authority_once(v, r);
    if let Some(c) = &r.cors_policy {
        v.field("corsPolicy", |v| check_cors(v, c));
    }
    if let Some(f) = &r.fault {
        v.field("fault", |v| check_fault(v, f));
    }
    check_mirrors(v, r);
    if let Some(rd) = &r.redirect {
        v.field("redirect", |v| check_redirect(v, rd));
    }
    if let Some(d) = &r.direct_response {
        v.field("directResponse", |v| check_direct_response(v, d));
    }
    if let Some(rt) = &r.retries {
        v.field("retries", |v| check_retries(v, rt));
    }
    if let Some(rw) = &r.rewrite {
        v.field("rewrite", |v| check_rewrite(v, rw));
    }
    if let Some(t) = r.timeout {
        v.field("timeout", |v| check_duration(v, t));
    }
    let dests: Vec<(Option<&Destination>, i32)> = r
        .route
        .iter()
        .map(|d| (d.destination.as_ref(), d.weight))
        .collect();
    check_route_destinations(v, &dests);
    v.each("route", &r.route, |v, d| {
        if let Some(h) = &d.headers {
            v.field("headers", |v| check_headers(v, h));
        }
    });
}

/// Exactly one action: route, redirect, directResponse or (in a root
/// VirtualService) delegate.
fn check_http_actions(v: &mut Validator, r: &HttpRoute, scope: &Scope<'_>) {
    if let Some(d) = &r.delegate {
        if scope.delegate_vs {
            v.field("delegate", |v| {
                v.error("delegate HTTP route cannot contain delegate")
                    .hint("only one level of delegation is supported");
            });
            return;
        }
        v.field("delegate", |v| check_delegate(v, d));
        if !r.route.is_empty() {
            v.field("route", |v| {
                v.conflict("root HTTP route must not specify route: delegate is set")
                    .hint("a route hands requests either to destinations or to a delegate VirtualService");
            });
        }
        if r.redirect.is_some() {
            v.field("redirect", |v| {
                v.conflict("root HTTP route must not specify redirect: delegate is set");
            });
        }
        if r.direct_response.is_some() {
            v.field("directResponse", |v| {
                v.conflict("root HTTP route must not specify directResponse: delegate is set");
            });
        }
        return;
    }
    if r.redirect.is_some() {
        if !r.route.is_empty() {
            v.field("redirect", |v| {
                v.conflict("HTTP route cannot contain both route and redirect")
                    .hint("remove `route` to redirect, or `redirect` to forward");
            });
        }
        if r.fault.is_some() {
            v.field("fault", |v| {
                v.conflict("HTTP route cannot contain both fault and redirect");
            });
        }
        if r.rewrite.is_some() {
            v.field("rewrite", |v| {
                v.conflict("HTTP route rule cannot contain both rewrite and redirect")
                    .hint("a redirect sets the new uri/authority itself");
            });
        }
        if r.direct_response.is_some() {
            v.field("directResponse", |v| {
                v.conflict("HTTP route rule cannot contain both directResponse and redirect");
            });
        }
    } else if r.direct_response.is_some() {
        if !r.route.is_empty() {
            v.field("directResponse", |v| {
                v.conflict("HTTP route cannot contain both route and directResponse")
                    .hint("remove `route` to answer directly, or `directResponse` to forward");
            });
        }
        if r.fault.is_some() {
            v.field("fault", |v| {
                v.conflict("HTTP route cannot contain both fault and directResponse");
            });
        }
        if r.rewrite.is_some() {
            v.field("rewrite", |v| {
                v.conflict("HTTP route rule cannot contain both rewrite and directResponse");
            });
        }
    } else if r.route.is_empty() {
        v.field("route", |v| {
            v.report(
                Code::RequiredField,
                "HTTP route, redirect or directResponse is required",
            )
            .hint("add `route: [{destination: {host: ...}}]`, a `redirect`, a `directResponse` or (in a root VirtualService) a `delegate`");
        });
    }
}

fn check_delegate(v: &mut Validator, d: &Delegate) {
    if d.name.is_empty() {
        v.required("name").hint("name the delegate VirtualService");
    } else if !is_dns1123_subdomain(&d.name) {
        v.field("name", |v| {
            v.error(format!(
                "delegate name {:?} is not a valid resource name",
                d.name
            ));
        });
    }
    if !d.namespace.is_empty() && !is_dns1123_label(&d.namespace) {
        v.field("namespace", |v| {
            v.error(format!(
                "delegate namespace {:?} is not a valid namespace name",
                d.namespace
            ));
        });
    }
}

fn check_http_match(v: &mut Validator, m: &HttpMatchRequest, scope: &Scope<'_>) {
    if let Some(s) = &m.uri {
        v.field("uri", |v| check_string_match(v, s, MatchKind::Uri));
    }
    if let Some(s) = &m.scheme {
        v.field("scheme", |v| check_string_match(v, s, MatchKind::Other));
    }
    if let Some(s) = &m.method {
        v.field("method", |v| {
            check_string_match(v, s, MatchKind::Other);
            if let Some(exact) = &s.exact
                && exact.bytes().any(|b| b.is_ascii_lowercase())
            {
                v.field("exact", |v| {
                    v.warn(format!(
                        "HTTP methods are case-sensitive: {exact:?} does not match {:?}",
                        exact.to_ascii_uppercase()
                    ))
                    .hint(format!("write {:?}", exact.to_ascii_uppercase()));
                });
            }
        });
    }
    if let Some(s) = &m.authority {
        v.field("authority", |v| check_string_match(v, s, MatchKind::Other));
    }
    v.field("headers", |v| {
        check_header_matches(v, &m.headers, MatchKind::Header, scope);
    });
    v.field("withoutHeaders", |v| {
        check_header_matches(v, &m.without_headers, MatchKind::WithoutHeader, scope);
    });
    v.field("queryParams", |v| {
        for (name, sm) in &m.query_params {
            v.key(name, |v| {
                if name.is_empty() {
                    v.error("query parameter name cannot be empty");
                }
                check_string_match(v, sm, MatchKind::QueryParam);
            });
        }
    });
    if m.port != 0 {
        v.field("port", |v| check_port(v, m.port));
    }
    v.field("sourceLabels", |v| {
        check_selector_labels(v, &m.source_labels)
    });
    v.field("gateways", |v| check_gateway_names(v, &m.gateways));
    check_source_namespace(v, &m.source_namespace);
    check_source_scope(v, &m.gateways, &m.source_labels, &m.source_namespace, scope);
}

fn check_header_matches(
    v: &mut Validator,
    headers: &BTreeMap<String, StringMatch>,
    kind: MatchKind,
    scope: &Scope<'_>,
) {
    for (name, sm) in headers {
        v.key(name, |v| {
            if name.is_empty() {
                v.error("header name cannot be empty");
            } else if name.starts_with('@') {
                if !is_jwt_claim_key(name) {
                    v.error(format!("header name {name} is not a valid JWT claim reference"))
                        .hint("write \"@request.auth.claims.<claim>\" or \"@request.auth.claims[<claim>][<nested>]\"");
                } else if !scope.gateway_only {
                    v.error(format!(
                        "JWT claim based routing (key: {name}) is only supported for gateway, found no gateways: {:?}",
                        scope.vs.gateways
                    ))
                    .hint("bind the VirtualService to gateways only (without \"mesh\")");
                }
            } else if !PSEUDO_HEADERS.contains(&name.as_str()) && !is_token(name) {
                v.error(format!("header name {name} is not a valid header name"))
                    .hint("header names are letters, digits and !#$%&'*+-.^_`|~");
            }
            check_string_match(v, sm, kind);
        });
    }
}

/// `@request.auth.claims.a.b` or `@request.auth.claims[a][b]`.
fn is_jwt_claim_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(JWT_CLAIM_PREFIX) else {
        return false;
    };
    if let Some(dotted) = rest.strip_prefix('.') {
        return dotted.split('.').all(|c| !c.is_empty());
    }
    let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    inner
        .split("][")
        .all(|c| !c.is_empty() && !c.contains(['[', ']']))
}

/// Where a [`StringMatch`] is used, which decides what an empty one means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum MatchKind {
    /// `uri`: an empty prefix is allowed (matches every path).
    Uri,
    /// `scheme`, `method`, `authority`.
    Other,
    /// `headers[...]`: empty means "present".
    Header,
    /// `withoutHeaders[...]`: empty means "present"; `regex: "*"` too.
    WithoutHeader,
    /// `queryParams[...]`: empty means "present".
    QueryParam,
    /// `corsPolicy.allowOrigins[...]`: must match something.
    CorsOrigin,
}

/// Checks a string match used as `kind`.
pub(super) fn check_string_match(v: &mut Validator, sm: &StringMatch, kind: MatchKind) {
    let set = [&sm.exact, &sm.prefix, &sm.regex]
        .iter()
        .filter(|f| f.is_some())
        .count();
    if set > 1 {
        v.conflict("only one of exact, prefix or regex can be set")
            .hint("a string match is one of `exact:`, `prefix:` or `regex:`");
        return;
    }
    if set == 0 {
        match kind {
            MatchKind::Uri | MatchKind::Other => {
                v.warn("empty match: it matches every request")
                    .hint("set one of exact, prefix or regex, or remove the condition");
            }
            MatchKind::CorsOrigin => {
                v.error("'' is not a valid match type for CORS allow origins")
                    .hint("set one of exact, prefix or regex");
            }
            MatchKind::Header | MatchKind::WithoutHeader | MatchKind::QueryParam => {}
        }
        return;
    }
    if sm.exact.as_deref() == Some("") && kind == MatchKind::CorsOrigin {
        v.field("exact", |v| {
            v.error("'' is not a valid match type for CORS allow origins");
        });
    }
    if sm.prefix.as_deref() == Some("") && kind != MatchKind::Uri {
        v.field("prefix", |v| {
            v.error("prefix string match should not be empty")
                .hint("remove the condition to match any value, or use an empty header match `{}` for \"present\"");
        });
    }
    if let Some(re) = &sm.regex {
        v.field("regex", |v| {
            if kind == MatchKind::WithoutHeader && re == "*" {
                return; // Istio's "header absent" form, not a regex
            }
            check_match_regex(v, re);
        });
    }
}

/// Checks a match regex: non-empty, at most 1024 characters, RE2.
pub(super) fn check_match_regex(v: &mut Validator, re: &str) {
    if re.is_empty() {
        v.error("regex string match should not be empty");
    } else if re.len() > MAX_REGEX_LEN {
        v.error(format!(
            "regex is too large ({} characters), max length allowed is {MAX_REGEX_LEN}",
            re.len()
        ));
    } else {
        check_regex(v, re);
    }
}

// ---- headers ---------------------------------------------------------------

fn check_headers(v: &mut Validator, h: &Headers) {
    if let Some(req) = &h.request {
        v.field("request", |v| check_header_ops(v, req, true));
    }
    if let Some(resp) = &h.response {
        v.field("response", |v| check_header_ops(v, resp, false));
    }
}

fn check_header_ops(v: &mut Validator, ops: &HeaderOperations, request: bool) {
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        v.field(field, |v| {
            for (name, value) in map {
                v.key(name, |v| {
                    check_header_op_name(v, name, request);
                    if let Some(e) = header_value_error(value) {
                        v.error(e)
                            .hint("write %% for a literal %, and %VARIABLE% or %VARIABLE(args)% for Envoy variables");
                    }
                });
            }
        });
    }
    v.field("remove", |v| {
        for (i, name) in ops.remove.iter().enumerate() {
            v.index(i, |v| check_header_op_name(v, name, false));
        }
    });
}

/// A header name to set, add or remove: not a pseudo-header or `Host`,
/// except that a request may set `:authority`/`host` (the authority).
fn check_header_op_name(v: &mut Validator, name: &str, may_set_authority: bool) {
    if name.is_empty() {
        v.error("header name cannot be empty");
        return;
    }
    if may_set_authority && is_authority_header(name) {
        return;
    }
    if name.eq_ignore_ascii_case("host") {
        v.error(format!("invalid header {name:?}: cannot set Host header"))
            .hint("rewrite the authority with `rewrite.authority` or a request `set` of \":authority\"");
    } else if name.starts_with(':') {
        v.error(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ))
        .hint("pseudo-headers cannot be changed (only :authority, in a request)");
    } else if !is_token(name) {
        v.error(format!("header name {name} is not a valid header name"))
            .hint("header names are letters, digits and !#$%&'*+-.^_`|~");
    }
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Why a header value Envoy would reject is invalid (control characters,
/// or a `%` that starts no `%VARIABLE%`), if it is.
fn header_value_error(value: &str) -> Option<String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Some(format!(
            "header value {value:?} contains control characters"
        ));
    }
    #[derive(PartialEq)]
    enum St {
        Literal,
        Name,
        ExpectArray,
        ExpectString,
        InString,
        ExpectDelimOrEnd,
        ExpectArgsEnd,
        ExpectVarEnd,
    }
    let bytes = value.as_bytes();
    let mut st = St::Literal;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let has_next = i + 1 < bytes.len();
        match st {
            St::Literal if c == b'%' => {
                if !has_next {
                    return Some(format!("header value {value:?}: un-escaped % at the end"));
                }
                if bytes[i + 1] == b'%' {
                    i += 1;
                } else {
                    st = St::Name;
                }
            }
            St::Literal => {}
            St::Name if c == b'%' => st = St::Literal,
            St::Name if c == b'(' => st = St::ExpectArray,
            St::Name => {}
            St::ExpectArray if c == b'[' => st = St::ExpectString,
            St::ExpectArray if c != b' ' => st = St::InString,
            St::ExpectArray => {}
            St::ExpectDelimOrEnd if c == b',' => st = St::ExpectString,
            St::ExpectDelimOrEnd if c == b']' => st = St::ExpectArgsEnd,
            St::ExpectDelimOrEnd if c != b' ' => {
                return Some(format!(
                    "header value {value:?}: expecting ',', ']' or whitespace in variable arguments"
                ));
            }
            St::ExpectDelimOrEnd => {}
            St::ExpectString if c == b'"' => st = St::InString,
            St::ExpectString if c != b' ' => {
                return Some(format!(
                    "header value {value:?}: expecting '\"' in variable arguments"
                ));
            }
            St::ExpectString => {}
            St::InString if c == b'\\' => {
                if !has_next {
                    return Some(format!("header value {value:?}: un-terminated backslash"));
                }
                i += 1;
            }
            St::InString if c == b')' => st = St::ExpectVarEnd,
            St::InString if c == b'"' => st = St::ExpectDelimOrEnd,
            St::InString => {}
            St::ExpectArgsEnd if c == b')' => st = St::ExpectVarEnd,
            St::ExpectArgsEnd if c != b' ' => {
                return Some(format!(
                    "header value {value:?}: expecting ')' after variable arguments"
                ));
            }
            St::ExpectArgsEnd => {}
            St::ExpectVarEnd if c == b'%' => st = St::Literal,
            St::ExpectVarEnd if c != b' ' => {
                return Some(format!(
                    "header value {value:?}: expecting '%' to close the variable"
                ));
            }
            St::ExpectVarEnd => {}
        }
        i += 1;
    }
    (st != St::Literal)
        .then(|| format!("header value {value:?}: un-terminated variable expression"))
}

/// The authority may be rewritten in one place only: `rewrite.authority`
/// or one request `set`/`add` of `:authority`/`host`.
fn check_authority_once(v: &mut Validator, r: &HttpRoute) {
    let Some(req) = r.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    let mut current = r
        .rewrite
        .as_ref()
        .map(|rw| rw.authority.clone())
        .unwrap_or_default();
    for (field, map) in [("set", &req.set), ("add", &req.add)] {
        for (name, value) in map {
            if !is_authority_header(name) {
                continue;
            }
            if !current.is_empty() {
                let path_field = field;
                v.field("headers", |v| {
                    v.field("request", |v| {
                        v.field(path_field, |v| {
                            v.key(name, |v| {
                                v.conflict(format!(
                                    "authority header cannot be set multiple times: have {current:?}, attempting to set {value:?}"
                                ))
                                .hint("rewrite the authority once: either `rewrite.authority` or one request header");
                            });
                        });
                    });
                });
                return;
            }
            current = value.clone();
        }
    }
}
