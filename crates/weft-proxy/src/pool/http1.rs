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
use std::sync::{Arc, Weak};
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

use super::{
    Map, PoolSettings, Target, UpstreamBody, connect_failure, dial, error_chain, get_or_insert,
    terminated,
};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Idle connections kept per endpoint at most; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// hyper's future of one upstream connection: polling it does the
/// connection's reading and writing. Boxed so that moving it with its
/// request and response is cheap.
pub(super) type Driver = Box<Connection<TokioIo<TcpStream>, Body>>;

/// How often the sweeper looks at most (sooner for idle timeouts below
/// twice this).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
}

#[derive(Debug)]
struct Conn {
    sender: SendRequest<Body>,
    driver: Driver,
    since: Instant,
    /// Requests it carried.
    served: u32,
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
        } = self;
        // A spent, ended or upgraded connection closes: its last handle
        // (and driver) goes here.
        let Some(driver) = driver else { return };
        if spent || idle.conns.len() >= MAX_IDLE_PER_ENDPOINT {
            return;
        }
        if sender.is_ready() {
            idle.put(sender, driver, served);
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
                idle.put(sender, driver, served);
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
    fn put(&self, sender: SendRequest<Body>, driver: Driver, served: u32) {
        self.conns.push(Conn {
            sender,
            driver,
            since: Instant::now(),
            served,
        });
    }

    /// The next idle connection not past the idle timeout. One the
    /// upstream closed meanwhile is found out when the request is handed
    /// to it (and comes back unsent).
    fn take(&self) -> Option<Conn> {
        while let Some(c) = self.conns.pop() {
            if !self.expired(&c) {
                return Some(c);
            }
        }
        None
    }

    /// Whether a pooled connection was idle for too long.
    fn expired(&self, c: &Conn) -> bool {
        self.idle_timeout.is_some_and(|t| c.since.elapsed() >= t)
    }

    /// Closes the connections past the idle timeout and those the
    /// upstream closed.
    fn sweep(&self) {
        for _ in 0..self.conns.len() {
            let Some(mut c) = self.conns.pop() else { break };
            if !self.expired(&c) && !c.ended() {
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
/// hands an upgraded connection over only from there); it never comes
/// back to the pool.
fn run_upgradable(driver: &mut Option<Driver>) {
    if let Some(d) = driver.take() {
        tokio::spawn(async move {
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
        while let Some(Conn {
            mut sender,
            driver,
            served,
            ..
        }) = idle.take()
        {
            let mut driver = Some(driver);
            if upgrade {
                run_upgradable(&mut driver);
            }
            match exchange(&mut sender, &mut driver, req).await {
                Ok(resp) => return Ok(loan(resp, sender, driver, idle, served + 1, limit)),
                Err(mut e) => match e.take_message() {
                    // Not sent (closed meanwhile): the next connection.
                    Some(r) => req = r,
                    None => return Err(terminated(endpoint, e.error())),
                },
            }
        }
        let (mut sender, driver) = connect(endpoint, target.settings.connect_timeout).await?;
        let mut driver = Some(driver);
        if upgrade {
            run_upgradable(&mut driver);
        }
        let resp = exchange(&mut sender, &mut driver, req)
            .await
            .map_err(|e| terminated(endpoint, e.error()))?;
        Ok(loan(resp, sender, driver, idle, 1, limit))
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
            || Idle {
                conns: SegQueue::new(),
                idle_timeout: settings.idle_timeout,
            },
        )
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

    /// Closes idle connections past their idle timeout (and closed ones);
    /// forgets endpoints with none left and no request in flight, and
    /// clusters with no endpoint left. Returns when to sweep next.
    fn sweep(&self) -> Duration {
        let mut every = SWEEP_EVERY;
        let mut empty_clusters = false;
        for cluster in self.clusters.load().values() {
            if let Some(t) = cluster.settings.idle_timeout {
                every = every.min((t / 2).max(Duration::from_millis(10)));
            }
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
