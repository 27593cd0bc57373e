//! Explicit mode's outbound side: an HTTP proxy port the app points at
//! (`HTTP_PROXY`, `curl -x`). An absolute-form request
//! (`GET http://reviews.shop.svc.cluster.local:9080/ HTTP/1.1`), or an
//! origin-form one with `Host`, is routed by the route configuration of
//! its port's outbound listener (`0.0.0.0_<port>`); `CONNECT host:port`
//! opens a tunnel to the TCP service the listener's chains pick for that
//! host.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;
use crate::errors::ProxyError;
use crate::forward::{self, Body, Context, Upstreams};
use crate::listener::NetworkFilter;
use crate::snapshot::Snapshot;
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
    let Some(authority) = forward::authority(&req) else {
        return forward::error_response(&ProxyError::BadRequest("no host".into()), &ob.stats);
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
    let Some(table) = snapshot.outbound_routes(port).cloned() else {
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
        client: Some(peer),
    };
    forward::handle(cx, &table, req).await
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
    let chain = snapshot
        .outbound_listener(ip, port)
        .and_then(|l| l.tcp_chain(host));
    let Some(NetworkFilter::Tcp(target)) = chain.map(|c| &c.filter) else {
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
            Ok(upgraded) => tunnel(TokioIo::new(upgraded), upstream).await,
            Err(e) => tracing::debug!(target: "weft::proxy", error = %e, "CONNECT upgrade failed"),
        }
    });
    forward::plain(StatusCode::OK, "")
}

async fn tunnel(
    mut downstream: TokioIo<hyper::upgrade::Upgraded>,
    (mut upstream, _active): (TcpStream, Option<crate::endpoint::ActiveRequest>),
) {
    if let Err(e) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(target: "weft::proxy", error = %e, "tunnel ended with an error");
    }
}
