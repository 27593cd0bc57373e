//! Mirrors: the shadow host, and the mirror cluster's breakers and
//! outlier detection applied to the copies.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::breaker::Limits;
use crate::cluster::{Cluster, LbPolicy, LbSettings, UpstreamTls};
use crate::endpoint::{Address, Endpoint, LoadAssignment};
use crate::fault::Fraction;
use crate::outlier::OutlierConfig;
use crate::snapshot::Parts;

#[test]
fn shadow_hosts_are_envoys() {
    assert_eq!(shadow_host("reviews"), "reviews-shadow");
    assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
    assert_eq!(
        shadow_host("reviews.shop.svc.cluster.local:9080"),
        "reviews.shop.svc.cluster.local-shadow:9080"
    );
    assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
}

/// An HTTP/1.1 upstream counting requests: `/hold` answers once
/// `release` is notified, `/fail` answers 503, anything else 200.
async fn upstream(release: Arc<tokio::sync::Notify>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, release) = (counted.clone(), release.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let (seen, release) = (seen.clone(), release.clone());
                    async move {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let mut r = Response::new(full("ok"));
                        match req.uri().path() {
                            "/hold" => release.notified().await,
                            "/fail" => *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                            _ => {}
                        }
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A snapshot with one static cluster `shadow` of one endpoint.
fn snapshot(endpoint: &str, limits: Limits, outlier: Option<OutlierConfig>) -> Snapshot {
    let c = Cluster {
        name: "shadow".into(),
        discovery: Discovery::Static,
        lb_policy: LbPolicy::RoundRobin,
        lb: LbSettings::default(),
        connect_timeout: Duration::from_secs(2),
        protocol: UpstreamProtocol::Http1,
        idle_timeout: None,
        max_requests_per_connection: None,
        max_concurrent_streams: None,
        max_connection_duration: None,
        limits,
        outlier,
        load_assignment: Some(LoadAssignment {
            cluster: "shadow".into(),
            endpoints: vec![Arc::new(Endpoint::new(Address::Socket(
                endpoint.parse().expect("addr"),
            )))],
            ..LoadAssignment::default()
        }),
        tls_not_originated: UpstreamTls::None,
    };
    let parts = Parts {
        clusters: [(c.name.clone(), Arc::new(c))].into_iter().collect(),
        ..Parts::default()
    };
    Snapshot::build(parts).expect("builds")
}

fn mirror_all() -> Mirror {
    Mirror {
        cluster: "shadow".into(),
        fraction: Fraction::ALL,
    }
}

/// Mirrors a GET of `path`.
fn mirror_get(s: &Snapshot, u: &Upstreams, path: &str) {
    let (method, uri, headers) = (Method::GET, path.parse().expect("uri"), HeaderMap::new());
    let copy = Copy {
        method: &method,
        uri: &uri,
        headers: &headers,
        authority: "svc",
        downstream_http2: false,
        has_body: false,
        timeout: Duration::from_secs(5),
    };
    assert!(
        start(s, u, &mirror_all(), copy).is_none(),
        "no body to wait for"
    );
}

/// Waits up to 5 s for `cond`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn mirrors_take_the_mirror_clusters_breaker_and_overflow_there() {
    let release = Arc::new(tokio::sync::Notify::new());
    let (addr, seen) = upstream(release.clone()).await;
    let limits = Limits {
        max_requests: 1,
        ..Limits::default()
    };
    let s = snapshot(&addr, limits, None);
    let u = Upstreams::new();
    let breakers = s.cluster("shadow").expect("cluster").breakers.clone();
    mirror_get(&s, &u, "/hold");
    eventually("the first mirror in flight", || {
        seen.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(breakers.active_requests(), 1);
    // The second finds max_requests taken: dropped, counted.
    mirror_get(&s, &u, "/");
    eventually("the second overflows", || {
        breakers.rq_pending_overflow.load(Ordering::Relaxed) == 1
    })
    .await;
    release.notify_one();
    eventually("the first ends", || breakers.active_requests() == 0).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the second was not sent");
    // Free again: the next one goes.
    mirror_get(&s, &u, "/");
    eventually("the third mirror", || seen.load(Ordering::SeqCst) == 2).await;
}

#[tokio::test]
async fn mirror_answers_count_for_the_mirror_clusters_outlier_detection() {
    let (addr, seen) = upstream(Arc::default()).await;
    let outlier = OutlierConfig {
        consecutive_5xx: 2,
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    };
    let s = snapshot(&addr, Limits::default(), Some(outlier));
    let u = Upstreams::new();
    let endpoint = s
        .cluster("shadow")
        .and_then(|e| e.pick())
        .expect("an endpoint");
    for n in 1..=2 {
        mirror_get(&s, &u, "/fail");
        eventually("the mirror answered", || seen.load(Ordering::SeqCst) == n).await;
    }
    eventually("two 503s eject the endpoint", || {
        endpoint.outlier.is_ejected()
    })
    .await;
}
