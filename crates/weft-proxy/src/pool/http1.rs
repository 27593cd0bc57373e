//! HTTP/1.1 upstream connections, pooled per cluster and endpoint.
//!
//! Each cluster's endpoint has a lock-free queue ([`SegQueue`]) of idle
//! connections. A request pops one — skipping expired ones — or dials a
//! new one; the response body hands the connection back when it ends
//! ([`Return`]). A connection that a reused handle could not take (the
//! upstream closed it meanwhile) gets the request back unsent, and the
//! request moves on to the next connection. A sweeper task closes
//! connections idle past their cluster's idle timeout (and those the
//! upstream closed) and forgets endpoints (and clusters) with nothing
//! pooled.
//!
//! A connection that has lived the cluster's `max_connection_duration`
//! is not used again: the request on it finishes, and it is closed
//! instead of going back to the queue (one idle in the queue is closed
//! by the sweeper, or skipped by the next request), counted as
//! `upstream_cx_max_duration_reached`.
//!
//! Each connection, idle or busy, holds a `max_connections` slot of its
//! cluster's while it lives ([`Held`], travelling with it); a request
//! that finds no idle connection and no free slot waits for either as a
//! pending request (`pool::wait`), unless its endpoint has no connection.
//!
//! A connection has no task of its own: hyper's connection future (the
//! [`Driver`]) travels with its handle and is polled by whoever uses it —
//! the request while it waits for the response head, then the response
//! body as the downstream connection reads it. The upstream I/O thus
//! runs in the downstream connection's task, without a wake-up of
//! another task per request and response; and what the driver hands
//! over (the response head, body chunks) arrives within the same poll,
//! so the receiving side is polled right after it with no waker of its
//! own. Only an upgrade (WebSocket) request's connection runs in a task
//! of its own, which hyper's upgrade needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{Builder, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::wait::{self, Got, Held, Live};
use super::{
    Map, PoolSettings, SWEEP_EVERY, Target, UpstreamBody, connect_failure, dial, error_chain,
    get_or_insert, remove_unkept, sweep_within, terminated,
};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Idle connections kept per endpoint at most; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// hyper's future of one upstream connection: polling it does the
/// connection's reading and writing. Boxed so that moving it with its
/// request and response is cheap.
pub(super) type Driver = Box<Connection<TokioIo<TcpStream>, Body>>;

/// The HTTP/1.1 pools by cluster name.
#[derive(Debug, Default)]
pub(super) struct Pool {
    clusters: ArcSwap<Map<ClusterPool>>,
}

/// One cluster's pools, by endpoint (`host:port`), with the settings
/// they were made with.
#[derive(Debug)]
struct ClusterPool {
    settings: PoolSettings,
    endpoints: ArcSwap<Map<Idle>>,
}

/// One endpoint's idle connections.
#[derive(Debug)]
pub(super) struct Idle {
    conns: SegQueue<Conn>,
    /// Its cluster's idle timeout (`None`: kept for ever).
    idle_timeout: Option<Duration>,
    /// How long its connections may live (`None`: for ever).
    max_duration: Option<Duration>,
    /// All its connections, counted, and the requests waiting for one.
    live: Arc<Live>,
    /// Set when its cluster is gone: connections given back close.
    retired: AtomicBool,
}

#[derive(Debug)]
struct Conn {
    sender: SendRequest<Body>,
    driver: Driver,
    since: Instant,
    /// Requests it carried.
    served: u32,
    /// Its `max_connections` slot and place in the endpoint's count.
    held: Held,
}

/// A connection on loan to one response, and where it goes back.
#[derive(Debug)]
pub(super) struct Return {
    idle: Arc<Idle>,
    sender: SendRequest<Body>,
    /// The connection, while it runs here (`None`: it ended, or it runs
    /// in a task of its own).
    driver: Option<Driver>,
    /// Requests it carried, this one included.
    served: u32,
    /// Whether that is all it may carry (`max_requests_per_connection`).
    spent: bool,
    /// Its slot and count (`None`: it runs in a task of its own, which
    /// holds them).
    held: Option<Held>,
}

impl Return {
    /// Whether the connection runs here (is polled by the body).
    pub(super) fn runs(&self) -> bool {
        self.driver.is_some()
    }

    /// Polls the connection if it runs here; whether it still does. A
    /// connection that ended is dropped (its socket closed).
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        drive(&mut self.driver, cx)
    }

    /// Puts the connection back in its pool: at once when it is ready for
    /// the next request (the usual case: hyper reads the end of a
    /// response before the body's reader sees it), else once it is (a
    /// task drives it until then).
    pub(super) fn give_back(self) {
        let Return {
            idle,
            sender,
            driver,
            served,
            spent,
            held,
        } = self;
        // A spent, ended or upgraded connection closes (or a retired
        // pool's): its last handle (and driver) goes here.
        let (Some(driver), Some(held)) = (driver, held) else {
            return;
        };
        if spent
            || idle.retired()
            || idle.conns.len() >= MAX_IDLE_PER_ENDPOINT
            || held.reached(idle.max_duration)
        {
            return;
        }
        if sender.is_ready() {
            idle.put(sender, driver, served, held);
            return;
        }
        let mut driver = Some(driver);
        tokio::spawn(async move {
            let mut sender = sender;
            let ready = std::future::poll_fn(|cx| {
                if !drive(&mut driver, cx) {
                    return Poll::Ready(false);
                }
                let mut noop = Context::from_waker(Waker::noop());
                sender.poll_ready(&mut noop).map(|r| r.is_ok())
            })
            .await;
            if ready && let Some(driver) = driver {
                idle.put(sender, driver, served, held);
            }
        });
    }
}

/// Polls `driver` if it still runs; whether it does. One that ended is
/// dropped, which also fails whatever it was handed and didn't answer
/// (a request it never sent comes back unsent).
fn drive(driver: &mut Option<Driver>, cx: &mut Context<'_>) -> bool {
    let Some(d) = driver.as_mut() else {
        return false;
    };
    match Pin::new(&mut **d).poll(cx) {
        Poll::Pending => true,
        Poll::Ready(result) => {
            if let Err(e) = result {
                tracing::debug!(target: "weft::proxy", error = %e, "HTTP/1.1 upstream connection ended");
            }
            *driver = None;
            false
        }
    }
}

impl Idle {
    fn new(settings: &PoolSettings) -> Self {
        Idle {
            conns: SegQueue::new(),
            idle_timeout: settings.idle_timeout,
            max_duration: settings.max_connection_duration,
            live: Arc::default(),
            retired: AtomicBool::new(false),
        }
    }

    /// Pools a connection ready for its next request, and tells a
    /// request waiting for one.
    fn put(&self, sender: SendRequest<Body>, driver: Driver, served: u32, held: Held) {
        self.conns.push(Conn {
            sender,
            driver,
            since: Instant::now(),
            served,
            held,
        });
        if self.retired() {
            self.close_idle();
        }
        self.live.wake();
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Its cluster is gone: closes the idle connections now, and those
    /// in use when they come back.
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.close_idle();
    }

    fn close_idle(&self) {
        while self.conns.pop().is_some() {}
    }

    /// The next idle connection not past the idle timeout nor its
    /// longest life (those are closed). One the upstream closed meanwhile
    /// is found out when the request is handed to it (and comes back
    /// unsent).
    fn take(&self) -> Option<Conn> {
        while let Some(c) = self.conns.pop() {
            if !self.expired(&c) && !c.held.reached(self.max_duration) {
                return Some(c);
            }
        }
        None
    }

    /// Whether a pooled connection was idle for too long.
    fn expired(&self, c: &Conn) -> bool {
        self.idle_timeout.is_some_and(|t| c.since.elapsed() >= t)
    }

    /// Closes the connections past the idle timeout or their longest
    /// life, and those the upstream closed.
    fn sweep(&self) {
        for _ in 0..self.conns.len() {
            let Some(mut c) = self.conns.pop() else { break };
            if !self.expired(&c) && !c.ended() && !c.held.reached(self.max_duration) {
                self.conns.push(c);
            }
        }
    }
}

/// Sends `req` on `sender`, driving `driver` (if it runs here) until the
/// response head has come.
async fn exchange(
    sender: &mut SendRequest<Body>,
    driver: &mut Option<Driver>,
    req: Request<Body>,
) -> Result<Response<Incoming>, TrySendError<Request<Body>>> {
    let response = sender.try_send_request(req);
    let mut response = std::pin::pin!(response);
    std::future::poll_fn(|cx| {
        if drive(driver, cx) {
            // Only the driver, just polled, answers it: no waker needed.
            let mut noop = Context::from_waker(Waker::noop());
            response.as_mut().poll(&mut noop)
        } else {
            response.as_mut().poll(cx)
        }
    })
    .await
}

/// Whether a request asks to upgrade the connection (its `Upgrade`
/// header, which forward keeps only for upgrades).
fn is_upgrade(req: &Request<Body>) -> bool {
    req.headers().contains_key(http::header::UPGRADE)
}

/// Runs an upgrade request's connection in a task of its own (hyper
/// hands an upgraded connection over only from there), holding its slot
/// and count; it never comes back to the pool.
fn run_upgradable(driver: &mut Option<Driver>, held: &mut Option<Held>) {
    if let Some(d) = driver.take() {
        let held = held.take();
        tokio::spawn(async move {
            let _held = held;
            if let Err(e) = (*d).with_upgrades().await {
                tracing::debug!(target: "weft::proxy", error = %e, "HTTP/1.1 upstream connection ended");
            }
        });
    }
}

impl Pool {
    /// Sends `req` to `target`'s endpoint on an idle connection of its
    /// cluster's, else a new one.
    pub(super) async fn send(
        &self,
        target: &Target<'_>,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let endpoint = target.endpoint;
        let idle = self.idle_for(target);
        let limit = target
            .settings
            .max_requests_per_connection
            .unwrap_or(u32::MAX);
        let upgrade = is_upgrade(&req);
        let mut pooled = idle.take();
        // A pooled connection, else a slot for a new one (or a wait).
        // The wait for a slot and the dial are boxed: they run only when
        // no idle connection is at hand, and inline they would enlarge
        // every request's future (one is kept per request in flight).
        let held = loop {
            let conn = match pooled.take() {
                Some(c) => c,
                None => match Box::pin(wait::connection(target, &idle.live, || idle.take())).await?
                {
                    Got::Reused(c) => c,
                    Got::Open(held) => break held,
                },
            };
            let Conn {
                mut sender,
                driver,
                served,
                held,
                ..
            } = conn;
            let (mut driver, mut held) = (Some(driver), Some(held));
            if upgrade {
                run_upgradable(&mut driver, &mut held);
            }
            match exchange(&mut sender, &mut driver, req).await {
                Ok(resp) => {
                    return Ok(loan(resp, sender, driver, held, idle, served + 1, limit));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent (closed meanwhile): the next connection.
                    Some(r) => {
                        req = r;
                        pooled = idle.take();
                    }
                    None => return Err(terminated(endpoint, e.error(), true)),
                },
            }
        };
        let (mut sender, driver) =
            Box::pin(connect(endpoint, target.settings.connect_timeout)).await?;
        let (mut driver, mut held) = (Some(driver), Some(held));
        if upgrade {
            run_upgradable(&mut driver, &mut held);
        }
        let resp = exchange(&mut sender, &mut driver, req)
            .await
            .map_err(|e| terminated(endpoint, e.error(), true))?;
        Ok(loan(resp, sender, driver, held, idle, 1, limit))
    }

    /// Idle connections pooled now.
    pub(super) fn idle(&self) -> usize {
        self.clusters
            .load()
            .values()
            .map(|c| {
                let endpoints = c.endpoints.load();
                endpoints.values().map(|i| i.conns.len()).sum::<usize>()
            })
            .sum()
    }

    /// The idle queue of `target`'s cluster and endpoint. A cluster whose
    /// settings changed gets a new pool: the old one's connections close
    /// as their responses end.
    fn idle_for(&self, target: &Target<'_>) -> Arc<Idle> {
        let settings = target.settings;
        let cluster = get_or_insert(
            &self.clusters,
            target.cluster,
            |c| c.settings == settings,
            || ClusterPool {
                settings,
                endpoints: ArcSwap::default(),
            },
        );
        get_or_insert(
            &cluster.endpoints,
            target.endpoint,
            |_| true,
            || Idle::new(&settings),
        )
    }

    /// Forgets the clusters `keep` refuses, closing their idle
    /// connections now and the others as their responses end.
    pub(super) fn retain(&self, keep: &impl Fn(&str) -> bool) {
        for cluster in remove_unkept(&self.clusters, keep) {
            for idle in cluster.endpoints.load().values() {
                idle.retire();
            }
        }
    }

    /// Forgets the endpoints of `cluster` that `keep` refuses, as
    /// [`Pool::retain`] its clusters.
    pub(super) fn retain_endpoints(&self, cluster: &str, keep: &impl Fn(&str) -> bool) {
        if let Some(c) = self.clusters.load().get(cluster) {
            for idle in remove_unkept(&c.endpoints, keep) {
                idle.retire();
            }
        }
    }

    /// Closes idle connections past their idle timeout (and closed ones);
    /// forgets endpoints with none left and no request in flight, and
    /// clusters with no endpoint left. Returns when to sweep next.
    pub(super) fn sweep(&self) -> Duration {
        let mut every = SWEEP_EVERY;
        let mut empty_clusters = false;
        for cluster in self.clusters.load().values() {
            every = sweep_within(every, &cluster.settings);
            let map = cluster.endpoints.load();
            let mut unused = false;
            for idle in map.values() {
                idle.sweep();
                unused |= idle.conns.is_empty() && Arc::strong_count(idle) == 1;
            }
            drop(map);
            if unused {
                cluster.endpoints.rcu(|m| {
                    let mut m = Map::clone(m);
                    m.retain(|_, i| !(i.conns.is_empty() && Arc::strong_count(i) == 1));
                    m
                });
            }
            empty_clusters |= cluster.endpoints.load().is_empty();
        }
        if empty_clusters {
            self.clusters.rcu(|m| {
                let mut m = Map::clone(m);
                m.retain(|_, c| !(c.endpoints.load().is_empty() && Arc::strong_count(c) == 1));
                m
            });
        }
        every
    }
}

impl Conn {
    /// Whether the connection ended (the upstream closed it, or sent
    /// something unasked): polled once, its wake-ups going nowhere, as
    /// nothing waits on an idle connection.
    fn ended(&mut self) -> bool {
        let mut noop = Context::from_waker(Waker::noop());
        Pin::new(&mut *self.driver).poll(&mut noop).is_ready()
    }
}

/// The response, its body holding the connection (which carried
/// `served` requests of at most `limit`) until it ends. A 101 answer
/// takes the connection over: it never goes back.
fn loan(
    resp: Response<Incoming>,
    sender: SendRequest<Body>,
    driver: Option<Driver>,
    held: Option<Held>,
    idle: Arc<Idle>,
    served: u32,
    limit: u32,
) -> Response<UpstreamBody> {
    let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then_some(Return {
        idle,
        sender,
        driver,
        served,
        spent: served >= limit,
        held,
    });
    resp.map(|b| UpstreamBody::new(b, back))
}

async fn connect(
    endpoint: &str,
    timeout: Duration,
) -> Result<(SendRequest<Body>, Driver), ProxyError> {
    let stream = dial(endpoint, timeout).await?;
    let (sender, conn) = Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
    Ok((sender, Box::new(conn)))
}
