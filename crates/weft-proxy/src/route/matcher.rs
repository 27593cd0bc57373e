//! Conditions on a request: path, headers, query parameters, as Envoy's
//! `RouteMatch`, `HeaderMatcher`, `QueryParameterMatcher` and
//! `StringMatcher` define them. Regexes are RE2 syntax and must match the
//! whole value (Envoy's `safe_regex`); they are compiled once, at
//! conversion.

use http::HeaderMap;
use regex::Regex;
use weft_xds::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{HeaderMatcher, QueryParameterMatcher, RouteMatch};
use weft_xds::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};

/// What a route matches a request on; borrowed from the request, so
/// matching allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The authority (Host) as sent.
    pub authority: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// A full-match RE2 regex.
pub fn full_regex(r: &RegexMatcher) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{})$", r.regex)).map_err(|e| format!("regex {:?}: {e}", r.regex))
}

/// A string condition.
#[derive(Debug)]
pub enum StringMatch {
    /// Equal.
    Exact(String, bool),
    /// Starts with.
    Prefix(String, bool),
    /// Ends with.
    Suffix(String, bool),
    /// Contains.
    Contains(String, bool),
    /// Matches entirely.
    Regex(Regex),
}

impl TryFrom<&StringMatcher> for StringMatch {
    type Error = String;

    fn try_from(m: &StringMatcher) -> Result<Self, String> {
        use string_matcher::MatchPattern as P;
        let ic = m.ignore_case;
        let lower = |s: &String| {
            if ic {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }
        };
        Ok(match &m.match_pattern {
            Some(P::Exact(s)) => StringMatch::Exact(lower(s), ic),
            Some(P::Prefix(s)) => StringMatch::Prefix(lower(s), ic),
            Some(P::Suffix(s)) => StringMatch::Suffix(lower(s), ic),
            Some(P::Contains(s)) => StringMatch::Contains(lower(s), ic),
            Some(P::SafeRegex(r)) => StringMatch::Regex(full_regex(r)?),
            Some(P::Custom(_)) => return Err("custom string matchers are not supported".into()),
            None => return Err("string matcher has no pattern".into()),
        })
    }
}

impl StringMatch {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        fn cmp(value: &str, pattern: &str, ic: bool, f: fn(&str, &str) -> bool) -> bool {
            if ic && value.bytes().any(|b| b.is_ascii_uppercase()) {
                f(&value.to_ascii_lowercase(), pattern)
            } else {
                f(value, pattern)
            }
        }
        match self {
            StringMatch::Exact(p, ic) => cmp(value, p, *ic, |v, p| v == p),
            StringMatch::Prefix(p, ic) => cmp(value, p, *ic, |v, p| v.starts_with(p)),
            StringMatch::Suffix(p, ic) => cmp(value, p, *ic, |v, p| v.ends_with(p)),
            StringMatch::Contains(p, ic) => cmp(value, p, *ic, |v, p| v.contains(p)),
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// A path condition.
#[derive(Debug)]
pub enum PathMatch {
    /// Starts with.
    Prefix(String),
    /// Equal.
    Exact(String),
    /// Matches entirely.
    Regex(Regex),
    /// Equal, or starts with it followed by `/`.
    SeparatedPrefix(String),
}

/// Which part of the request a header condition reads.
#[derive(Debug)]
enum HeaderSource {
    Method,
    Authority,
    Scheme,
    Path,
    Header(http::HeaderName),
}

/// A header (or pseudo-header) condition.
#[derive(Debug)]
pub struct HeaderMatch {
    source: HeaderSource,
    /// `None`: present.
    value: Option<StringMatch>,
    invert: bool,
    missing_as_empty: bool,
}

impl TryFrom<&HeaderMatcher> for HeaderMatch {
    type Error = String;

    fn try_from(h: &HeaderMatcher) -> Result<Self, String> {
        let source = match h.name.to_ascii_lowercase().as_str() {
            ":method" => HeaderSource::Method,
            ":authority" | "host" => HeaderSource::Authority,
            ":scheme" => HeaderSource::Scheme,
            ":path" => HeaderSource::Path,
            name => HeaderSource::Header(
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("header name {:?} is invalid", h.name))?,
            ),
        };
        #[allow(deprecated)]
        let value = match &h.header_match_specifier {
            None | Some(HeaderMatchSpecifier::PresentMatch(true)) => None,
            Some(HeaderMatchSpecifier::PresentMatch(false)) => {
                return Err(format!(
                    "header {}: present_match false is not supported",
                    h.name
                ));
            }
            Some(HeaderMatchSpecifier::StringMatch(m)) => {
                Some(StringMatch::try_from(m).map_err(|e| format!("header {}: {e}", h.name))?)
            }
            Some(HeaderMatchSpecifier::ExactMatch(s)) => Some(StringMatch::Exact(s.clone(), false)),
            Some(HeaderMatchSpecifier::PrefixMatch(s)) => {
                Some(StringMatch::Prefix(s.clone(), false))
            }
            Some(HeaderMatchSpecifier::SuffixMatch(s)) => {
                Some(StringMatch::Suffix(s.clone(), false))
            }
            Some(HeaderMatchSpecifier::ContainsMatch(s)) => {
                Some(StringMatch::Contains(s.clone(), false))
            }
            Some(HeaderMatchSpecifier::SafeRegexMatch(r)) => Some(StringMatch::Regex(
                full_regex(r).map_err(|e| format!("header {}: {e}", h.name))?,
            )),
            Some(HeaderMatchSpecifier::RangeMatch(_)) => {
                return Err(format!(
                    "header {}: range matches are not supported",
                    h.name
                ));
            }
        };
        Ok(HeaderMatch {
            source,
            value,
            invert: h.invert_match,
            missing_as_empty: h.treat_missing_header_as_empty,
        })
    }
}

impl HeaderMatch {
    /// Whether the request meets the condition.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let value: Option<&str> = match &self.source {
            HeaderSource::Method => Some(req.method),
            HeaderSource::Authority => Some(req.authority),
            HeaderSource::Scheme => Some(req.scheme),
            HeaderSource::Path => Some(req.path),
            HeaderSource::Header(name) => req.headers.get(name).and_then(|v| v.to_str().ok()),
        };
        let value = value.or(self.missing_as_empty.then_some(""));
        let hit = match (value, &self.value) {
            (None, _) => return self.invert && self.value.is_some(),
            (Some(_), None) => true,
            (Some(v), Some(m)) => m.matches(v),
        };
        hit != self.invert
    }
}

/// A query parameter condition.
#[derive(Debug)]
pub struct QueryMatch {
    name: String,
    /// `None`: present.
    value: Option<StringMatch>,
}

impl TryFrom<&QueryParameterMatcher> for QueryMatch {
    type Error = String;

    fn try_from(q: &QueryParameterMatcher) -> Result<Self, String> {
        let value = match &q.query_parameter_match_specifier {
            None | Some(QueryParameterMatchSpecifier::PresentMatch(_)) => None,
            Some(QueryParameterMatchSpecifier::StringMatch(m)) => Some(
                StringMatch::try_from(m).map_err(|e| format!("query parameter {}: {e}", q.name))?,
            ),
        };
        Ok(QueryMatch {
            name: q.name.clone(),
            value,
        })
    }
}

impl QueryMatch {
    /// Whether the query has the parameter (with a matching value).
    pub fn matches(&self, query: Option<&str>) -> bool {
        let Some(query) = query else { return false };
        query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
            .find(|(k, _)| *k == self.name)
            .is_some_and(|(_, v)| self.value.as_ref().is_none_or(|m| m.matches(v)))
    }
}

/// All conditions of a route.
#[derive(Debug)]
pub struct Matcher {
    path: PathMatch,
    case_sensitive: bool,
    headers: Vec<HeaderMatch>,
    query: Vec<QueryMatch>,
}

impl TryFrom<&RouteMatch> for Matcher {
    type Error = String;

    fn try_from(m: &RouteMatch) -> Result<Self, String> {
        let case_sensitive = m.case_sensitive.is_none_or(|b| b.value);
        let fold = |s: &String| {
            if case_sensitive {
                s.clone()
            } else {
                s.to_ascii_lowercase()
            }
        };
        let path = match &m.path_specifier {
            Some(PathSpecifier::Prefix(p)) => PathMatch::Prefix(fold(p)),
            Some(PathSpecifier::Path(p)) => PathMatch::Exact(fold(p)),
            Some(PathSpecifier::SafeRegex(r)) => PathMatch::Regex(full_regex(r)?),
            Some(PathSpecifier::PathSeparatedPrefix(p)) => PathMatch::SeparatedPrefix(fold(p)),
            Some(PathSpecifier::ConnectMatcher(_)) => {
                return Err("CONNECT matchers are not supported".into());
            }
            Some(PathSpecifier::PathMatchPolicy(_)) => {
                return Err("path match policies (URI templates) are not supported".into());
            }
            None => return Err("route match has no path specifier".into()),
        };
        if !m.dynamic_metadata.is_empty() {
            return Err("metadata and filter state matches are not supported".into());
        }
        Ok(Matcher {
            path,
            case_sensitive,
            headers: m
                .headers
                .iter()
                .map(HeaderMatch::try_from)
                .collect::<Result<_, _>>()?,
            query: m
                .query_parameters
                .iter()
                .map(QueryMatch::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Matcher {
    /// Whether the request meets every condition.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.path_matches(req.path)
            && self.headers.iter().all(|h| h.matches(req))
            && self.query.iter().all(|q| q.matches(req.query))
    }

    /// The matched prefix, for prefix rewrites.
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => Some(p),
            PathMatch::Exact(p) => Some(p),
            PathMatch::Regex(_) => None,
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        let starts = |p: &str| {
            if self.case_sensitive {
                path.starts_with(p)
            } else {
                path.len() >= p.len()
                    && path.is_char_boundary(p.len())
                    && path[..p.len()].eq_ignore_ascii_case(p)
            }
        };
        match &self.path {
            PathMatch::Prefix(p) => starts(p),
            PathMatch::Exact(p) => path.len() == p.len() && starts(p),
            PathMatch::Regex(r) => r.is_match(path),
            PathMatch::SeparatedPrefix(p) => {
                starts(p) && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            }
        }
    }
}
