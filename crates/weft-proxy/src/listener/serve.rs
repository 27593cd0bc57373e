//! Serving the listeners the proxy binds itself (explicit mode: the
//! inbound listeners on the WorkloadEntry's address and ports).
//!
//! The manager follows the config: each new snapshot's bound listeners
//! are compared with the running ones; new ones are bound, removed ones
//! stop accepting (their open connections go on to their end). Each
//! connection picks its filter chain when it arrives — HTTP, TCP, or, on
//! a sniffed port, HTTP if the first bytes look like HTTP/1 or the h2
//! preface — and each HTTP request reads the routes of the snapshot in
//! force when it arrives.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Listener, NetworkFilter, Routes};
use crate::drain::Drain;
use crate::errors::ProxyError;
use crate::forward::{self, Body, Context, Upstreams};
use crate::snapshot::Snapshot;
use crate::stats::HttpStats;

/// How long a sniffed connection may take to send its first bytes.
const DETECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the bound listeners share.
#[derive(Debug)]
pub struct Bound {
    /// The config.
    pub config: Arc<ArcSwap<Snapshot>>,
    /// The pooled clients.
    pub upstreams: Upstreams,
    /// Counters.
    pub stats: Arc<HttpStats>,
}

/// Keeps the bound listeners in step with the config until draining starts.
pub async fn manage(bound: Arc<Bound>, mut applied: watch::Receiver<u64>, drain: Drain) {
    let mut running: HashMap<String, (SocketAddr, watch::Sender<bool>)> = HashMap::new();
    loop {
        let snapshot = bound.config.load_full();
        let wanted: HashMap<String, SocketAddr> = snapshot
            .bound_listeners()
            .filter_map(|l| Some((l.name.clone(), l.address?)))
            .collect();
        running.retain(|name, (addr, stop)| {
            let keep = wanted.get(name) == Some(addr);
            if !keep {
                tracing::info!(target: "weft::proxy", listener = %name, "listener removed: no new connections");
                let _ = stop.send(true);
            }
            keep
        });
        for (name, addr) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(target: "weft::proxy", listener = %name, %addr, "listening");
                    let (stop, stopped) = watch::channel(false);
                    tokio::spawn(accept(
                        l,
                        name.clone(),
                        bound.clone(),
                        stopped,
                        drain.clone(),
                    ));
                    running.insert(name, (addr, stop));
                }
                Err(e) => {
                    tracing::error!(target: "weft::proxy", listener = %name, %addr, error = %e, "cannot bind listener (tried again on the next config change)");
                }
            }
        }
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = drain.started() => return,
        }
    }
}

async fn accept(
    listener: TcpListener,
    name: String,
    bound: Arc<Bound>,
    mut stopped: watch::Receiver<bool>,
    drain: Drain,
) {
    let name: Arc<str> = name.into();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.wait_for(|s| *s) => return,
            _ = drain.started() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(target: "weft::proxy", listener = %name, error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (bound, name, drain) = (bound.clone(), name.clone(), drain.clone());
        tokio::spawn(async move { connection(stream, name, bound, drain).await });
    }
}

/// What a connection turned out to be.
enum Kind {
    Http,
    Tcp(String),
}

async fn connection(stream: TcpStream, name: Arc<str>, bound: Arc<Bound>, drain: Drain) {
    let snapshot = bound.config.load_full();
    let Some(listener) = snapshot.parts.listeners.get(&*name).cloned() else {
        return; // removed meanwhile
    };
    let kind = match choose(&listener, &stream).await {
        Some(k) => k,
        None => {
            tracing::debug!(target: "weft::proxy", listener = %name, "no filter chain for the connection; closed");
            return;
        }
    };
    match kind {
        Kind::Http => {
            let peer = stream.peer_addr().ok();
            let service = hyper::service::service_fn(move |req| {
                let (bound, name) = (bound.clone(), name.clone());
                async move { Ok::<_, Infallible>(http(&bound, &name, req, peer).await) }
            });
            drain.serve_http(stream, service).await;
        }
        Kind::Tcp(cluster) => {
            let _tracked = drain.track();
            bound.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
            match crate::tcp::connect(&snapshot, &cluster, "").await {
                Ok((upstream, _active)) => crate::tcp::splice(stream, upstream).await,
                Err(e) => {
                    tracing::debug!(target: "weft::access", flag = e.flag().as_str(), error = %e, "TCP connection failed")
                }
            }
        }
    }
}

/// Picks the chain: HTTP or TCP; on a sniffed port by the first bytes.
async fn choose(listener: &Listener, stream: &TcpStream) -> Option<Kind> {
    let http = listener.http_chain();
    let tcp = listener.tcp_chain("");
    let tcp_kind = || match tcp.map(|c| &c.filter) {
        Some(NetworkFilter::Tcp(t)) => Some(Kind::Tcp(t.pick().0.to_string())),
        _ => None,
    };
    match http {
        Some(h) if !h.sniffed() => Some(Kind::Http),
        Some(_) => {
            if looks_like_http(stream).await {
                Some(Kind::Http)
            } else {
                tcp_kind()
            }
        }
        None => tcp_kind(),
    }
}

/// Whether the first bytes are an HTTP/1 request line or the h2 preface.
async fn looks_like_http(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    let peek = async {
        loop {
            let n = stream.peek(&mut buf).await.unwrap_or(0);
            if n == 0 || n >= 8 || buf[..n].contains(&b' ') {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let n = tokio::time::timeout(DETECT_TIMEOUT, peek)
        .await
        .unwrap_or(0);
    is_http(&buf[..n])
}

/// Whether `bytes` start like HTTP/1 or HTTP/2.
pub fn is_http(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
        b"PRI * ",
    ];
    METHODS.iter().any(|m| {
        let n = bytes.len().min(m.len());
        n >= 3 && bytes[..n] == m[..n]
    })
}

async fn http(
    bound: &Bound,
    name: &str,
    req: Request<Incoming>,
    peer: Option<std::net::SocketAddr>,
) -> Response<Body> {
    let snapshot = bound.config.load_full();
    let table = snapshot
        .parts
        .listeners
        .get(name)
        .and_then(|l| l.http_chain())
        .and_then(|c| match &c.filter {
            NetworkFilter::Http(Routes::Inline(t)) => Some(t.clone()),
            NetworkFilter::Http(Routes::Rds(n)) => snapshot.parts.routes.get(n).cloned(),
            NetworkFilter::Tcp(_) => None,
        });
    let Some(table) = table else {
        return forward::error_response(
            &ProxyError::NoRoute(format!("listener {name} has no routes")),
            &bound.stats,
        );
    };
    let cx = Context {
        snapshot: &snapshot,
        upstreams: &bound.upstreams,
        stats: &bound.stats,
        scheme: "http",
        client: peer,
    };
    forward::handle(cx, &table, req).await
}
