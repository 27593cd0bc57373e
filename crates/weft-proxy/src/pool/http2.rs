//! HTTP/2 upstream connections, per cluster and endpoint: one shared,
//! multiplexed connection, opened on first use and reopened when it
//! closes, as Envoy's HTTP/2 pool with no stream limit reached.
//!
//! - `max_requests_per_connection`: the connection that starts its last
//!   allowed stream leaves the pool (it drains: its streams finish, then
//!   hyper closes it); the next request opens a new one.
//! - `max_connections` (the cluster's circuit breaker): each open
//!   connection, draining ones included, holds a slot. A new connection
//!   past the limit counts `upstream_cx_overflow` and waits, as a pending
//!   request, for a slot — unless its endpoint has no connection left,
//!   which always gets one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::Notify;

use super::{
    PoolSettings, Target, UpstreamBody, connect_failure, dial, error_chain, get_or_insert,
    terminated,
};
use crate::breaker::ConnectionSlot;
use crate::errors::ProxyError;
use crate::forward::Body;

/// HTTP/2 connections by cluster name.
#[derive(Debug, Default)]
pub(super) struct Pool {
    clusters: ArcSwap<HashMap<Box<str>, Arc<ClusterPool>>>,
}

/// One cluster's connections by endpoint, with the settings they were
/// made with.
#[derive(Debug)]
struct ClusterPool {
    settings: PoolSettings,
    hosts: ArcSwap<HashMap<Box<str>, Arc<Host>>>,
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

/// An endpoint's open connections, draining ones included.
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
        let mut sender = host.stream(target).await?;
        sender.ready().await.map_err(|e| terminated(endpoint, &e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))?;
        Ok(resp.map(|b| UpstreamBody::new(b, None)))
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
    /// A connection for one more stream: the current one, else a new one.
    async fn stream(&self, target: &Target<'_>) -> Result<SendRequest<Body>, ProxyError> {
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
        let (slot, _opening) = match target.breakers.connection() {
            Ok(slot) => (slot, opening),
            // An endpoint with no connection always gets one.
            Err(_) if self.live.open.load(Ordering::SeqCst) == 0 => {
                (ConnectionSlot::default(), opening)
            }
            Err(_) => {
                // Wait as a pending request, letting others look meanwhile.
                drop(opening);
                let slot = target
                    .breakers
                    .wait_connection(target.deadline, self.none_open())
                    .await
                    .map_err(|why| ProxyError::overflow(target.cluster, why))?;
                let opening = self.opening.lock().await;
                if let Some(s) = self.take_stream(limit) {
                    return Ok(s);
                }
                (slot, opening)
            }
        };
        let sender = self.open(target, slot).await?;
        // This request is its first stream.
        if limit > 1 {
            self.current.store(Some(Arc::new(Conn {
                sender: sender.clone(),
                streams: AtomicU32::new(1),
            })));
        }
        Ok(sender)
    }

    /// A stream on the current connection, if it is open and may carry
    /// one more; the one that starts its last stream drains it.
    fn take_stream(&self, limit: u32) -> Option<SendRequest<Body>> {
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
        (n <= limit).then(|| current.sender.clone())
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
    ) -> Result<SendRequest<Body>, ProxyError> {
        let endpoint = target.endpoint;
        let stream = dial(endpoint, target.settings.connect_timeout).await?;
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
        self.live.open.fetch_add(1, Ordering::SeqCst);
        let (live, name) = (self.live.clone(), endpoint.to_string());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "HTTP/2 upstream connection ended");
            }
            live.open.fetch_sub(1, Ordering::SeqCst);
            live.ended.notify_waiters();
        });
        Ok(sender)
    }
}
