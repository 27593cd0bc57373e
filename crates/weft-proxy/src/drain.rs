//! Draining: the signal that tells every listener to stop accepting and
//! every connection to finish, and the count of connections still open
//! that shutdown waits on (up to its drain timeout). Downstream HTTP
//! connections are served here too, within [`HttpLimits`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::forward::Body;

#[cfg(test)]
mod tests;
mod timer;
mod version;

use timer::ConnTimer;
use version::Boxed;

/// Bounds on what a downstream HTTP client may send, so malformed,
/// oversized and slow clients cost a bounded amount (Envoy's HTTP
/// connection manager limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpLimits {
    /// How long an HTTP/1 client may take to send a request's headers
    /// (slowloris); the connection is closed after it. Envoy's
    /// `request_headers_timeout`, which Envoy leaves off; Weft's default is
    /// 10 s.
    pub request_headers_timeout: Duration,
    /// Largest request header block in bytes: HTTP/1 answers 431 past it,
    /// HTTP/2 refuses the stream (Envoy's `max_request_headers_kb`, 60 KiB).
    pub max_request_headers_bytes: u32,
    /// Most request headers: HTTP/1 answers 431 past it (Envoy's
    /// `max_headers_count`, 100).
    pub max_request_headers: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_headers_timeout: Duration::from_secs(10),
            max_request_headers_bytes: 60 * 1024,
            max_request_headers: HYPER_MAX_HEADERS,
        }
    }
}

/// The request header count hyper's HTTP/1 parser allows when none is set.
const HYPER_MAX_HEADERS: usize = 100;

/// A handle on the drain signal and the open connections.
#[derive(Clone, Debug)]
pub struct Drain {
    signal: watch::Receiver<bool>,
    open: Arc<Open>,
    limits: HttpLimits,
}

#[derive(Debug, Default)]
struct Open {
    count: AtomicUsize,
    zero: Notify,
}

/// Marks a connection open until dropped.
#[derive(Debug)]
pub struct Tracked(Arc<Open>);

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

impl Drain {
    /// A drain that starts when `signal` turns true.
    pub fn new(signal: watch::Receiver<bool>) -> Self {
        Drain {
            signal,
            open: Arc::default(),
            limits: HttpLimits::default(),
        }
    }

    /// The same drain, serving HTTP within `limits`.
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether draining has started.
    pub fn draining(&self) -> bool {
        *self.signal.borrow()
    }

    /// Resolves when draining starts.
    pub async fn started(&self) {
        let mut s = self.signal.clone();
        let _ = s.wait_for(|d| *d).await;
    }

    /// Counts a connection.
    pub fn track(&self) -> Tracked {
        self.open.count.fetch_add(1, Ordering::AcqRel);
        Tracked(self.open.clone())
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.count.load(Ordering::Acquire)
    }

    /// Waits until no connection is open, or `timeout`; returns how many
    /// were still open.
    pub async fn wait(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.open.zero.notified();
            if self.open() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open();
            }
        }
    }

    /// Serves one HTTP/1.1 or h2c connection with `service` until it ends;
    /// when draining starts, lets in-flight requests finish and closes it.
    /// An HTTP/2 connection's requests get their futures boxed (see
    /// `version`).
    pub fn serve_http<S>(
        &self,
        io: TcpStream,
        service: S,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: Service<
                http::Request<Incoming>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + Send
            + Clone
            + 'static,
        S::Future: Send + 'static,
    {
        let tracked = self.track();
        let drain = self.clone();
        async move {
            let _tracked = tracked;
            let http1 = tokio::select! {
                biased;
                h1 = version::opens_http1(&io) => h1,
                // Draining before the first bytes: nothing was asked.
                _ = drain.started() => return,
            };
            if http1 {
                drain.serve_with(io, service).await;
            } else {
                drain.serve_with(io, Boxed(service)).await;
            }
        }
    }

    /// [`Drain::serve_http`]'s serving, with `service` as it is.
    async fn serve_with<I, S>(&self, io: I, service: S)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<
                http::Request<Incoming>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + Send
            + Clone
            + 'static,
        S::Future: Send + 'static,
    {
        let limits = self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // One kept tokio `Sleep` for the header-read timeout of
            // every request, not a new one each (see `timer`).
            .timer(ConnTimer::new())
            .writev(false)
            .header_read_timeout(limits.request_headers_timeout)
            // hyper's floor for its read buffer is 8 KiB; a header block
            // past the buffer is answered 431.
            .max_buf_size((limits.max_request_headers_bytes as usize).max(8192));
        // hyper's own limit is 100 headers, parsed into stack arrays;
        // setting a count, even the same one, makes it fill a
        // `SmallVec` of that many entries per request (~4 % of the
        // proxy's instructions per request), so only other counts are set.
        if limits.max_request_headers != HYPER_MAX_HEADERS {
            builder.http1().max_headers(limits.max_request_headers);
        }
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_request_headers_bytes);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        // The drain signal is polled when it wakes, not on each of
        // the connection's polls (several a request).
        let started = OnWake::new(self.started());
        let result = tokio::select! {
            // The connection first (no random pick per poll).
            biased;
            r = conn.as_mut() => r,
            _ = started => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(target: "weft::proxy", error = %e, "connection ended with an error");
        }
    }
}

/// A future polled only once it asks to be — its waker was woken (and
/// on the first poll) — not on every poll of the future it is selected
/// with.
struct OnWake<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Woken>,
}

/// Whether an [`OnWake`]'s future was woken, and the task to wake then.
#[derive(Default)]
struct Woken {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> OnWake<F> {
    fn new(inner: F) -> Self {
        let flag = Arc::new(Woken::default());
        flag.woken.store(true, Ordering::Relaxed);
        OnWake {
            inner: Box::pin(inner),
            flag,
        }
    }
}

impl<F: Future> Future for OnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.flag.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}
