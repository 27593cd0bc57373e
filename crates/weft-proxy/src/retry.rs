//! Retries as Envoy's router does them: which outcomes are retried
//! (`retry_on`), how many times, each attempt's own time limit
//! (`per_try_timeout`, within the route's timeout, which covers every
//! attempt), the jittered exponential back-off between attempts, and the
//! `previous_hosts` predicate (a retry goes to an endpoint not tried yet
//! when there is one).
//!
//! | `retry_on` | retried when |
//! | --- | --- |
//! | `5xx` | any 5xx, a reset, a connect failure, a per-try timeout |
//! | `gateway-error` | 502, 503, 504, a reset, a connect failure, a per-try timeout |
//! | `reset` | the upstream closed or reset before its headers, a connect failure, a per-try timeout |
//! | `connect-failure` | connecting failed |
//! | `refused-stream` | the upstream reset the HTTP/2 stream with `REFUSED_STREAM` (it did not process the request) |
//!
//! Resets are read as Envoy's router reads them (`wouldRetryFromReset`):
//! a connect failure and a refused stream are resets too, so `reset`,
//! `5xx` and `gateway-error` retry every reset (the local reply it would
//! become is a 503), `connect-failure` and `refused-stream` only their own.
//! A circuit breaker overflow is never retried.
//! | `retriable-4xx` | 409 |
//! | `retriable-status-codes` | one of `retriable_status_codes` |
//! | `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable` | a gRPC response whose headers carry that `grpc-status` (trailers-only) |
//!
//! A request body is replayed only if it was kept ([`crate::replay`]).

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use weft_xds::pb::envoy::config::route::v3::RetryPolicy;

use crate::cluster::proto_duration;
use crate::errors::ProxyError;

/// Envoy's default back-off base interval.
pub const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);
/// The predicate that avoids endpoints already tried.
pub const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";

const GRPC_CANCELLED: u32 = 1;
const GRPC_DEADLINE_EXCEEDED: u32 = 4;
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
const GRPC_INTERNAL: u32 = 13;
const GRPC_UNAVAILABLE: u32 = 14;

/// A route's retry policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// `connect-failure`.
    pub connect_failure: bool,
    /// `reset`.
    pub reset: bool,
    /// `refused-stream`.
    pub refused_stream: bool,
    /// `5xx`.
    pub any_5xx: bool,
    /// `gateway-error`.
    pub gateway_error: bool,
    /// `retriable-4xx` (409).
    pub retriable_4xx: bool,
    /// `retriable-status-codes`: these.
    pub statuses: Vec<u16>,
    /// The gRPC statuses retried.
    pub grpc: Vec<u32>,
    /// Each attempt's limit (until the response headers); `None`: only
    /// the route's timeout.
    pub per_try_timeout: Option<Duration>,
    /// Back-off base interval (default 25 ms).
    pub base_interval: Duration,
    /// Back-off ceiling (default 10 × base).
    pub max_interval: Duration,
    /// Retry on another endpoint (the `previous_hosts` predicate).
    pub other_host: bool,
    /// How many times to pick again to find an endpoint not tried (at least 1).
    pub host_selection_attempts: u32,
}

impl TryFrom<&RetryPolicy> for Retry {
    type Error = String;

    fn try_from(p: &RetryPolicy) -> Result<Self, String> {
        let mut r = Retry {
            attempts: p.num_retries.as_ref().map_or(1, |n| n.value),
            base_interval: DEFAULT_BASE_INTERVAL,
            ..Retry::default()
        };
        for c in p
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            match c {
                "5xx" => r.any_5xx = true,
                "gateway-error" => r.gateway_error = true,
                "reset" => r.reset = true,
                "connect-failure" => r.connect_failure = true,
                "refused-stream" => r.refused_stream = true,
                "retriable-4xx" => r.retriable_4xx = true,
                "retriable-status-codes" => {
                    r.statuses = p
                        .retriable_status_codes
                        .iter()
                        .filter_map(|c| u16::try_from(*c).ok())
                        .collect();
                }
                "cancelled" => r.grpc.push(GRPC_CANCELLED),
                "deadline-exceeded" => r.grpc.push(GRPC_DEADLINE_EXCEEDED),
                "resource-exhausted" => r.grpc.push(GRPC_RESOURCE_EXHAUSTED),
                "internal" => r.grpc.push(GRPC_INTERNAL),
                "unavailable" => r.grpc.push(GRPC_UNAVAILABLE),
                // Conditions the proxy can't judge yet are not retried on
                // (Envoy ignores unknown ones too).
                other => {
                    tracing::debug!(target: "weft::proxy", condition = other, "retry condition not supported; ignored");
                }
            }
        }
        r.per_try_timeout = p
            .per_try_timeout
            .as_ref()
            .map(proto_duration)
            .transpose()
            .map_err(|e| format!("per_try_timeout {e}"))?
            .filter(|d| !d.is_zero());
        if let Some(b) = &p.retry_back_off {
            if let Some(base) = &b.base_interval {
                let base = proto_duration(base).map_err(|e| format!("retry back-off {e}"))?;
                if base.is_zero() {
                    return Err("retry back-off base interval must be above 0".into());
                }
                r.base_interval = base;
            }
            if let Some(max) = &b.max_interval {
                r.max_interval = proto_duration(max).map_err(|e| format!("retry back-off {e}"))?;
                if r.max_interval < r.base_interval {
                    return Err("retry back-off max interval is below the base".into());
                }
            }
        }
        if r.max_interval.is_zero() {
            r.max_interval = r.base_interval * 10;
        }
        r.other_host = p
            .retry_host_predicate
            .iter()
            .any(|h| h.name == PREVIOUS_HOSTS);
        r.host_selection_attempts = u32::try_from(p.host_selection_retry_max_attempts)
            .unwrap_or(0)
            .max(1);
        Ok(r)
    }
}

/// What an attempt came to, as far as retries care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Response headers arrived.
    Response(StatusCode, &'a HeaderMap),
    /// Connecting failed.
    ConnectFailure,
    /// The upstream closed or reset before its response headers.
    Reset,
    /// An idempotent request (RFC 9110 §9.2.2) met an HTTP/1.1
    /// connection that ended before any byte of the response
    /// ([`ProxyError::Terminated`] `unanswered`): most likely the upstream
    /// closed it (idle, or not yet accepted, as it drains) without reading
    /// the request. Safe to send again. (The caller makes it
    /// [`Outcome::Reset`] for other methods.)
    Unanswered,
    /// The upstream refused the HTTP/2 stream (`REFUSED_STREAM`).
    RefusedStream,
    /// The attempt's own time limit passed.
    PerTryTimeout,
    /// Anything else (never retried).
    Other,
}

impl<'a> Outcome<'a> {
    /// A short name for logs (`retrying ... after=...`).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Response(..) => "response",
            Outcome::ConnectFailure => "connect-failure",
            Outcome::Reset => "reset",
            Outcome::Unanswered => "unanswered",
            Outcome::RefusedStream => "refused-stream",
            Outcome::PerTryTimeout => "per-try-timeout",
            Outcome::Other => "other",
        }
    }

    /// The outcome of an attempt's result.
    pub fn of<B>(result: &'a Result<http::Response<B>, ProxyError>, per_try: bool) -> Self {
        match result {
            Ok(r) => Outcome::Response(r.status(), r.headers()),
            Err(ProxyError::ConnectFailure { .. }) => Outcome::ConnectFailure,
            Err(ProxyError::Terminated {
                unanswered: true, ..
            }) => Outcome::Unanswered,
            Err(ProxyError::Terminated { .. } | ProxyError::Protocol { .. }) => Outcome::Reset,
            Err(ProxyError::Refused { .. }) => Outcome::RefusedStream,
            Err(ProxyError::Timeout(_)) if per_try => Outcome::PerTryTimeout,
            Err(_) => Outcome::Other,
        }
    }
}

/// The `grpc-status` of a trailers-only gRPC response.
fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Retry {
    /// Whether `outcome` is tried again (attempts left aside).
    pub fn retries(&self, outcome: Outcome<'_>) -> bool {
        match outcome {
            Outcome::Response(status, headers) => {
                let code = status.as_u16();
                (self.any_5xx && status.is_server_error())
                    || (self.gateway_error && matches!(code, 502..=504))
                    || (self.retriable_4xx && code == 409)
                    || self.statuses.contains(&code)
                    || (!self.grpc.is_empty()
                        && grpc_status(headers).is_some_and(|c| self.grpc.contains(&c)))
            }
            Outcome::ConnectFailure => self.connect_failure || self.any_reset(),
            Outcome::Reset => self.any_reset(),
            // As a connection failure: the request most likely never got
            // there. Istio's default policy (connect-failure) retries it,
            // where Envoy answers 503 UC.
            Outcome::Unanswered => self.connect_failure || self.any_reset(),
            Outcome::RefusedStream => self.refused_stream || self.any_reset(),
            Outcome::PerTryTimeout => self.any_reset(),
            Outcome::Other => false,
        }
    }

    /// Whether every reset is retried (`reset`, `5xx`, `gateway-error`).
    fn any_reset(&self) -> bool {
        self.reset || self.any_5xx || self.gateway_error
    }

    /// How long to wait before retry number `n` (1 for the first):
    /// a random time up to `base × 2^(n-1)`, at most the ceiling (Envoy's
    /// fully jittered exponential back-off).
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base_interval
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_interval);
        let ms = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(fastrand::u64(..=ms))
    }

    /// Picks the endpoint of the next attempt with `pick`, avoiding those
    /// in `tried` when the policy asks: Envoy re-picks up to its host
    /// selection attempts; when every re-pick still lands on a tried
    /// endpoint, `untried` (an endpoint that can serve and was not tried,
    /// if any) gives one. Without that last step a least-request balancer
    /// over two endpoints picks a refusing one again every time — it has
    /// the fewest requests active, as they fail at once — and a retry
    /// meant for the other endpoint never reaches it.
    pub fn pick_endpoint<T>(
        &self,
        tried: &[String],
        mut pick: impl FnMut() -> Option<T>,
        address: impl Fn(&T) -> String,
        untried: impl FnOnce() -> Option<T>,
    ) -> Option<T> {
        let mut chosen = pick();
        if !self.other_host {
            return chosen;
        }
        for _ in 0..self.host_selection_attempts {
            match &chosen {
                Some(e) if tried.contains(&address(e)) => chosen = pick().or(chosen),
                _ => return chosen,
            }
        }
        match chosen {
            Some(e) if tried.contains(&address(&e)) => untried().or(Some(e)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::pb::envoy::config::route::v3::retry_policy::{RetryBackOff, RetryHostPredicate};
    use weft_xds::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

    fn policy(on: &str) -> Retry {
        Retry::try_from(&RetryPolicy {
            retry_on: on.into(),
            num_retries: Some(UInt32Value { value: 2 }),
            retriable_status_codes: vec![503],
            ..Default::default()
        })
        .expect("converts")
    }

    #[test]
    fn conditions_as_envoy_reads_them() {
        let h = HeaderMap::new();
        let resp = |s: u16| Outcome::Response(StatusCode::from_u16(s).expect("status"), &h);
        let any = policy("5xx");
        assert!(any.retries(resp(500)) && any.retries(resp(503)));
        assert!(any.retries(Outcome::Reset) && any.retries(Outcome::ConnectFailure));
        assert!(any.retries(Outcome::PerTryTimeout));
        assert!(!any.retries(resp(404)) && !any.retries(Outcome::Other));
        let gw = policy("gateway-error");
        assert!(gw.retries(resp(502)) && gw.retries(resp(504)) && !gw.retries(resp(500)));
        assert!(policy("retriable-4xx").retries(resp(409)));
        assert!(!policy("retriable-4xx").retries(resp(400)));
        let codes = policy("retriable-status-codes");
        assert!(codes.retries(resp(503)) && !codes.retries(resp(502)));
        assert!(
            !policy("503").retries(resp(503)),
            "codes need the condition"
        );
        let cf = policy("connect-failure");
        assert!(cf.retries(Outcome::ConnectFailure) && !cf.retries(Outcome::Reset));
        // An idempotent request on a connection that ended unanswered is
        // retried as a connect failure (and as any reset), not on codes.
        assert!(cf.retries(Outcome::Unanswered) && any.retries(Outcome::Unanswered));
        assert!(!codes.retries(Outcome::Unanswered));
        assert!(!cf.retries(resp(503)), "a 503 answer is no connect failure");
        assert!(!cf.retries(Outcome::PerTryTimeout));
        let refused = policy("refused-stream");
        assert!(refused.refused_stream);
        assert!(
            !refused.retries(Outcome::Reset),
            "a reset is no refused stream"
        );
        assert!(refused.retries(Outcome::RefusedStream));
        assert!(!cf.retries(Outcome::RefusedStream));
        assert!(any.retries(Outcome::RefusedStream));
        let refused = Err::<http::Response<()>, _>(ProxyError::Refused {
            endpoint: "e".into(),
            reason: "REFUSED_STREAM".into(),
        });
        assert_eq!(Outcome::of(&refused, false), Outcome::RefusedStream);
    }

    /// Envoy's `wouldRetryFromReset`: `reset`, `5xx` and `gateway-error`
    /// retry any reset (a connect failure and a refused stream are
    /// resets); `connect-failure` and `refused-stream` only their own; a
    /// breaker overflow (`Other`) never.
    #[test]
    fn resets_are_retried_as_envoy_retries_them() {
        use Outcome::{ConnectFailure, Other, PerTryTimeout, RefusedStream, Reset};
        let table = [
            // condition: connect failure, reset, refused stream, per-try timeout
            ("gateway-error", [true, true, true, true]),
            ("5xx", [true, true, true, true]),
            ("reset", [true, true, true, true]),
            ("connect-failure", [true, false, false, false]),
            ("refused-stream", [false, false, true, false]),
            ("retriable-4xx", [false, false, false, false]),
            ("retriable-status-codes", [false, false, false, false]),
            ("unavailable", [false, false, false, false]),
        ];
        for (on, expected) in table {
            let p = policy(on);
            let got = [ConnectFailure, Reset, RefusedStream, PerTryTimeout].map(|o| p.retries(o));
            assert_eq!(got, expected, "retry_on {on}");
            assert!(!p.retries(Other), "retry_on {on}: an overflow");
        }
    }

    /// Istio's default policy (what the control plane sends when a route
    /// has none).
    #[test]
    fn istios_default_retry_on() {
        let p =
            policy("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
        fn resp(s: u16, h: &HeaderMap) -> Outcome<'_> {
            Outcome::Response(StatusCode::from_u16(s).expect("status"), h)
        }
        let h = HeaderMap::new();
        assert!(p.retries(Outcome::ConnectFailure) && p.retries(Outcome::RefusedStream));
        assert!(p.retries(resp(503, &h)), "503 is its retriable status code");
        assert!(!p.retries(Outcome::Reset) && !p.retries(Outcome::PerTryTimeout));
        assert!(!p.retries(resp(502, &h)) && !p.retries(resp(500, &h)));
        for (code, retried) in [("14", true), ("1", true), ("4", false), ("13", false)] {
            let mut grpc = HeaderMap::new();
            grpc.insert("grpc-status", code.parse().expect("value"));
            assert_eq!(p.retries(resp(200, &grpc)), retried, "grpc-status {code}");
        }
    }

    #[test]
    fn grpc_conditions_read_the_trailers_only_status() {
        let p = policy("unavailable,cancelled,deadline-exceeded,internal,resource-exhausted");
        for (code, retried) in [
            ("14", true),
            ("1", true),
            ("4", true),
            ("13", true),
            ("8", true),
            ("0", false),
            ("5", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert("grpc-status", code.parse().expect("value"));
            assert_eq!(
                p.retries(Outcome::Response(StatusCode::OK, &h)),
                retried,
                "{code}"
            );
        }
        assert!(!p.retries(Outcome::Response(StatusCode::OK, &HeaderMap::new())));
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = policy("5xx");
        assert_eq!(p.base_interval, Duration::from_millis(25));
        assert_eq!(p.max_interval, Duration::from_millis(250));
        for n in 1..10 {
            let cap = Duration::from_millis((25u64 << (n - 1)).min(250));
            for _ in 0..50 {
                assert!(p.backoff(n) <= cap, "retry {n}");
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..100).map(|_| p.backoff(4)).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
        let custom = Retry::try_from(&RetryPolicy {
            retry_on: "5xx".into(),
            retry_back_off: Some(RetryBackOff {
                base_interval: Some(PbDuration {
                    seconds: 0,
                    nanos: 100_000_000,
                }),
                max_interval: None,
            }),
            ..Default::default()
        })
        .expect("converts");
        assert_eq!(custom.max_interval, Duration::from_secs(1));
        assert_eq!(custom.attempts, 1, "Envoy's default is one retry");
    }

    #[test]
    fn previous_hosts_avoids_tried_endpoints() {
        let mut p = Retry::try_from(&RetryPolicy {
            retry_on: "5xx".into(),
            retry_host_predicate: vec![RetryHostPredicate {
                name: PREVIOUS_HOSTS.into(),
                config_type: None,
            }],
            host_selection_retry_max_attempts: 5,
            ..Default::default()
        })
        .expect("converts");
        assert!(p.other_host);
        let tried = vec!["a".to_string()];
        // A picker that returns "a" four times, then "b".
        let picks = |n: usize| {
            let mut seq = std::iter::repeat_n("a", n).chain(std::iter::repeat("b"));
            move || seq.next().map(str::to_string)
        };
        let none = || None;
        assert_eq!(
            p.pick_endpoint(&tried, picks(4), Clone::clone, none),
            Some("b".into())
        );
        // Only "a" exists: it is tried again.
        assert_eq!(
            p.pick_endpoint(&tried, picks(100), Clone::clone, none),
            Some("a".into())
        );
        // The picker keeps choosing "a" (least request, "a" failing fast),
        // but "c" can serve: the retry goes there.
        assert_eq!(
            p.pick_endpoint(&tried, picks(100), Clone::clone, || Some("c".into())),
            Some("c".into())
        );
        // A picker that finds an untried endpoint is believed.
        assert_eq!(
            p.pick_endpoint(&tried, picks(2), Clone::clone, || Some("c".into())),
            Some("b".into())
        );
        p.other_host = false;
        assert_eq!(
            p.pick_endpoint(&tried, picks(1), Clone::clone, || Some("c".into())),
            Some("a".into())
        );
    }
}
