//! Per-route policies: retries, fault injection, CORS, mirroring
//! percentages, and the small conversions they share (durations,
//! percentages, gRPC status names, base64 bodies).

use weft_config::networking::{CorsPolicy, HttpFaultInjection, HttpRetry, Percent};
use weft_xds::pack;
use weft_xds::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use weft_xds::pb::envoy::config::route::v3::RetryPolicy;
use weft_xds::pb::envoy::config::route::v3::retry_policy::{
    RetryBackOff, RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority,
};
use weft_xds::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
use weft_xds::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault};
use weft_xds::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use weft_xds::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use weft_xds::pb::envoy::r#type::matcher::v3::StringMatcher;
use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use weft_xds::pb::envoy::r#type::v3::FractionalPercent;
use weft_xds::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::matches::string_matcher;
use crate::translate::proxy::ProxyKind;
use weft_xds::pb::envoy::config::route::v3::RouteAction;
use weft_xds::pb::envoy::config::route::v3::route_action::MaxStreamDuration;

/// A route's timeout as Istio sets it (`setTimeout`; 0: none): for Envoy
/// and `weft proxy` the route `timeout` and the same `max_grpc_timeout`,
/// so a gRPC request's own deadline (its `grpc-timeout` header) limits it,
/// within the route's when there is one; a proxyless gRPC client reads
/// `max_stream_duration` instead.
pub fn set_timeout(action: &mut RouteAction, timeout: std::time::Duration, kind: ProxyKind) {
    action.timeout = Some(duration(timeout));
    if kind == ProxyKind::Grpc {
        action.max_stream_duration = Some(MaxStreamDuration {
            max_stream_duration: Some(duration(timeout)),
            ..Default::default()
        });
    } else {
        // Istio keeps the deprecated field: its replacement regressed.
        #[allow(deprecated)]
        {
            action.max_grpc_timeout = Some(duration(timeout));
        }
    }
}

/// Conditions retried when no VirtualService or mesh policy says
/// otherwise (Istio's default).
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Retries when none are configured (Istio's default).
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Status codes retried by default.
pub const DEFAULT_RETRIABLE_STATUS_CODES: [u32; 1] = [503];
/// Envoy's retry predicate that avoids hosts already tried.
pub const PREVIOUS_HOSTS_PREDICATE: &str = "envoy.retry_host_predicates.previous_hosts";
/// Envoy's retry priority that moves retries to other localities.
pub const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";
/// How many times Envoy may re-pick a host for one retry (Istio's value).
const HOST_SELECTION_RETRY_MAX_ATTEMPTS: i64 = 5;

pub(super) use crate::translate::envoy::duration;

/// The retry policy for `retries` (the route's, else the mesh's default),
/// as Istio's `retry.ConvertPolicy`: none configured gives the default
/// policy (2 retries on connection failures, refused streams, gRPC
/// `unavailable`/`cancelled` and 503), `attempts: 0` disables retries, and
/// explicit settings override the default field by field. Status codes in
/// `retryOn` become retriable status codes. With consistent hashing,
/// retries may go back to the same host.
pub(super) fn retry_policy(
    retries: Option<&HttpRetry>,
    consistent_hash: bool,
) -> Option<RetryPolicy> {
    let mut out = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_string(),
        num_retries: Some(UInt32Value {
            value: DEFAULT_RETRY_ATTEMPTS,
        }),
        retriable_status_codes: DEFAULT_RETRIABLE_STATUS_CODES.to_vec(),
        host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
        retry_host_predicate: if consistent_hash {
            Vec::new()
        } else {
            vec![previous_hosts()]
        },
        ..Default::default()
    };
    let Some(r) = retries else {
        return Some(out);
    };
    let attempts = u32::try_from(r.attempts).unwrap_or(0);
    if attempts == 0 {
        return None;
    }
    out.num_retries = Some(UInt32Value { value: attempts });
    if !r.retry_on.is_empty() {
        let (conditions, codes): (Vec<&str>, Vec<&str>) = r
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .partition(|p| status_code(p).is_none());
        out.retry_on = conditions.join(",");
        out.retriable_status_codes = codes.iter().filter_map(|c| status_code(c)).collect();
        if !out.retriable_status_codes.is_empty() && !conditions.contains(&"retriable-status-codes")
        {
            if !out.retry_on.is_empty() {
                out.retry_on.push(',');
            }
            out.retry_on.push_str("retriable-status-codes");
        }
    }
    if let Some(t) = r.per_try_timeout {
        out.per_try_timeout = Some(duration(t.get()));
    }
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if r.retry_remote_localities == Some(true) {
        out.retry_priority = Some(RetryPriority {
            name: PREVIOUS_PRIORITIES.to_string(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(pack(
                &PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        });
    }
    if let Some(b) = r.backoff {
        out.retry_back_off = Some(RetryBackOff {
            base_interval: Some(duration(b.get())),
            ..Default::default()
        });
    }
    Some(out)
}

fn previous_hosts() -> RetryHostPredicate {
    RetryHostPredicate {
        name: PREVIOUS_HOSTS_PREDICATE.to_string(),
        config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack(
            &PreviousHostsPredicate {},
        ))),
    }
}

/// `part` as an HTTP status code, if it is one.
fn status_code(part: &str) -> Option<u32> {
    part.parse::<u32>().ok().filter(|c| (100..=599).contains(c))
}

/// The fault filter's per-route config (Istio's `TranslateFault`); `None`
/// when nothing Envoy supports is asked for (exponential delays, HTTP/2
/// errors).
pub(super) fn fault(f: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = d.fixed_delay?;
        let percentage = match d.percentage {
            Some(p) => percent(p),
            None => hundredths(u32::try_from(d.percent).unwrap_or(0)),
        };
        Some(FaultDelay {
            percentage: Some(percentage),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(duration(fixed.get()))),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error = if let Some(status) = a.http_status {
            ErrorType::HttpStatus(u32::try_from(status).ok()?)
        } else {
            ErrorType::GrpcStatus(grpc_code(a.grpc_status.as_deref()?)?)
        };
        Some(FaultAbort {
            percentage: a.percentage.map(percent),
            error_type: Some(error),
            ..Default::default()
        })
    });
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(HttpFault {
        delay,
        abort,
        ..Default::default()
    })
}

/// The CORS filter's per-route config (Istio's `TranslateCORSPolicy`).
pub(super) fn cors(c: &CorsPolicy) -> EnvoyCors {
    use weft_config::networking::UnmatchedPreflights;
    let allow_origin_string_match = if !c.allow_origins.is_empty() {
        c.allow_origins.iter().map(string_matcher).collect()
    } else {
        c.allow_origin
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(MatchPattern::Exact(o.clone())),
                ..Default::default()
            })
            .collect()
    };
    EnvoyCors {
        allow_origin_string_match,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.get().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(hundredths(100)),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: c.unmatched_preflights != UnmatchedPreflights::Ignore,
        }),
        ..Default::default()
    }
}

/// How much of the traffic a mirror gets: the percentage given (none if
/// it is zero), else all of it.
pub(super) fn mirror_fraction(
    percentage: Option<Percent>,
    integer_percent: Option<u32>,
) -> Option<RuntimeFractionalPercent> {
    let value = match (percentage, integer_percent) {
        (Some(p), _) => (p.value > 0.0).then(|| percent(p))?,
        (None, Some(p)) => (p > 0).then(|| hundredths(p))?,
        (None, None) => hundredths(100),
    };
    Some(RuntimeFractionalPercent {
        default_value: Some(value),
        ..Default::default()
    })
}

/// A percentage as millionths (`12.5` → 125000 / 1000000).
pub(super) fn percent(p: Percent) -> FractionalPercent {
    FractionalPercent {
        // Truncating, as Istio does; clamped to 0..=100%.
        numerator: (p.value.clamp(0.0, 100.0) * 10_000.0) as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// An integer percentage.
fn hundredths(p: u32) -> FractionalPercent {
    FractionalPercent {
        numerator: p.min(100),
        denominator: DenominatorType::Hundred as i32,
    }
}

/// The code of a gRPC status name (`UNAVAILABLE` → 14).
pub fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = weft_config::networking::GRPC_STATUS_NAMES;
    NAMES
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u32::try_from(i).ok())
}

/// Decodes standard or URL-safe base64, padding optional (what protobuf
/// JSON accepts for `bytes`).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let digits = s.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
