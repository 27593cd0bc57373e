//! HTTP connection manager semantics with real processes on loopback: a
//! `weft control`, a client sidecar, a gateway (`--type router`) and the
//! web workload's sidecar in front of weft-sample apps, called with curl
//! and grpcio.
//!
//! - `x-forwarded-*` as Envoy sets them from the HCM fields Istio sends:
//!   sidecars (`use_remote_address: false`) pass `x-forwarded-for` on and
//!   mark a request internal only from a single internal XFF entry; the
//!   gateway (`use_remote_address: true`) appends its node IP (`--ip`) for
//!   a loopback peer, tells external clients by their XFF, sets
//!   `x-envoy-external-address` and a new `x-request-id` for them, and
//!   trusts `gatewayTopology.numTrustedProxies` hops of XFF.
//! - Ports without a protocol: h2c (grpcio) reaches a gRPC app as h2,
//!   HTTP/1.1 stays HTTP/1.1, through both sidecars (USE_DOWNSTREAM_PROTOCOL).
//! - An HTTP/2 `REFUSED_STREAM` is retried by Istio's default retry policy
//!   (`refused-stream`) and not by `connect-failure` alone (503 `UR`).
//! - An HTTP/1.1 connection that ends before any byte of its response (an
//!   upstream draining) is retried for an idempotent request by Istio's
//!   default policy; a POST is not sent twice (503 `UC`).

mod common;
#[allow(dead_code)]
#[path = "routing/harness.rs"]
mod harness;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Proxy;
use harness::{App, Reply, curl, eventually, free_port, grpc_calls};
use weft_sample::Flaky;

const GATEWAY_IP: &str = "10.0.0.9";

fn mesh(dir: &Path, web: [u16; 3], gateway: u16) {
    let [http, api, raw] = web;
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 9080, name: http, protocol: HTTP}}
  - {{number: 7070, name: api}}
  - {{number: 7071, name: raw}}
  workloadSelector: {{labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{http: {http}, api: {api}, raw: {raw}}}, labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: shop}}
spec: {{address: 127.0.0.1, labels: {{app: client}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: gateway, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{http: {gateway}}}, labels: {{istio: ingressgateway}}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge, namespace: shop}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http: [{{route: [{{destination: {{host: web, port: {{number: 9080}}}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop-host, namespace: shop}}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http: [{{headers: {{response: {{set: {{x-vhost: shop}}}}}}, route: [{{destination: {{host: web, port: {{number: 9080}}}}}}]}}]
"#
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

/// The value of request header `name` the app echoed, if it saw it.
fn seen<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    let prefix = format!("header: {name}: ");
    r.body.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

const WEB: &str = "http://web.shop.svc.cluster.local:9080/";

#[test]
fn forwarded_headers_and_sniffed_protocols_as_envoy() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let echo = App::start(&rt, "web", false, Flaky::default());
    let greeter = App::start(&rt, "greeter", true, Flaky::default());
    let ports = [free_port(), free_port(), free_port()];
    let gateway_port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    mesh(dir.path(), ports, gateway_port);
    let (_control, xds, _) = common::start(dir.path());
    let app = format!(
        "{}=127.0.0.1:{},{}",
        ports[1],
        greeter.addr.port(),
        echo.addr
    );
    let _web = Proxy::ready(xds, "shop/web", &["--app", &app]);
    let client = Proxy::ready(xds, "shop/client", &[]);
    let gateway = Proxy::ready(
        xds,
        "shop/gateway",
        &["--type", "router", "--ip", GATEWAY_IP],
    );
    let out = Some(client.outbound);

    // Sidecar to sidecar: nothing forwarded-for, not internal (no XFF).
    let r = curl(
        WEB,
        out,
        &[
            "-H",
            "x-envoy-internal: true",
            "-H",
            "x-envoy-retry-on: 5xx",
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(seen(&r, "x-forwarded-for"), None, "{}", r.body);
    assert_eq!(seen(&r, "x-forwarded-proto"), Some("http"), "{}", r.body);
    assert_eq!(seen(&r, "x-envoy-internal"), None, "forged: {}", r.body);
    assert_eq!(seen(&r, "x-envoy-retry-on"), None, "external: {}", r.body);
    assert_eq!(seen(&r, "x-envoy-external-address"), None, "{}", r.body);
    assert!(seen(&r, "x-request-id").is_some(), "{}", r.body);
    // A client's XFF passes both sidecars unchanged; one internal entry
    // makes the request internal, an external one doesn't.
    let r = curl(
        WEB,
        out,
        &[
            "-H",
            "x-forwarded-for: 10.1.2.3",
            "-H",
            "x-request-id: mine",
        ],
    );
    assert_eq!(seen(&r, "x-forwarded-for"), Some("10.1.2.3"), "{}", r.body);
    assert_eq!(seen(&r, "x-envoy-internal"), Some("true"), "{}", r.body);
    assert_eq!(seen(&r, "x-request-id"), Some("mine"), "{}", r.body);
    let r = curl(WEB, out, &["-H", "x-forwarded-for: 203.0.113.7"]);
    assert_eq!(
        seen(&r, "x-forwarded-for"),
        Some("203.0.113.7"),
        "{}",
        r.body
    );
    assert_eq!(seen(&r, "x-envoy-internal"), None, "{}", r.body);

    // Through the gateway (the edge) and the web sidecar.
    let edge = format!("http://127.0.0.1:{gateway_port}/");
    let r = curl(&edge, None, &["-H", "x-request-id: mine"]);
    assert_eq!(r.status, 200, "{r:?}");
    // A loopback peer: the gateway appends its own IP; internal.
    assert_eq!(seen(&r, "x-forwarded-for"), Some(GATEWAY_IP), "{}", r.body);
    assert_eq!(seen(&r, "x-envoy-internal"), Some("true"), "{}", r.body);
    assert_eq!(seen(&r, "x-envoy-external-address"), None, "{}", r.body);
    assert_eq!(seen(&r, "x-request-id"), Some("mine"), "{}", r.body);
    // A client-sent XFF, no trusted hops: external; the peer is the client.
    let r = curl(
        &edge,
        None,
        &[
            "-H",
            "x-forwarded-for: 203.0.113.7",
            "-H",
            "x-request-id: mine",
        ],
    );
    assert_eq!(
        seen(&r, "x-forwarded-for"),
        Some(format!("203.0.113.7,{GATEWAY_IP}").as_str()),
        "{}",
        r.body
    );
    assert_eq!(seen(&r, "x-envoy-internal"), None, "{}", r.body);
    assert_eq!(
        seen(&r, "x-envoy-external-address"),
        Some("127.0.0.1"),
        "{}",
        r.body
    );
    let id = seen(&r, "x-request-id").expect("request id");
    assert_ne!(id, "mine", "an edge request gets a new x-request-id");
    // A named gateway host matches with any port in `Host` (Istio's
    // `host:*` domain: a gateway behind a load balancer or node port).
    for host in ["shop.example.com", "shop.example.com:31380"] {
        let r = curl(&edge, None, &["-H", &format!("host: {host}")]);
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(r.header("x-vhost"), Some("shop"), "{host}: {r:?}");
    }
    let r = curl(&edge, None, &["-H", "host: other.example.com:31380"]);
    assert_eq!(r.header("x-vhost"), None, "the catch-all vhost: {r:?}");

    // One trusted hop in front of the gateway (mesh config
    // gatewayTopology): the client is XFF's rightmost entry.
    std::fs::write(
        dir.path().join("istio.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    defaultConfig:\n      gatewayTopology: {numTrustedProxies: 1}\n",
    )
    .expect("write mesh config");
    eventually(Duration::from_secs(20), "trusted hop applied", || {
        let r = curl(&edge, None, &["-H", "x-forwarded-for: 203.0.113.7"]);
        seen(&r, "x-envoy-external-address") == Some("203.0.113.7")
    });
    // The sidecars are not affected.
    let r = curl(WEB, out, &["-H", "x-forwarded-for: 203.0.113.7"]);
    assert_eq!(seen(&r, "x-envoy-external-address"), None, "{}", r.body);
    drop(gateway);

    // A port without a protocol: sniffed, and the app gets the client's
    // protocol through both sidecars.
    let raw = "http://web.shop.svc.cluster.local:7071/";
    let r = curl(raw, out, &[]);
    assert!(r.body.contains("request: GET / HTTP/1.1"), "{}", r.body);
    let connect_to = format!(
        "web.shop.svc.cluster.local:7071:127.0.0.1:{}",
        client.outbound
    );
    let r = curl(
        raw,
        None,
        &["--http2-prior-knowledge", "--connect-to", &connect_to],
    );
    assert!(r.body.contains("request: GET / HTTP/2.0"), "{}", r.body);
    let calls = grpc_calls(client.outbound, "web.shop.svc.cluster.local:7070", 5, &[]);
    assert_eq!(calls["codes"]["OK"], 5, "{calls}");
}

/// An HTTP/2 server (the h2 crate's server side) that resets every odd
/// stream it sees (the 1st, 3rd, ...) with `REFUSED_STREAM` and answers
/// the others 200; returns its port and how many streams it refused.
fn refusing_server(rt: &tokio::runtime::Runtime) -> (u16, Arc<AtomicUsize>) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let refused = Arc::new(AtomicUsize::new(0));
    let (count, streams) = (refused.clone(), Arc::new(AtomicUsize::new(0)));
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (count, streams) = (count.clone(), streams.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(stream).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    if streams.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                        count.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    } else {
                        let _ = respond.send_response(http::Response::new(()), true);
                    }
                }
            });
        }
    });
    (port, refused)
}

fn stat(admin: u16, name: &str) -> u64 {
    let body = curl(&format!("http://127.0.0.1:{admin}/stats"), None, &[]).body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stat {name} in\n{body}"))
}

#[test]
fn refused_streams_are_retried_by_refused_stream_only() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (port, refused) = refusing_server(&rt);
    let service = |name: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  hosts: [{name}.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9090, name: http2, protocol: HTTP2}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http2: {port}}}}}]\n---\n"
        )
    };
    // `default` has no VirtualService: Istio's default retry policy
    // (connect-failure,refused-stream,...); `noretry` retries connect failures only.
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: noretry, namespace: shop}}\nspec:\n  hosts: [noretry]\n  http: [{{route: [{{destination: {{host: noretry}}}}], retries: {{attempts: 2, retryOn: connect-failure}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: client, namespace: shop}}\nspec: {{address: 127.0.0.1, labels: {{app: client}}}}\n",
        service("default"),
        service("noretry")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write mesh");
    let (_control, xds, _) = common::start(dir.path());
    let client = Proxy::ready(xds, "shop/client", &[]);
    let out = Some(client.outbound);

    // Refused, retried on the same connection, answered.
    let r = curl("http://default.shop.svc.cluster.local:9090/", out, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UR"), 0);
    // Not retried: 503 UR, Envoy's body.
    let r = curl("http://noretry.shop.svc.cluster.local:9090/", out, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("remote refused stream reset"), "{}", r.body);
    assert_eq!(refused.load(Ordering::SeqCst), 2);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UR"), 1);
}

/// An HTTP/1.1 server that reads the head of each connection's request and
/// then, on every odd connection (the 1st, 3rd, ...), closes it without a
/// word, answering the others `200 ok`; returns its port and how many
/// requests it saw.
fn unanswering_server(rt: &tokio::runtime::Runtime) -> (u16, Arc<AtomicUsize>) {
    scripted_server(rt, |n| {
        (n % 2 == 1)
            .then_some(&b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"[..])
    })
}

/// A raw server that reads each request head and writes what `reply`
/// gives for the connection's number (from 0), then closes; `None`:
/// closes with no answer.
fn scripted_server(
    rt: &tokio::runtime::Runtime,
    reply: fn(usize) -> Option<&'static [u8]>,
) -> (u16, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    rt.spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut buf, mut got) = (vec![0u8; 4096], Vec::new());
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                if let Some(bytes) = reply(n) {
                    let _ = s.write_all(bytes).await;
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn unanswered_http1_requests_are_retried_only_when_idempotent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (port, seen) = unanswering_server(&rt);
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: closing, namespace: shop}}\nspec:\n  hosts: [closing.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: client, namespace: shop}}\nspec: {{address: 127.0.0.1, labels: {{app: client}}}}\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write mesh");
    let (_control, xds, _) = common::start(dir.path());
    let client = Proxy::ready(xds, "shop/client", &[]);
    let out = Some(client.outbound);
    let url = "http://closing.shop.svc.cluster.local:9090/";

    // GET: the first connection ends unanswered; sent again, answered.
    let r = curl(url, out, &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UC"), 0);
    let cluster = |s: &str| {
        stat(
            client.admin,
            &format!("cluster.outbound|9090||closing.shop.svc.cluster.local.{s}"),
        )
    };
    assert_eq!(cluster("upstream_rq_retry"), 1);
    assert_eq!(cluster("upstream_rq_retry_success"), 1);
    assert_eq!(cluster("upstream_rq_retry_limit_exceeded"), 0);
    // POST: it may have been acted on; not sent twice. 503 UC, Envoy's body.
    let r = curl(url, out, &["-d", "order=1"]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("connection termination"), "{}", r.body);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UC"), 1);
    assert_eq!(cluster("upstream_rq_retry"), 1, "the POST was not retried");
}

#[test]
fn an_upstream_answer_that_is_not_http_is_502_upe() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // What a client gets from a port that speaks something else.
    let (port, seen) = scripted_server(&rt, |_| Some(&b"SSH-2.0-OpenSSH_9.2\r\n\r\n"[..]));
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: garbling, namespace: shop}}\nspec:\n  hosts: [garbling.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: client, namespace: shop}}\nspec: {{address: 127.0.0.1, labels: {{app: client}}}}\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write mesh");
    let (_control, xds, _) = common::start(dir.path());
    let client = Proxy::ready(xds, "shop/client", &[]);
    let r = curl(
        "http://garbling.shop.svc.cluster.local:9090/",
        Some(client.outbound),
        &[],
    );
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(
        r.body,
        "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
    );
    // Istio's default retry policy has no `reset`: sent once.
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UPE"), 1);
    assert_eq!(stat(client.admin, "http.outbound.response_flags.UC"), 0);
}

#[test]
fn a_grpc_calls_deadline_is_its_timeout_through_the_sidecar() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = App::start(&rt, "slow", false, Flaky::default());
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: slow, namespace: shop}}\nspec:\n  hosts: [slow.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: client, namespace: shop}}\nspec: {{address: 127.0.0.1, labels: {{app: client}}}}\n",
        app.addr.port()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write mesh");
    let (_control, xds, _) = common::start(dir.path());
    let client = Proxy::ready(xds, "shop/client", &[]);
    let out = Some(client.outbound);
    let grpc = ["-H", "content-type: application/grpc", "-H", "te: trailers"];
    let with = |deadline: &'static str| -> Vec<&'static str> {
        let mut a = grpc.to_vec();
        a.extend(["-H", deadline]);
        a
    };
    // The app is told the limit in force, in gRPC's own header.
    let r = curl(
        "http://slow.shop.svc.cluster.local:9090/",
        out,
        &with("grpc-timeout: 5S"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("header: grpc-timeout: 5000m"), "{}", r.body);
    // Past its deadline the call ends as Envoy ends it: trailers-only,
    // UNAVAILABLE, "upstream request timeout", flag UT — and not after
    // the 3 s the app takes (the route itself sets no timeout).
    let ut = stat(client.admin, "http.outbound.response_flags.UT");
    let r = curl(
        "http://slow.shop.svc.cluster.local:9090/delay/3000",
        out,
        &with("grpc-timeout: 300m"),
    );
    assert_eq!(
        (r.status, r.header("grpc-status"), r.header("grpc-message")),
        (200, Some("14"), Some("upstream request timeout")),
        "{r:?}"
    );
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    assert_eq!(
        stat(client.admin, "http.outbound.response_flags.UT"),
        ut + 1
    );
    // A call without a deadline, and a request that isn't gRPC, wait.
    let r = curl(
        "http://slow.shop.svc.cluster.local:9090/delay/500",
        out,
        &grpc,
    );
    assert_eq!((r.status, r.header("grpc-status")), (200, None), "{r:?}");
    let r = curl(
        "http://slow.shop.svc.cluster.local:9090/delay/500",
        out,
        &["-H", "grpc-timeout: 100m"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.took >= Duration::from_millis(500), "{:?}", r.took);
    assert!(
        r.body.contains("header: grpc-timeout: 100m"),
        "passed on as it was: {}",
        r.body
    );
}
