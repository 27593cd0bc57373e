//! Calls to other services (`--call`), made for each incoming HTTP request
//! the way Bookinfo's productpage calls reviews and reviews calls ratings:
//! plain HTTP/1.1 GETs, direct or through an HTTP proxy (absolute-form
//! requests, as to a sidecar's outbound port), carrying the incoming
//! request's trace headers as Istio asks applications to.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Headers copied from an incoming request to every call it causes: the
/// request id and the W3C, B3, OpenTracing, Cloud Trace, gRPC, SkyWalking
/// and Datadog trace contexts Istio's docs list, W3C baggage, and Bookinfo's
/// `end-user` (which its VirtualServices route on).
pub const TRACE_HEADERS: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "end-user",
];

/// How much of a reply's body is read to find its first line.
const FIRST_LINE_MAX: usize = 64 * 1024;

/// A URL to call: `http://HOST[:PORT][/PATH][?QUERY]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTarget(Uri);

impl FromStr for CallTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{s:?}: only http:// URLs can be called"));
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{s:?}: the URL names no host"));
        }
        Ok(CallTarget(uri))
    }
}

impl fmt::Display for CallTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An HTTP proxy to send calls through: `http://HOST:PORT` or `HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// `host:port` to connect to.
    addr: String,
}

impl FromStr for Proxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|e| format!("{s:?} is not a proxy address: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{s:?}: only http:// proxies are supported"));
        }
        if uri.path() != "/" || uri.query().is_some() {
            return Err(format!("{s:?}: a proxy is HOST:PORT, without a path"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{s:?}: the proxy address names no host"))?;
        Ok(Proxy {
            addr: format!("{host}:{}", uri.port_u16().unwrap_or(80)),
        })
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.addr)
    }
}

/// What one call brought back.
#[derive(Debug)]
pub(crate) struct CallResult {
    /// The URL called.
    pub(crate) url: String,
    /// The reply, or why there was none.
    pub(crate) outcome: Result<CallReply, String>,
}

/// The parts of a reply the echo shows.
#[derive(Debug)]
pub(crate) struct CallReply {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    /// The body's first line (of at most [`FIRST_LINE_MAX`] bytes), lossily
    /// decoded as UTF-8.
    pub(crate) first_line: String,
}

/// Makes the configured calls; one connection pool for all of them.
#[derive(Debug)]
pub(crate) struct Caller {
    client: Client<Connector, Empty<Bytes>>,
    targets: Vec<CallTarget>,
    timeout: Duration,
    user_agent: HeaderValue,
}

impl Caller {
    /// A caller for `targets`, through `proxy` if given.
    pub(crate) fn new(
        targets: Vec<CallTarget>,
        proxy: Option<Proxy>,
        timeout: Duration,
        user_agent: HeaderValue,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector {
                proxy: proxy.map(|p| p.addr),
            });
        Caller {
            client,
            targets,
            timeout,
            user_agent,
        }
    }

    /// Whether there is nothing to call.
    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Calls every target at once, with the trace headers of `incoming`;
    /// results in the order of the targets.
    pub(crate) async fn call_all(&self, incoming: &HeaderMap) -> Vec<CallResult> {
        let headers = propagated(incoming);
        futures_util::future::join_all(self.targets.iter().map(|t| self.call(t, &headers))).await
    }

    async fn call(&self, target: &CallTarget, headers: &HeaderMap) -> CallResult {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = target.0.clone();
        *req.headers_mut() = headers.clone();
        req.headers_mut()
            .insert(USER_AGENT, self.user_agent.clone());
        let outcome = match tokio::time::timeout(self.timeout, self.exchange(req)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no reply within {} ms", self.timeout.as_millis())),
        };
        if let Err(e) = &outcome {
            tracing::warn!(url = %target, error = %e, "call failed");
        }
        CallResult {
            url: target.to_string(),
            outcome,
        }
    }

    async fn exchange(&self, req: Request<Empty<Bytes>>) -> Result<CallReply, String> {
        let resp = self.client.request(req).await.map_err(|e| chain(&e))?;
        let (status, version) = (resp.status(), resp.version());
        let mut body = resp.into_body();
        let mut head = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| chain(&e))?;
            if let Ok(data) = frame.into_data() {
                let room = FIRST_LINE_MAX - head.len();
                head.extend_from_slice(&data[..data.len().min(room)]);
                if head.contains(&b'\n') || head.len() == FIRST_LINE_MAX {
                    break;
                }
            }
        }
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(CallReply {
            status,
            version,
            first_line: String::from_utf8_lossy(line).into_owned(),
        })
    }
}

/// The trace headers of `incoming` (every value of each).
fn propagated(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in TRACE_HEADERS {
        let name = HeaderName::from_static(name);
        for value in incoming.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// An error with its sources, `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Connects to the URL's host, or to the proxy; a proxied connection tells
/// hyper to send absolute-form request targets.
#[derive(Clone, Debug)]
struct Connector {
    proxy: Option<String>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let proxied = self.proxy.is_some();
        let addr = match (&self.proxy, uri.host()) {
            (Some(proxy), _) => Ok(proxy.clone()),
            (None, Some(host)) => Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80))),
            (None, None) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{uri}: no host to connect to"),
            )),
        };
        Box::pin(async move {
            let tcp = TcpStream::connect(addr?).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(Stream { tcp, proxied }))
        })
    }
}

/// A TCP connection that remembers whether it goes to a proxy.
#[derive(Debug)]
struct Stream {
    tcp: TcpStream,
    proxied: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.proxied)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_targets_must_be_http_urls_with_a_host() {
        assert!(
            "http://reviews:9080/reviews/0"
                .parse::<CallTarget>()
                .is_ok()
        );
        assert!("http://[::1]:9080/".parse::<CallTarget>().is_ok());
        assert!("https://reviews/".parse::<CallTarget>().is_err());
        assert!("/reviews".parse::<CallTarget>().is_err());
        assert!("reviews:9080".parse::<CallTarget>().is_err());
    }

    #[test]
    fn proxies_are_host_and_port_with_or_without_scheme() {
        let p: Proxy = "http://127.0.0.1:15001".parse().unwrap();
        assert_eq!(p.addr, "127.0.0.1:15001");
        let p: Proxy = "localhost:15001".parse().unwrap();
        assert_eq!(p.addr, "localhost:15001");
        assert_eq!("http://proxy".parse::<Proxy>().unwrap().addr, "proxy:80");
        assert!("https://127.0.0.1:15001".parse::<Proxy>().is_err());
        assert!("http://127.0.0.1:15001/x".parse::<Proxy>().is_err());
    }

    #[test]
    fn only_trace_headers_are_propagated_with_every_value() {
        let mut incoming = HeaderMap::new();
        incoming.insert("x-request-id", HeaderValue::from_static("r1"));
        incoming.insert("traceparent", HeaderValue::from_static("00-abc-def-01"));
        incoming.append("baggage", HeaderValue::from_static("a=1"));
        incoming.append("baggage", HeaderValue::from_static("b=2"));
        incoming.insert("cookie", HeaderValue::from_static("secret"));
        incoming.insert("x-other", HeaderValue::from_static("no"));
        let out = propagated(&incoming);
        assert_eq!(out.len(), 4);
        assert_eq!(out["x-request-id"], "r1");
        assert_eq!(out["traceparent"], "00-abc-def-01");
        assert_eq!(out.get_all("baggage").iter().count(), 2);
        assert!(!out.contains_key("cookie") && !out.contains_key("x-other"));
    }
}
