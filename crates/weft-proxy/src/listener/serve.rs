//! Serving listeners: the ones the proxy binds itself (explicit mode: the
//! inbound listeners on the WorkloadEntry's address and ports), and the
//! per-connection path every listener shares ([`serve_connection`],
//! also used by [`crate::transparent`]).
//!
//! The manager follows the config: each new snapshot's bound listeners
//! are compared with the running ones; new ones are bound, removed ones
//! stop accepting (their open connections go on to their end). Each
//! connection picks its filter chain when it arrives — after peeking at
//! its first bytes when a chain matches on SNI, transport or sniffed
//! application protocol ([`crate::sniff`]) — and each HTTP request reads
//! the routes of the snapshot in force when it arrives.

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

use super::{ConnectionInfo, Direction, Listener, NetworkFilter, Routes};
use crate::cluster::Discovery;
use crate::drain::Drain;
use crate::errors::ProxyError;
use crate::forward::{self, Body, Context, Upstreams};
use crate::route::RouteTable;
use crate::snapshot::Snapshot;
use crate::sniff;
use crate::stats::HttpStats;

/// What the listeners of one direction share.
#[derive(Debug)]
pub struct Bound {
    /// The config.
    pub config: Arc<ArcSwap<Snapshot>>,
    /// The pooled clients.
    pub upstreams: Upstreams,
    /// Counters.
    pub stats: Arc<HttpStats>,
    /// How long protocol detection waits for a connection's first bytes
    /// (`None`: as long as it takes).
    pub detect_timeout: Option<Duration>,
    /// Listeners served elsewhere, never bound here (transparent mode's
    /// `virtualOutbound` and `virtualInbound`).
    pub skip: Vec<String>,
    /// The proxy's own IP (`x-forwarded-for` for peers on loopback).
    pub local_ip: Option<std::net::IpAddr>,
}

/// Keeps the bound listeners in step with the config until draining starts.
/// A bound listener of the outbound direction (a Sidecar egress listener
/// with a `bind`: the app dials it) drains with `outbound`, the others
/// with `drain`.
pub async fn manage(
    bound: Arc<Bound>,
    mut applied: watch::Receiver<u64>,
    drain: Drain,
    outbound: Drain,
) {
    let mut running: HashMap<String, (SocketAddr, watch::Sender<bool>)> = HashMap::new();
    loop {
        let snapshot = bound.config.load_full();
        let wanted: HashMap<String, (SocketAddr, Direction)> = snapshot
            .bound_listeners()
            .filter(|l| !bound.skip.contains(&l.name))
            .filter_map(|l| Some((l.name.clone(), (l.address?, l.direction))))
            .collect();
        running.retain(|name, (addr, stop)| {
            let keep = wanted.get(name).map(|(a, _)| a) == Some(addr);
            if !keep {
                tracing::info!(target: "weft::proxy", listener = %name, "listener removed: no new connections");
                let _ = stop.send(true);
            }
            keep
        });
        for (name, (addr, direction)) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(target: "weft::proxy", listener = %name, %addr, "listening");
                    let (stop, stopped) = watch::channel(false);
                    let drain = match direction {
                        Direction::Outbound => outbound.clone(),
                        Direction::Inbound | Direction::Unspecified => drain.clone(),
                    };
                    tokio::spawn(accept(l, name.clone(), bound.clone(), stopped, drain));
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

async fn connection(stream: TcpStream, name: Arc<str>, bound: Arc<Bound>, drain: Drain) {
    let snapshot = bound.config.load_full();
    let Some(listener) = snapshot.parts.listeners.get(&*name).cloned() else {
        return; // removed meanwhile
    };
    let port = stream.local_addr().map_or(0, |a| a.port());
    let conn = Connection {
        listener,
        snapshot,
        destination_port: port,
        original_dst: None,
        upstream_source: None,
    };
    serve_connection(stream, conn, bound, drain).await;
}

/// A connection about to be served by one of a listener's chains.
#[derive(Debug)]
pub struct Connection {
    /// The listener whose chains apply.
    pub listener: Arc<Listener>,
    /// The config when the connection arrived.
    pub snapshot: Arc<Snapshot>,
    /// The port the client connected to (its original destination's).
    pub destination_port: u16,
    /// The original destination (transparent mode), for
    /// original-destination clusters.
    pub original_dst: Option<SocketAddr>,
    /// The source address for TCP connections to an original-destination
    /// cluster (inbound passthrough binds 127.0.0.6, as Istio, so the
    /// connection to the workload's own address is not captured again).
    pub upstream_source: Option<std::net::IpAddr>,
}

/// Inspects the first bytes as the listener's chains need (TLS
/// ClientHello, HTTP), selects the chain (see [`super::select`]) and
/// serves the connection with it: HTTP with its routes, or TCP to its
/// cluster. No chain: the connection is closed.
pub async fn serve_connection(
    stream: TcpStream,
    conn: Connection,
    bound: Arc<Bound>,
    drain: Drain,
) {
    let wanted = conn.listener.wanted(conn.destination_port);
    let detected = sniff::inspect(&stream, wanted, bound.detect_timeout).await;
    let info = ConnectionInfo::new(conn.destination_port, &detected);
    let Some(chain) = conn.listener.select(&info) else {
        tracing::debug!(target: "weft::proxy", listener = %conn.listener.name, port = conn.destination_port, sni = ?detected.server_name, "no filter chain for the connection; closed");
        return;
    };
    tracing::trace!(target: "weft::proxy", listener = %conn.listener.name, chain = %chain.name, ?detected, "filter chain");
    match &chain.filter {
        NetworkFilter::Http(routes) => {
            let routes = match routes {
                Routes::Rds(n) => RouteSource::Rds(n.clone()),
                Routes::Inline(t) => RouteSource::Inline(t.clone()),
            };
            let source = Arc::new(HttpSource {
                routes,
                listener: conn.listener.name.clone(),
                original_dst: conn.original_dst,
                forwarded: chain.forwarded.clone(),
            });
            let peer = stream.peer_addr().ok();
            let service = hyper::service::service_fn(move |req| {
                let (bound, source) = (bound.clone(), source.clone());
                async move { Ok::<_, Infallible>(http(&bound, &source, req, peer).await) }
            });
            drain.serve_http(stream, service).await;
        }
        NetworkFilter::Tcp(target) => {
            let _tracked = drain.track();
            bound.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
            let (cluster, _) = target.pick();
            let original = conn.original_dst.map(|a| a.to_string()).unwrap_or_default();
            let passthrough = conn
                .snapshot
                .cluster(cluster)
                .is_some_and(|e| e.cluster.discovery == Discovery::OriginalDst);
            let source = conn.upstream_source.filter(|_| passthrough);
            let upstream =
                crate::tcp::connect_from(&conn.snapshot, cluster, &original, source).await;
            match upstream {
                Ok((upstream, _active)) => {
                    crate::tcp::splice(
                        stream,
                        upstream,
                        chain.tcp_idle_timeout,
                        chain.tcp_max_duration,
                    )
                    .await
                }
                Err(e) => {
                    tracing::debug!(target: "weft::access", flag = e.flag().as_str(), cluster, error = %e, "TCP connection failed")
                }
            }
        }
    }
}

/// What an HTTP connection's requests share.
#[derive(Debug)]
struct HttpSource {
    routes: RouteSource,
    listener: String,
    original_dst: Option<SocketAddr>,
    /// The chain's connection manager header settings.
    forwarded: Arc<crate::forwarded::Config>,
}

/// Where an HTTP connection's routes come from.
#[derive(Debug)]
enum RouteSource {
    /// RDS, by name: read from the snapshot of each request.
    Rds(String),
    /// The listener's own.
    Inline(Arc<RouteTable>),
}

async fn http(
    bound: &Bound,
    source: &HttpSource,
    req: Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    let snapshot = bound.config.load_full();
    let table = match &source.routes {
        RouteSource::Inline(t) => Some(t.clone()),
        RouteSource::Rds(n) => snapshot.parts.routes.get(n).cloned(),
    };
    let Some(table) = table else {
        return forward::error_response(
            &ProxyError::NoRoute(format!("listener {} has no routes", source.listener)),
            &bound.stats,
        );
    };
    let cx = Context {
        snapshot: &snapshot,
        upstreams: &bound.upstreams,
        stats: &bound.stats,
        scheme: "http",
        original_dst: source.original_dst,
        client: peer,
        forwarded: &source.forwarded,
        local_ip: bound.local_ip,
    };
    forward::handle(cx, &table, req).await
}
