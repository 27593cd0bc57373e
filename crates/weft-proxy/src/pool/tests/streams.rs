//! HTTP/2: another connection when every one is full (the peer's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` or the cluster's
//! `max_concurrent_streams`), within `max_connections`, else pending.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{at, eventually, get};
use crate::breaker::{Breakers, Limits};
use crate::errors::ProxyError;
use crate::forward::full;
use crate::pool::{PoolSettings, Target, Upstreams};

/// An h2 server advertising `max_streams`, answering each request once
/// `gate` gives it a permit; it counts connections and requests in
/// flight.
struct Slow {
    addr: Arc<str>,
    accepted: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

async fn slow(max_streams: u32) -> Slow {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: Arc<str> = listener.local_addr().expect("addr").to_string().into();
    let (accepted, in_flight) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let gate = Arc::new(Semaphore::new(0));
    let (a, f, g) = (accepted.clone(), in_flight.clone(), gate.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let (f, g) = (f.clone(), g.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<_>| {
                    let (f, g) = (f.clone(), g.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        if let Ok(p) = g.acquire().await {
                            p.forget();
                        }
                        f.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, hyper::Error>(Response::new(full("slow")))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(max_streams)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Slow {
        addr,
        accepted,
        in_flight,
        gate,
    }
}

impl Slow {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// A request in a task of its own.
    fn call(
        &self,
        u: &Upstreams,
        breakers: &Arc<Breakers>,
        settings: PoolSettings,
        deadline: Option<Instant>,
    ) -> tokio::task::JoinHandle<Result<String, ProxyError>> {
        let (u, b, addr) = (u.clone(), breakers.clone(), self.addr.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &b,
                settings,
                deadline,
                ..at(&addr)
            };
            let resp = u.http2(&t, "svc.ns:80", get("/", "svc")).await?;
            let body = resp.into_body().collect().await;
            let bytes = body.map(|b| b.to_bytes()).unwrap_or_default();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_makes_the_next_request_open_another() {
    let s = slow(1).await;
    let u = Upstreams::new();
    let b = breakers(1024, 1024);
    let calls: Vec<_> = (0..4)
        .map(|_| s.call(&u, &b, PoolSettings::default(), None))
        .collect();
    // One stream per connection, as the server says: four connections,
    // all four requests at the server at once.
    eventually("four requests in flight", || s.in_flight() == 4).await;
    assert_eq!(s.accepted(), 4);
    assert_eq!(u.open_http2(), 4);
    s.gate.add_permits(4);
    for c in calls {
        assert_eq!(c.await.expect("task").expect("answer"), "slow");
    }
    // The four are reused, one stream each.
    let calls: Vec<_> = (0..4)
        .map(|_| s.call(&u, &b, PoolSettings::default(), None))
        .collect();
    eventually("four again", || s.in_flight() == 4).await;
    assert_eq!(s.accepted(), 4, "no new connection");
    s.gate.add_permits(4);
    for c in calls {
        assert_eq!(c.await.expect("task").expect("answer"), "slow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_max_concurrent_streams_bounds_each_connection() {
    let s = slow(100).await;
    let u = Upstreams::new();
    let b = breakers(1024, 1024);
    let two = PoolSettings {
        max_concurrent_streams: 2,
        ..PoolSettings::default()
    };
    let calls: Vec<_> = (0..5).map(|_| s.call(&u, &b, two, None)).collect();
    eventually("five requests in flight", || s.in_flight() == 5).await;
    assert_eq!(s.accepted(), 3, "2 + 2 + 1 streams");
    s.gate.add_permits(5);
    for c in calls {
        assert_eq!(c.await.expect("task").expect("answer"), "slow");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_requests_wait_for_room_or_overflow() {
    let s = slow(1).await;
    let u = Upstreams::new();
    let b = breakers(2, 1);
    let d = PoolSettings::default();
    let first: Vec<_> = (0..2).map(|_| s.call(&u, &b, d, None)).collect();
    eventually("two in flight", || s.in_flight() == 2).await;
    assert_eq!(s.accepted(), 2);
    // Both connections full, no slot for a third: pending.
    let third = s.call(&u, &b, d, None);
    eventually("the third pending", || b.pending_requests() == 1).await;
    assert!(b.cx_overflow.load(Ordering::Relaxed) >= 1);
    // A fourth finds the pending queue full: 503 UO.
    let soon = Some(Instant::now() + Duration::from_secs(5));
    match s.call(&u, &b, d, soon).await.expect("task") {
        Err(e @ ProxyError::Overflow { .. }) => assert_eq!(e.flag().as_str(), "UO"),
        other => panic!("expected an overflow, got {other:?}"),
    }
    assert_eq!(b.rq_pending_overflow.load(Ordering::Relaxed), 1);
    // One answer frees a stream: the third takes it, on the same
    // connection.
    s.gate.add_permits(1);
    eventually("the third at the server", || {
        b.pending_requests() == 0 && s.in_flight() == 2
    })
    .await;
    assert_eq!(s.accepted(), 2);
    s.gate.add_permits(2);
    for c in first.into_iter().chain([third]) {
        assert_eq!(c.await.expect("task").expect("answer"), "slow");
    }
    assert_eq!(s.accepted(), 2);
    // A wait ends at the route's deadline.
    let held: Vec<_> = (0..2).map(|_| s.call(&u, &b, d, None)).collect();
    eventually("two in flight again", || s.in_flight() == 2).await;
    let late = Some(Instant::now() + Duration::from_millis(50));
    match s.call(&u, &b, d, late).await.expect("task") {
        Err(ProxyError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    s.gate.add_permits(2);
    for c in held {
        assert_eq!(c.await.expect("task").expect("answer"), "slow");
    }
}
