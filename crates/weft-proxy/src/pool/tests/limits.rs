//! HTTP/1.1 connections hold their `max_connections` slot while idle
//! too (Envoy's `upstream_cx_active`), and the pools of clusters a new
//! snapshot no longer has are closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use http_body_util::BodyExt;

use super::{Proto, at, eventually, get, server};
use crate::breaker::{Breakers, Limits};
use crate::pool::{PoolSettings, Target, Upstreams};

fn limited(connections: u32, pending: u32) -> Arc<Breakers> {
    Arc::new(Breakers::new(Limits {
        max_connections: connections,
        max_pending_requests: pending,
        ..Limits::default()
    }))
}

async fn send(u: &Upstreams, t: &Target<'_>, path: &str) -> String {
    let resp = u.http1(t, get(path, "svc")).await.expect("response");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_connections_hold_their_slot() {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (a, a_counts) = server(Proto::Http1, Some(barrier.clone())).await;
    let (b, b_counts) = server(Proto::Http1, None).await;
    let u = Upstreams::new();
    let breakers = limited(1, 1);
    fn to<'a>(addr: &'a str, breakers: &'a Arc<Breakers>) -> Target<'a> {
        Target {
            breakers,
            ..at(addr)
        }
    }
    assert_eq!(send(&u, &to(&a, &breakers), "/").await, "ok");
    assert_eq!(u.idle_http1(), 1);
    assert!(
        breakers.connection().is_err(),
        "a's idle connection holds it"
    );
    // b has no connection: it gets one past the limit (counted), and a's
    // idle connection is not closed to make room — as in Envoy.
    assert_eq!(send(&u, &to(&b, &breakers), "/").await, "ok");
    assert_eq!(breakers.cx_overflow.load(Ordering::Relaxed), 2);
    assert_eq!(b_counts.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(a_counts.closed.load(Ordering::SeqCst), 0);
    assert_eq!(u.idle_http1(), 2);
    // a's connection busy, no slot free: the next request to a waits for
    // it (pending) and then reuses it.
    let held = {
        let (u, breakers, a) = (u.clone(), breakers.clone(), a.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &breakers,
                ..at(&a)
            };
            send(&u, &t, "/wait").await
        })
    };
    eventually("a's connection busy", || u.idle_http1() == 1).await;
    let next = {
        let (u, breakers, a) = (u.clone(), breakers.clone(), a.clone());
        tokio::spawn(async move {
            let t = Target {
                breakers: &breakers,
                ..at(&a)
            };
            send(&u, &t, "/").await
        })
    };
    eventually("the next one pending", || breakers.pending_requests() == 1).await;
    barrier.wait().await;
    assert_eq!(held.await.expect("task"), "waited");
    assert_eq!(next.await.expect("task"), "ok");
    assert_eq!(a_counts.accepted.load(Ordering::SeqCst), 1, "reused");
    assert_eq!(breakers.pending_requests(), 0);
    // An idle connection closed (here: by its idle timeout) frees its slot.
    let short = PoolSettings {
        idle_timeout: Some(std::time::Duration::from_millis(50)),
        ..PoolSettings::default()
    };
    let c = limited(1, 0);
    let t = Target {
        breakers: &c,
        settings: short,
        ..at(&a)
    };
    assert_eq!(send(&u, &t, "/").await, "ok");
    assert!(c.connection().is_err());
    eventually("the slot is free again", || c.connection().is_ok()).await;
}

#[tokio::test]
async fn pools_of_clusters_no_longer_configured_are_closed() {
    let (h1, h1_counts) = server(Proto::Http1, None).await;
    let (h2, h2_counts) = server(Proto::Http2, None).await;
    let u = Upstreams::new();
    let of = |cluster: &'static str, addr: &'static str| Target {
        cluster,
        ..at(addr)
    };
    let (h1, h2): (&'static str, &'static str) = (h1.leak(), h2.leak());
    // A response of "gone" still being read when the snapshot changes.
    let big = u
        .http1(&of("gone", h1), get("/big", "svc"))
        .await
        .expect("response");
    for c in ["gone", "kept"] {
        assert_eq!(send(&u, &of(c, h1), "/").await, "ok");
        let resp = u
            .http2(&of(c, h2), "svc.ns:80", get("/", "svc"))
            .await
            .expect("response");
        resp.into_body().collect().await.expect("body");
    }
    assert_eq!(h1_counts.accepted.load(Ordering::SeqCst), 3);
    // "gone" leaves the config: its idle connections close, "kept"'s stay.
    u.retain(|c| c == "kept");
    eventually("the gone cluster's idle connections close", || {
        h1_counts.closed.load(Ordering::SeqCst) == 1 && h2_counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!((u.idle_http1(), u.open_http2()), (1, 1));
    // The one in use closes once its response has been read.
    let body = big.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), 4 << 20);
    eventually("the busy one closes after its response", || {
        h1_counts.closed.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(u.idle_http1(), 1);
    // Following the applied snapshots: one with no cluster at all.
    let config = Arc::new(ArcSwap::from_pointee(crate::snapshot::Snapshot::default()));
    let (applied, rx) = tokio::sync::watch::channel(0u64);
    let follow = tokio::spawn(u.clone().follow(config, rx));
    applied.send_replace(1);
    eventually("every pool closes", || {
        h1_counts.closed.load(Ordering::SeqCst) == 3 && h2_counts.closed.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!((u.idle_http1(), u.open_http2()), (0, 0));
    drop(applied);
    follow.await.expect("follow ends with its sender");
}

/// A snapshot whose cluster `c` (EDS) has the endpoints `addrs`.
fn snapshot_of(addrs: &[&str]) -> crate::snapshot::Snapshot {
    use crate::cluster::{Cluster, Discovery, LbPolicy, LbSettings, UpstreamProtocol, UpstreamTls};
    use crate::endpoint::{Address, Endpoint, LoadAssignment};
    let c = Cluster {
        name: "c".into(),
        discovery: Discovery::Eds("c".into()),
        lb_policy: LbPolicy::RoundRobin,
        lb: LbSettings::default(),
        connect_timeout: std::time::Duration::from_secs(2),
        protocol: UpstreamProtocol::Http1,
        idle_timeout: None,
        max_requests_per_connection: None,
        max_concurrent_streams: None,
        max_connection_duration: None,
        limits: Limits::default(),
        outlier: None,
        load_assignment: None,
        tls_not_originated: UpstreamTls::None,
    };
    let la = LoadAssignment {
        cluster: "c".into(),
        endpoints: addrs
            .iter()
            .map(|a| Arc::new(Endpoint::new(Address::Socket(a.parse().expect("addr")))))
            .collect(),
        ..LoadAssignment::default()
    };
    let parts = crate::snapshot::Parts {
        clusters: [("c".to_string(), Arc::new(c))].into_iter().collect(),
        assignments: [("c".to_string(), Arc::new(la))].into_iter().collect(),
        ..crate::snapshot::Parts::default()
    };
    crate::snapshot::Snapshot::build(parts).expect("builds")
}

#[tokio::test]
async fn pools_of_endpoints_eds_no_longer_has_are_closed() {
    let (a, a_counts) = server(Proto::Http1, None).await;
    let (b, b_counts) = server(Proto::Http1, None).await;
    let (h2, h2_counts) = server(Proto::Http2, None).await;
    let u = Upstreams::new();
    for addr in [&a, &b] {
        assert_eq!(send(&u, &at(addr), "/").await, "ok");
    }
    let resp = u
        .http2(&at(&h2), "svc.ns:80", get("/", "svc"))
        .await
        .expect("response");
    resp.into_body().collect().await.expect("body");
    let config = Arc::new(ArcSwap::from_pointee(snapshot_of(&[&a, &b, &h2])));
    let (applied, rx) = tokio::sync::watch::channel(0u64);
    let follow = tokio::spawn(u.clone().follow(config.clone(), rx));
    applied.send_replace(1);
    // EDS drops b and the HTTP/2 endpoint: their idle connections close,
    // a's stays and is reused.
    config.store(Arc::new(snapshot_of(&[&a])));
    applied.send_replace(2);
    eventually("the removed endpoints' connections close", || {
        b_counts.closed.load(Ordering::SeqCst) == 1 && h2_counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(a_counts.closed.load(Ordering::SeqCst), 0);
    assert_eq!(send(&u, &at(&a), "/").await, "ok");
    assert_eq!(a_counts.accepted.load(Ordering::SeqCst), 1);
    drop(applied);
    follow.await.expect("follow ends with its sender");
}
