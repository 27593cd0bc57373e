//! HTTP/1.1 upstream connections, pooled per endpoint.
//!
//! Each endpoint has a lock-free queue ([`SegQueue`]) of idle
//! connections. A request pops one — skipping closed and expired ones —
//! or dials a new one; the response body hands the connection back when
//! it ends ([`Return`]). A connection that a reused handle could not take
//! (the upstream closed it meanwhile) gets the request back unsent, and
//! the request moves on to the next connection. A sweeper task closes
//! connections idle past the idle timeout and forgets endpoints with
//! nothing pooled.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;

use super::{UpstreamBody, connect_failure, dial, error_chain, terminated};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Idle connections kept per endpoint at most; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

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
    since: Instant,
    /// Requests it carried.
    served: u32,
}

/// A connection on loan to one response, and where it goes back.
#[derive(Debug)]
pub(super) struct Return {
    idle: Arc<Idle>,
    sender: SendRequest<Body>,
    /// Requests it carried, this one included.
    served: u32,
    /// Whether that is all it may carry (`max_requests_per_connection`).
    spent: bool,
}

impl Return {
    /// Puts the connection back in its pool: at once when it is ready for
    /// the next request (the usual case: hyper reads the end of a
    /// response before the body's reader sees it), else once it is.
    pub(super) fn give_back(self) {
        let Return {
            idle,
            mut sender,
            served,
            spent,
        } = self;
        // A spent connection closes: its last handle goes here.
        if spent || sender.is_closed() || idle.conns.len() >= MAX_IDLE_PER_ENDPOINT {
            return;
        }
        if sender.is_ready() {
            idle.put(sender, served);
        } else {
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    idle.put(sender, served);
                }
            });
        }
    }
}

impl Idle {
    fn put(&self, sender: SendRequest<Body>, served: u32) {
        self.conns.push(Conn {
            sender,
            since: Instant::now(),
            served,
        });
    }

    /// The next usable idle connection, and the requests it carried.
    fn take(&self, idle_timeout: Duration) -> Option<(SendRequest<Body>, u32)> {
        while let Some(c) = self.conns.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < idle_timeout {
                return Some((c.sender, c.served));
            }
        }
        None
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
        while let Some((mut sender, served)) = idle.take(self.idle_timeout) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(loan(resp, sender, idle, served + 1, limit)),
                Err(mut e) => match e.take_message() {
                    // Not sent (closed meanwhile): the next connection.
                    Some(r) => req = r,
                    None => return Err(terminated(endpoint, e.error())),
                },
            }
        }
        let mut sender = connect(endpoint, connect_timeout).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))?;
        Ok(loan(resp, sender, idle, 1, limit))
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
                match idle.conns.pop() {
                    Some(c) if !c.sender.is_closed() && c.since.elapsed() < self.idle_timeout => {
                        idle.conns.push(c)
                    }
                    Some(_) => {}
                    None => break,
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

/// The response, its body holding the connection (which carried
/// `served` requests of at most `limit`) until it ends. A 101 answer
/// takes the connection over: it never goes back.
fn loan(
    resp: Response<Incoming>,
    sender: SendRequest<Body>,
    idle: Arc<Idle>,
    served: u32,
    limit: u32,
) -> Response<UpstreamBody> {
    let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then_some(Return {
        idle,
        sender,
        served,
        spent: served >= limit,
    });
    resp.map(|b| UpstreamBody::new(b, back))
}

async fn connect(endpoint: &str, timeout: Duration) -> Result<SendRequest<Body>, ProxyError> {
    let stream = dial(endpoint, timeout).await?;
    let (sender, conn) = Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(target: "weft::proxy", error = %e, "HTTP/1.1 upstream connection ended");
        }
    });
    Ok(sender)
}
