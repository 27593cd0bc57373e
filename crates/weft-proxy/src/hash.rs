//! Hash policies: the key that consistent-hash balancing (ring hash,
//! Maglev) looks an endpoint up by, computed per request from a route's
//! `hash_policy` list as Envoy does.
//!
//! Each policy hashes one thing with xxHash64 (seed 0): a header's value
//! (several values: sorted, hashed in a chain), a cookie, the client's IP
//! or a query parameter. Policies that find nothing are skipped; the
//! hashes of those that do are combined (`rotate_left(1) ^ next`), and a
//! `terminal` policy that produced a hash ends the list. No hash at all
//! means the balancer picks at random.
//!
//! A cookie policy with a `ttl` whose cookie is missing makes one up (the
//! hex of xxHash64 of the client's address), hashes that, and asks for a
//! `Set-Cookie` on the response, so the client sticks from its next
//! request on; a zero `ttl` makes it a session cookie.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use weft_xds::pb::envoy::config::route::v3::route_action::HashPolicy as XdsHashPolicy;
use weft_xds::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;

use crate::cluster::proto_duration;

/// xxHash64 of `bytes` with `seed`, as Envoy's `HashUtil::xxHash64`.
pub fn xxhash64(bytes: &[u8], seed: u64) -> u64 {
    twox_hash::XxHash64::oneshot(seed, bytes)
}

/// A route's hash policies, in order.
#[derive(Clone, Debug, Default)]
pub struct HashPolicy {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    source: Source,
    terminal: bool,
}

#[derive(Clone, Debug)]
enum Source {
    /// A request header.
    Header(HeaderName),
    /// A pseudo-header (`:authority`, `:path`, `:method`).
    Pseudo(Pseudo),
    Cookie(Cookie),
    ClientIp,
    Query(String),
}

#[derive(Clone, Copy, Debug)]
enum Pseudo {
    Authority,
    Path,
    Method,
}

#[derive(Clone, Debug)]
struct Cookie {
    name: String,
    /// Make one up when missing, with this lifetime (zero: a session cookie).
    ttl: Option<Duration>,
    path: String,
    attributes: Vec<(String, String)>,
}

/// What of a request the policies may read.
#[derive(Clone, Copy, Debug)]
pub struct RequestKey<'a> {
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its authority.
    pub authority: &'a str,
    /// Its path with the query, as `:path`.
    pub path: &'a str,
    /// Its method.
    pub method: &'a str,
    /// Its query string.
    pub query: Option<&'a str>,
    /// Who sent it (the downstream connection's peer), if known.
    pub client: Option<SocketAddr>,
}

/// The result of hashing a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hashed {
    /// The key, if any policy produced one.
    pub hash: Option<u64>,
    /// A `Set-Cookie` value for the response (a made-up sticky cookie).
    pub set_cookie: Option<HeaderValue>,
}

impl TryFrom<&[XdsHashPolicy]> for HashPolicy {
    type Error = String;

    /// Converts RDS hash policies; filter-state ones are ignored (the
    /// proxy has no filter state to read), as policies that find nothing.
    fn try_from(policies: &[XdsHashPolicy]) -> Result<Self, Self::Error> {
        let mut rules = Vec::with_capacity(policies.len());
        for p in policies {
            let source = match &p.policy_specifier {
                Some(PolicySpecifier::Header(h)) => {
                    if h.regex_rewrite.is_some() {
                        return Err(format!(
                            "hash policy on header {}: regex_rewrite is not supported",
                            h.header_name
                        ));
                    }
                    match h.header_name.to_ascii_lowercase().as_str() {
                        ":authority" | "host" => Source::Pseudo(Pseudo::Authority),
                        ":path" => Source::Pseudo(Pseudo::Path),
                        ":method" => Source::Pseudo(Pseudo::Method),
                        name => Source::Header(HeaderName::from_bytes(name.as_bytes()).map_err(
                            |_| format!("hash policy header name {:?} is invalid", h.header_name),
                        )?),
                    }
                }
                Some(PolicySpecifier::Cookie(c)) => {
                    if c.name.is_empty() || !c.name.bytes().all(is_token_byte) {
                        return Err(format!("hash policy cookie name {:?} is invalid", c.name));
                    }
                    let ttl = c
                        .ttl
                        .as_ref()
                        .map(|t| proto_duration(t).map_err(|e| format!("cookie ttl {e}")))
                        .transpose()?;
                    let attributes: Vec<(String, String)> = c
                        .attributes
                        .iter()
                        .map(|a| (a.name.clone(), a.value.clone()))
                        .collect();
                    // The cookie must make a valid header value.
                    let cookie = Cookie {
                        name: c.name.clone(),
                        ttl,
                        path: c.path.clone(),
                        attributes,
                    };
                    if cookie.ttl.is_some() && cookie.set_cookie("0").is_none() {
                        return Err(format!(
                            "hash policy cookie {}: path or attributes make an invalid header",
                            c.name
                        ));
                    }
                    Source::Cookie(cookie)
                }
                Some(PolicySpecifier::ConnectionProperties(c)) if c.source_ip => Source::ClientIp,
                Some(PolicySpecifier::QueryParameter(q)) => Source::Query(q.name.clone()),
                Some(PolicySpecifier::ConnectionProperties(_))
                | Some(PolicySpecifier::FilterState(_))
                | None => continue,
            };
            rules.push(Rule {
                source,
                terminal: p.terminal,
            });
        }
        Ok(HashPolicy { rules })
    }
}

impl HashPolicy {
    /// Whether there are no policies (no hash is ever computed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The request's hash, and a cookie to set if one was made up.
    pub fn compute(&self, req: &RequestKey<'_>) -> Hashed {
        let mut out = Hashed::default();
        for rule in &self.rules {
            let Some(h) = rule.source.hash(req, &mut out.set_cookie) else {
                continue;
            };
            out.hash = Some(match out.hash {
                Some(prev) => prev.rotate_left(1) ^ h,
                None => h,
            });
            if rule.terminal {
                break;
            }
        }
        out
    }
}

impl Source {
    fn hash(&self, req: &RequestKey<'_>, set_cookie: &mut Option<HeaderValue>) -> Option<u64> {
        match self {
            Source::Header(name) => {
                let mut values = req.headers.get_all(name).iter();
                let first = values.next()?;
                let Some(second) = values.next() else {
                    return Some(xxhash64(first.as_bytes(), 0));
                };
                let mut all: Vec<&[u8]> = vec![first.as_bytes(), second.as_bytes()];
                all.extend(values.map(HeaderValue::as_bytes));
                all.sort_unstable();
                Some(all.iter().fold(0, |seed, v| xxhash64(v, seed)))
            }
            Source::Pseudo(p) => {
                let v = match p {
                    Pseudo::Authority => req.authority,
                    Pseudo::Path => req.path,
                    Pseudo::Method => req.method,
                };
                Some(xxhash64(v.as_bytes(), 0))
            }
            Source::Cookie(c) => {
                if let Some(v) = cookie_value(req.headers, &c.name) {
                    return Some(xxhash64(v.as_bytes(), 0));
                }
                c.ttl?;
                // Envoy hashes the connection's addresses; the client's
                // address (with its port) is what we have.
                let seed = match req.client {
                    Some(a) => a.to_string(),
                    None => fastrand::u64(..).to_string(),
                };
                let value = format!("{:016x}", xxhash64(seed.as_bytes(), 0));
                *set_cookie = c.set_cookie(&value);
                Some(xxhash64(value.as_bytes(), 0))
            }
            Source::ClientIp => {
                let ip = req.client?.ip().to_string();
                Some(xxhash64(ip.as_bytes(), 0))
            }
            Source::Query(name) => {
                let value = req.query?.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == name).then_some(v)
                })?;
                Some(xxhash64(value.as_bytes(), 0))
            }
        }
    }
}

impl Cookie {
    /// Envoy's `makeSetCookieValue`: `name="value"; Max-Age=N; Path=P;
    /// attributes; HttpOnly`.
    fn set_cookie(&self, value: &str) -> Option<HeaderValue> {
        let mut s = format!("{}=\"{value}\"", self.name);
        if let Some(ttl) = self.ttl.filter(|t| !t.is_zero()) {
            s.push_str(&format!("; Max-Age={}", ttl.as_secs()));
        }
        if !self.path.is_empty() {
            s.push_str(&format!("; Path={}", self.path));
        }
        for (k, v) in &self.attributes {
            if v.is_empty() {
                s.push_str(&format!("; {k}"));
            } else {
                s.push_str(&format!("; {k}={v}"));
            }
        }
        s.push_str("; HttpOnly");
        HeaderValue::from_str(&s).ok()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, without
/// surrounding quotes.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
}

/// Hashes `req` (for `authority`, from `client`) by `policy`; nothing when
/// the route has no hash policy.
pub fn for_request<B>(
    policy: &HashPolicy,
    req: &http::Request<B>,
    authority: &str,
    client: Option<SocketAddr>,
) -> Hashed {
    if policy.is_empty() {
        return Hashed::default();
    }
    policy.compute(&RequestKey {
        headers: req.headers(),
        authority,
        path: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        method: req.method().as_str(),
        query: req.uri().query(),
        client,
    })
}

/// RFC 7230 token characters (cookie names).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
