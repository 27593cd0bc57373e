//! TCP proxying: connect to an endpoint of a cluster, then copy both
//! ways until each side has closed (half-close is passed on), the
//! connection has been idle too long, or it has lasted its longest
//! (TcpProxy `max_downstream_connection_duration`).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::breaker::ConnectionSlot;
use crate::cluster::Discovery;
use crate::endpoint::ActiveRequest;
use crate::errors::ProxyError;
use crate::snapshot::Snapshot;

/// What a proxied connection holds until it ends: its endpoint's count of
/// active connections and its slot of the cluster's `max_connections`.
#[derive(Debug)]
pub struct Lease {
    _active: Option<ActiveRequest>,
    _slot: ConnectionSlot,
}

/// Connects to an endpoint of `cluster` (for an original-destination
/// cluster, to `original`), within the cluster's connect timeout; past
/// the cluster's `max_connections` it fails (`UO`).
pub async fn connect(
    snapshot: &Snapshot,
    cluster: &str,
    original: &str,
) -> Result<(TcpStream, Lease), ProxyError> {
    connect_from(snapshot, cluster, original, None).await
}

/// [`connect`], from `source` when given (Envoy's `upstream_bind_config`).
pub async fn connect_from(
    snapshot: &Snapshot,
    cluster: &str,
    original: &str,
    source: Option<IpAddr>,
) -> Result<(TcpStream, Lease), ProxyError> {
    let entry = snapshot
        .cluster(cluster)
        .ok_or_else(|| ProxyError::NoCluster(cluster.to_string()))?;
    let slot = entry
        .breakers
        .connection()
        .map_err(|why| ProxyError::overflow(cluster, why))?;
    let (address, active) = if entry.cluster.discovery == Discovery::OriginalDst {
        (original.to_string(), None)
    } else {
        let e = entry
            .pick()
            .ok_or_else(|| ProxyError::NoHealthyUpstream(cluster.to_string()))?;
        (e.address.to_string(), Some(e.start_request()))
    };
    let fail = |reason: String| ProxyError::ConnectFailure {
        endpoint: address.clone(),
        reason,
    };
    let dial = async {
        let Some(source) = source else {
            return TcpStream::connect(&address).await;
        };
        let target: SocketAddr = address
            .parse()
            .map_err(|_| std::io::Error::other("a source address needs an IP destination"))?;
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(target).await
    };
    let connected = tokio::time::timeout(entry.cluster.connect_timeout, dial)
        .await
        .map_err(|_| fail("timed out".into()))
        .and_then(|r| r.map_err(|e| fail(e.to_string())));
    // Outlier detection: a TCP connection that opens is a success.
    let outcome = match &connected {
        Ok(_) => Some(crate::outlier::Outcome::Status(200)),
        Err(e) => crate::outlier::Outcome::of_error(e),
    };
    entry.record(active.as_ref(), outcome);
    let stream = connected?;
    let _ = stream.set_nodelay(true);
    Ok((
        stream,
        Lease {
            _active: active,
            _slot: slot,
        },
    ))
}

/// How long a proxied TCP connection (or CONNECT tunnel, or upgraded
/// HTTP connection) may carry nothing either way before both sides are
/// closed: Envoy's TCP proxy `idle_timeout` default. It bounds half-open
/// connections whose peer went away without a FIN.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Copies both ways until both sides are done (a FIN from one side is
/// passed on as a write shutdown to the other), until nothing moved
/// either way for `idle`, or until it has lasted `max_duration` (`None`:
/// no limit; Envoy's `max_downstream_connection_duration`). Both sides
/// are closed when it returns (they are dropped).
pub async fn splice<A, B>(
    mut downstream: A,
    mut upstream: B,
    idle: Duration,
    max_duration: Option<Duration>,
) where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut d = Tracked::new(&mut downstream, &activity);
    let mut u = Tracked::new(&mut upstream, &activity);
    let lasted = async {
        match max_duration {
            Some(max) => tokio::time::sleep_until(activity.start + max).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut d, &mut u) => {
            if let Err(e) = r {
                tracing::debug!(target: "weft::proxy", error = %e, "TCP connection ended with an error");
            }
        }
        () = activity.idle_for(idle) => {
            tracing::debug!(target: "weft::proxy", idle = ?idle, "TCP connection idle: closed");
        }
        () = lasted => {
            tracing::debug!(target: "weft::proxy", max_duration = ?max_duration, "TCP connection reached its max duration: closed");
        }
    }
}

/// When bytes last moved, in milliseconds since `start`.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that records activity on every read or write that moved bytes.
struct Tracked<'a, S> {
    inner: &'a mut S,
    activity: &'a Activity,
}

impl<'a, S> Tracked<'a, S> {
    fn new(inner: &'a mut S, activity: &'a Activity) -> Self {
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut *this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut *this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn half_close_is_passed_on_and_the_other_way_goes_on() {
        let (client, mut proxy_down) = tokio::io::duplex(1024);
        let (mut proxy_up, server) = tokio::io::duplex(1024);
        let _ = (&mut proxy_down, &mut proxy_up);
        let task = tokio::spawn(splice(proxy_down, proxy_up, Duration::from_secs(5), None));
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        cw.write_all(b"ping").await.expect("write");
        cw.shutdown().await.expect("half-close");
        let mut got = Vec::new();
        sr.read_to_end(&mut got).await.expect("server reads to EOF");
        assert_eq!(got, b"ping");
        // The server can still answer after the client's FIN.
        sw.write_all(b"pong").await.expect("write back");
        sw.shutdown().await.expect("close");
        let mut back = Vec::new();
        cr.read_to_end(&mut back).await.expect("client reads");
        assert_eq!(back, b"pong");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("splice ends once both sides closed")
            .expect("join");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let (client, proxy_down) = tokio::io::duplex(1024);
        let (proxy_up, server) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(60);
        let task = tokio::spawn(splice(proxy_down, proxy_up, idle, None));
        let (_cr, mut cw) = tokio::io::split(client);
        let (mut sr, _sw) = tokio::io::split(server);
        // Activity keeps it open past one idle period...
        tokio::time::sleep(Duration::from_secs(40)).await;
        cw.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        sr.read_exact(&mut one).await.expect("read");
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert!(!task.is_finished(), "closed while active");
        // ...silence closes it: the server sees EOF.
        tokio::time::sleep(idle).await;
        let mut rest = Vec::new();
        sr.read_to_end(&mut rest)
            .await
            .expect("EOF after idle close");
        assert!(rest.is_empty());
        assert!(task.is_finished() || task.await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_connection_is_closed_both_ways_after_its_max_duration() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        // An echo upstream that notes when it sees the proxy close.
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let up_addr = upstream.local_addr().expect("addr");
        let upstream_saw_eof = Arc::new(AtomicBool::new(false));
        let saw = upstream_saw_eof.clone();
        tokio::spawn(async move {
            let Ok((mut s, _)) = upstream.accept().await else {
                return;
            };
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            saw.store(true, Ordering::SeqCst);
        });
        // The proxy: one connection spliced, at most 200 ms.
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let max = Duration::from_millis(200);
        let spliced = tokio::spawn(async move {
            let (down, _) = proxy.accept().await.expect("accept");
            let up = TcpStream::connect(up_addr).await.expect("connect");
            splice(down, up, Duration::from_secs(5), Some(max)).await;
        });
        let started = std::time::Instant::now();
        let mut client = TcpStream::connect(proxy_addr).await.expect("connect");
        // Busy all along (never idle): an echo every 20 ms until closed,
        // 3 s at most.
        let mut echoed = 0;
        let mut one = [0u8; 1];
        let closed_after = loop {
            assert!(started.elapsed() < Duration::from_secs(3), "never closed");
            let open = client.write_all(b"x").await.is_ok()
                && matches!(client.read(&mut one).await, Ok(1));
            if !open {
                break started.elapsed();
            }
            echoed += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(echoed >= 3, "it carried bytes first ({echoed} echoes)");
        assert!(closed_after >= max, "closed after {closed_after:?}");
        assert!(
            closed_after < Duration::from_secs(2),
            "closed after {closed_after:?}"
        );
        tokio::time::timeout(Duration::from_secs(2), spliced)
            .await
            .expect("the splice ended")
            .expect("join");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !upstream_saw_eof.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the upstream side stayed open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
