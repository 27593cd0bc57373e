//! Fault injection (Envoy's `envoy.filters.http.fault`, configured per
//! route through `typed_per_filter_config`, which is how Istio sends a
//! VirtualService's `fault`): a fixed delay and an abort (an HTTP status,
//! or a gRPC status in a trailers-only response), each for a percentage
//! of requests, applied after routing and before the request goes
//! upstream. Header-controlled faults (`HeaderDelay`, `HeaderAbort`) read
//! `x-envoy-fault-*` request headers, only when the config asks for them.
//!
//! Delayed requests are flagged `DI`, aborted ones `FI`.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use weft_xds::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use weft_xds::pb::envoy::r#type::v3::FractionalPercent;
use weft_xds::pb::envoy::r#type::v3::fractional_percent::DenominatorType;

use crate::cluster::proto_duration;
use crate::errors::ProxyError;
use crate::route::matcher::{HeaderMatch, RequestView};

/// The fault filter's name, the key of its per-route config.
pub use weft_xds::names::FAULT_FILTER as FILTER;

const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENT_HEADER: &str = "x-envoy-fault-delay-request-percentage";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
const ABORT_PERCENT_HEADER: &str = "x-envoy-fault-abort-request-percentage";

/// A share of requests: `numerator` out of `denominator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    /// Out of `denominator`.
    pub numerator: u32,
    /// 100, 10 000 or 1 000 000.
    pub denominator: u32,
}

impl Fraction {
    /// Every request.
    pub const ALL: Fraction = Fraction {
        numerator: 100,
        denominator: 100,
    };

    /// Envoy's `FractionalPercent`; none is 0 % (the proto's default).
    pub fn from_xds(p: Option<&FractionalPercent>) -> Fraction {
        let Some(p) = p else {
            return Fraction {
                numerator: 0,
                denominator: 100,
            };
        };
        let denominator = match DenominatorType::try_from(p.denominator) {
            Ok(DenominatorType::TenThousand) => 10_000,
            Ok(DenominatorType::Million) => 1_000_000,
            _ => 100,
        };
        Fraction {
            numerator: p.numerator.min(denominator),
            denominator,
        }
    }

    /// A random draw: true for `numerator / denominator` of the calls.
    pub fn hit(self) -> bool {
        self.numerator >= self.denominator
            || (self.numerator > 0 && fastrand::u32(..self.denominator) < self.numerator)
    }

    /// The smaller of this and `numerator` over the same denominator (a
    /// header may lower the configured percentage, never raise it).
    fn capped(self, numerator: Option<u32>) -> Fraction {
        match numerator {
            Some(n) => Fraction {
                numerator: n.min(self.numerator),
                ..self
            },
            None => self,
        }
    }
}

/// How long to delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayKind {
    /// This long.
    Fixed(Duration),
    /// As many milliseconds as `x-envoy-fault-delay-request` says.
    Header,
}

/// What an abort answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortKind {
    /// This HTTP status.
    Http(StatusCode),
    /// This gRPC status, in a trailers-only response.
    Grpc(u32),
    /// As `x-envoy-fault-abort-request` (HTTP) or
    /// `x-envoy-fault-abort-grpc-request` (gRPC) says.
    Header,
}

/// A route's fault injection.
#[derive(Debug)]
pub struct Fault {
    /// The delay and the share of requests delayed.
    pub delay: Option<(DelayKind, Fraction)>,
    /// The abort and the share of requests aborted.
    pub abort: Option<(AbortKind, Fraction)>,
    /// Only requests matching all of these get faults.
    pub headers: Vec<HeaderMatch>,
}

/// What the fault filter decided for one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Then fail with this (a [`ProxyError::FaultAbort`]).
    pub abort: Option<(StatusCode, Option<u32>)>,
}

impl Decision {
    /// The abort as the error the request path returns.
    pub fn abort_error(&self) -> Option<ProxyError> {
        self.abort
            .map(|(status, grpc)| ProxyError::FaultAbort { status, grpc })
    }
}

impl TryFrom<&HttpFault> for Fault {
    type Error = String;

    fn try_from(f: &HttpFault) -> Result<Self, String> {
        let delay = match &f.delay {
            None => None,
            Some(d) => {
                let kind = match &d.fault_delay_secifier {
                    Some(FaultDelaySecifier::FixedDelay(t)) => {
                        DelayKind::Fixed(proto_duration(t).map_err(|e| format!("fault delay {e}"))?)
                    }
                    Some(FaultDelaySecifier::HeaderDelay(_)) => DelayKind::Header,
                    None => return Err("fault delay has no duration".into()),
                };
                Some((kind, Fraction::from_xds(d.percentage.as_ref())))
            }
        };
        let abort = match &f.abort {
            None => None,
            Some(a) => {
                let kind = match &a.error_type {
                    Some(ErrorType::HttpStatus(s)) => AbortKind::Http(
                        u16::try_from(*s)
                            .ok()
                            .filter(|s| (200..600).contains(s))
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .ok_or_else(|| format!("fault abort status {s} is not 200..599"))?,
                    ),
                    Some(ErrorType::GrpcStatus(c)) => AbortKind::Grpc(*c),
                    Some(ErrorType::HeaderAbort(_)) => AbortKind::Header,
                    None => return Err("fault abort has no status".into()),
                };
                Some((kind, Fraction::from_xds(a.percentage.as_ref())))
            }
        };
        let headers = f
            .headers
            .iter()
            .map(HeaderMatch::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Fault {
            delay,
            abort,
            headers,
        })
    }
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Fault {
    /// Decides, with random draws, what happens to `req`.
    pub fn decide(&self, req: &RequestView<'_>) -> Decision {
        let mut out = Decision::default();
        if !self.headers.iter().all(|h| h.matches(req)) {
            return out;
        }
        let headers = req.headers;
        if let Some((kind, fraction)) = self.delay {
            let (delay, fraction) = match kind {
                DelayKind::Fixed(d) => (Some(d), fraction),
                DelayKind::Header => (
                    header_u32(headers, DELAY_HEADER).map(|ms| Duration::from_millis(ms.into())),
                    fraction.capped(header_u32(headers, DELAY_PERCENT_HEADER)),
                ),
            };
            if let Some(d) = delay.filter(|d| !d.is_zero())
                && fraction.hit()
            {
                out.delay = Some(d);
            }
        }
        if let Some((kind, fraction)) = self.abort {
            let (abort, fraction) = match kind {
                AbortKind::Http(s) => (Some((s, None)), fraction),
                AbortKind::Grpc(c) => (Some((StatusCode::OK, Some(c))), fraction),
                AbortKind::Header => {
                    let http = header_u32(headers, ABORT_HEADER)
                        .and_then(|s| u16::try_from(s).ok())
                        .filter(|s| (200..600).contains(s))
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .map(|s| (s, None));
                    let grpc =
                        header_u32(headers, ABORT_GRPC_HEADER).map(|c| (StatusCode::OK, Some(c)));
                    (
                        http.or(grpc),
                        fraction.capped(header_u32(headers, ABORT_PERCENT_HEADER)),
                    )
                }
            };
            if abort.is_some() && fraction.hit() {
                out.abort = abort;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
    use weft_xds::pb::envoy::extensions::filters::common::fault::v3::fault_delay::HeaderDelay;
    use weft_xds::pb::envoy::extensions::filters::http::fault::v3::FaultAbort;
    use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::HeaderAbort;

    fn view(headers: &HeaderMap) -> RequestView<'_> {
        RequestView {
            method: "GET",
            scheme: "http",
            authority: "a",
            path: "/",
            query: None,
            headers,
        }
    }

    fn million(n: u32) -> Option<FractionalPercent> {
        Some(FractionalPercent {
            numerator: n,
            denominator: DenominatorType::Million as i32,
        })
    }

    #[test]
    fn fractions_draw_their_share() {
        let none = Fraction::from_xds(None);
        assert!((0..1000).all(|_| !none.hit()));
        assert!((0..1000).all(|_| Fraction::ALL.hit()));
        let tenth = Fraction::from_xds(million(100_000).as_ref());
        let hits = (0..20_000).filter(|_| tenth.hit()).count();
        assert!((1600..2400).contains(&hits), "{hits}");
        let over = Fraction::from_xds(Some(&FractionalPercent {
            numerator: 500,
            denominator: DenominatorType::Hundred as i32,
        }));
        assert_eq!(over, Fraction::ALL);
    }

    #[test]
    fn fixed_delay_and_http_abort() {
        let f = Fault::try_from(&HttpFault {
            delay: Some(FaultDelay {
                percentage: million(1_000_000),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(
                    weft_xds::pb::google::protobuf::Duration {
                        seconds: 0,
                        nanos: 5_000_000,
                    },
                )),
            }),
            abort: Some(FaultAbort {
                percentage: million(1_000_000),
                error_type: Some(ErrorType::HttpStatus(418)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("converts");
        let h = HeaderMap::new();
        let d = f.decide(&view(&h));
        assert_eq!(d.delay, Some(Duration::from_millis(5)));
        assert_eq!(d.abort, Some((StatusCode::IM_A_TEAPOT, None)));
        assert_eq!(
            d.abort_error().map(|e| e.flag().as_str()),
            Some("FI"),
            "aborts are flagged FI"
        );
    }

    #[test]
    fn grpc_abort_is_a_200_with_a_grpc_status() {
        let f = Fault::try_from(&HttpFault {
            abort: Some(FaultAbort {
                percentage: million(1_000_000),
                error_type: Some(ErrorType::GrpcStatus(14)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("converts");
        let h = HeaderMap::new();
        assert_eq!(f.decide(&view(&h)).abort, Some((StatusCode::OK, Some(14))));
    }

    #[test]
    fn an_abort_without_percentage_aborts_nothing() {
        let f = Fault::try_from(&HttpFault {
            abort: Some(FaultAbort {
                error_type: Some(ErrorType::HttpStatus(500)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("converts");
        let h = HeaderMap::new();
        assert!((0..200).all(|_| f.decide(&view(&h)).abort.is_none()));
    }

    #[test]
    fn bad_statuses_are_rejected() {
        let bad = HttpFault {
            abort: Some(FaultAbort {
                error_type: Some(ErrorType::HttpStatus(99)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Fault::try_from(&bad).is_err());
    }

    #[test]
    fn header_faults_follow_the_request_headers() {
        let f = Fault::try_from(&HttpFault {
            delay: Some(FaultDelay {
                percentage: million(1_000_000),
                fault_delay_secifier: Some(FaultDelaySecifier::HeaderDelay(HeaderDelay {})),
            }),
            abort: Some(FaultAbort {
                percentage: million(1_000_000),
                error_type: Some(ErrorType::HeaderAbort(HeaderAbort {})),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("converts");
        let none = HeaderMap::new();
        assert_eq!(f.decide(&view(&none)), Decision::default());
        let mut h = HeaderMap::new();
        h.insert(DELAY_HEADER, "20".parse().expect("value"));
        h.insert(ABORT_HEADER, "503".parse().expect("value"));
        let d = f.decide(&view(&h));
        assert_eq!(d.delay, Some(Duration::from_millis(20)));
        assert_eq!(d.abort, Some((StatusCode::SERVICE_UNAVAILABLE, None)));
        // A percentage header of 0 (out of the configured million) turns it off.
        h.insert(ABORT_PERCENT_HEADER, "0".parse().expect("value"));
        assert_eq!(f.decide(&view(&h)).abort, None);
        let mut g = HeaderMap::new();
        g.insert(ABORT_GRPC_HEADER, "8".parse().expect("value"));
        assert_eq!(f.decide(&view(&g)).abort, Some((StatusCode::OK, Some(8))));
    }
}
