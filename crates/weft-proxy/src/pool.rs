//! Upstream connection pools, shared by every request.
//!
//! - HTTP/1.1: hyper-util's pooled client, keyed by endpoint (the request
//!   URI is `http://<endpoint>/path`; `Host` keeps the service's name).
//! - HTTP/2: one multiplexed connection per endpoint, opened on first use
//!   and reopened when it closes. Requests keep their own authority
//!   (`:authority` is the service, not the endpoint's address). The map
//!   is copy-on-write behind an [`ArcSwap`], so the request path reads it
//!   without a lock; only opening a connection takes one (per pool).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::errors::ProxyError;
use crate::forward::Body;

/// The pools.
#[derive(Clone, Debug)]
pub struct Upstreams {
    http1: Client<HttpConnector, Body>,
    http2: Arc<H2Pool>,
}

/// Shared HTTP/2 connections by endpoint (`host:port`).
#[derive(Debug, Default)]
struct H2Pool {
    conns: ArcSwap<HashMap<String, http2::SendRequest<Body>>>,
    opening: tokio::sync::Mutex<()>,
}

impl Upstreams {
    /// Pools whose HTTP/1.1 idle connections live `idle_timeout`.
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle_timeout)
            .build(connector);
        Upstreams {
            http1,
            http2: Arc::default(),
        }
    }

    /// Sends `req` over HTTP/1.1 to `endpoint` (`host:port`).
    pub async fn http1(
        &self,
        endpoint: &str,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        *req.uri_mut() = format!("http://{endpoint}{path}")
            .parse()
            .map_err(|_| bad_uri(endpoint))?;
        *req.version_mut() = http::Version::HTTP_11;
        self.http1.request(req).await.map_err(|e| {
            let reason = error_chain(&e);
            if e.is_connect() {
                ProxyError::ConnectFailure {
                    endpoint: endpoint.to_string(),
                    reason,
                }
            } else {
                ProxyError::Terminated {
                    endpoint: endpoint.to_string(),
                    reason,
                }
            }
        })
    }

    /// Sends `req` over the shared HTTP/2 connection to `endpoint`, with
    /// `authority` as `:authority`; connects within `connect_timeout`.
    pub async fn http2(
        &self,
        endpoint: &str,
        authority: &str,
        connect_timeout: Duration,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, ProxyError> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("http://{authority}{path}")
            .parse()
            .map_err(|_| bad_uri(authority))?;
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_2;
        // `Host` would repeat (and may contradict) `:authority`.
        req.headers_mut().remove(http::header::HOST);
        let mut sender = self.http2.get(endpoint, connect_timeout).await?;
        sender.ready().await.map_err(|e| terminated(endpoint, &e))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))
    }
}

impl H2Pool {
    async fn get(
        &self,
        endpoint: &str,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<Body>, ProxyError> {
        if let Some(s) = self.conns.load().get(endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let _opening = self.opening.lock().await;
        if let Some(s) = self.conns.load().get(endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let fail = |reason: String| ProxyError::ConnectFailure {
            endpoint: endpoint.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(endpoint))
            .await
            .map_err(|_| fail("timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let name = endpoint.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "HTTP/2 upstream connection ended");
            }
        });
        let mut conns: HashMap<_, _> = (**self.conns.load()).clone();
        conns.retain(|_, s| !s.is_closed());
        conns.insert(endpoint.to_string(), sender.clone());
        self.conns.store(Arc::new(conns));
        Ok(sender)
    }
}

fn bad_uri(authority: &str) -> ProxyError {
    ProxyError::BadRequest(format!("cannot form an upstream URI for {authority}"))
}

fn terminated(endpoint: &str, e: &hyper::Error) -> ProxyError {
    ProxyError::Terminated {
        endpoint: endpoint.to_string(),
        reason: error_chain(e),
    }
}

/// An error with its sources, `a: b: c`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
