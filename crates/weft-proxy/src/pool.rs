//! Upstream connection pools, shared by every request, one per cluster
//! and endpoint (as Envoy's pools are per cluster, per host): two
//! clusters reaching the same endpoint never share a connection, so each
//! keeps its own settings ([`PoolSettings`]: connect timeout, idle
//! timeout, requests per connection) and its own circuit breaker counts.
//! A cluster whose settings change gets new pools; the old ones drain
//! (connections in use finish, then close).
//!
//! - HTTP/1.1 ([`http1`]): per endpoint a lock-free queue of idle
//!   connections (hyper's `client::conn::http1` handles, each with its
//!   connection future, polled by the request and then by the response
//!   body: no task per connection). A request takes one (or dials), and
//!   its connection goes back to the queue when the response body ends —
//!   a request whose body is dropped early closes its connection, as
//!   HTTP/1.1 can't abandon a response. Idle connections are closed after
//!   the cluster's idle timeout by a sweeper task.
//! - HTTP/2 ([`http2`]): multiplexed connections per endpoint, a stream
//!   going to one with room (below the cluster's `max_concurrent_streams`
//!   and the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`, read by [`peer`]);
//!   another is opened when all are full, and one that has carried the
//!   cluster's `max_requests_per_connection` streams drains (streams
//!   under way finish, no new ones start). Requests keep their own
//!   authority (`:authority` is the service, not the endpoint's
//!   address). A connection with no stream in flight for the cluster's
//!   idle timeout is closed.
//! - A connection that has lived the cluster's `max_connection_duration`
//!   takes no new request (HTTP/1.1: closed when its response ends or
//!   when idle; HTTP/2: drained), counted as
//!   `upstream_cx_max_duration_reached`.
//! - Every connection holds one of its cluster's `max_connections` slots
//!   while it lives, idle ones too; a request needing a new connection
//!   past the limit waits as a pending request ([`wait`], Envoy's rules).
//! - One sweep loop per pool ([`sweep_in_background`]); the pools of a
//!   cluster the config no longer has are dropped ([`Upstreams::follow`]).
//!
//! The maps (cluster → endpoint → pool) are copy-on-write behind an
//! [`arc_swap::ArcSwap`], so the request path reads them without a lock;
//! only adding a cluster or an endpoint copies a map. Upstream sockets
//! are `TCP_NODELAY`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::net::TcpStream;

use crate::breaker::Breakers;
use crate::endpoint::Address;
use crate::errors::ProxyError;
use crate::forward::Body;

mod http1;
mod http2;
mod peer;
mod wait;

/// Envoy's default idle timeout of upstream HTTP connections
/// (`common_http_protocol_options.idle_timeout`): 1 h.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How a cluster's pools dial and keep connections (from its CDS
/// settings, [`crate::cluster::Cluster::pool_settings`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// How long dialling may take (`connect_timeout`, default 5 s).
    pub connect_timeout: Duration,
    /// How long a connection with no request in flight is kept
    /// (`idle_timeout`, default 1 h; `None`: for ever, Envoy's `0s`).
    pub idle_timeout: Option<Duration>,
    /// Requests a connection carries at most, then it closes (HTTP/1.1)
    /// or drains (HTTP/2); `None`: no limit.
    pub max_requests_per_connection: Option<u32>,
    /// Streams in flight on one HTTP/2 connection at most (the cluster's
    /// `http2_protocol_options.max_concurrent_streams`, Envoy's default
    /// 2^31 - 1); the peer's `SETTINGS_MAX_CONCURRENT_STREAMS` lowers it
    /// per connection. A request finding every connection full opens
    /// another one (within `max_connections`) or waits as pending.
    pub max_concurrent_streams: u32,
    /// How long a connection may live (`common_http_protocol_options.
    /// max_connection_duration`, Istio's `tcp.maxConnectionDuration`;
    /// `None`: for ever, Envoy's default). Past it an HTTP/1.1 connection
    /// is not reused (closed when its response ends, or when idle) and an
    /// HTTP/2 one drains (no new streams; closed once its streams end).
    pub max_connection_duration: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: None,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_connection_duration: None,
        }
    }
}

/// Envoy's default `max_concurrent_streams` of an HTTP/2 upstream
/// connection: 2^31 - 1.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = (1 << 31) - 1;

/// Where one request goes: an endpoint, through its cluster's pool.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The cluster's name: whose pool it is.
    pub cluster: &'a str,
    /// The endpoint's `host:port` ([`endpoint_key`]): what is dialled.
    pub endpoint: &'a str,
    /// The cluster's pool settings.
    pub settings: PoolSettings,
    /// The cluster's circuit breakers: each HTTP/2 connection holds one
    /// of their `max_connections` slots.
    pub breakers: &'a Arc<Breakers>,
    /// When the request's route timeout ends: a wait for a connection
    /// slot ends then at the latest.
    pub deadline: Option<Instant>,
}

/// The pools.
#[derive(Clone, Debug)]
pub struct Upstreams {
    http1: Arc<http1::Pool>,
    http2: Arc<http2::Pool>,
}

impl Upstreams {
    /// Empty pools. Call within a tokio runtime: the idle sweepers run
    /// on it (and stop with the pools).
    pub fn new() -> Self {
        let http1 = Arc::new(http1::Pool::default());
        sweep_in_background(&http1, http1::Pool::sweep);
        let http2 = Arc::new(http2::Pool::default());
        sweep_in_background(&http2, http2::Pool::sweep);
        Upstreams { http1, http2 }
    }

    /// Forgets the pools of every cluster `keep` refuses (a new snapshot
    /// no longer has it), as Envoy drains a removed cluster's pools: idle
    /// connections close now, those in use once their response ends.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.http1.retain(&keep);
        self.http2.retain(&keep);
    }

    /// Forgets the pools of `cluster`'s endpoints (their [`endpoint_key`]s)
    /// that `keep` refuses (EDS no longer has them), as Envoy drains a
    /// removed host's pools: idle connections close now, those in use
    /// once their response ends.
    pub fn retain_endpoints(&self, cluster: &str, keep: impl Fn(&str) -> bool) {
        self.http1.retain_endpoints(cluster, &keep);
        self.http2.retain_endpoints(cluster, &keep);
    }

    /// Follows the applied snapshots (`applied` changes after each one is
    /// stored in `config`) until the sender goes: forgets the pools of the
    /// clusters each one no longer has ([`Upstreams::retain`]), and of
    /// the endpoints a cluster's new endpoints no longer have
    /// ([`Upstreams::retain_endpoints`]; looked at only when a cluster's
    /// [`crate::endpoint::LoadAssignment`] changed; not for original
    /// destination clusters, whose endpoints are the requests' own).
    pub async fn follow(
        self,
        config: Arc<ArcSwap<crate::snapshot::Snapshot>>,
        mut applied: tokio::sync::watch::Receiver<u64>,
    ) {
        let mut seen: std::collections::HashMap<String, Arc<crate::endpoint::LoadAssignment>> =
            std::collections::HashMap::new();
        while applied.changed().await.is_ok() {
            let snapshot = config.load_full();
            self.retain(|c| snapshot.clusters.contains_key(c));
            seen.retain(|c, _| snapshot.clusters.contains_key(c));
            for (name, entry) in snapshot.clusters.iter() {
                let assignment = &entry.assignment;
                if entry.cluster.discovery == crate::cluster::Discovery::OriginalDst
                    || seen.get(name).is_some_and(|a| Arc::ptr_eq(a, assignment))
                {
                    continue;
                }
                seen.insert(name.clone(), assignment.clone());
                let keys: std::collections::HashSet<String> = assignment
                    .endpoints
                    .iter()
                    .map(|e| endpoint_key(&e.address))
                    .collect();
                self.retain_endpoints(name, |k| keys.contains(k));
            }
        }
    }

    /// Sends `req` over HTTP/1.1 to `target`'s endpoint. The request
    /// target is sent as it is (origin-form: forward sets the path and
    /// `Host`).
    pub async fn http1(
        &self,
        target: &Target<'_>,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        *req.version_mut() = http::Version::HTTP_11;
        self.http1.send(target, req).await
    }

    /// Sends `req` over the shared HTTP/2 connection of `target`'s
    /// cluster to its endpoint, with `authority` as `:authority`.
    pub async fn http2(
        &self,
        target: &Target<'_>,
        authority: &str,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(
            http::uri::Authority::from_maybe_shared(Bytes::copy_from_slice(authority.as_bytes()))
                .map_err(|_| bad_uri(authority))?,
        );
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| bad_uri(authority))?;
        *req.version_mut() = http::Version::HTTP_2;
        // `Host` would repeat (and may contradict) `:authority`.
        req.headers_mut().remove(http::header::HOST);
        self.http2.send(target, req).await
    }

    /// Idle HTTP/1.1 connections pooled now (all clusters and endpoints).
    pub fn idle_http1(&self) -> usize {
        self.http1.idle()
    }

    /// Open HTTP/2 connections now (all clusters and endpoints, draining
    /// ones included).
    pub fn open_http2(&self) -> usize {
        self.http2.open()
    }
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::new()
    }
}

/// A pool map: cluster name or endpoint key → pool. Hashed with
/// [`crate::fasthash`] (the keys come from config, not from requests;
/// SipHash of the cluster name and the endpoint was ~1.5 % of a request's
/// instructions, xxHash64 half of that).
type Map<V> = crate::fasthash::FastMap<Box<str>, Arc<V>>;

/// Takes the entries whose keys `keep` refuses out of `map`
/// (copy-on-write), and returns them.
fn remove_unkept<V>(map: &ArcSwap<Map<V>>, keep: &impl Fn(&str) -> bool) -> Vec<Arc<V>> {
    if map.load().keys().all(|k| keep(k)) {
        return Vec::new();
    }
    let mut removed = Vec::new();
    map.rcu(|m| {
        removed.clear();
        let mut m = Map::clone(m);
        m.retain(|k, v| {
            let kept = keep(k);
            if !kept {
                removed.push(v.clone());
            }
            kept
        });
        m
    });
    removed
}

/// How often a pool's sweeper looks at most (sooner for idle timeouts
/// below twice this).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// When to sweep next, `every` at the latest, for a cluster with
/// `settings`: after half of its idle timeout or of its connections'
/// longest life, whichever is shorter (10 ms at least).
fn sweep_within(every: Duration, settings: &PoolSettings) -> Duration {
    [settings.idle_timeout, settings.max_connection_duration]
        .into_iter()
        .flatten()
        .fold(every, |e, t| e.min((t / 2).max(Duration::from_millis(10))))
}

/// Runs `sweep` on `pool` while the pool lives, if there is a runtime:
/// after [`SWEEP_EVERY`], then each time after what the last sweep
/// returned. The task holds the pool only while it sweeps.
fn sweep_in_background<P: Send + Sync + 'static>(pool: &Arc<P>, sweep: fn(&P) -> Duration) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = Arc::downgrade(pool);
    rt.spawn(async move {
        let mut every = SWEEP_EVERY;
        loop {
            tokio::time::sleep(every).await;
            match pool.upgrade() {
                Some(p) => every = sweep(&p),
                None => return,
            }
        }
    });
}

/// `map[key]` when `keep` accepts it, else a new `make()` put there
/// (copy-on-write: readers never wait).
fn get_or_insert<V>(
    map: &ArcSwap<Map<V>>,
    key: &str,
    keep: impl Fn(&V) -> bool,
    make: impl Fn() -> V,
) -> Arc<V> {
    if let Some(v) = map.load().get(key).filter(|v| keep(v)) {
        return v.clone();
    }
    let mut out = None;
    map.rcu(|m| {
        if let Some(v) = m.get(key).filter(|v| keep(v)) {
            out = Some(v.clone());
            return Arc::clone(m);
        }
        let v = Arc::new(make());
        out = Some(v.clone());
        let mut m = Map::clone(m);
        m.insert(key.into(), v);
        Arc::new(m)
    });
    // `rcu` ran the closure at least once.
    out.unwrap_or_else(|| Arc::new(make()))
}

/// A response body from an upstream. For HTTP/1.1 it hands its
/// connection back to the pool once the body has ended.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    /// Where the connection goes back when the body ends (HTTP/1.1).
    back: Option<http1::Return>,
    /// The HTTP/2 stream, in flight on its connection until the body is
    /// dropped (its connection's idle time starts when it has none).
    _stream: Option<http2::Stream>,
}

impl UpstreamBody {
    fn new(inner: Incoming, back: Option<http1::Return>) -> Self {
        let mut b = UpstreamBody {
            inner,
            back,
            _stream: None,
        };
        b.give_back_if_done();
        b
    }

    fn give_back_if_done(&mut self) {
        if hyper::body::Body::is_end_stream(&self.inner)
            && let Some(back) = self.back.take()
        {
            back.give_back();
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = match this.back.as_mut() {
            // An HTTP/1.1 connection runs here (see `http1`), and only it
            // feeds the body's channel: what it delivered is taken first
            // (usually the whole body, read with the head), and it is
            // polled only when the channel is empty; then the body needs
            // no waker of its own.
            Some(back) if back.runs() => {
                let mut noop = Context::from_waker(std::task::Waker::noop());
                match Pin::new(&mut this.inner).poll_frame(&mut noop) {
                    Poll::Ready(frame) => frame,
                    Poll::Pending if back.drive(cx) => {
                        ready!(Pin::new(&mut this.inner).poll_frame(&mut noop))
                    }
                    Poll::Pending => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
                }
            }
            _ => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
        };
        match &frame {
            None => {
                if let Some(back) = this.back.take() {
                    back.give_back();
                }
            }
            // An error ends the connection: it is not given back.
            Some(Err(_)) => this.back = None,
            Some(Ok(_)) => this.give_back_if_done(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An endpoint's `host:port`, as its `Display` writes it: the key of its
/// pool and what is dialled. IPv4 addresses (nearly every endpoint) are
/// written digit by digit, without `fmt` (whose `Ipv4Addr` formatting was
/// ~4 % of the proxy's instructions per request).
pub fn endpoint_key(address: &Address) -> String {
    let Address::Socket(SocketAddr::V4(a)) = address else {
        return address.to_string();
    };
    let mut s = String::with_capacity(21);
    for (i, octet) in a.ip().octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_decimal(&mut s, u32::from(octet));
    }
    s.push(':');
    push_decimal(&mut s, u32::from(a.port()));
    s
}

fn push_decimal(s: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

/// Dials `endpoint` within `timeout`, with `TCP_NODELAY`.
async fn dial(endpoint: &str, timeout: Duration) -> Result<TcpStream, ProxyError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
        .await
        .map_err(|_| connect_failure(endpoint, "timed out".into()))?
        .map_err(|e| connect_failure(endpoint, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn connect_failure(endpoint: &str, reason: String) -> ProxyError {
    ProxyError::ConnectFailure {
        endpoint: endpoint.to_string(),
        reason,
    }
}

fn bad_uri(authority: &str) -> ProxyError {
    ProxyError::BadRequest(format!("cannot form an upstream URI for {authority}"))
}

/// The upstream ended the request before its response: an HTTP/2 stream
/// reset with `REFUSED_STREAM` is [`ProxyError::Refused`] (the peer did
/// not process it), an answer that isn't HTTP [`ProxyError::Protocol`],
/// anything else [`ProxyError::Terminated`] — `unanswered` if on `http1`
/// the connection simply ended: closed before the response began, or
/// reset.
fn terminated(endpoint: &str, e: &hyper::Error, http1: bool) -> ProxyError {
    let (endpoint, reason) = (endpoint.to_string(), error_chain(e));
    if refused_stream(e) {
        ProxyError::Refused { endpoint, reason }
    } else if protocol_error(e) {
        ProxyError::Protocol { endpoint, reason }
    } else {
        let unanswered = http1 && (e.is_incomplete_message() || connection_gone(e));
        ProxyError::Terminated {
            endpoint,
            reason,
            unanswered,
        }
    }
}

/// An error and its sources, outermost first.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |c| c.source())
}

/// Whether an error (or one of its sources) is the socket reset or closed
/// under a write.
fn connection_gone(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    sources(e).any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted))
    })
}

/// Whether the upstream's answer broke the protocol: an HTTP/1.1 response
/// head that doesn't parse (or is over the size limit), or an HTTP/2
/// `PROTOCOL_ERROR` our side raised against the peer.
fn protocol_error(e: &hyper::Error) -> bool {
    e.is_parse()
        || sources(e).any(|c| {
            c.downcast_ref::<h2::Error>().is_some_and(|h2| {
                h2.reason() == Some(h2::Reason::PROTOCOL_ERROR) && !h2.is_remote()
            })
        })
}

/// Whether an error (or one of its sources) is an HTTP/2 `REFUSED_STREAM`.
fn refused_stream(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|c| {
        c.downcast_ref::<h2::Error>()
            .is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM) && h2.is_remote())
    })
}

/// An error with its sources, `a: b: c`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    sources(e)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests;
