//! HTTP/1.1 upstream connections, pooled per endpoint.
//!
//! Each endpoint has a lock-free queue ([`SegQueue`]) of idle
//! connections. A request pops one — skipping expired ones — or dials a
//! new one; the response body hands the connection back when it ends
//! ([`Return`]). A connection that a reused handle could not take (the
//! upstream closed it meanwhile) gets the request back unsent, and the
//! request moves on to the next connection. A sweeper task closes
//! connections idle past the idle timeout (and those the upstream
//! closed) and forgets endpoints with nothing pooled.
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

use std::collections::HashMap;
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

use super::{UpstreamBody, connect_failure, dial, error_chain, terminated};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Idle connections kept per endpoint at most; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

/// hyper's future of one upstream connection: polling it does the
/// connection's reading and writing. Boxed so that moving it with its
/// request and response is cheap.
pub(super) type Driver = Box<Connection<TokioIo<TcpStream>, Body>>;

/// The HTTP/1.1 pools by endpoint (`host:port`).
#[derive(Debug)]
pub(super) struct Pool {
    endpoints: ArcSwap<HashMap<Box<str>, Arc<Idle>>>,
    idle_timeout: Duration,
}

/// One endpoint's idle connections.
#[derive(Debug, Default)]
pub(super) struct Idle {
    conns: SegQueue<Conn>,
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
    fn take(&self, idle_timeout: Duration) -> Option<Conn> {
        while let Some(c) = self.conns.pop() {
            if c.since.elapsed() < idle_timeout {
                return Some(c);
            }
        }
        None
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
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Pool {
            endpoints: ArcSwap::default(),
            idle_timeout,
        }
    }

    /// Sends `req` to `endpoint` on an idle connection, else a new one
    /// dialled within `connect_timeout`.
    pub(super) async fn send(
        &self,
        endpoint: &str,
        connect_timeout: Duration,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let idle = self.idle_for(endpoint);
        let limit = req
            .extensions()
            .get::<super::RequestsPerConnection>()
            .map_or(u32::MAX, |l| l.0);
        let upgrade = is_upgrade(&req);
        while let Some(Conn {
            mut sender,
            driver,
            served,
            ..
        }) = idle.take(self.idle_timeout)
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
        let (mut sender, driver) = connect(endpoint, connect_timeout).await?;
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
        self.endpoints.load().values().map(|i| i.conns.len()).sum()
    }

    fn idle_for(&self, endpoint: &str) -> Arc<Idle> {
        if let Some(i) = self.endpoints.load().get(endpoint) {
            return i.clone();
        }
        self.endpoints.rcu(|m| {
            if m.contains_key(endpoint) {
                return Arc::clone(m);
            }
            let mut m = HashMap::clone(m);
            m.insert(endpoint.into(), Arc::default());
            Arc::new(m)
        });
        self.endpoints
            .load()
            .get(endpoint)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs [`Pool::sweep`] every half idle timeout while `pool` lives, if
    /// there is a runtime.
    pub(super) fn sweep_in_background(pool: &Arc<Pool>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let every =
            (pool.idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(30));
        let pool: Weak<Pool> = Arc::downgrade(pool);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match pool.upgrade() {
                    Some(p) => p.sweep(),
                    None => return,
                }
            }
        });
    }

    /// Closes idle connections past the idle timeout (and closed ones);
    /// forgets endpoints with none left and no request in flight.
    fn sweep(&self) {
        let map = self.endpoints.load();
        let mut unused = false;
        for idle in map.values() {
            for _ in 0..idle.conns.len() {
                let Some(mut c) = idle.conns.pop() else { break };
                if c.since.elapsed() < self.idle_timeout && !c.ended() {
                    idle.conns.push(c);
                }
            }
            unused |= idle.conns.is_empty() && Arc::strong_count(idle) == 1;
        }
        drop(map);
        if unused {
            self.endpoints.rcu(|m| {
                let mut m = HashMap::clone(m);
                m.retain(|_, i| !(i.conns.is_empty() && Arc::strong_count(i) == 1));
                m
            });
        }
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
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
    Ok((sender, Box::new(conn)))
}
