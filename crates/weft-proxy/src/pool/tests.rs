//! The pools against small hyper servers on loopback that count their
//! connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{PoolSettings, Target, Upstreams};
use crate::breaker::{Breakers, Limits};
use crate::errors::ProxyError;
use crate::forward::{Body, full};

#[test]
fn endpoint_keys_are_what_display_writes() {
    use crate::endpoint::Address;
    for a in [
        "127.0.0.1:8080",
        "0.0.0.0:0",
        "10.200.3.255:65535",
        "255.255.255.255:9",
        "[::1]:9080",
        "[fe80::1:2]:1",
    ] {
        let a = Address::Socket(a.parse().expect("socket address"));
        assert_eq!(super::endpoint_key(&a), a.to_string());
    }
    let h = Address::Host("reviews.shop.svc".into(), 9080);
    assert_eq!(super::endpoint_key(&h), "reviews.shop.svc:9080");
}

/// A server's counters.
#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http1NoKeepAlive,
    Http2,
}

/// A server answering `/big` with 4 MiB in 64 KiB chunks, `/echo` with
/// the request's body, `/wait` once `barrier` is reached, and anything
/// else with `ok`.
async fn server(proto: Proto, barrier: Option<Arc<tokio::sync::Barrier>>) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let (c, barrier) = (c.clone(), barrier.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let barrier = barrier.clone();
                        async move {
                            let body: Body = match req.uri().path() {
                                "/big" => {
                                    let chunks = (0..64).map(|_| {
                                        Ok::<_, hyper::Error>(Frame::data(Bytes::from(
                                            vec![b'x'; 64 << 10],
                                        )))
                                    });
                                    StreamBody::new(futures_util::stream::iter(chunks))
                                        .boxed_unsync()
                                }
                                "/echo" => {
                                    let got = req.into_body().collect().await?.to_bytes();
                                    full(got)
                                }
                                "/wait" => {
                                    if let Some(b) = barrier {
                                        b.wait().await;
                                    }
                                    full("waited")
                                }
                                _ => full("ok"),
                            };
                            Ok::<_, hyper::Error>(Response::new(body))
                        }
                    });
                let io = TokioIo::new(stream);
                let _ = match proto {
                    Proto::Http1 | Proto::Http1NoKeepAlive => {
                        hyper::server::conn::http1::Builder::new()
                            .keep_alive(proto == Proto::Http1)
                            .serve_connection(io, service)
                            .await
                    }
                    Proto::Http2 => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                };
                c.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, counts)
}

fn get(path: &str, host: &str) -> Request<Body> {
    let mut r = Request::new(
        Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *r.uri_mut() = path.parse().expect("path");
    r.headers_mut()
        .insert(http::header::HOST, host.parse().expect("host"));
    r
}

async fn text(u: &Upstreams, addr: &str, path: &str) -> String {
    let resp = u
        .http1(&at(addr), get(path, "svc"))
        .await
        .expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Waits up to 5 s for `cond`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn upstreams() -> Upstreams {
    Upstreams::new()
}

/// Breakers whose limits are not reached here.
static BREAKERS: LazyLock<Arc<Breakers>> =
    LazyLock::new(|| Arc::new(Breakers::new(Limits::default())));

/// `addr` in the pool of cluster `c`, with the default settings.
fn at(addr: &str) -> Target<'_> {
    Target {
        cluster: "c",
        endpoint: addr,
        settings: PoolSettings::default(),
        breakers: &BREAKERS,
        deadline: None,
    }
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = upstreams();
    for _ in 0..5 {
        assert_eq!(text(&u, &addr, "/").await, "ok");
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(u.idle_http1(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let (addr, counts) = server(Proto::Http1, Some(barrier)).await;
    let u = upstreams();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (u, addr) = (u.clone(), addr.clone());
            tokio::spawn(async move { text(&u, &addr, "/wait").await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("task"), "waited");
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 4);
    eventually("4 idle connections", || u.idle_http1() == 4).await;
    for _ in 0..8 {
        assert_eq!(text(&u, &addr, "/").await, "ok");
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_response_dropped_before_its_end_closes_its_connection() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = upstreams();
    let resp = u
        .http1(&at(&addr), get("/big", "svc"))
        .await
        .expect("response");
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.is_data());
    drop(body);
    eventually("the server sees the close", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(u.idle_http1(), 0);
    assert_eq!(text(&u, &addr, "/").await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
    // A body read to its end gives the connection back.
    let resp = u
        .http1(&at(&addr), get("/big", "svc"))
        .await
        .expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), 4 << 20);
    assert_eq!(text(&u, &addr, "/").await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_upstream_closes_are_not_reused() {
    let (addr, counts) = server(Proto::Http1NoKeepAlive, None).await;
    let u = upstreams();
    for i in 1..=3 {
        assert_eq!(text(&u, &addr, "/").await, "ok");
        eventually("the server closed it", || {
            counts.closed.load(Ordering::SeqCst) == i
        })
        .await;
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_gives_the_request_to_a_new_one() {
    // Answers each connection's first request (keep-alive), then closes
    // it when told to.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let close = Arc::new(tokio::sync::Notify::new());
    let (a, c, close_now) = (accepted.clone(), closed.clone(), close.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            read_head(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            close_now.notified().await;
            drop(s);
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    let u = upstreams();
    assert_eq!(text(&u, &addr, "/").await, "ok");
    assert_eq!(u.idle_http1(), 1);
    close.notify_one();
    eventually("the upstream closed it", || {
        closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // Pooled, but closed: the request moves on to a new connection.
    assert_eq!(text(&u, &addr, "/").await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_body_sent_in_pieces_from_another_task_is_forwarded() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = upstreams();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    let body: Body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|f| (f, rx))
    }))
    .boxed_unsync();
    let mut req = get("/echo", "svc");
    *req.method_mut() = http::Method::POST;
    *req.body_mut() = body;
    let feeder = tokio::spawn(async move {
        for piece in ["one ", "two ", "three"] {
            tokio::task::yield_now().await;
            if tx.send(Ok(Frame::data(Bytes::from(piece)))).await.is_err() {
                return;
            }
        }
    });
    let resp = u.http1(&at(&addr), req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"one two three");
    feeder.await.expect("feeder");
    // And the connection went back for the next request.
    assert_eq!(text(&u, &addr, "/").await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let (addr, counts) = server(Proto::Http1, None).await;
    let u = upstreams();
    let short = Target {
        settings: PoolSettings {
            idle_timeout: Some(Duration::from_millis(100)),
            ..PoolSettings::default()
        },
        ..at(&addr)
    };
    let send = || async {
        let resp = u.http1(&short, get("/", "svc")).await.expect("response");
        resp.into_body().collect().await.expect("body").to_bytes()
    };
    assert_eq!(send().await, "ok");
    eventually("the idle connection is closed", || {
        counts.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(u.idle_http1(), 0);
    assert_eq!(send().await, "ok");
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_dead_endpoint_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let u = upstreams();
    match u.http1(&at(&addr), get("/", "svc")).await {
        Err(ProxyError::ConnectFailure { endpoint, .. }) => assert_eq!(endpoint, addr),
        other => panic!("expected a connect failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_share_one_connection() {
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let (addr, counts) = server(Proto::Http2, Some(barrier)).await;
    let u = upstreams();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (u, addr) = (u.clone(), addr.clone());
            tokio::spawn(async move {
                let resp = u
                    .http2(&at(&addr), "svc.ns:80", get("/wait", "svc"))
                    .await
                    .expect("response");
                resp.into_body().collect().await.expect("body").to_bytes()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("task"), "waited");
    }
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 1);
}

/// An h2 server (the h2 crate's server side) that resets every stream
/// with `reason`, counting them.
async fn resetting_server(reason: h2::Reason) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(reason);
                }
            });
        }
    });
    (addr, streams)
}

/// Reads from `s` up to the end of a request head (or the connection's).
async fn read_head(s: &mut tokio::net::TcpStream) {
    let (mut buf, mut got) = (vec![0u8; 4096], Vec::new());
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// An HTTP/1.1 server that reads each request's head, then does `then`:
/// closes at once, or answers with bytes that are no HTTP response.
async fn unanswering_server(then: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            read_head(&mut s).await;
            let _ = s.write_all(then).await;
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_ended_before_any_response_byte_is_unanswered() {
    let u = upstreams();
    // Closed with no answer: what a draining upstream does to an idle
    // connection (or one its listener never accepted) as a request lands.
    let closing = unanswering_server(b"").await;
    match u.http1(&at(&closing), get("/", "svc")).await {
        Err(
            e @ ProxyError::Terminated {
                unanswered: true, ..
            },
        ) => {
            assert_eq!(e.flag().as_str(), "UC");
            let result = Err::<http::Response<()>, _>(e);
            let outcome = crate::retry::Outcome::of(&result, false);
            assert_eq!(outcome, crate::retry::Outcome::Unanswered);
        }
        other => panic!("expected an unanswered termination, got {other:?}"),
    }
    // An answer that is no HTTP: the upstream said something, and broke
    // the protocol (Envoy's 502 UPE), which is not retried as unanswered.
    let garbling = unanswering_server(b"SSH-2.0-OpenSSH\r\n\r\n").await;
    match u.http1(&at(&garbling), get("/", "svc")).await {
        Err(e @ ProxyError::Protocol { .. }) => {
            assert_eq!((e.status().as_u16(), e.flag().as_str()), (502, "UPE"));
            assert!(e.body().ends_with("reset reason: protocol error"));
            let result = Err::<http::Response<()>, _>(e);
            let outcome = crate::retry::Outcome::of(&result, false);
            assert_eq!(outcome, crate::retry::Outcome::Reset);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_stream_is_reported_apart_from_other_resets() {
    let u = upstreams();
    let (refusing, refused) = resetting_server(h2::Reason::REFUSED_STREAM).await;
    match u.http2(&at(&refusing), "svc", get("/", "svc")).await {
        Err(e @ ProxyError::Refused { .. }) => {
            assert_eq!(e.flag().as_str(), "UR");
            assert!(e.retryable(), "a refused stream was not processed");
            let result = Err::<http::Response<()>, _>(e);
            let outcome = crate::retry::Outcome::of(&result, false);
            assert_eq!(outcome, crate::retry::Outcome::RefusedStream);
        }
        other => panic!("expected a refused stream, got {other:?}"),
    }
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    // Any other reset stays a termination (not safe to send again).
    let (resetting, _) = resetting_server(h2::Reason::INTERNAL_ERROR).await;
    match u.http2(&at(&resetting), "svc", get("/", "svc")).await {
        Err(e @ ProxyError::Terminated { .. }) => {
            assert_eq!(e.flag().as_str(), "UC");
            assert!(!e.retryable());
        }
        other => panic!("expected a termination, got {other:?}"),
    }
    // The connection survives a refused stream: the next request uses it.
    match u.http2(&at(&refusing), "svc", get("/", "svc")).await {
        Err(ProxyError::Refused { .. }) => {}
        other => panic!("expected a refused stream, got {other:?}"),
    }
    assert_eq!(refused.load(Ordering::SeqCst), 2);
}

mod clusters;
mod lifetimes;
mod limits;
mod streams;
