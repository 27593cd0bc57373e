//! HTTP/2 upstream connections, per cluster and endpoint, as Envoy's
//! HTTP/2 pool: streams are multiplexed on an open connection while it
//! has room, and another connection is opened when every one is full.
//!
//! - A connection has room while its streams in flight are below both
//!   the cluster's `max_concurrent_streams` and the peer's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` (read off the wire, `pool::peer`).
//!   A new connection takes new streams once the peer's first SETTINGS
//!   frame has come (its first request goes at once); connections are
//!   opened one at a time per endpoint, and a request waiting for the
//!   one being opened is pending (one of `max_pending_requests`, 503
//!   `UO` past it, as a request waiting for an HTTP/1.1 connection).
//! - When none has room a request opens one with a `max_connections`
//!   slot; past the limit it waits as a pending request for room on a
//!   connection or for a slot (`pool::wait`: Envoy's rules, an endpoint
//!   with no connection always gets one; `max_pending_requests`
//!   overflows with 503 `UO`).
//! - `idle_timeout`: a sweeper closes a connection that has had no
//!   stream in flight (a response body not yet ended or dropped) that
//!   long, and forgets endpoints and clusters with no connection.
//! - `max_requests_per_connection`: the connection that starts its last
//!   allowed stream leaves the pool (it drains: its streams finish, then
//!   hyper closes it); the next request opens a new one.
//! - `max_connection_duration`: a connection that has lived that long
//!   leaves the pool (no new streams; counted as
//!   `upstream_cx_max_duration_reached`) and drains as above: its streams
//!   finish, then hyper closes it (GOAWAY). Found by the next request
//!   that looks at it, or by the sweeper.
//! - Each open connection, draining ones included, holds its slot until
//!   its task ends.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::OwnedMutexGuard;

use super::peer::{Peer, Watched};
use super::wait::{self, Got, Held, Live};
use super::{
    Map, PoolSettings, SWEEP_EVERY, Target, UpstreamBody, connect_failure, dial, error_chain,
    get_or_insert, remove_unkept, sweep_within, terminated,
};
use crate::breaker::Breakers;
use crate::errors::ProxyError;
use crate::forward::Body;

/// HTTP/2 connections by cluster name.
#[derive(Debug, Default)]
pub(super) struct Pool {
    clusters: ArcSwap<Map<ClusterPool>>,
}

/// One cluster's connections by endpoint, with the settings they were
/// made with.
#[derive(Debug)]
struct ClusterPool {
    settings: PoolSettings,
    hosts: ArcSwap<Map<Host>>,
}

/// One endpoint's connections.
#[derive(Debug, Default)]
struct Host {
    /// The connections new streams may go to (open, not draining).
    conns: ArcSwap<Vec<Arc<Conn>>>,
    /// Held while a connection is opened, until the peer's first
    /// SETTINGS frame tells its stream limit (one at a time).
    opening: Arc<tokio::sync::Mutex<()>>,
    /// All its connections (draining ones too), counted, and the
    /// requests waiting for one (shared with the connections' tasks,
    /// which must not hold the host: it holds the connections).
    live: Arc<Live>,
}

#[derive(Debug)]
struct Conn {
    sender: SendRequest<Body>,
    /// Streams started on it.
    streams: AtomicU32,
    /// Streams in flight on it.
    active: AtomicU32,
    /// When the last stream in flight ended ([`millis`]).
    idle_since: AtomicU64,
    /// What the peer said of its limits.
    peer: Arc<Peer>,
    /// Its endpoint's count: told when a stream ends.
    live: Arc<Live>,
    /// When it was opened.
    born: Instant,
    /// Whether it has lived its cluster's `max_connection_duration`
    /// (then it takes no new stream).
    aged: AtomicBool,
    /// Where `upstream_cx_max_duration_reached` is counted.
    breakers: Arc<Breakers>,
}

impl Conn {
    /// Whether it has lived `settings.max_connection_duration`: then it
    /// takes no new stream. The first to find it so counts
    /// `upstream_cx_max_duration_reached`.
    fn aged(&self, settings: &PoolSettings) -> bool {
        if self.aged.load(Ordering::Relaxed) {
            return true;
        }
        let Some(max) = settings.max_connection_duration else {
            return false;
        };
        if self.born.elapsed() < max {
            return false;
        }
        if !self.aged.swap(true, Ordering::SeqCst) {
            self.breakers
                .cx_max_duration_reached
                .fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// One more stream if it has room (under its stream limit and under
    /// `max_requests_per_connection`), and whether that is its last.
    fn try_stream(self: &Arc<Self>, settings: &PoolSettings) -> Option<(Stream, bool)> {
        if self.sender.is_closed() {
            return None;
        }
        let limit = settings
            .max_concurrent_streams
            .min(self.peer.max_streams())
            .max(1);
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a < limit).then_some(a + 1)
            })
            .ok()?;
        // From here it is in flight; dropping `stream` ends it.
        let stream = Stream(self.clone());
        let max = settings.max_requests_per_connection.unwrap_or(u32::MAX);
        let n = self.streams.fetch_add(1, Ordering::Relaxed) + 1;
        // Another request took the last one first.
        (n <= max).then_some((stream, n == max))
    }

    /// Whether it had no stream in flight for `idle_timeout`.
    fn idle_for(&self, idle_timeout: Duration) -> bool {
        let since = self.idle_since.load(Ordering::SeqCst);
        self.active.load(Ordering::SeqCst) == 0
            && millis().saturating_sub(since) >= idle_timeout.as_millis() as u64
    }
}

/// A stream in flight on its connection (held by the response body).
#[derive(Debug)]
pub(super) struct Stream(Arc<Conn>);

impl Drop for Stream {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle_since.store(millis(), Ordering::SeqCst);
        }
        // Room again: a request waiting for it may go.
        self.0.live.wake();
    }
}

/// Milliseconds since the pools' first use (a monotonic clock in an atomic).
fn millis() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

impl Pool {
    /// Sends `req` (its URI absolute, `:authority` the service) on a
    /// connection of `target`'s cluster to its endpoint.
    pub(super) async fn send(
        &self,
        target: &Target<'_>,
        req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let endpoint = target.endpoint;
        let host = self.host_for(target);
        let stream = host.stream(target).await?;
        let mut sender = stream.0.sender.clone();
        drop(host);
        sender
            .ready()
            .await
            .map_err(|e| terminated(endpoint, &e, false))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e, false))?;
        Ok(resp.map(|b| {
            let mut body = UpstreamBody::new(b, None);
            body._stream = Some(stream);
            body
        }))
    }

    /// Open connections now.
    pub(super) fn open(&self) -> usize {
        self.clusters
            .load()
            .values()
            .map(|c| {
                let hosts = c.hosts.load();
                hosts.values().map(|h| h.live.open()).sum::<usize>()
            })
            .sum()
    }

    /// Forgets the clusters `keep` refuses: their connections drain
    /// (those with no stream in flight close now).
    pub(super) fn retain(&self, keep: &impl Fn(&str) -> bool) {
        for cluster in remove_unkept(&self.clusters, keep) {
            for host in cluster.hosts.load().values() {
                host.conns.store(Arc::default());
            }
        }
    }

    /// Forgets the endpoints of `cluster` that `keep` refuses, as
    /// [`Pool::retain`] its clusters.
    pub(super) fn retain_endpoints(&self, cluster: &str, keep: &impl Fn(&str) -> bool) {
        if let Some(c) = self.clusters.load().get(cluster) {
            for host in remove_unkept(&c.hosts, keep) {
                host.conns.store(Arc::default());
            }
        }
    }

    /// Closes connections idle past their cluster's idle timeout (their
    /// last handle goes) and forgets closed ones, then endpoints with no
    /// connection and clusters with no endpoint. Returns when to sweep
    /// next.
    pub(super) fn sweep(&self) -> Duration {
        let mut every = SWEEP_EVERY;
        let mut empty_clusters = false;
        for cluster in self.clusters.load().values() {
            let settings = &cluster.settings;
            every = sweep_within(every, settings);
            let stale = |c: &Arc<Conn>| {
                c.sender.is_closed()
                    || settings.idle_timeout.is_some_and(|t| c.idle_for(t))
                    || c.aged(settings)
            };
            let mut unused = false;
            for host in cluster.hosts.load().values() {
                if host.conns.load().iter().any(stale) {
                    host.conns
                        .rcu(|v| v.iter().filter(|c| !stale(c)).cloned().collect::<Vec<_>>());
                }
                unused |= host.unused();
            }
            if unused {
                cluster.hosts.rcu(|m| {
                    let mut m = Map::clone(m);
                    m.retain(|_, h| !h.unused());
                    m
                });
            }
            empty_clusters |= cluster.hosts.load().is_empty();
        }
        if empty_clusters {
            self.clusters.rcu(|m| {
                let mut m = Map::clone(m);
                m.retain(|_, c| !(c.hosts.load().is_empty() && Arc::strong_count(c) == 1));
                m
            });
        }
        every
    }

    /// `target`'s endpoint in its cluster's pool. A cluster whose
    /// settings changed gets a new pool: the old connections finish their
    /// streams and close.
    fn host_for(&self, target: &Target<'_>) -> Arc<Host> {
        let settings = target.settings;
        let cluster = get_or_insert(
            &self.clusters,
            target.cluster,
            |c| c.settings == settings,
            || ClusterPool {
                settings,
                hosts: ArcSwap::default(),
            },
        );
        get_or_insert(&cluster.hosts, target.endpoint, |_| true, Host::default)
    }
}

impl Host {
    /// Whether nothing uses it: no connection, no request at it.
    fn unused(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1 && self.conns.load().is_empty() && self.live.open() == 0
    }

    /// A stream on one of its connections with room; the one that takes
    /// a connection's last allowed stream drains it. Connections past
    /// their longest life leave the pool (they drain).
    fn take_stream(&self, settings: &PoolSettings) -> Option<Stream> {
        let conns = self.conns.load();
        if settings.max_connection_duration.is_some() && conns.iter().any(|c| c.aged(settings)) {
            self.conns.rcu(|v| {
                v.iter()
                    .filter(|c| !c.aged(settings))
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
        for c in conns.iter() {
            if c.aged(settings) {
                continue;
            }
            let Some((stream, last)) = c.try_stream(settings) else {
                continue;
            };
            if last {
                self.conns.rcu(|v| {
                    v.iter()
                        .filter(|x| !Arc::ptr_eq(x, c))
                        .cloned()
                        .collect::<Vec<_>>()
                });
            }
            return Some(stream);
        }
        None
    }

    /// A stream for one more request: on a connection with room, else on
    /// a new one (or after a wait for either: [`Host::stream_slow`],
    /// boxed, so that its lock, wait and dial don't enlarge the future of
    /// every request, one kept per request in flight).
    async fn stream(self: &Arc<Self>, target: &Target<'_>) -> Result<Stream, ProxyError> {
        if let Some(s) = self.take_stream(&target.settings) {
            return Ok(s);
        }
        Box::pin(self.stream_slow(target)).await
    }

    /// [`Host::stream`] when no connection has room now.
    async fn stream_slow(self: &Arc<Self>, target: &Target<'_>) -> Result<Stream, ProxyError> {
        let settings = &target.settings;
        let opening = self.lock_opening(target).await?;
        if let Some(s) = self.take_stream(settings) {
            return Ok(s);
        }
        let (held, opening) = match wait::now(target, &self.live) {
            Some(held) => (held, opening),
            None => {
                // Wait as a pending request, letting others look meanwhile.
                drop(opening);
                match wait::wait(target, &self.live, || self.take_stream(settings)).await? {
                    Got::Reused(s) => return Ok(s),
                    Got::Open(held) => {
                        let opening = self.lock_opening(target).await?;
                        if let Some(s) = self.take_stream(settings) {
                            return Ok(s);
                        }
                        (held, opening)
                    }
                }
            }
        };
        self.open(target, held, opening).await
    }

    /// The right to open the endpoint's next connection: at once when
    /// none is being opened, else after a wait for the one being opened
    /// to be ready, as a pending request (counted against
    /// `max_pending_requests`, 503 `UO` past it, as a request waiting
    /// for an HTTP/1.1 connection).
    async fn lock_opening(&self, target: &Target<'_>) -> Result<OwnedMutexGuard<()>, ProxyError> {
        match self.opening.clone().try_lock_owned() {
            Ok(g) => Ok(g),
            Err(_) => wait::as_pending(target, self.opening.clone().lock_owned()).await,
        }
    }

    /// Opens a connection holding `held` while it lives, and takes its
    /// first stream. The connection takes other streams (and `opening`
    /// is let go) once the peer's first SETTINGS frame has been read, or
    /// after the connect timeout.
    async fn open(
        self: &Arc<Self>,
        target: &Target<'_>,
        held: Held,
        opening: OwnedMutexGuard<()>,
    ) -> Result<Stream, ProxyError> {
        let endpoint = target.endpoint;
        let timeout = target.settings.connect_timeout;
        let stream = dial(endpoint, timeout).await?;
        let peer = Arc::new(Peer::default());
        let io = TokioIo::new(Watched::new(stream, peer.clone()));
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(io)
            .await
            .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
        let name = endpoint.to_string();
        let (born, breakers) = (held.born(), held.breakers().clone());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "HTTP/2 upstream connection ended");
            }
            drop(held);
        });
        let conn = Arc::new(Conn {
            sender,
            streams: AtomicU32::new(0),
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(millis()),
            peer,
            live: self.live.clone(),
            born,
            aged: AtomicBool::new(false),
            breakers,
        });
        let Some((first, last)) = conn.try_stream(&target.settings) else {
            return Err(connect_failure(endpoint, "closed at once".into()));
        };
        if !last {
            let (host, conn) = (Arc::downgrade(self), conn.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, conn.peer.known()).await;
                if let Some(host) = host.upgrade() {
                    host.conns.rcu(|v| {
                        let mut v = Vec::clone(v);
                        v.push(conn.clone());
                        v
                    });
                    drop(opening);
                    host.live.wake();
                }
            });
        }
        Ok(first)
    }
}
