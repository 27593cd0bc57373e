//! Per-route policies: timeouts, retries, faults, mirrors, redirects,
//! direct responses, rewrites and CORS.

use super::checks::check_destination;
use super::http::{MatchKind, check_match_regex, check_string_match};
use super::*;
use crate::diag::Code;
use crate::validate::{Validator, check_percent, check_port};
use crate::validate::{check_duration, is_token};

/// Direct response bodies above this are rejected, above `WARN_BODY` warned.
const MAX_BODY: usize = 1024 * 1024;
const WARN_BODY: usize = 100 * 1024;

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Methods a CORS policy may allow (Go's `net/http` list and `*`).
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// gRPC status names a fault may abort with.
const GRPC_STATUSES: &[&str] = &crate::networking::GRPC_STATUS_NAMES;

/// Redirect codes Envoy can send.
const REDIRECT_CODES: &[u32] = &[301, 302, 303, 307, 308];

/// Checks a CORS policy.
pub(super) fn check_cors(v: &mut Validator, c: &CorsPolicy) {
    if !c.allow_origin.is_empty() {
        v.field("allowOrigin", |v| {
            v.report(
                Code::Deprecated,
                "allowOrigin is deprecated; use allowOrigins",
            )
            .hint("write `allowOrigins: [{exact: \"https://example.com\"}]`");
        });
    }
    v.each("allowOrigins", &c.allow_origins, |v, o| {
        check_string_match(v, o, MatchKind::CorsOrigin);
    });
    v.field("allowMethods", |v| {
        for (i, m) in c.allow_methods.iter().enumerate() {
            if !CORS_METHODS.contains(&m.as_str()) {
                v.index(i, |v| {
                    let e = v.error(format!("{m:?} is not a supported HTTP method"));
                    if CORS_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
                        e.hint(format!(
                            "methods are uppercase: {:?}",
                            m.to_ascii_uppercase()
                        ));
                    } else {
                        e.hint(format!("use one of {}", CORS_METHODS.join(", ")));
                    }
                });
            }
        }
    });
    for (field, names) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        v.field(field, |v| {
            for (i, n) in names.iter().enumerate() {
                if n != "*" && !is_token(n) {
                    v.index(i, |v| {
                        if n.is_empty() {
                            v.error("header name cannot be empty");
                        } else {
                            v.error(format!("header name {n} is not a valid header name"))
                                .hint("header names are letters, digits and !#$%&'*+-.^_`|~, or \"*\"");
                        }
                    });
                }
            }
        });
    }
    if let Some(max_age) = c.max_age {
        v.field("maxAge", |v| {
            if max_age.get().subsec_nanos() == 0 || max_age.get().as_millis() < 1 {
                check_duration(v, max_age);
            } else {
                v.error(format!(
                    "maxAge {max_age}: max_age duration is accurate only to seconds precision"
                ))
                .hint("use whole seconds, e.g. \"24h\" or \"600s\"");
            }
        });
    }
}

/// A fault percentage is 0, or 0.0001..=100 (Envoy's precision).
fn check_fault_percentage(v: &mut Validator, p: &Option<Percent>) {
    if let Some(p) = p {
        let x = p.value;
        if x.is_nan() || !(0.0..=100.0).contains(&x) || (x > 0.0 && x < 0.0001) {
            v.field("percentage", |v| {
                v.field("value", |v| {
                    v.error(format!(
                        "percentage {x} is neither 0.0, nor in range [0.0001, 100.0]"
                    ));
                });
            });
        }
    }
}

/// Checks fault injection: a delay and/or an abort, each well formed.
pub(super) fn check_fault(v: &mut Validator, f: &HttpFaultInjection) {
    if f.abort.is_none() && f.delay.is_none() {
        v.report(
            Code::RequiredField,
            "HTTP fault injection must have an abort and/or a delay",
        )
        .hint("add `delay: {fixedDelay: 5s, percentage: {value: 10}}` or `abort: {httpStatus: 503, percentage: {value: 10}}`");
    }
    if let Some(d) = &f.delay {
        v.field("delay", |v| {
            check_fault_percentage(v, &d.percentage);
            check_deprecated_percent(v, d.percent, d.percentage.is_some());
            match (d.fixed_delay, d.exponential_delay) {
                (Some(_), Some(_)) => {
                    v.field("exponentialDelay", |v| {
                        v.conflict("only one of fixedDelay or exponentialDelay can be set");
                    });
                }
                (None, None) => {
                    v.required("fixedDelay")
                        .hint("a delay needs `fixedDelay`, e.g. \"5s\"");
                }
                (Some(fixed), None) => {
                    v.field("fixedDelay", |v| check_duration(v, fixed));
                }
                (None, Some(_)) => {
                    v.field("exponentialDelay", |v| {
                        v.error("exponentialDelay not supported yet")
                            .hint("use fixedDelay");
                    });
                }
            }
        });
    }
    if let Some(a) = &f.abort {
        v.field("abort", |v| check_abort(v, a));
    }
}

fn check_deprecated_percent(v: &mut Validator, percent: i32, has_percentage: bool) {
    if percent == 0 {
        return;
    }
    v.field("percent", |v| {
        if !(0..=100).contains(&percent) {
            v.error(format!("percentage {percent} is not in range 0..100"));
        }
        let msg = if has_percentage {
            "percent is deprecated and ignored because percentage is set"
        } else {
            "percent is deprecated; use percentage"
        };
        v.report(Code::Deprecated, msg)
            .hint(format!("write `percentage: {{value: {percent}}}`"));
    });
}

fn check_abort(v: &mut Validator, a: &FaultAbort) {
    check_fault_percentage(v, &a.percentage);
    let kinds = [
        a.http_status.is_some(),
        a.grpc_status.is_some(),
        a.http2_error.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if kinds > 1 {
        v.conflict("only one of httpStatus, grpcStatus or http2Error can be set");
        return;
    }
    if let Some(status) = a.http_status {
        if !(200..=599).contains(&status) {
            v.field("httpStatus", |v| {
                v.error(format!("HTTP status {status} is not in range 200-599"));
            });
        }
    } else if let Some(status) = &a.grpc_status {
        if !GRPC_STATUSES.contains(&status.as_str()) {
            v.field("grpcStatus", |v| {
                let e = v.error(format!(
                    "gRPC status {status:?} is not supported, for example 'NOT_FOUND'"
                ));
                match crate::de::suggest(status, GRPC_STATUSES) {
                    Some(s) => e.hint(format!("did you mean {s:?}?")),
                    None => e.hint(format!("use one of {}", GRPC_STATUSES.join(", "))),
                };
            });
        }
    } else if a.http2_error.is_some() {
        v.field("http2Error", |v| {
            v.error("HTTP/2 abort fault injection not supported yet")
                .hint("use httpStatus or grpcStatus");
        });
    } else {
        v.warn("abort configured, but error type not set")
            .hint("set httpStatus (e.g. 503) or grpcStatus (e.g. \"UNAVAILABLE\")");
    }
}

/// Checks `mirror`, `mirrors` and the mirror percentages of a route.
pub(super) fn check_mirrors(v: &mut Validator, r: &HttpRoute) {
    if let Some(m) = &r.mirror {
        v.field("mirror", |v| check_destination(v, m));
        if !r.mirrors.is_empty() {
            v.field("mirrors", |v| {
                v.conflict("HTTP route cannot contain both mirror and mirrors")
                    .hint("move `mirror` into `mirrors`");
            });
        }
    }
    v.each("mirrors", &r.mirrors, |v, m| {
        match &m.destination {
            None => {
                v.required("destination")
                    .hint("destination is required for mirrors");
            }
            Some(d) => v.field("destination", |v| check_destination(v, d)),
        }
        if let Some(p) = m.percentage {
            v.field("percentage", |v| {
                v.field("value", |v| check_percent(v, p.value))
            });
        }
    });
    if let Some(p) = r.mirror_percent {
        v.field("mirrorPercent", |v| {
            if p > 100 {
                v.error(format!(
                    "mirror_percent must have a max value of 100 (it has {p})"
                ));
            }
            v.report(
                Code::Deprecated,
                "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
            )
            .hint(format!("write `mirrorPercentage: {{value: {p}}}`"));
        });
    }
    if let Some(p) = r.mirror_percentage {
        v.field("mirrorPercentage", |v| {
            v.field("value", |v| check_percent(v, p.value));
        });
    }
    if r.mirror.is_none() {
        for (field, set) in [
            ("mirrorPercentage", r.mirror_percentage.is_some()),
            ("mirrorPercent", r.mirror_percent.is_some()),
        ] {
            if set {
                v.field(field, |v| {
                    v.warn(format!("{field} has no effect without mirror"))
                        .hint("set `mirror`, or give each of `mirrors` its own percentage");
                });
            }
        }
    }
}

/// Checks a redirect: something to change, a code Envoy can send, a valid port.
pub(super) fn check_redirect(v: &mut Validator, r: &HttpRedirect) {
    if r.uri.is_empty()
        && r.authority.is_empty()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_empty()
    {
        v.error("redirect must specify URI, authority, scheme, or port")
            .hint("e.g. `redirect: {uri: /new-path}` or `redirect: {scheme: https}`");
    }
    if r.redirect_code != 0 && !REDIRECT_CODES.contains(&r.redirect_code) {
        v.field("redirectCode", |v| {
            let msg = if (300..=399).contains(&r.redirect_code) {
                format!(
                    "redirect code {} is not supported by the proxy",
                    r.redirect_code
                )
            } else {
                format!(
                    "{} is not a valid redirect code, must be 3xx",
                    r.redirect_code
                )
            };
            v.error(msg).hint("use 301, 302, 303, 307 or 308");
        });
    }
    if !r.scheme.is_empty() && r.scheme != "http" && r.scheme != "https" {
        v.field("scheme", |v| {
            v.error(format!(
                "invalid redirect scheme {:?}, must be \"http\" or \"https\"",
                r.scheme
            ));
        });
    }
    if let Some(p) = r.port {
        v.field("port", |v| check_port(v, p));
        if r.derive_port.is_some() {
            v.field("derivePort", |v| {
                v.conflict("only one of port or derivePort can be set");
            });
        }
    }
}

/// Checks a direct response: a valid status and a body of at most 1 MiB.
pub(super) fn check_direct_response(v: &mut Validator, d: &HttpDirectResponse) {
    if d.status == 0 {
        v.required("status")
            .hint("give the status code to answer with, e.g. 503");
    } else if !(200..=599).contains(&d.status) {
        v.field("status", |v| {
            v.error(format!("HTTP status {} is not in range 200-599", d.status));
        });
    }
    let Some(body) = &d.body else { return };
    v.field("body", |v| {
        let size = match (&body.string, &body.bytes) {
            (Some(_), Some(_)) => {
                v.conflict("only one of string or bytes can be set");
                return;
            }
            (None, None) => {
                v.warn("body sets neither string nor bytes: the response is empty");
                return;
            }
            (Some(s), None) => s.len(),
            (None, Some(b)) => match base64_len(b) {
                Some(n) => n,
                None => {
                    v.field("bytes", |v| {
                        v.error("bytes is not valid base64")
                            .hint("bytes is base64-encoded; use `string` for text");
                    });
                    return;
                }
            },
        };
        if size > MAX_BODY {
            v.error(format!(
                "direct response body is {size} bytes: large direct_responses may impact control plane performance, must be less than 1MB"
            ));
        } else if size > WARN_BODY {
            v.warn(format!(
                "direct response body is {size} bytes: large direct_responses may impact control plane performance"
            ));
        }
    });
}

/// The decoded length of standard or URL-safe base64 (padding optional),
/// or `None` if it is not base64.
fn base64_len(s: &str) -> Option<usize> {
    let data = s.trim_end_matches('=');
    let padding = s.len() - data.len();
    let valid = data
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if !valid || padding > 2 || data.len() % 4 == 1 {
        return None;
    }
    Some(data.len() * 3 / 4)
}

impl crate::validate::Validate for HttpRetry {
    fn validate(&self, v: &mut Validator) {
        check_retries(v, self);
    }
}

/// Checks a retry policy (Istio's `validateHTTPRetry`).
pub(super) fn check_retries(v: &mut Validator, r: &HttpRetry) {
    if r.attempts < 0 {
        v.field("attempts", |v| {
            v.error(format!("attempts {} cannot be negative", r.attempts));
        });
    }
    if r.attempts == 0
        && (r.per_try_timeout.is_some()
            || !r.retry_on.is_empty()
            || r.retry_remote_localities.is_some())
    {
        v.field("attempts", |v| {
            v.error("http retry policy configured when attempts are set to 0 (disabled)")
                .hint("set `attempts` (e.g. 3), or remove the other retry settings");
        });
    }
    if let Some(t) = r.per_try_timeout {
        v.field("perTryTimeout", |v| check_duration(v, t));
    }
    if let Some(b) = r.backoff {
        v.field("backoff", |v| check_duration(v, b));
    }
    if !r.retry_on.is_empty() {
        v.field("retryOn", |v| {
            for policy in r.retry_on.split(',') {
                if RETRY_ON.contains(&policy) || is_http_status(policy) {
                    continue;
                }
                let e = v.error(format!("{policy:?} is not a valid retryOn policy"));
                let trimmed = policy.trim();
                if trimmed != policy && (RETRY_ON.contains(&trimmed) || is_http_status(trimmed)) {
                    e.hint("write the list without spaces: \"5xx,reset,connect-failure\"");
                } else if let Some(s) = crate::de::suggest(policy, RETRY_ON) {
                    e.hint(format!("did you mean {s:?}?"));
                } else {
                    e.hint(format!("use HTTP status codes or {}", RETRY_ON.join(", ")));
                }
            }
        });
    }
}

/// Whether `s` is a status code Go's `http.StatusText` knows.
fn is_http_status(s: &str) -> bool {
    let Ok(code) = s.parse::<u16>() else {
        return false;
    };
    s.bytes().all(|b| b.is_ascii_digit())
        && matches!(code,
            100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426
            | 428 | 429 | 431 | 451 | 500..=508 | 510 | 511)
}

/// Checks a rewrite: `uri` or `uriRegexRewrite` (not both) and/or `authority`.
pub(super) fn check_rewrite(v: &mut Validator, r: &HttpRewrite) {
    if !r.uri.is_empty() && r.uri_regex_rewrite.is_some() {
        v.field("uriRegexRewrite", |v| {
            v.conflict("rewrite may only contain one of URI or UriRegexRewrite");
        });
    }
    if r.uri.is_empty() && r.uri_regex_rewrite.is_none() && r.authority.is_empty() {
        v.error("rewrite must specify at least one of URI, UriRegexRewrite, or authority")
            .hint("e.g. `rewrite: {uri: /v2/}` or `rewrite: {authority: api.example.com}`");
    }
    if let Some(rr) = &r.uri_regex_rewrite {
        v.field("uriRegexRewrite", |v| {
            if rr.matches.is_empty() {
                v.required("match")
                    .hint("UriRegexRewrite requires both Rewrite and Match fields to be specified");
            } else {
                v.field("match", |v| check_match_regex(v, &rr.matches));
            }
            if rr.rewrite.is_empty() {
                v.required("rewrite")
                    .hint("UriRegexRewrite requires both Rewrite and Match fields to be specified");
            }
        });
    }
}
