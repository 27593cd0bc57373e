//! CORS (Envoy's `envoy.filters.http.cors`, configured per route through
//! `typed_per_filter_config`, which is how Istio sends a VirtualService's
//! `corsPolicy`).
//!
//! A request with an `Origin` that one of `allow_origin_string_match`
//! accepts is a CORS request. A preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) is answered by the proxy: 200 with
//! the allowed origin, methods, headers, max age and credentials. Any
//! other CORS request goes upstream and its response gets
//! `Access-Control-Allow-Origin` (the request's origin), credentials and
//! exposed headers. A request whose origin doesn't match gets no CORS
//! headers; a non-matching preflight goes upstream when
//! `forward_not_matching_preflights` (Istio's `unmatchedPreflights:
//! FORWARD`, the default), else it is answered 200 without them.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;

use crate::fault::Fraction;
use crate::route::matcher::StringMatch;

/// The CORS filter's name, the key of its per-route config.
pub use weft_xds::names::CORS_FILTER as FILTER;

/// A route's CORS policy.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<StringMatch>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    forward_unmatched_preflights: bool,
    enabled: Fraction,
}

/// What the CORS policy says about a request.
#[derive(Debug)]
pub enum Verdict {
    /// Not a CORS request (no origin, or one not allowed): no CORS headers.
    None,
    /// A preflight of an allowed origin, or one not allowed that isn't
    /// forwarded: answer it here.
    Answer(Response<()>),
    /// An allowed origin's request: add CORS headers to its response.
    Actual(HeaderValue),
}

fn value(s: &str, what: &str) -> Result<Option<HeaderValue>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(s)
        .map(Some)
        .map_err(|_| format!("CORS {what} {s:?} is not a header value"))
}

impl TryFrom<&CorsPolicy> for Cors {
    type Error = String;

    fn try_from(c: &CorsPolicy) -> Result<Self, String> {
        Ok(Cors {
            origins: c
                .allow_origin_string_match
                .iter()
                .map(|m| StringMatch::try_from(m).map_err(|e| format!("CORS origin: {e}")))
                .collect::<Result<_, _>>()?,
            allow_methods: value(&c.allow_methods, "allow_methods")?,
            allow_headers: value(&c.allow_headers, "allow_headers")?,
            expose_headers: value(&c.expose_headers, "expose_headers")?,
            max_age: value(&c.max_age, "max_age")?,
            allow_credentials: c.allow_credentials.is_some_and(|b| b.value),
            forward_unmatched_preflights: c.forward_not_matching_preflights.is_none_or(|b| b.value),
            enabled: c.filter_enabled.as_ref().map_or(Fraction::ALL, |f| {
                Fraction::from_xds(f.default_value.as_ref())
            }),
        })
    }
}

impl Cors {
    /// Whether `origin` may make CORS requests (a matcher accepting `*`
    /// allows every origin, as in Envoy).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|m| m.matches("*") || m.matches(origin))
    }

    /// Judges a request by its method and headers.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(header::ORIGIN).filter(|o| !o.is_empty()) else {
            return Verdict::None;
        };
        if !self.enabled.hit() {
            return Verdict::None;
        }
        let preflight = method == Method::OPTIONS
            && headers
                .get(header::ACCESS_CONTROL_REQUEST_METHOD)
                .is_some_and(|m| !m.is_empty());
        let allowed = origin.to_str().is_ok_and(|o| self.allows(o));
        match (allowed, preflight) {
            (false, true) if !self.forward_unmatched_preflights => {
                Verdict::Answer(Response::new(()))
            }
            (false, _) => Verdict::None,
            (true, false) => Verdict::Actual(origin.clone()),
            (true, true) => {
                let mut r = Response::new(());
                *r.status_mut() = StatusCode::OK;
                let h = r.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                if self.allow_credentials {
                    h.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
                for (name, v) in [
                    (header::ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
                    (header::ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
                    (header::ACCESS_CONTROL_MAX_AGE, &self.max_age),
                ] {
                    if let Some(v) = v {
                        h.insert(name, v.clone());
                    }
                }
                Verdict::Answer(r)
            }
        }
    }

    /// Adds the CORS headers of an allowed origin's actual request to its
    /// response.
    pub fn decorate(&self, origin: HeaderValue, response: &mut HeaderMap) {
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.allow_credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_xds::pb::envoy::r#type::matcher::v3::StringMatcher;
    use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use weft_xds::pb::google::protobuf::BoolValue;

    fn policy(forward: bool) -> Cors {
        Cors::try_from(&CorsPolicy {
            allow_origin_string_match: vec![
                StringMatcher {
                    match_pattern: Some(MatchPattern::Exact("https://a.example".into())),
                    ..Default::default()
                },
                StringMatcher {
                    match_pattern: Some(MatchPattern::Suffix(".b.example".into())),
                    ..Default::default()
                },
            ],
            allow_methods: "GET,POST".into(),
            allow_headers: "x-custom".into(),
            expose_headers: "x-sample-version".into(),
            max_age: "86400".into(),
            allow_credentials: Some(BoolValue { value: true }),
            forward_not_matching_preflights: Some(BoolValue { value: forward }),
            ..Default::default()
        })
        .expect("converts")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn preflights_of_allowed_origins_are_answered() {
        let c = policy(true);
        let h = headers(&[
            ("origin", "https://x.b.example"),
            ("access-control-request-method", "POST"),
        ]);
        let Verdict::Answer(r) = c.check(&Method::OPTIONS, &h) else {
            panic!("a preflight is answered");
        };
        let g = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            g("access-control-allow-origin"),
            Some("https://x.b.example")
        );
        assert_eq!(g("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(g("access-control-allow-headers"), Some("x-custom"));
        assert_eq!(g("access-control-max-age"), Some("86400"));
        assert_eq!(g("access-control-allow-credentials"), Some("true"));
    }

    #[test]
    fn actual_requests_get_headers_only_for_allowed_origins() {
        let c = policy(true);
        let ok = headers(&[("origin", "https://a.example")]);
        let Verdict::Actual(origin) = c.check(&Method::GET, &ok) else {
            panic!("an allowed origin's request is a CORS request");
        };
        let mut resp = HeaderMap::new();
        c.decorate(origin, &mut resp);
        assert_eq!(resp["access-control-allow-origin"], "https://a.example");
        assert_eq!(resp["access-control-expose-headers"], "x-sample-version");
        let other = headers(&[("origin", "https://evil.example")]);
        assert!(matches!(c.check(&Method::GET, &other), Verdict::None));
        assert!(matches!(
            c.check(&Method::GET, &HeaderMap::new()),
            Verdict::None
        ));
        // An OPTIONS without Access-Control-Request-Method is no preflight.
        assert!(matches!(c.check(&Method::OPTIONS, &ok), Verdict::Actual(_)));
    }

    #[test]
    fn unmatched_preflights_are_forwarded_or_answered_bare() {
        let h = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(matches!(
            policy(true).check(&Method::OPTIONS, &h),
            Verdict::None
        ));
        let Verdict::Answer(r) = policy(false).check(&Method::OPTIONS, &h) else {
            panic!("ignored preflights are answered");
        };
        assert!(r.headers().is_empty());
    }

    #[test]
    fn a_star_matcher_allows_every_origin() {
        let c = Cors::try_from(&CorsPolicy {
            allow_origin_string_match: vec![StringMatcher {
                match_pattern: Some(MatchPattern::Exact("*".into())),
                ..Default::default()
            }],
            ..Default::default()
        })
        .expect("converts");
        assert!(c.allows("https://anything.example"));
    }
}
