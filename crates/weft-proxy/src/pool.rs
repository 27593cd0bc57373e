//! Upstream connection pools, shared by every request.
//!
//! - HTTP/1.1 ([`http1`]): per endpoint a lock-free queue of idle
//!   connections (hyper's `client::conn::http1` handles, each with its
//!   connection future, polled by the request and then by the response
//!   body: no task per connection). A request takes one (or dials), and
//!   its connection goes back to the queue when the response body ends —
//!   a request whose body is dropped early closes its connection, as
//!   HTTP/1.1 can't abandon a response. Idle connections are closed after
//!   the idle timeout by a sweeper task.
//! - HTTP/2 ([`http2`]): one multiplexed connection per endpoint, opened
//!   on first use and reopened when it closes. Requests keep their own
//!   authority (`:authority` is the service, not the endpoint's address).
//!
//! Both maps (endpoint → pool) are copy-on-write behind an
//! [`arc_swap::ArcSwap`], so the request path reads them without a lock;
//! only adding an endpoint copies the map. Upstream sockets are
//! `TCP_NODELAY`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::net::TcpStream;

use crate::endpoint::Address;
use crate::errors::ProxyError;
use crate::forward::Body;

mod http1;
mod http2;

/// A request extension: the most requests its HTTP/1.1 connection may
/// carry (the cluster's `max_requests_per_connection`); a connection that
/// carried that many closes instead of going back to the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestsPerConnection(pub u32);

/// The pools.
#[derive(Clone, Debug)]
pub struct Upstreams {
    http1: Arc<http1::Pool>,
    http2: Arc<http2::Pool>,
    connect_timeout: Duration,
}

impl Upstreams {
    /// Pools that dial within `connect_timeout` (HTTP/1.1) and keep idle
    /// HTTP/1.1 connections for `idle_timeout`. Call within a tokio
    /// runtime: the idle sweeper runs on it (and stops with the pools).
    pub fn new(connect_timeout: Duration, idle_timeout: Duration) -> Self {
        let http1 = Arc::new(http1::Pool::new(idle_timeout));
        http1::Pool::sweep_in_background(&http1);
        Upstreams {
            http1,
            http2: Arc::default(),
            connect_timeout,
        }
    }

    /// Sends `req` over HTTP/1.1 to `endpoint` (`host:port`). The request
    /// target is sent as it is (origin-form: forward sets the path and
    /// `Host`).
    pub async fn http1(
        &self,
        endpoint: &str,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        *req.version_mut() = http::Version::HTTP_11;
        self.http1.send(endpoint, self.connect_timeout, req).await
    }

    /// Sends `req` over the shared HTTP/2 connection to `endpoint`, with
    /// `authority` as `:authority`; connects within `connect_timeout`.
    pub async fn http2(
        &self,
        endpoint: &str,
        authority: &str,
        connect_timeout: Duration,
        mut req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(
            http::uri::Authority::from_maybe_shared(Bytes::copy_from_slice(authority.as_bytes()))
                .map_err(|_| bad_uri(authority))?,
        );
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = http::Uri::from_parts(parts).map_err(|_| bad_uri(authority))?;
        *req.version_mut() = http::Version::HTTP_2;
        // `Host` would repeat (and may contradict) `:authority`.
        req.headers_mut().remove(http::header::HOST);
        self.http2.send(endpoint, connect_timeout, req).await
    }

    /// Idle HTTP/1.1 connections pooled now (all endpoints).
    pub fn idle_http1(&self) -> usize {
        self.http1.idle()
    }
}

/// A response body from an upstream. For HTTP/1.1 it hands its
/// connection back to the pool once the body has ended.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    /// Where the connection goes back when the body ends (HTTP/1.1).
    back: Option<http1::Return>,
}

impl UpstreamBody {
    fn new(inner: Incoming, back: Option<http1::Return>) -> Self {
        let mut b = UpstreamBody { inner, back };
        b.give_back_if_done();
        b
    }

    fn give_back_if_done(&mut self) {
        if hyper::body::Body::is_end_stream(&self.inner)
            && let Some(back) = self.back.take()
        {
            back.give_back();
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = match this.back.as_mut() {
            // An HTTP/1.1 connection runs here (see `http1`), and only it
            // feeds the body's channel: what it delivered is taken first
            // (usually the whole body, read with the head), and it is
            // polled only when the channel is empty; then the body needs
            // no waker of its own.
            Some(back) if back.runs() => {
                let mut noop = Context::from_waker(std::task::Waker::noop());
                match Pin::new(&mut this.inner).poll_frame(&mut noop) {
                    Poll::Ready(frame) => frame,
                    Poll::Pending if back.drive(cx) => {
                        ready!(Pin::new(&mut this.inner).poll_frame(&mut noop))
                    }
                    Poll::Pending => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
                }
            }
            _ => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
        };
        match &frame {
            None => {
                if let Some(back) = this.back.take() {
                    back.give_back();
                }
            }
            // An error ends the connection: it is not given back.
            Some(Err(_)) => this.back = None,
            Some(Ok(_)) => this.give_back_if_done(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An endpoint's `host:port`, as its `Display` writes it: the key of its
/// pool and what is dialled. IPv4 addresses (nearly every endpoint) are
/// written digit by digit, without `fmt` (whose `Ipv4Addr` formatting was
/// ~4 % of the proxy's instructions per request).
pub fn endpoint_key(address: &Address) -> String {
    let Address::Socket(SocketAddr::V4(a)) = address else {
        return address.to_string();
    };
    let mut s = String::with_capacity(21);
    for (i, octet) in a.ip().octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_decimal(&mut s, u32::from(octet));
    }
    s.push(':');
    push_decimal(&mut s, u32::from(a.port()));
    s
}

fn push_decimal(s: &mut String, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

/// Dials `endpoint` within `timeout`, with `TCP_NODELAY`.
async fn dial(endpoint: &str, timeout: Duration) -> Result<TcpStream, ProxyError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
        .await
        .map_err(|_| connect_failure(endpoint, "timed out".into()))?
        .map_err(|e| connect_failure(endpoint, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn connect_failure(endpoint: &str, reason: String) -> ProxyError {
    ProxyError::ConnectFailure {
        endpoint: endpoint.to_string(),
        reason,
    }
}

fn bad_uri(authority: &str) -> ProxyError {
    ProxyError::BadRequest(format!("cannot form an upstream URI for {authority}"))
}

/// The upstream ended the request before its response: an HTTP/2 stream
/// reset with `REFUSED_STREAM` is [`ProxyError::Refused`] (the peer did
/// not process it), anything else [`ProxyError::Terminated`].
fn terminated(endpoint: &str, e: &hyper::Error) -> ProxyError {
    let (endpoint, reason) = (endpoint.to_string(), error_chain(e));
    if refused_stream(e) {
        ProxyError::Refused { endpoint, reason }
    } else {
        ProxyError::Terminated { endpoint, reason }
    }
}

/// Whether an error (or one of its sources) is an HTTP/2 `REFUSED_STREAM`.
fn refused_stream(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(h2) = c.downcast_ref::<h2::Error>()
            && h2.reason() == Some(h2::Reason::REFUSED_STREAM)
            && h2.is_remote()
        {
            return true;
        }
        cur = c.source();
    }
    false
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

#[cfg(test)]
mod tests;
