//! The VirtualService features `weft proxy` carries out, with real
//! processes on loopback: a `weft control`, one client `weft proxy` that
//! curl and grpcio use, weft-sample apps (some flaky on purpose) as the
//! services' endpoints (one, `stream`, behind its own sidecar), and a
//! mirror backend that counts what it sees. Fault injection (abort share,
//! delay, gRPC abort), CORS (preflight and actual), mirrors (share,
//! `-shadow` host, a dead and a slow mirror), retries (503s, gRPC
//! UNAVAILABLE, per-try timeout, bodies kept or too large), Envoy's
//! request headers; redirects, rewrites, direct responses, header
//! operations and every match kind (`routing/features.rs`); gRPC server
//! and bidirectional streams through both sidecars; the UH and UT
//! response flags; `/quitquitquit`. All in one mesh, started once.

mod common;
#[path = "routing/features.rs"]
mod features;
#[path = "routing/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{App, Proxy, curl, eventually, free_port, grpc_calls, grpc_stream, shadow, statuses};
use weft_sample::Flaky;

fn service(name: &str, port: u16, protocol: &str, endpoint: u16) -> String {
    let lower = protocol.to_ascii_lowercase();
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: shop}}
spec:
  hosts: [{name}.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: {lower}, protocol: {protocol}}}]
  endpoints: [{{address: 127.0.0.1, ports: {{{lower}: {endpoint}}}}}]
---
"#
    )
}

const ROUTES: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://ok.example"}, {regex: "https://.*[.]ok[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-sample-version]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirror-dead}}]
    mirror: {host: dead}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirror-slow}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /mirror}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 50}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new}
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /slow}}]
    rewrite: {uri: /delay/3000}
    timeout: 300ms
    route: [{destination: {host: web}}]
  - match: [{uri: {prefix: /linger}}]
    rewrite: {uri: /delay/1000}
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: shop}
spec:
  hosts: [greeter]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: greeter}}]
  - match: [{headers: {x-fault: {exact: http}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: greeter}}]
  - match: [{headers: {x-direct: {exact: "yes"}}}]
    directResponse: {status: 503, body: {string: "down for maintenance"}}
  - route: [{destination: {host: greeter}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: shop}
spec:
  hosts: [flaky]
  http:
  - route: [{destination: {host: flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: stall, namespace: shop}
spec:
  hosts: [stall]
  http:
  - route: [{destination: {host: stall}}]
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: gateway-error}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: big, namespace: shop}
spec:
  hosts: [big]
  http:
  - route: [{destination: {host: big}}]
    retries: {attempts: 2, retryOn: 5xx}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: body, namespace: shop}
spec:
  hosts: [body]
  http:
  - route: [{destination: {host: body}}]
    retries: {attempts: 2, retryOn: 5xx}
"#;

const WEB: &str = "http://web.shop.svc.cluster.local:9080";

/// `stream`: a gRPC service whose one endpoint (127.0.0.1:`port`) has its
/// own sidecar; and `empty`, a service with no endpoint at all.
fn sidecar_and_empty_services(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: stream, namespace: shop}}
spec:
  hosts: [stream.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9091, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: stream}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: stream, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{grpc: {port}}}, labels: {{app: stream}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: empty, namespace: shop}}
spec:
  hosts: [empty.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
---
"#
    )
}

#[test]
fn virtual_services_faults_retries_streams_and_flags_as_envoy() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let plain = Flaky::default();
    let web = App::start(&rt, "web", false, plain);
    let greeter = App::start(
        &rt,
        "greeter",
        true,
        Flaky {
            fail_first: 1,
            ..plain
        },
    );
    let flaky = App::start(
        &rt,
        "flaky",
        false,
        Flaky {
            fail_first: 2,
            ..plain
        },
    );
    let stall = App::start(
        &rt,
        "stall",
        false,
        Flaky {
            stall_first: 1,
            stall: Duration::from_secs(5),
            ..plain
        },
    );
    let big = App::start(
        &rt,
        "big",
        false,
        Flaky {
            fail_first: 1,
            ..plain
        },
    );
    let body = App::start(
        &rt,
        "body",
        false,
        Flaky {
            fail_first: 1,
            ..plain
        },
    );
    let stream_app = App::start(&rt, "stream", true, plain);
    let stream_port = free_port();
    let (shadow_addr, seen) = shadow(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mesh = String::new();
    for (name, port, protocol, endpoint) in [
        ("web", 9080, "HTTP", web.addr.port()),
        ("greeter", 9090, "GRPC", greeter.addr.port()),
        ("flaky", 9081, "HTTP", flaky.addr.port()),
        ("stall", 9082, "HTTP", stall.addr.port()),
        ("big", 9083, "HTTP", big.addr.port()),
        ("body", 9084, "HTTP", body.addr.port()),
        ("shadow", 9080, "HTTP", shadow_addr.port()),
        ("dead", 9080, "HTTP", free_port()),
    ] {
        mesh.push_str(&service(name, port, protocol, endpoint));
    }
    mesh.push_str(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: client, namespace: shop}\nspec: {address: 127.0.0.1, labels: {app: client}}\n---\n",
    );
    mesh.push_str(&features::service(web.addr.port()));
    mesh.push_str(&sidecar_and_empty_services(stream_port));
    mesh.push_str(ROUTES);
    mesh.push_str("---\n");
    mesh.push_str(&features::routes());
    std::fs::write(dir.path().join("mesh.yaml"), mesh).expect("write mesh");
    let (_control, xds, _debug) = common::start(dir.path());
    let mut client = Proxy::start(xds, "shop/client");
    let app = stream_app.addr.to_string();
    let stream_sidecar = Proxy::start_with(xds, "shop/stream", &["--app", &app]);
    eventually(
        Duration::from_secs(20),
        "the routes reach the proxy",
        || {
            let r = curl(
                &format!("{WEB}/cors"),
                Some(client.outbound),
                &["-H", "Origin: https://ok.example"],
            );
            r.header("access-control-allow-origin").is_some()
        },
    );
    let out = Some(client.outbound);

    // Envoy's request headers: a request id (a sane one kept), the
    // forwarded proto, the attempt count, the original path of a rewrite.
    let r = curl(
        &format!("{WEB}/old/x"),
        out,
        &["-H", "x-request-id: keep-me-1"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("request: GET /new/x "), "{}", r.body);
    assert!(
        r.body.contains("header: x-request-id: keep-me-1"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("header: x-envoy-original-path: /old/x"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("header: x-forwarded-proto: http"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 1"),
        "{}",
        r.body
    );
    let r = curl(&format!("{WEB}/"), out, &["-H", "x-request-id: has space"]);
    assert!(!r.body.contains("has space"), "{}", r.body);
    assert!(r.body.contains("header: x-request-id: "), "{}", r.body);
    // The control plane sets no use_remote_address: like Envoy, the
    // sidecar passes x-forwarded-for on and adds none.
    let r = curl(
        &format!("{WEB}/"),
        out,
        &["-H", "x-forwarded-for: 10.1.2.3"],
    );
    assert!(
        r.body.contains("header: x-forwarded-for: 10.1.2.3\n"),
        "{}",
        r.body
    );

    // An abort for 30 % of 300 requests: 418, counted as FI.
    let fi_before = client.stat("http.outbound.response_flags.FI");
    let got = statuses(&format!("{WEB}/abort"), client.outbound, 300);
    assert_eq!(got.len(), 300);
    let aborted = got.iter().filter(|s| **s == 418).count();
    assert!(got.iter().all(|s| *s == 418 || *s == 200), "{got:?}");
    // 90 expected; ±4 standard deviations (7.9).
    eprintln!("measured: {aborted} of 300 aborted at 30 %");
    assert!((58..=122).contains(&aborted), "{aborted} of 300 aborted");
    assert_eq!(
        client.stat("http.outbound.response_flags.FI") - fi_before,
        aborted as u64
    );
    let r = curl(&format!("{WEB}/abort"), out, &[]);
    if r.status == 418 {
        assert_eq!(r.body, "fault filter abort");
    }

    // A fixed delay on every request, counted as DI.
    let di_before = client.stat("http.outbound.response_flags.DI");
    let r = curl(&format!("{WEB}/delay"), out, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    eprintln!("measured: a 400 ms fault delay took {:?}", r.took);
    assert!(r.took >= Duration::from_millis(400), "{:?}", r.took);
    assert_eq!(
        client.stat("http.outbound.response_flags.DI"),
        di_before + 1
    );
    let r = curl(&format!("{WEB}/"), out, &[]);
    assert!(
        r.took < Duration::from_millis(400),
        "no delay elsewhere: {:?}",
        r.took
    );

    // gRPC: an abort is the gRPC status grpcio sees; UNAVAILABLE from the
    // app (it fails its first call) is retried by Istio's default policy.
    let authority = "greeter.shop.svc.cluster.local:9090";
    let ok = grpc_calls(client.outbound, authority, 5, &[]);
    assert_eq!(ok["codes"]["OK"], 5, "{ok}");
    let aborted = grpc_calls(client.outbound, authority, 3, &["x-fault=abort"]);
    assert_eq!(aborted["codes"]["UNAVAILABLE"], 3, "{aborted}");
    assert_eq!(aborted["details"]["UNAVAILABLE"], "fault filter abort");
    // An HTTP-status abort of a gRPC request is a gRPC reply too (Envoy's
    // local replies to gRPC: 503 is UNAVAILABLE).
    let http = grpc_calls(client.outbound, authority, 2, &["x-fault=http"]);
    assert_eq!(http["codes"]["UNAVAILABLE"], 2, "{http}");
    assert_eq!(http["details"]["UNAVAILABLE"], "fault filter abort");
    // So is a direct response: its status mapped, its body the details.
    let direct = grpc_calls(client.outbound, authority, 2, &["x-direct=yes"]);
    assert_eq!(direct["codes"]["UNAVAILABLE"], 2, "{direct}");
    assert_eq!(direct["details"]["UNAVAILABLE"], "down for maintenance");

    // CORS: a preflight answered by the proxy, an actual request decorated,
    // another origin left without CORS headers.
    let pre = curl(
        &format!("{WEB}/cors"),
        out,
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://a.ok.example",
            "-H",
            "Access-Control-Request-Method: POST",
        ],
    );
    assert_eq!(pre.status, 200, "{pre:?}");
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://a.ok.example")
    );
    assert_eq!(pre.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(pre.header("access-control-allow-headers"), Some("x-custom"));
    assert_eq!(pre.header("access-control-max-age"), Some("86400"));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(pre.header("x-sample-name"), None, "answered by the proxy");
    let actual = curl(
        &format!("{WEB}/cors"),
        out,
        &["-H", "Origin: https://ok.example"],
    );
    assert_eq!(actual.status, 200);
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://ok.example")
    );
    assert_eq!(
        actual.header("access-control-expose-headers"),
        Some("x-sample-version")
    );
    assert_eq!(actual.header("x-sample-name"), Some("web"));
    let other = curl(
        &format!("{WEB}/cors"),
        out,
        &["-H", "Origin: https://evil.example"],
    );
    assert_eq!(other.status, 200);
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
    let other_pre = curl(
        &format!("{WEB}/cors"),
        out,
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://evil.example",
            "-H",
            "Access-Control-Request-Method: POST",
        ],
    );
    assert_eq!(other_pre.header("access-control-allow-origin"), None);
    assert_eq!(other_pre.header("x-sample-name"), Some("web"), "forwarded");

    // A 50 % mirror: the shadow sees about half, with `-shadow` hosts.
    let got = statuses(&format!("{WEB}/mirror"), client.outbound, 200);
    assert!(got.iter().all(|s| *s == 200), "{got:?}");
    let count = || {
        seen.lock()
            .map(|s| s.iter().filter(|(p, _)| p == "/mirror").count())
            .unwrap_or(0)
    };
    // 100 expected; ±4 standard deviations (7.1). Copies may still be on
    // their way: the lower bound is waited for, the upper checked at the end.
    eventually(Duration::from_secs(10), "mirrored requests arrive", || {
        count() >= 71
    });
    let hosts: Vec<String> = seen
        .lock()
        .map(|s| s.iter().map(|(_, h)| h.clone()).collect())
        .unwrap_or_default();
    assert!(
        hosts
            .iter()
            .all(|h| h == "web.shop.svc.cluster.local-shadow:9080"),
        "{hosts:?}"
    );
    // A dead mirror and a slow one change nothing for the main request.
    for path in ["/mirror-dead", "/mirror-slow"] {
        for _ in 0..5 {
            let r = curl(&format!("{WEB}{path}"), out, &[]);
            assert_eq!(r.status, 200, "{path}: {r:?}");
            eprintln!("measured: {path} main request {:?}", r.took);
            assert!(r.took < Duration::from_secs(1), "{path} took {:?}", r.took);
        }
    }
    eventually(
        Duration::from_secs(10),
        "the slow mirror got copies",
        || {
            seen.lock()
                .map(|s| s.iter().any(|(p, _)| p == "/mirror-slow"))
                .unwrap_or(false)
        },
    );
    // A request body within the limit is mirrored too (the shadow reads
    // all of its Content-Length before it records the request).
    let r = curl(
        &format!("{WEB}/mirror-slow/post"),
        out,
        &["--data-binary", &"z".repeat(2048)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("body-length: 2048"), "{}", r.body);
    eventually(Duration::from_secs(10), "the body was mirrored", || {
        seen.lock()
            .map(|s| s.iter().any(|(p, _)| p == "/mirror-slow/post"))
            .unwrap_or(false)
    });
    let mirrored = count();
    eprintln!("measured: {mirrored} of 200 mirrored at 50 %");
    assert!(mirrored <= 129, "{mirrored} of 200 mirrored");

    // Retries: two 503s, then success, within one request.
    let r = curl("http://flaky.shop.svc.cluster.local:9081/", out, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 3"),
        "{}",
        r.body
    );
    // Retries that run out pass the last answer on, flagged URX, and the
    // cluster counts them (Envoy's names).
    let urx = client.stat("http.outbound.response_flags.URX");
    let flaky = |s: &str| {
        client.stat(&format!(
            "cluster.outbound|9081||flaky.shop.svc.cluster.local.{s}"
        ))
    };
    let (retries, exceeded) = (
        flaky("upstream_rq_retry"),
        flaky("upstream_rq_retry_limit_exceeded"),
    );
    let r = curl(
        "http://flaky.shop.svc.cluster.local:9081/status/503",
        out,
        &[],
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 4"),
        "{}",
        r.body
    );
    assert_eq!(client.stat("http.outbound.response_flags.URX"), urx + 1);
    assert_eq!(flaky("upstream_rq_retry"), retries + 3);
    assert_eq!(flaky("upstream_rq_retry_limit_exceeded"), exceeded + 1);
    // A per-try timeout: the first attempt stalls 5 s, the retry answers.
    let r = curl("http://stall.shop.svc.cluster.local:9082/", out, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    eprintln!(
        "measured: stalled first attempt, 300 ms per-try timeout: {:?}",
        r.took
    );
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 2"),
        "{}",
        r.body
    );
    // A body within the buffer limit is sent again on the retry.
    let small = "x".repeat(1024);
    let r = curl(
        "http://body.shop.svc.cluster.local:9084/",
        out,
        &["--data-binary", &small],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("body-length: 1024"), "{}", r.body);
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 2"),
        "{}",
        r.body
    );
    // One over it is not retried: the 503 comes back (a retry would have
    // succeeded: the app fails only its first request).
    let file = dir.path().join("big");
    std::fs::write(&file, vec![b'y'; 200 * 1024]).expect("write body");
    let at_file = format!("@{}", file.display());
    let r = curl(
        "http://big.shop.svc.cluster.local:9083/",
        out,
        &["--data-binary", &at_file],
    );
    assert_eq!(r.status, 503, "{r:?}");
    let r = curl("http://big.shop.svc.cluster.local:9083/", out, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("header: x-envoy-attempt-count: 1"),
        "{}",
        r.body
    );

    // Redirects, rewrites, direct responses, header operations, matches.
    features::check(&client);

    grpc_streams_through_both_sidecars(&client, &stream_sidecar, stream_port);

    // No endpoint at all: 503 UH, answered by the proxy.
    let uh = client.stat("http.outbound.response_flags.UH");
    let r = curl("http://empty.shop.svc.cluster.local:9080/", out, &[]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "no healthy upstream"),
        "{r:?}"
    );
    assert_eq!(client.stat("http.outbound.response_flags.UH"), uh + 1);
    // The route's 300 ms timeout, before the app's 3 s answer: 504 UT.
    let ut = client.stat("http.outbound.response_flags.UT");
    let r = curl(&format!("{WEB}/slow"), out, &[]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (504, "upstream request timeout"),
        "{r:?}"
    );
    eprintln!(
        "measured: a 300 ms route timeout answered after {:?}",
        r.took
    );
    assert!(
        r.took >= Duration::from_millis(300) && r.took < Duration::from_secs(2),
        "{:?}",
        r.took
    );
    assert_eq!(client.stat("http.outbound.response_flags.UT"), ut + 1);

    // POST /quitquitquit: the proxy drains (a request in flight is
    // answered) and exits 0.
    let outbound = client.outbound;
    let lingering = std::thread::spawn(move || curl(&format!("{WEB}/linger"), Some(outbound), &[]));
    let active = format!(
        "outbound|9080||web.shop.svc.cluster.local::{}::rq_active::1",
        web.addr
    );
    eventually(
        Duration::from_secs(10),
        "the lingering request is in flight",
        || client.admin("/clusters").contains(&active),
    );
    let quit = curl(
        &format!("http://127.0.0.1:{}/quitquitquit", client.admin),
        None,
        &["-X", "POST"],
    );
    assert_eq!((quit.status, quit.body.as_str()), (200, "OK\n"), "{quit:?}");
    let status = client.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "after /quitquitquit: {status:?}");
    let r = lingering.join().expect("the lingering request");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("request: GET /delay/1000 "), "{}", r.body);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", outbound)).is_err(),
        "the outbound listener is closed"
    );
}

/// gRPC through the client's sidecar and `stream`'s own: a server stream
/// (every reply in order, then OK), one that ends with another status
/// and a trailer after its replies, a trailers-only error, and a
/// bidirectional stream that sends each request only after the reply to
/// the one before (held back in either direction, it would stall).
fn grpc_streams_through_both_sidecars(client: &Proxy, server: &Proxy, inbound: u16) {
    eventually(
        Duration::from_secs(20),
        "stream's sidecar listens on its inbound port",
        || std::net::TcpStream::connect(("127.0.0.1", inbound)).is_ok(),
    );
    let inbound_before = server.stat("http.inbound.downstream_rq_total");
    let authority = "stream.shop.svc.cluster.local:9091";
    let call = |args: &[&str]| grpc_stream(client.outbound, authority, args);

    let v = call(&["stream", "weft", "500", "0"]);
    assert_eq!(v["code"], "OK", "{}", v["details"]);
    let got: Vec<&str> = v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let want: Vec<String> = (1..=500)
        .map(|i| format!("Hello weft from stream v1 ({i}/500)"))
        .collect();
    assert_eq!(got.len(), 500, "{} of 500 replies", got.len());
    assert_eq!(got, want);
    assert_eq!(v["initial"]["x-sample-name"], "stream", "{v}");

    // 9: FAILED_PRECONDITION, in the trailers after three replies.
    let v = call(&["stream", "weft", "3", "9"]);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["code"], "FAILED_PRECONDITION", "{v}");
    assert_eq!(v["details"], "failing on request after 3 replies", "{v}");
    assert_eq!(v["trailing"]["x-sample-trailer"], "failed", "{v}");

    // Too many asked for: the app refuses before any reply (trailers only).
    let v = call(&["stream", "weft", "1001", "0"]);
    assert_eq!(v["messages"], serde_json::json!([]), "{v}");
    assert_eq!(v["code"], "INVALID_ARGUMENT", "{v}");
    assert_eq!(v["details"], "count is at most 1000, not 1001", "{v}");

    let v = call(&["chat", "a", "b", "c"]);
    assert_eq!(v["code"], "OK", "{v}");
    assert_eq!(
        v["messages"],
        serde_json::json!([
            "Hello a from stream v1",
            "Hello b from stream v1",
            "Hello c from stream v1"
        ]),
        "{v}"
    );
    // All four went through stream's own sidecar.
    assert_eq!(
        server.stat("http.inbound.downstream_rq_total"),
        inbound_before + 4
    );
}
