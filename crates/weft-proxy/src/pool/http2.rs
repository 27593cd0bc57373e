//! HTTP/2 upstream connections: one shared, multiplexed connection per
//! endpoint, opened on first use and reopened when it closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::{UpstreamBody, connect_failure, dial, error_chain, terminated};
use crate::errors::ProxyError;
use crate::forward::Body;

/// Shared HTTP/2 connections by endpoint (`host:port`).
#[derive(Debug, Default)]
pub(super) struct Pool {
    conns: ArcSwap<HashMap<Box<str>, SendRequest<Body>>>,
    opening: tokio::sync::Mutex<()>,
}

impl Pool {
    /// Sends `req` (its URI absolute, `:authority` the service) on
    /// `endpoint`'s connection.
    pub(super) async fn send(
        &self,
        endpoint: &str,
        connect_timeout: Duration,
        req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let mut sender = self.get(endpoint, connect_timeout).await?;
        sender.ready().await.map_err(|e| terminated(endpoint, &e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| terminated(endpoint, &e))?;
        Ok(resp.map(|b| UpstreamBody::new(b, None)))
    }

    async fn get(
        &self,
        endpoint: &str,
        connect_timeout: Duration,
    ) -> Result<SendRequest<Body>, ProxyError> {
        if let Some(s) = self.conns.load().get(endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let _opening = self.opening.lock().await;
        if let Some(s) = self.conns.load().get(endpoint).filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        let stream = dial(endpoint, connect_timeout).await?;
        let (sender, conn) = Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_failure(endpoint, error_chain(&e)))?;
        let name = endpoint.to_string();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "weft::proxy", endpoint = %name, error = %e, "HTTP/2 upstream connection ended");
            }
        });
        let mut conns = HashMap::clone(&self.conns.load());
        conns.retain(|_, s| !s.is_closed());
        conns.insert(endpoint.into(), sender.clone());
        self.conns.store(Arc::new(conns));
        Ok(sender)
    }
}
