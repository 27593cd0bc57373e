//! HTTP/1.1 upstream connections, pooled per cluster and endpoint.
//!
//! Each cluster's endpoint has a lock-free queue ([`SegQueue`]) of idle
//! connections. A request pops one — skipping closed and expired ones —
//! or dials a new one; the response body hands the connection back when
//! it ends ([`Return`]). A connection that a reused handle could not take
//! (the upstream closed it meanwhile) gets the request back unsent, and
//! the request moves on to the next connection. A sweeper task closes
//! connections idle past their cluster's idle timeout and forgets
//! endpoints (and clusters) with nothing pooled.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_queue::SegQueue;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;

use super::{
    Map, PoolSettings, Target, UpstreamBody, connect_failure, dial, error_chain, get_or_insert,
    terminated,
};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Idle connections kept per endpoint at most; more are closed.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

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
    fn take(&self) -> Option<(SendRequest<Body>, u32)> {
        while let Some(c) = self.conns.pop() {
            if self.usable(&c) {
                return Some((c.sender, c.served));
            }
        }
        None
    }

    /// Whether a pooled connection is open and not idle for too long.
    fn usable(&self, c: &Conn) -> bool {
        !c.sender.is_closed() && self.idle_timeout.is_none_or(|t| c.since.elapsed() < t)
    }

    /// Closes the connections past the idle timeout (and closed ones).
    fn sweep(&self) {
        for _ in 0..self.conns.len() {
            match self.conns.pop() {
                Some(c) if self.usable(&c) => self.conns.push(c),
                Some(_) => {}
                None => break,
            }
        }
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
        while let Some((mut sender, served)) = idle.take() {
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
        let mut sender = connect(endpoint, target.settings.connect_timeout).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))?;
        Ok(loan(resp, sender, idle, 1, limit))
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
