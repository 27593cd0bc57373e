//! Explicit mode's outbound side: an HTTP proxy port the app points at
//! (`HTTP_PROXY`, `curl -x`). An absolute-form request
//! (`GET http://reviews.shop.svc.cluster.local:9080/ HTTP/1.1`), or an
//! origin-form one with `Host`, is routed by the route configuration of
//! its port's outbound listener (`0.0.0.0_<port>`); `CONNECT host:port`
//! opens a tunnel to the TCP service the listener's chains pick for that
//! host — or, when the host names none and TLS services share the port,
//! for the SNI of the ClientHello the client then sends in the tunnel.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;
use crate::errors::ProxyError;
use crate::forward::{self, Body, Context, Upstreams};
use crate::listener::{ConnectionInfo, Listener, NetworkFilter};
use crate::snapshot::Snapshot;
use crate::sniff;
use crate::stats::HttpStats;

/// What the outbound proxy shares between connections.
#[derive(Debug)]
pub struct Outbound {
    /// The config.
    pub config: Arc<ArcSwap<Snapshot>>,
    /// The pooled clients.
    pub upstreams: Upstreams,
    /// Counters.
    pub stats: Arc<HttpStats>,
    /// How long a `CONNECT` tunnel to TLS services told apart by SNI may
    /// take to send its ClientHello (`None`: as long as it takes).
    pub detect_timeout: Option<std::time::Duration>,
    /// The proxy's own IP (`x-forwarded-for` for peers on loopback).
    pub local_ip: Option<std::net::IpAddr>,
}

/// Accepts on `listener` until draining starts.
pub async fn serve(listener: TcpListener, outbound: Arc<Outbound>, drain: Drain) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = drain.started() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "weft::proxy", error = %e, "outbound accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ob = outbound.clone();
        let service = hyper::service::service_fn(move |req| {
            let ob = ob.clone();
            async move { Ok::<_, Infallible>(handle(&ob, req, peer).await) }
        });
        tokio::spawn(drain.serve_http(stream, service));
    }
}

/// One request to the outbound proxy.
pub async fn handle(ob: &Outbound, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let snapshot = ob.config.load_full();
    if req.method() == Method::CONNECT {
        return connect(ob, &snapshot, req).await;
    }
    let authority = match forward::authority(&req) {
        Ok(a) => a,
        Err(e) => return forward::error_response(&e, &ob.stats),
    };
    let port = match authority_port(&authority, req.uri().scheme_str()) {
        Some(p) => p,
        None => {
            return forward::error_response(
                &ProxyError::BadRequest(format!("bad authority {authority:?}")),
                &ob.stats,
            );
        }
    };
    let Some((table, forwarded)) = snapshot.outbound_http(port) else {
        return forward::error_response(
            &ProxyError::NoRoute(format!("no outbound listener for port {port}")),
            &ob.stats,
        );
    };
    let cx = Context {
        snapshot: &snapshot,
        upstreams: &ob.upstreams,
        stats: &ob.stats,
        scheme: "http",
        original_dst: None,
        client: Some(peer),
        forwarded,
        local_ip: ob.local_ip,
    };
    forward::handle(cx, table, req).await
}

/// The port of `host[:port]`: given, else the scheme's default.
pub fn authority_port(authority: &str, scheme: Option<&str>) -> Option<u16> {
    let a: http::uri::Authority = authority.parse().ok()?;
    Some(
        a.port_u16()
            .unwrap_or(if scheme == Some("https") { 443 } else { 80 }),
    )
}

async fn connect(ob: &Outbound, snapshot: &Snapshot, req: Request<Incoming>) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return forward::error_response(
            &ProxyError::BadRequest("CONNECT needs host:port".into()),
            &ob.stats,
        );
    };
    let Some(port) = authority.port_u16() else {
        return forward::error_response(
            &ProxyError::BadRequest("CONNECT needs host:port".into()),
            &ob.stats,
        );
    };
    let host = authority.host();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    let listener = snapshot.outbound_listener(ip, port);
    let chain = listener.and_then(|l| l.tcp_chain(host));
    let Some((NetworkFilter::Tcp(target), idle, max)) =
        chain.map(|c| (&c.filter, c.tcp_idle_timeout, c.tcp_max_duration))
    else {
        // TLS services told apart by SNI behind an address: the tunnel's
        // first bytes (the ClientHello) choose.
        if let Some(l) = listener.filter(|l| l.wanted(port).tls).cloned() {
            return tls_by_sni(ob, l, authority.to_string(), port, req);
        }
        return forward::error_response(
            &ProxyError::NoRoute(format!("no TCP service for {authority}")),
            &ob.stats,
        );
    };
    let (cluster, _) = target.pick();
    let upstream = match crate::tcp::connect(snapshot, cluster, authority.as_ref()).await {
        Ok(s) => s,
        Err(e) => return forward::error_response(&e, &ob.stats),
    };
    ob.stats.record(StatusCode::OK, None);
    ob.stats
        .tcp_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => tunnel(TokioIo::new(upgraded), upstream, idle, max).await,
            Err(e) => tracing::debug!(target: "weft::proxy", error = %e, "CONNECT upgrade failed"),
        }
    });
    forward::plain(StatusCode::OK, "")
}

/// Answers the `CONNECT`, then reads the ClientHello from the tunnel,
/// picks the listener's chain by its SNI (as a transparent connection's)
/// and splices to that chain's cluster, the hello first.
fn tls_by_sni(
    ob: &Outbound,
    listener: Arc<Listener>,
    authority: String,
    port: u16,
    req: Request<Incoming>,
) -> Response<Body> {
    ob.stats.record(StatusCode::OK, None);
    ob.stats
        .tcp_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (config, timeout) = (ob.config.clone(), ob.detect_timeout);
    tokio::spawn(async move {
        let mut downstream = match hyper::upgrade::on(req).await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(target: "weft::proxy", error = %e, "CONNECT upgrade failed");
                return;
            }
        };
        let (hello, detected) = match read_hello(&mut downstream, timeout).await {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(target: "weft::proxy", error = %e, "no ClientHello in the CONNECT tunnel");
                return;
            }
        };
        let info = ConnectionInfo::new(port, &detected);
        let chain = listener.select(&info);
        let Some((NetworkFilter::Tcp(target), idle, max)) =
            chain.map(|c| (&c.filter, c.tcp_idle_timeout, c.tcp_max_duration))
        else {
            tracing::debug!(target: "weft::access", flag = "NR", sni = ?detected.server_name, "no TCP service for the tunnel's server name; closed");
            return;
        };
        let snapshot = config.load_full();
        let (cluster, _) = target.pick();
        let (mut upstream, active) = match crate::tcp::connect(&snapshot, cluster, &authority).await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(target: "weft::access", flag = e.flag().as_str(), error = %e, "CONNECT tunnel to {cluster} failed");
                return;
            }
        };
        if upstream.write_all(&hello).await.is_ok() {
            tunnel(downstream, (upstream, active), idle, max).await;
        }
    });
    forward::plain(StatusCode::OK, "")
}

/// Reads from the tunnel until its first bytes are a whole ClientHello
/// (or plainly not one), within the detection timeout: the bytes read and
/// what they said.
async fn read_hello(
    downstream: &mut TokioIo<hyper::upgrade::Upgraded>,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<(Vec<u8>, sniff::Detected)> {
    let wanted = sniff::Wanted {
        tls: true,
        http: false,
    };
    let read = async {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = downstream.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
            let eof = n == 0 || buf.len() >= sniff::MAX_PEEK;
            if let Some(d) = sniff::decide(&buf, wanted, eof) {
                return Ok((buf, d));
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, read).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no ClientHello in time")
        })?,
        None => read.await,
    }
}

/// Splices a tunnel to its upstream until both are done, nothing moved
/// for `idle` (its chain's TCP proxy `idle_timeout`) or it has lasted
/// `max` (its `max_downstream_connection_duration`).
async fn tunnel(
    downstream: TokioIo<hyper::upgrade::Upgraded>,
    (upstream, _lease): (TcpStream, crate::tcp::Lease),
    idle: std::time::Duration,
    max: Option<std::time::Duration>,
) {
    crate::tcp::splice(downstream, upstream, idle, max).await;
}

#[cfg(test)]
mod tests;
