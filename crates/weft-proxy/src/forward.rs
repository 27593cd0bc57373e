//! The HTTP request path, in order: route (virtual host by authority,
//! first matching route) → the route's filters ([`crate::fault`] delay
//! and abort, [`crate::cors`] preflights) → action (forward, direct
//! response, redirect) → cluster (weighted pick) → endpoint (the
//! cluster's balancer) → mirrors started ([`crate::mirror`]) → attempts
//! over pooled upstream connections ([`crate::retry`], bodies kept by
//! [`crate::replay`]) → response. Both directions use it; only where
//! the route table comes from differs. Every failure is a
//! [`ProxyError`], turned into a response in one place ([`error_response`]).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::cluster::{Discovery, UpstreamProtocol};
use crate::cors::Verdict;
use crate::errors::{ProxyError, ResponseFlag};
use crate::mirror;
use crate::replay::{Replay, Wanted};
use crate::retry::Outcome;
use crate::route::{Action, Forward, Redirect, RequestView, Route, RouteTable, VirtualHost};
use crate::snapshot::Snapshot;
use crate::stats::HttpStats;

pub use crate::pool::Upstreams;

/// The body of every response the proxy sends.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// Headers that belong to one connection and are never forwarded.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-envoy-attempt-count");
const X_EXPECTED_TIMEOUT: HeaderName = HeaderName::from_static("x-envoy-expected-rq-timeout-ms");
const X_UPSTREAM_TIME: HeaderName = HeaderName::from_static("x-envoy-upstream-service-time");
const X_ORIGINAL_PATH: HeaderName = HeaderName::from_static("x-envoy-original-path");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// How long a retry waits for the failed attempt to hand back the body.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A body of bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The response for a failure; counts it.
pub fn error_response(e: &ProxyError, stats: &HttpStats) -> Response<Body> {
    if e.grpc_status().is_some() {
        // A gRPC fault abort answers gRPC-style whatever the request.
        return grpc_error_response(e, stats);
    }
    stats.record(e.status(), Some(e.flag()));
    tracing::debug!(target: "weft::access", flag = e.flag().as_str(), status = e.status().as_u16(), error = %e, "request failed");
    let mut r = Response::new(full(e.body()));
    *r.status_mut() = e.status();
    for (name, value) in e.headers() {
        r.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    if !e.body().is_empty() {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    r
}

/// Everything a request needs besides itself.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The config, loaded once for this request.
    pub snapshot: &'a Snapshot,
    /// The clients.
    pub upstreams: &'a Upstreams,
    /// Where to count.
    pub stats: &'a HttpStats,
    /// The downstream's scheme.
    pub scheme: &'static str,
    /// Where a transparently intercepted connection was going
    /// (`SO_ORIGINAL_DST`): the endpoint of an original-destination
    /// cluster. `None` in explicit mode, where it is the request's authority.
    pub original_dst: Option<std::net::SocketAddr>,
    /// The downstream connection's peer (source-IP hashing, sticky cookies).
    pub client: Option<std::net::SocketAddr>,
    /// The connection manager's header settings ([`crate::forwarded`]).
    pub forwarded: &'a crate::forwarded::Config,
    /// The proxy's own IP (`x-forwarded-for` for peers on loopback).
    pub local_ip: Option<std::net::IpAddr>,
}

/// The authority a request is for: the absolute URI's, else `Host`.
/// A request with more than one `Host` line is refused (400 `DPE`), as
/// RFC 9112 §3.2 requires: which one a router and an app would believe
/// may differ.
pub fn authority<B>(req: &Request<B>) -> Result<String, ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header".into()));
    }
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| host.and_then(|h| h.to_str().ok()).map(str::to_string))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ProxyError::BadRequest("no host".into()))
}

/// Routes and forwards one request with `table`.
pub async fn handle(
    cx: Context<'_>,
    table: &RouteTable,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let grpc = is_grpc(req.headers());
    // The connection manager's headers, before routing (routes may match them).
    let downstream = crate::forwarded::Downstream {
        peer: cx.client,
        local_ip: cx.local_ip,
        scheme: cx.scheme,
    };
    crate::forwarded::apply(cx.forwarded, &downstream, req.headers_mut());
    match route_and_forward(cx, table, req, grpc).await {
        Ok(r) => r,
        Err(e) if grpc => grpc_error_response(&e, cx.stats),
        Err(e) => error_response(&e, cx.stats),
    }
}

/// Whether a request is gRPC (`content-type: application/grpc[+proto|...]`).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.strip_prefix("application/grpc").is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('+') || rest.starts_with(';')
            })
        })
}

/// The response for a failed gRPC request, as Envoy's local replies to
/// gRPC: 200, trailers-only, `grpc-status` and `grpc-message`; counts it.
pub fn grpc_error_response(e: &ProxyError, stats: &HttpStats) -> Response<Body> {
    let (code, message) = e.grpc_reply();
    stats.record(StatusCode::OK, Some(e.flag()));
    tracing::debug!(target: "weft::access", flag = e.flag().as_str(), grpc_status = code, error = %e, "gRPC request failed");
    let mut r = grpc_local_reply(code, HeaderValue::from_static(message));
    for (name, value) in e.headers() {
        r.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    r
}

/// A trailers-only gRPC response: 200, `grpc-status` and `grpc-message`.
fn grpc_local_reply(code: u32, message: HeaderValue) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS, HeaderValue::from(code));
    h.insert(GRPC_MESSAGE, message);
    r
}

/// A direct response to a gRPC request, as Envoy's local replies give it:
/// trailers-only, the status mapped (`httpToGrpcStatus`: 200 too becomes
/// UNKNOWN), the body as the `grpc-message`, percent-encoded as the gRPC
/// spec asks (bytes outside printable ASCII, and `%`).
fn grpc_direct_response(status: StatusCode, body: &[u8]) -> Response<Body> {
    // `percent_encode` encodes every non-ASCII byte; CONTROLS adds 0x00-0x1F
    // and 0x7F.
    const GRPC_MESSAGE_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    let message = percent_encoding::percent_encode(body, GRPC_MESSAGE_SET).to_string();
    // Printable ASCII only, so always a valid header value.
    let message = HeaderValue::from_str(&message).unwrap_or(HeaderValue::from_static(""));
    grpc_local_reply(crate::errors::grpc_status_of_http(status), message)
}

async fn route_and_forward(
    cx: Context<'_>,
    table: &RouteTable,
    req: Request<Incoming>,
    grpc: bool,
) -> Result<Response<Body>, ProxyError> {
    let authority = authority(&req)?;
    let (vh, route, fault) = {
        let view = RequestView {
            method: req.method().as_str(),
            scheme: cx.scheme,
            authority: &authority,
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        };
        let (vh, route) = table
            .find(&view)
            .ok_or_else(|| ProxyError::NoRoute(format!("{authority}{}", req.uri().path())))?;
        let fault = route.fault.as_ref().map(|f| f.decide(&view));
        (vh, route, fault)
    };
    // The HTTP filters in Istio's order: fault, CORS, then the router.
    if let Some(d) = fault {
        if let Some(delay) = d.delay {
            tokio::time::sleep(delay).await;
            tracing::debug!(target: "weft::access", flag = "DI", ?delay, "fault delay injected");
            cx.stats.flag(ResponseFlag::DelayInjected);
        }
        if let Some(e) = d.abort_error() {
            return Err(e);
        }
    }
    let mut cors_origin = None;
    if let Some(c) = &route.cors {
        match c.check(req.method(), req.headers()) {
            Verdict::Answer(r) => {
                let resp = r.map(|()| full(Bytes::new()));
                cx.stats.record(resp.status(), None);
                return Ok(resp);
            }
            Verdict::Actual(origin) => cors_origin = Some(origin),
            Verdict::None => {}
        }
    }
    let mut resp = match &route.action {
        Action::Direct { status, body } if grpc => grpc_direct_response(*status, body),
        Action::Direct { status, body } => {
            let mut r = Response::new(full(body.clone()));
            *r.status_mut() = *status;
            // Envoy's local replies: a body is text unless a route says otherwise.
            if !body.is_empty() {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            r
        }
        Action::Redirect(rd) => {
            let proto = req
                .headers()
                .get(crate::forwarded::X_FORWARDED_PROTO)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(cx.scheme);
            redirect(rd, route, &authority, req.uri(), cx.scheme, proto)?
        }
        Action::Forward(f) => forward(cx, vh, route, f, &authority, req, grpc).await?,
    };
    route.response_headers.apply(resp.headers_mut());
    if let (Some(c), Some(origin)) = (&route.cors, cors_origin) {
        c.decorate(origin, resp.headers_mut());
    }
    cx.stats.record(resp.status(), None);
    Ok(resp)
}

fn redirect(
    rd: &Redirect,
    route: &Route,
    authority: &str,
    uri: &Uri,
    scheme: &str,
    forwarded_proto: &str,
) -> Result<Response<Body>, ProxyError> {
    let scheme = rd.scheme.as_deref().unwrap_or(scheme);
    let host = match &rd.host {
        Some(h) => h.as_str(),
        None => redirect_host(authority, scheme, rd.port != 0, forwarded_proto),
    };
    let path = uri.path();
    let mut new_path = match (&rd.path, &rd.prefix, route.matcher.prefix()) {
        (Some(p), _, _) if !p.starts_with('/') => format!("/{p}"),
        (Some(p), _, _) => p.clone(),
        (None, Some(prefix), Some(matched)) if path.len() >= matched.len() => {
            format!("{prefix}{}", &path[matched.len()..])
        }
        _ => path.to_string(),
    };
    if !rd.strip_query
        && !new_path.contains('?')
        && let Some(q) = uri.query()
    {
        new_path = format!("{new_path}?{q}");
    }
    let location = match rd.port {
        0 => format!("{scheme}://{host}{new_path}"),
        p => format!("{scheme}://{host}:{p}{new_path}"),
    };
    let value = HeaderValue::from_str(&location).map_err(|_| {
        ProxyError::BadRequest(format!("redirect location {location:?} is invalid"))
    })?;
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = rd.status;
    r.headers_mut().insert(header::LOCATION, value);
    Ok(r)
}

/// The request's `Host` as a redirect's `location` keeps it (Envoy's
/// `processRequestHost`): without its port when the redirect sets a new
/// one, or when the scheme changes and the port is the default of the
/// request's scheme (`x-forwarded-proto`: `http://a:80` → `https://a`,
/// but `https://a:9080`); otherwise as sent.
fn redirect_host<'a>(
    authority: &'a str,
    scheme: &str,
    new_port: bool,
    forwarded_proto: &str,
) -> &'a str {
    let end = if authority.starts_with('[') {
        authority.rfind("]:").map(|i| i + 1)
    } else {
        authority.rfind(':')
    };
    let Some(end) = end else {
        return authority;
    };
    let port = &authority[end..];
    let default_port = (forwarded_proto.eq_ignore_ascii_case("https") && port == ":443")
        || (forwarded_proto.eq_ignore_ascii_case("http") && port == ":80");
    if new_port || (scheme != forwarded_proto && default_port) {
        &authority[..end]
    } else {
        authority
    }
}

async fn forward(
    cx: Context<'_>,
    vh: &VirtualHost,
    route: &Route,
    f: &Forward,
    authority: &str,
    mut req: Request<Incoming>,
    grpc: bool,
) -> Result<Response<Body>, ProxyError> {
    let (cluster_name, weighted) = f.target.pick();
    // A gRPC call's deadline, on a route that honours it (Istio's do).
    let timeout = match f.max_grpc_timeout {
        Some(cap) if grpc => crate::deadline::timeout(req.headers(), cap),
        _ => f.timeout,
    };
    let entry = cx
        .snapshot
        .cluster(cluster_name)
        .ok_or_else(|| ProxyError::NoCluster(cluster_name.to_string()))?;
    let hashed = crate::hash::for_request(&f.hash, &req, authority, cx.client);
    let (endpoint, _active): (Arc<str>, _) = if entry.cluster.discovery == Discovery::OriginalDst {
        // Transparent mode: where the connection was going; explicit mode:
        // the proxied authority.
        let original = cx.original_dst.map(|a| a.to_string());
        (
            original.unwrap_or_else(|| authority.to_string()).into(),
            None,
        )
    } else {
        let e = entry
            .pick_hashed(hashed.hash)
            .ok_or_else(|| ProxyError::NoHealthyUpstream(cluster_name.to_string()))?;
        (e.key().clone(), Some(e.start_request()))
    };
    // Path rewrites.
    let path = req.uri().path();
    let rewritten = if let Some(prefix) = &f.prefix_rewrite
        && let Some(matched) = route.matcher.prefix()
        && path.len() >= matched.len()
    {
        Some(format!("{prefix}{}", &path[matched.len()..]))
    } else if let Some((re, with)) = &f.regex_rewrite {
        Some(re.replace_all(path, with.as_str()).into_owned())
    } else {
        None
    };
    // Envoy's router keeps the path it rewrote (its headers aren't
    // suppressed): the whole `:path`, query included.
    let original_path = rewritten.as_ref().and_then(|_| {
        let full = req.uri().path_and_query().map_or(path, |pq| pq.as_str());
        HeaderValue::from_str(full).ok()
    });
    // Unchanged, the path and query are shared with the request, not copied.
    let path_and_query = match (rewritten, req.uri().query()) {
        (Some(p), Some(q)) => PathAndQuery::try_from(format!("{p}?{q}")),
        (Some(p), None) => PathAndQuery::try_from(p),
        (None, _) => Ok(req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))),
    }
    .map_err(|_| ProxyError::BadRequest("bad rewritten path".into()))?;
    let downstream_version = req.version();
    // One pass over the names: most requests carry no hop-by-hop header,
    // and so neither an upgrade nor anything to strip.
    let hop = req.headers().keys().any(is_hop_by_hop);
    // An HTTP/1.1 upgrade (WebSocket) keeps its Upgrade headers and
    // becomes a tunnel once the upstream answers 101.
    let upgrade = if hop {
        upgrade_protocol(req.headers())
    } else {
        None
    };
    let downstream_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let headers = req.headers_mut();
    if hop {
        strip_named_hop_by_hop(headers);
    }
    if let Some(protocol) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    let host = weighted
        .and_then(|w| w.host_rewrite.as_deref())
        .or(f.host_rewrite.as_deref())
        .unwrap_or(authority);
    if headers
        .get(header::HOST)
        .is_none_or(|h| h.as_bytes() != host.as_bytes())
        && let Ok(h) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, h);
    }
    if let Some(original) = &original_path {
        headers.insert(X_ORIGINAL_PATH, original.clone());
    }
    if vh.attempt_count {
        headers.insert(X_ATTEMPT_COUNT, HeaderValue::from_static("1"));
    }
    let per_try = f.retry.as_ref().and_then(|r| r.per_try_timeout);
    if let Some(t) = per_try.or(timeout) {
        headers.insert(X_EXPECTED_TIMEOUT, HeaderValue::from(t.as_millis() as u64));
        // The upstream gRPC server is told the limit in force, as Envoy
        // rewrites `grpc-timeout` where it honours it.
        if grpc && f.max_grpc_timeout.is_some() {
            headers.insert(crate::deadline::GRPC_TIMEOUT, crate::deadline::format(t));
        }
    }
    route.request_headers.apply(headers);
    if let Some(w) = weighted {
        w.request_headers.apply(headers);
    }
    // Only the path and query of this URI are used: the pool dials the endpoint.
    *req.uri_mut() = Uri::from(path_and_query);
    let http2 = upgrade.is_none()
        && match entry.cluster.protocol {
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::Downstream => downstream_version == Version::HTTP_2,
            UpstreamProtocol::Http1 => false,
        };
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    // Circuit breakers: a request of the cluster's, held until the
    // response ends (the pool holds the connections' slots).
    let admitted = entry
        .breakers
        .admit()
        .map_err(|why| ProxyError::overflow(cluster_name, why))?;
    let retry = f.retry.as_ref().filter(|_| upgrade.is_none());
    let has_body = !http_body::Body::is_end_stream(req.body());
    // RFC 9110 §9.2.2: only these may be sent again after a connection
    // that may have delivered them ended.
    let idempotent = req.method().is_idempotent();
    let (parts, body) = req.into_parts();
    // Mirrors: each drawn one gets a copy (its body once complete).
    let mut wanted = Wanted::default();
    // (An upgrade becomes a tunnel: it has no copy to send.)
    for m in f.mirrors.iter().filter(|_| upgrade.is_none()) {
        let copy = mirror::Copy {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            authority: host,
            downstream_http2: downstream_version == Version::HTTP_2,
            has_body,
            timeout: timeout.unwrap_or(crate::route::DEFAULT_TIMEOUT),
        };
        if let Some(tx) = mirror::start(cx.snapshot, cx.upstreams, m, copy) {
            wanted.mirrors.push(tx);
        }
    }
    // Retries need the request again: its head, and its body if kept.
    let template = retry.map(|_| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        )
    });
    let mut kept_body = None;
    let body: Body = if has_body && (retry.is_some() || !wanted.mirrors.is_empty()) {
        if retry.is_some() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            wanted.retry = Some(tx);
            kept_body = Some(rx);
        }
        Replay::new(body.boxed_unsync(), wanted).boxed_unsync()
    } else {
        body.boxed_unsync()
    };
    let mut first = Some(Request::from_parts(parts, body));
    let mut _retry_slot = None;
    // The last attempt's start: `x-envoy-upstream-service-time` is its time.
    let mut attempt_started = started;
    let (mut endpoint, mut _active) = (endpoint, _active);
    let mut tried: Vec<String> = Vec::new();
    let mut attempt = 1u32;
    let resp = loop {
        let Some(this) = first.take() else {
            break Err(ProxyError::BadRequest("request body already sent".into()));
        };
        // (The first attempt starts with the request: one clock read.)
        if attempt > 1 {
            attempt_started = Instant::now();
        }
        // This attempt's limit: the per-try timeout within what is left
        // of the route's.
        let left = deadline.map(|d| d.saturating_duration_since(attempt_started));
        let per_try = retry.and_then(|r| r.per_try_timeout);
        let (limit, is_per_try) = match (per_try, left) {
            (Some(p), Some(l)) if p < l => (Some(p), true),
            (Some(p), None) => (Some(p), true),
            (_, l) => (l, false),
        };
        // The cluster's own pool of the endpoint.
        let target = crate::pool::Target {
            cluster: cluster_name,
            endpoint: &endpoint,
            settings: entry.cluster.pool_settings(),
            breakers: &entry.breakers,
            deadline,
        };
        let call = async {
            if http2 {
                cx.upstreams.http2(&target, host, this).await
            } else {
                cx.upstreams.http1(&target, this).await
            }
        };
        let result = match limit {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .unwrap_or_else(|_| Err(ProxyError::Timeout(endpoint.to_string()))),
            None => call.await,
        };
        entry.record(_active.as_ref(), crate::outlier::Outcome::of(&result));
        let Some(policy) = retry else { break result };
        let outcome = match Outcome::of(&result, is_per_try) {
            Outcome::Unanswered if !idempotent => Outcome::Reset,
            o => o,
        };
        if !policy.retries(outcome) {
            if attempt > 1 && result.is_ok() {
                entry.breakers.rq_retry_success.fetch_add(1, Relaxed);
            }
            break result;
        }
        let after = outcome.name();
        if attempt > policy.attempts {
            entry.breakers.rq_retry_limit_exceeded.fetch_add(1, Relaxed);
            if result.is_ok() {
                cx.stats.flag(ResponseFlag::UpstreamRetryLimitExceeded);
                tracing::debug!(target: "weft::access", flag = "URX", cluster = cluster_name, attempts = attempt, "retries exhausted");
            }
            break result;
        }
        let Some(slot) = entry.breakers.retry() else {
            tracing::debug!(target: "weft::proxy", cluster = cluster_name, "max_retries reached; not retried");
            break result;
        };
        _retry_slot = Some(slot);
        let pause = policy.backoff(attempt);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l <= pause) {
            break result;
        }
        // The body again: nothing, or what the last attempt kept.
        let body = match kept_body.take() {
            None => full(Bytes::new()),
            Some(rx) => {
                let wait = left.unwrap_or(BODY_WAIT).min(BODY_WAIT);
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(leftover)) => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        kept_body = Some(rx);
                        let again = Wanted {
                            retry: Some(tx),
                            mirrors: Vec::new(),
                        };
                        leftover.into_replay(again).boxed_unsync()
                    }
                    _ => {
                        tracing::debug!(target: "weft::proxy", cluster = cluster_name, "request body not kept; not retried");
                        break result;
                    }
                }
            }
        };
        drop(result);
        tokio::time::sleep(pause).await;
        attempt += 1;
        tried.push(endpoint.to_string());
        if let Some((method, uri, headers)) = &template {
            let mut r = Request::new(body);
            *r.method_mut() = method.clone();
            *r.uri_mut() = uri.clone();
            *r.headers_mut() = headers.clone();
            if vh.attempt_count {
                r.headers_mut()
                    .insert(X_ATTEMPT_COUNT, HeaderValue::from(attempt));
            }
            first = Some(r);
        }
        entry.breakers.rq_retry.fetch_add(1, Relaxed);
        tracing::debug!(target: "weft::proxy", cluster = cluster_name, %endpoint, attempt, after, "retrying");
        if entry.cluster.discovery != Discovery::OriginalDst
            && let Some(e) = policy.pick_endpoint(
                &tried,
                || entry.pick_hashed(hashed.hash),
                |e| e.address.to_string(),
                || {
                    let balancer = entry.balancer();
                    let untried: Vec<&Arc<crate::endpoint::Endpoint>> = balancer
                        .serving()
                        .filter(|e| !tried.contains(&e.address.to_string()))
                        .collect();
                    fastrand::choice(untried).cloned()
                },
            )
        {
            endpoint = e.key().clone();
            _active = Some(e.start_request());
        }
    }?;
    let mut resp = resp;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream_upgrade
    {
        let upstream = hyper::upgrade::on(&mut resp);
        let name = endpoint.clone();
        tokio::spawn(async move {
            let _active = _active;
            let _admitted = admitted;
            match tokio::try_join!(downstream, upstream) {
                Ok((d, u)) => {
                    let (d, u) = (TokioIo::new(d), TokioIo::new(u));
                    crate::tcp::splice(d, u, crate::tcp::DEFAULT_IDLE_TIMEOUT, None).await;
                    tracing::debug!(target: "weft::proxy", endpoint = %name, "upgraded connection ended");
                }
                Err(e) => {
                    tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "upgrade failed")
                }
            }
        });
        let (parts, body) = resp.into_parts();
        return Ok(Response::from_parts(parts, body.boxed_unsync()));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(cookie) = hashed.set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    parts.headers.insert(
        X_UPSTREAM_TIME,
        millis_value(attempt_started.elapsed().as_millis()),
    );
    if let Some(w) = weighted {
        w.response_headers.apply(&mut parts.headers);
    }
    parts.version = downstream_version;
    tracing::debug!(target: "weft::access", cluster = cluster_name, %endpoint, status = parts.status.as_u16(), "forwarded");
    // The endpoint counts the request as active until its body is done.
    let body = body.map_frame(move |frame| {
        let _active = &_active;
        let _admitted = &admitted;
        frame
    });
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

/// The protocol an HTTP/1.1 request asks to upgrade to, if it does
/// (`Connection: upgrade` with `Upgrade: websocket`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than a
    // hashed lookup of each hop-by-hop name (and those named in
    // `Connection`, which is itself one of them).
    if headers.keys().any(is_hop_by_hop) {
        strip_named_hop_by_hop(headers);
    }
}

/// Removes the hop-by-hop headers and those `Connection` names.
fn strip_named_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in &HOP_BY_HOP {
        // `te: trailers` is allowed through (gRPC needs it).
        if *h == header::TE && headers.get(h).is_some_and(|v| v == "trailers") {
            continue;
        }
        headers.remove(h);
    }
}

/// Whether a name is one of [`HOP_BY_HOP`]: one `match` on the name
/// (by length, then bytes), not a comparison with each of them.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// A random UUID v4, as Envoy generates for `x-request-id` (formatted on
/// the stack: one allocation, the header's own).
pub fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Where each byte's two digits go: a dash before bytes 4, 6, 8 and 10.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    b[8..].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    // Version 4 (the high nibble of byte 6), variant 10 (byte 8's top bits).
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [b'-'; 36];
    for (byte, at) in b.into_iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Milliseconds below this are written from [`MILLIS`].
const SMALL_MILLIS: usize = 1000;

/// The decimal digits of 0 to 999 (a number's digits and their count),
/// so the usual `x-envoy-upstream-service-time` is a static value: no
/// formatting, no allocation.
static MILLIS: [([u8; 3], u8); SMALL_MILLIS] = {
    let mut t = [([0u8; 3], 0u8); SMALL_MILLIS];
    let mut n = 0;
    while n < SMALL_MILLIS {
        let (h, te, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        t[n] = if n >= 100 {
            ([b'0' + h, b'0' + te, b'0' + o], 3)
        } else if n >= 10 {
            ([b'0' + te, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        n += 1;
    }
    t
};

/// [`MILLIS`] as header values of static bytes (a clone copies two
/// pointers: no allocation, no reference count).
static MILLIS_VALUES: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
    MILLIS
        .iter()
        .map(|(digits, len)| {
            std::str::from_utf8(&digits[..usize::from(*len)])
                .map_or_else(|_| HeaderValue::from_static("0"), HeaderValue::from_static)
        })
        .collect()
});

/// A number of milliseconds as a header value.
fn millis_value(ms: u128) -> HeaderValue {
    if let Ok(i) = usize::try_from(ms)
        && let Some(v) = MILLIS_VALUES.get(i)
    {
        return v.clone();
    }
    HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A response of `status` with a plain-text body.
pub fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r
}

/// Routes in force for a request, kept alive by the snapshot.
pub type Table = Arc<RouteTable>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_has_one_authority() {
        let req = |hosts: &[&str], uri: &str| {
            let mut b = Request::get(uri);
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            b.body(()).expect("request")
        };
        assert_eq!(
            authority(&req(&["a:80"], "/")).ok().as_deref(),
            Some("a:80")
        );
        assert_eq!(
            authority(&req(&[], "http://b:81/x")).ok().as_deref(),
            Some("b:81")
        );
        for (hosts, uri, why) in [
            (&["a", "b"][..], "/", "more than one Host header"),
            (&["a", "a"][..], "/", "more than one Host header"),
            (&["a", "b"][..], "http://c/", "more than one Host header"),
            (&[][..], "/", "no host"),
            (&[""][..], "/", "no host"),
        ] {
            match authority(&req(hosts, uri)) {
                Err(ProxyError::BadRequest(m)) => assert_eq!(m, why, "{hosts:?} {uri}"),
                other => panic!("{hosts:?} {uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn redirects_keep_the_host_as_envoy_does() {
        for (authority, scheme, new_port, proto, want) in [
            // Same scheme: as sent.
            ("a:9080", "http", false, "http", "a:9080"),
            ("a:80", "http", false, "http", "a:80"),
            // A new scheme drops only the old one's default port.
            ("a:9080", "https", false, "http", "a:9080"),
            ("a:80", "https", false, "http", "a"),
            ("a:443", "http", false, "https", "a"),
            ("a:443", "https", false, "http", "a:443"),
            // A new port replaces the old one.
            ("a:9080", "http", true, "http", "a"),
            ("[::1]:9080", "http", true, "http", "[::1]"),
            ("[::1]:80", "https", false, "http", "[::1]"),
            ("[::1]", "https", true, "http", "[::1]"),
            ("a", "https", true, "http", "a"),
        ] {
            assert_eq!(
                redirect_host(authority, scheme, new_port, proto),
                want,
                "{authority} {scheme} {new_port} {proto}"
            );
        }
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = request_id();
        let s = id.to_str().expect("ascii");
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "{s}");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "{s}");
        assert_ne!(request_id(), request_id());
        for (i, c) in s.chars().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{s}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{s}");
            }
        }
        assert!(crate::forwarded::valid_request_id(&id));
    }

    #[test]
    fn millis_are_written_in_decimal() {
        for ms in [
            0u128,
            7,
            10,
            99,
            100,
            999,
            1000,
            12345,
            u128::from(u64::MAX) + 1,
        ] {
            let want = u64::try_from(ms).unwrap_or(u64::MAX).to_string();
            assert_eq!(millis_value(ms).to_str().expect("ascii"), want, "{ms}");
        }
    }

    #[test]
    fn request_ids_spread_over_every_digit() {
        // Each digit position that is random takes more than one value.
        let ids: Vec<String> = (0..64)
            .map(|_| request_id().to_str().expect("ascii").to_string())
            .collect();
        for i in (0..36).filter(|i| !matches!(i, 8 | 13 | 14 | 18 | 23)) {
            let distinct: std::collections::HashSet<u8> =
                ids.iter().map(|s| s.as_bytes()[i]).collect();
            assert!(distinct.len() > 1, "position {i} is always the same");
        }
    }

    #[test]
    fn hop_by_hop_names_are_told_apart() {
        for h in &HOP_BY_HOP {
            assert!(is_hop_by_hop(h), "{h}");
        }
        for h in ["host", "content-length", "x-upgrade", "tee", "connections"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(h)), "{h}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::HOST, HeaderValue::from_static("svc"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["host", "te"]);
    }

    #[test]
    fn grpc_requests_are_told_by_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        for (v, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_grpc(&h), grpc, "{v}");
        }
        let stats = HttpStats::default();
        let r = grpc_error_response(&ProxyError::NoHealthyUpstream("c".into()), &stats);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(r.headers()["grpc-message"], "no healthy upstream");
    }

    #[test]
    fn direct_responses_to_grpc_are_trailers_only_as_envoy_gives_them() {
        for (status, body, code, message) in [
            (503, &b"maintenance"[..], "14", "maintenance"),
            (404, b"", "12", ""),
            (200, b"ok", "2", "ok"),
            (403, b"50% off\n\xff", "7", "50%25 off%0A%FF"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            let r = grpc_direct_response(status, body);
            assert_eq!(r.status(), StatusCode::OK, "{status}");
            assert_eq!(r.headers()["content-type"], "application/grpc");
            assert_eq!(r.headers()["grpc-status"], code, "{status}");
            assert_eq!(r.headers()["grpc-message"], message, "{status}");
        }
    }
}
