//! HTTP/2 upstream connections, per cluster and endpoint: one shared,
//! multiplexed connection, opened on first use and reopened when it
//! closes, as Envoy's HTTP/2 pool with no stream limit reached.
//!
//! - `idle_timeout`: a sweeper closes a connection that has had no
//!   stream in flight (a response body not yet ended or dropped) that
//!   long, and forgets endpoints and clusters with no connection.
//! - `max_requests_per_connection`: the connection that starts its last
//!   allowed stream leaves the pool (it drains: its streams finish, then
//!   hyper closes it); the next request opens a new one.
//! - `max_connections` (the cluster's circuit breaker): each open
//!   connection, draining ones included, holds a slot. A new connection
//!   past the limit counts `upstream_cx_overflow` and waits, as a pending
//!   request, for a slot — unless its endpoint has no connection left,
//!   which always gets one.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Notify;

use super::{
    Map, PoolSettings, Target, UpstreamBody, connect_failure, dial, error_chain, get_or_insert,
    terminated,
};
use crate::breaker::ConnectionSlot;
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
    /// The connection new streams go to, if open.
    current: ArcSwapOption<Conn>,
    /// Held while a connection is opened (one at a time).
    opening: tokio::sync::Mutex<()>,
    /// Its open connections (shared with their tasks, which must not
    /// hold the host: it holds the current connection open).
    live: Arc<Live>,
}

/// One of an endpoint's connections (opening, open or draining), counted
/// while it lives.
#[derive(Debug)]
struct Counted(Arc<Live>);

impl Counted {
    fn new(live: &Arc<Live>) -> Self {
        live.open.fetch_add(1, Ordering::SeqCst);
        Counted(live.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

/// An endpoint's connections, opening and draining ones included.
#[derive(Debug, Default)]
struct Live {
    open: AtomicUsize,
    /// Told when one ends.
    ended: Notify,
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
}

impl Conn {
    fn new(sender: SendRequest<Body>) -> Self {
        Conn {
            sender,
            streams: AtomicU32::new(0),
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(millis()),
        }
    }

    /// Counts one more stream in flight, until the guard drops.
    fn stream(self: &Arc<Self>) -> Stream {
        self.active.fetch_add(1, Ordering::SeqCst);
        Stream(self.clone())
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
    }
}

/// Milliseconds since the pools' first use (a monotonic clock in an atomic).
fn millis() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// How often the sweeper looks at most (sooner for idle timeouts below
/// twice this).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
        let conn = host.stream(target).await?;
        let stream = conn.stream();
        let mut sender = conn.sender.clone();
        drop(conn);
        sender.ready().await.map_err(|e| terminated(endpoint, &e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))?;
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
                hosts
                    .values()
                    .map(|h| h.live.open.load(Ordering::SeqCst))
                    .sum::<usize>()
            })
            .sum()
    }

    /// Runs [`Pool::sweep`] while `pool` lives, if there is a runtime:
    /// every second, or every half of the shortest idle timeout when
    /// that is sooner.
    pub(super) fn sweep_in_background(pool: &Arc<Pool>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(pool);
        rt.spawn(async move {
            let mut every = SWEEP_EVERY;
            loop {
                tokio::time::sleep(every).await;
                match pool.upgrade() {
                    Some(p) => every = p.sweep(),
                    None => return,
                }
            }
        });
    }

    /// Closes connections idle past their cluster's idle timeout (their
    /// last handle goes), forgets endpoints with no connection and
    /// clusters with no endpoint. Returns when to sweep next.
    fn sweep(&self) -> Duration {
        let mut every = SWEEP_EVERY;
        let mut empty_clusters = false;
        for cluster in self.clusters.load().values() {
            let idle_timeout = cluster.settings.idle_timeout;
            if let Some(t) = idle_timeout {
                every = every.min((t / 2).max(Duration::from_millis(10)));
            }
            let mut unused = false;
            for host in cluster.hosts.load().values() {
                if let Some(c) = host.current.load_full()
                    && (c.sender.is_closed() || idle_timeout.is_some_and(|t| c.idle_for(t)))
                {
                    host.current.rcu(|cur| match cur {
                        Some(x) if Arc::ptr_eq(x, &c) => None,
                        other => other.clone(),
                    });
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
        Arc::strong_count(self) == 1
            && self.current.load().is_none()
            && self.live.open.load(Ordering::SeqCst) == 0
    }

    /// A connection for one more stream: the current one, else a new one.
    async fn stream(&self, target: &Target<'_>) -> Result<Arc<Conn>, ProxyError> {
        let limit = target
            .settings
            .max_requests_per_connection
            .unwrap_or(u32::MAX);
        if let Some(s) = self.take_stream(limit) {
            return Ok(s);
        }
        let opening = self.opening.lock().await;
        if let Some(s) = self.take_stream(limit) {
            return Ok(s);
        }
        // A connection counts for its endpoint from when it has its slot.
        let (slot, counted, _opening) = match target.breakers.connection() {
            Ok(slot) => (slot, Counted::new(&self.live), opening),
            // An endpoint with no connection always gets one.
            Err(_) if self.live.open.load(Ordering::SeqCst) == 0 => {
                (ConnectionSlot::default(), Counted::new(&self.live), opening)
            }
            Err(_) => {
                // Wait as a pending request, letting others look meanwhile.
                drop(opening);
                let slot = target
                    .breakers
                    .wait_connection(target.deadline, self.none_open())
                    .await
                    .map_err(|why| ProxyError::overflow(target.cluster, why))?;
                let counted = Counted::new(&self.live);
                let opening = self.opening.lock().await;
                if let Some(s) = self.take_stream(limit) {
                    return Ok(s);
                }
                (slot, counted, opening)
            }
        };
        let conn = Arc::new(Conn::new(self.open(target, slot, counted).await?));
        // This request is its first stream.
        conn.streams.store(1, Ordering::Relaxed);
        if limit > 1 {
            self.current.store(Some(conn.clone()));
        }
        Ok(conn)
    }

    /// A stream on the current connection, if it is open and may carry
    /// one more; the one that starts its last stream drains it.
    fn take_stream(&self, limit: u32) -> Option<Arc<Conn>> {
        let current = self.current.load_full()?;
        if current.sender.is_closed() {
            return None;
        }
        let n = current.streams.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= limit {
            self.current.rcu(|c| match c {
                Some(c) if Arc::ptr_eq(c, &current) => None,
                other => other.clone(),
            });
        }
        // Another request took the last one first.
        (n <= limit).then_some(current)
    }

    /// Ready once this endpoint has no connection open.
    async fn none_open(&self) {
        loop {
            let ended = self.live.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.live.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Opens a connection holding `slot` while it lives.
    async fn open(
        &self,
        target: &Target<'_>,
        slot: ConnectionSlot,
        counted: Counted,
    ) -> Result<SendRequest<Body>, ProxyError> {
        let endpoint = target.endpoint;
        let stream = dial(endpoint, target.settings.connect_timeout).await?;
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
        let name = endpoint.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "HTTP/2 upstream connection ended");
            }
            // The slot first: while this endpoint still counts the
            // connection, a request takes the slot, not one past the limit.
            drop(slot);
            drop(counted);
        });
        Ok(sender)
    }
}
