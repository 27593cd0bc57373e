//! `max_connection_duration`: an upstream connection that has lived its
//! cluster's longest life is replaced (HTTP/1.1: not reused after its
//! request; HTTP/2: no new streams, drained), never failing a request in
//! flight; and an HTTP/2 request waiting for the endpoint's next
//! connection to open counts as pending.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::{Proto, at, eventually, get};
use crate::breaker::{Breakers, Limits};
use crate::errors::ProxyError;
use crate::forward::full;
use crate::pool::{PoolSettings, Target, Upstreams};

/// A server answering `/slow` after `SLOW`, anything else at once, with
/// the peer port of the connection it came on; it records those ports,
/// and counts connections accepted and closed. Its HTTP/2 side waits
/// `settings_after` before its handshake (so before its first SETTINGS).
struct Server {
    addr: Arc<str>,
    ports: Arc<Mutex<Vec<u16>>>,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

const SLOW: Duration = Duration::from_millis(500);
const LIFE: Duration = Duration::from_millis(200);

async fn serve(proto: Proto, settings_after: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: Arc<str> = listener.local_addr().expect("addr").to_string().into();
    let ports = Arc::new(Mutex::new(Vec::new()));
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (p, a, c) = (ports.clone(), accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (p, c) = (p.clone(), c.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let p = p.clone();
                    async move {
                        if let Ok(mut ports) = p.lock() {
                            ports.push(peer.port());
                        }
                        if req.uri().path() == "/slow" {
                            tokio::time::sleep(SLOW).await;
                        }
                        Ok::<_, hyper::Error>(Response::new(full(peer.port().to_string())))
                    }
                });
                let io = TokioIo::new(stream);
                let _ = match proto {
                    Proto::Http2 => {
                        tokio::time::sleep(settings_after).await;
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                    _ => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    }
                };
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        addr,
        ports,
        accepted,
        closed,
    }
}

impl Server {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    fn ports(&self) -> Vec<u16> {
        self.ports.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// A request to `path` in a task of its own; its answer is the peer
    /// port the server saw.
    fn call(
        &self,
        u: &Upstreams,
        proto: Proto,
        breakers: &Arc<Breakers>,
        settings: PoolSettings,
        path: &'static str,
    ) -> tokio::task::JoinHandle<Result<u16, ProxyError>> {
        let (u, b, addr) = (u.clone(), breakers.clone(), self.addr.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &b,
                settings,
                deadline: Some(Instant::now() + Duration::from_secs(5)),
                ..at(&addr)
            };
            let resp = match proto {
                Proto::Http2 => u.http2(&t, "svc.ns:80", get(path, "svc")).await?,
                _ => u.http1(&t, get(path, "svc")).await?,
            };
            let body = resp.into_body().collect().await;
            let bytes = body.map(|b| b.to_bytes()).unwrap_or_default();
            String::from_utf8_lossy(&bytes)
                .parse()
                .map_err(|_| ProxyError::BadRequest("not a port".into()))
        })
    }
}

fn breakers(connections: u32, pending: u32) -> Arc<Breakers> {
    Arc::new(Breakers::new(Limits {
        max_connections: connections,
        max_pending_requests: pending,
        ..Limits::default()
    }))
}

fn living(life: Duration) -> PoolSettings {
    PoolSettings {
        max_connection_duration: Some(life),
        ..PoolSettings::default()
    }
}

fn reached(b: &Breakers) -> u64 {
    b.cx_max_duration_reached.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_connection_past_its_life_finishes_its_request_then_is_replaced() {
    let s = serve(Proto::Http1, Duration::ZERO).await;
    let u = Upstreams::new();
    let b = breakers(1024, 1024);
    let d = living(LIFE);
    let first = s.call(&u, Proto::Http1, &b, d, "/").await.expect("task");
    let first = first.expect("answer");
    // A request on it lasting across its deadline is answered...
    let slow = s
        .call(&u, Proto::Http1, &b, d, "/slow")
        .await
        .expect("task");
    assert_eq!(slow.expect("answered"), first, "the same connection");
    // ...and the connection is not reused: the next one is new.
    let next = s.call(&u, Proto::Http1, &b, d, "/").await.expect("task");
    let next = next.expect("answer");
    assert_ne!(next, first, "a new connection");
    assert_eq!(s.accepted(), 2);
    eventually("the old connection closed", || s.closed() == 1).await;
    assert_eq!(reached(&b), 1);
    // Idle past its life, the new one is closed by the sweeper, with no
    // request to find it.
    eventually("the idle one closed too", || s.closed() == 2).await;
    assert_eq!(u.idle_http1(), 0);
    assert_eq!(reached(&b), 2);
    // Without a limit a connection lives on.
    let long = PoolSettings::default();
    let a = s.call(&u, Proto::Http1, &b, long, "/").await.expect("task");
    tokio::time::sleep(LIFE * 2).await;
    let again = s.call(&u, Proto::Http1, &b, long, "/").await.expect("task");
    assert_eq!(a.expect("answer"), again.expect("answer"));
    assert_eq!(s.ports().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_past_its_life_drains_and_its_stream_finishes() {
    let s = serve(Proto::Http2, Duration::ZERO).await;
    let u = Upstreams::new();
    let b = breakers(1024, 1024);
    let d = living(LIFE);
    let started = Instant::now();
    let slow = s.call(&u, Proto::Http2, &b, d, "/slow");
    eventually("the slow request at the server", || s.ports().len() == 1).await;
    let old = s.ports()[0];
    tokio::time::sleep(LIFE.saturating_sub(started.elapsed()) + Duration::from_millis(50)).await;
    // Past its life the connection takes no new stream: a new one.
    let next = s.call(&u, Proto::Http2, &b, d, "/").await.expect("task");
    let next = next.expect("answer");
    assert_ne!(next, old, "a new connection");
    assert_eq!(s.accepted(), 2);
    assert_eq!(s.closed(), 0, "the old one drains, its stream in flight");
    assert!(started.elapsed() < SLOW, "the slow request still in flight");
    // The stream in flight across the deadline is answered, on the old one.
    assert_eq!(slow.await.expect("task").expect("answered"), old);
    // Then the old connection closes; the new one, idle past its life, too.
    eventually("both closed", || s.closed() == 2).await;
    assert_eq!(u.open_http2(), 0);
    assert_eq!(reached(&b), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_waiting_for_a_connection_being_opened_are_pending() {
    // The server's first SETTINGS come late: the endpoint's one
    // connection is being opened meanwhile.
    let s = serve(Proto::Http2, Duration::from_millis(300)).await;
    let u = Upstreams::new();
    let b = breakers(1024, 1);
    let d = PoolSettings::default();
    let first = s.call(&u, Proto::Http2, &b, d, "/");
    eventually("the first connection dialled", || s.accepted() == 1).await;
    // The second waits for it as a pending request...
    let second = s.call(&u, Proto::Http2, &b, d, "/");
    eventually("the second pending", || b.pending_requests() == 1).await;
    // ...and a third finds the pending queue full: 503 UO.
    match s.call(&u, Proto::Http2, &b, d, "/").await.expect("task") {
        Err(e @ ProxyError::Overflow { .. }) => assert_eq!(e.flag().as_str(), "UO"),
        other => panic!("expected an overflow, got {other:?}"),
    }
    assert_eq!(b.rq_pending_overflow.load(Ordering::Relaxed), 1);
    // Once the connection is ready both go on it.
    let port = first.await.expect("task").expect("answer");
    assert_eq!(second.await.expect("task").expect("answer"), port);
    assert_eq!(b.pending_requests(), 0);
    assert_eq!(s.accepted(), 1);
}
