//! Pools are the cluster's own (settings, connections), and HTTP/2 follows
//! the cluster's `max_requests_per_connection` and `max_connections`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::{BREAKERS, Proto, at, eventually, get, server};
use crate::breaker::{Breakers, Limits};
use crate::errors::ProxyError;
use crate::pool::{PoolSettings, Target, Upstreams};

/// `addr` in the pool of `cluster`, with `settings`.
fn of<'a>(cluster: &'a str, addr: &'a str, settings: PoolSettings) -> Target<'a> {
    Target {
        cluster,
        settings,
        ..at(addr)
    }
}

async fn body(u: &Upstreams, t: &Target<'_>, path: &str, http2: bool) -> String {
    let resp = if http2 {
        u.http2(t, "svc.ns:80", get(path, "svc")).await
    } else {
        u.http1(t, get(path, "svc")).await
    };
    let bytes = resp
        .expect("response")
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn idle_for(ms: u64) -> PoolSettings {
    PoolSettings {
        idle_timeout: Some(Duration::from_millis(ms)),
        ..PoolSettings::default()
    }
}

#[tokio::test]
async fn two_clusters_to_one_endpoint_share_no_connection_and_keep_their_idle_timeouts() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = Upstreams::new();
    let (a, b) = (
        of("a", &addr, idle_for(100)),
        of("b", &addr, idle_for(60_000)),
    );
    assert_eq!(body(&u, &a, "/", false).await, "ok");
    assert_eq!(body(&u, &b, "/", false).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2, "one each");
    assert_eq!(u.idle_http1(), 2);
    // a's idle timeout closes a's connection only.
    eventually("a's connection closes", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(u.idle_http1(), 1);
    assert_eq!(body(&u, &b, "/", false).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2, "b's was kept");
    // HTTP/2 as well: a connection per cluster.
    let (h2, h2_counts) = server(Proto::Http2, None).await;
    for cluster in ["a", "b", "a", "b"] {
        let t = of(cluster, &h2, PoolSettings::default());
        assert_eq!(body(&u, &t, "/", true).await, "ok");
    }
    assert_eq!(h2_counts.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(u.open_http2(), 2);
}

#[tokio::test]
async fn a_cluster_whose_settings_change_gets_new_connections() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = Upstreams::new();
    assert_eq!(body(&u, &at(&addr), "/", false).await, "ok");
    assert_eq!(body(&u, &at(&addr), "/", false).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
    let changed = PoolSettings {
        max_requests_per_connection: Some(100),
        ..PoolSettings::default()
    };
    assert_eq!(body(&u, &of("c", &addr, changed), "/", false).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    // The old pool went with its settings: its connection closes.
    eventually("the old pool's connection closes", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn an_http2_connection_drains_after_max_requests_per_connection() {
    let (addr, counts) = server(Proto::Http2, None).await;
    let u = Upstreams::new();
    let two = PoolSettings {
        max_requests_per_connection: Some(2),
        ..PoolSettings::default()
    };
    let t = of("c", &addr, two);
    // A long response holds the first stream of the first connection.
    let big = u
        .http2(&t, "svc.ns:80", get("/big", "svc"))
        .await
        .expect("response");
    // The second stream is its last: it drains.
    assert_eq!(body(&u, &t, "/", true).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
    // The third goes to a new connection.
    assert_eq!(body(&u, &t, "/", true).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    // The drained connection's stream finishes, then it closes.
    let big = big.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(big.len(), 4 << 20);
    eventually("the drained connection closes", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    for _ in 0..3 {
        assert_eq!(body(&u, &t, "/", true).await, "ok");
    }
    // Streams 2 and 3 of the second connection, 1 and 2 of a third.
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_http2_connection_closes_after_the_idle_timeout() {
    let (addr, counts) = server(Proto::Http2, None).await;
    let u = Upstreams::new();
    let (t, other) = (of("c", &addr, idle_for(100)), of("d", &addr, idle_for(100)));
    // c's connection has a stream in flight: a long body, partly read.
    let resp = u
        .http2(&t, "svc.ns:80", get("/big", "svc"))
        .await
        .expect("response");
    let mut big = resp.into_body();
    let first = big.frame().await.expect("a frame").expect("data");
    // d's connection has none once its answer is read: it closes first…
    assert_eq!(body(&u, &other, "/", true).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    eventually("d's idle connection closes", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // … while c's, busy as long, is still there.
    assert_eq!(body(&u, &t, "/", true).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    let rest = big.collect().await.expect("body").to_bytes();
    assert_eq!(
        first.into_data().map_or(0, |d| d.len()) + rest.len(),
        4 << 20
    );
    // Idle now: closed in turn, and the next request opens another.
    eventually("c's idle connection closes", || {
        counts.closed.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("no connection open", || u.open_http2() == 0).await;
    assert_eq!(body(&u, &t, "/", true).await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 3);
}

fn limited(connections: u32, pending: u32) -> Arc<Breakers> {
    Arc::new(Breakers::new(Limits {
        max_connections: connections,
        max_pending_requests: pending,
        ..Limits::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_take_max_connections_slots() {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (addr, counts) = server(Proto::Http2, Some(barrier.clone())).await;
    let u = Upstreams::new();
    let breakers = limited(1, 1);
    // One stream per connection: every request needs a new one.
    let one = PoolSettings {
        max_requests_per_connection: Some(1),
        ..PoolSettings::default()
    };
    let addr: Arc<str> = addr.into();
    let call = |path: &'static str, deadline: Option<Instant>| {
        let (u, b, addr) = (u.clone(), breakers.clone(), addr.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &b,
                deadline,
                ..of("c", &addr, one)
            };
            let resp = u.http2(&t, "svc.ns:80", get(path, "svc")).await?;
            let bytes = resp.into_body().collect().await;
            Ok::<_, ProxyError>(bytes.map(|b| b.to_bytes()).unwrap_or_default())
        })
    };
    // The first holds the only connection slot until the barrier.
    let first = call("/wait", None);
    eventually("the first connection", || {
        counts.accepted.load(Ordering::SeqCst) == 1
    })
    .await;
    // The second waits for the slot, as a pending request.
    let second = call("/", None);
    eventually("the second pending", || breakers.pending_requests() == 1).await;
    assert_eq!(breakers.cx_overflow.load(Ordering::Relaxed), 1);
    // A third finds the pending queue full.
    let third = call("/", Some(Instant::now() + Duration::from_secs(5)));
    match third.await.expect("task") {
        Err(ProxyError::Overflow { .. }) => {}
        other => panic!("expected an overflow, got {other:?}"),
    }
    assert_eq!(breakers.rq_pending_overflow.load(Ordering::Relaxed), 1);
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1, "one at a time");
    // The first ends, its connection closes, the second gets the slot.
    barrier.wait().await;
    assert_eq!(first.await.expect("task").expect("first"), "waited");
    assert_eq!(second.await.expect("task").expect("second"), "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(breakers.pending_requests(), 0);
    // A wait ends at the deadline.
    let _held = call("/wait", None);
    eventually("the third connection", || {
        counts.accepted.load(Ordering::SeqCst) == 3
    })
    .await;
    let late = call("/", Some(Instant::now() + Duration::from_millis(50)));
    match late.await.expect("task") {
        Err(ProxyError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    barrier.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_without_a_connection_always_gets_one() {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (a, _) = server(Proto::Http2, Some(barrier.clone())).await;
    let (b, b_counts) = server(Proto::Http2, None).await;
    let u = Upstreams::new();
    let breakers = limited(1, 0);
    let held = {
        let (u, breakers, a) = (u.clone(), breakers.clone(), a.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &breakers,
                ..at(&a)
            };
            body(&u, &t, "/wait", true).await
        })
    };
    eventually("a's connection", || u.open_http2() == 1).await;
    // b has none: it gets one past the limit (counted), as in Envoy.
    let t = Target {
        breakers: &breakers,
        ..at(&b)
    };
    assert_eq!(body(&u, &t, "/", true).await, "ok");
    assert_eq!(b_counts.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(breakers.cx_overflow.load(Ordering::Relaxed), 1);
    barrier.wait().await;
    assert_eq!(held.await.expect("task"), "waited");
    // Unlimited breakers take no slot at all.
    assert!(BREAKERS.connection().is_ok());
}
