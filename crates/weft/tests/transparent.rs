//! `weft proxy --mode transparent` for real, in two network namespaces
//! (root only): an unmodified client reaches a service by its plain
//! address through both sidecars.
//!
//! `client` (10.77.0.1) and `server` (10.77.0.2) are joined by a veth
//! pair; the `echo` service has the VIP 10.77.100.10 (routed out of the
//! client's veth, nowhere real: only the proxy makes it reachable). The
//! server namespace runs `weft control` (xDS on 15010, excluded from
//! capture), the apps on 127.0.0.1 (HTTP 8080, TCP echo 9000, HTTP on the
//! undeclared port 7070, TCP echo on the undeclared port 7071, and two
//! `openssl s_server`s behind the TLS services `a.tls.test` and
//! `b.tls.test` on port 8443). Each namespace runs `weft proxy --mode
//! transparent` as uid 1337 and `weft iptables`. Then, from the client
//! namespace, with no proxy settings: curl to the VIP (HTTP), netcat to the
//! TCP echo through the VIP, HTTP and raw TCP on the sniffed ports, and
//! `curl -k https://b.tls.test:8443/` routed by SNI, HTTP to the
//! endpoint's own IPv4 and IPv6 address (PassthroughCluster to the
//! original destination) and TCP to a port no service declares (passed
//! through on both sides); each shows in both proxies' `/stats` and in
//! what the app saw. Last, the server side again with TPROXY inbound
//! (`--inbound-interception-mode TPROXY` for both `weft iptables` and the
//! proxy, which then needs `CAP_NET_ADMIN`).
//!
//! Like `iptables.rs`, this file has its own `main` (`harness = false`):
//! the same binary, run as `transparent helper …` inside a namespace, is
//! the sample apps. Without root, `ip`, `setpriv`, iptables, openssl or
//! netcat (`nc.openbsd`) the test prints why and passes — unless `CI` is
//! set, where it fails.

use std::path::Path;
use std::time::Duration;

#[path = "transparent/support.rs"]
mod support;

use support::{
    Files, HELPER_COPY, Netns, WEFT_COPY, curl, eventually, helper, latencies, stat,
    wait_listening, weft,
};

mod common;
#[path = "root_test/mod.rs"]
mod root_test;

use root_test::RootTest;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const PROXY_UID: &str = "1337";
const TIMEOUT: Duration = Duration::from_secs(20);
const NAME: &str = "transparent_mode_through_both_sidecars";
const VIP: &str = "10.77.100.10";
const SERVER_IP: &str = "10.77.0.2";

fn main() -> std::process::ExitCode {
    RootTest {
        name: NAME,
        tools: &[
            "ip",
            "setpriv",
            "iptables-save",
            "iptables-restore",
            "curl",
            "openssl",
            "nc.openbsd",
        ],
        packages: "iptables iproute2 util-linux curl openssl netcat-openbsd",
        helper,
        test: transparent,
    }
    .main()
}

fn mesh(dir: &Path) {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: test}}
spec:
  hosts: [echo.test.svc.cluster.local]
  addresses: [{VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 8080, name: http, protocol: HTTP}}
  - {{number: 9000, name: tcp, protocol: TCP}}
  - {{number: 7070, name: web}}
  - {{number: 7071, name: raw}}
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tls-a, namespace: test}}
spec:
  hosts: [a.tls.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: tls-a, protocol: TLS}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tls-b, namespace: test}}
spec:
  hosts: [b.tls.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: tls-b, protocol: TLS}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo, namespace: test}}
spec:
  address: {SERVER_IP}
  ports: {{http: 8080, tcp: 9000, web: 7070, raw: 7071, tls-a: 9443, tls-b: 9444}}
  labels: {{app: echo}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: test}}
spec: {{address: 10.77.0.1, labels: {{app: client}}}}
"#
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

fn transparent() {
    let net = Netns::new();
    let (client, server) = (net.client.as_str(), net.server.as_str());
    let files = Files::install();
    let dir = files.dir.path();
    mesh(dir);

    // The server side: control plane, apps, TLS servers.
    let mut procs = Vec::new();
    procs.push(files.spawn(
        server,
        &[],
        "control",
        &[
            WEFT_COPY,
            "control",
            "--config",
            &dir.join("mesh.yaml").to_string_lossy(),
            "--xds-addr",
            "0.0.0.0:15010",
            "--debug-addr",
            "127.0.0.1:15014",
            "--debounce-after",
            "20ms",
        ],
    ));
    for (args, name) in [
        (
            &["sample", "http", "127.0.0.1:8080", "echo-http"][..],
            "app-http",
        ),
        (&["sample", "tcp", "127.0.0.1:9000", "echo-tcp"], "app-tcp"),
        (&["sample", "http", "127.0.0.1:7070", "echo-web"], "app-web"),
        (&["sample", "tcp", "127.0.0.1:7071", "echo-raw"], "app-raw"),
        (
            &["sample", "tcp", "[::]:7777", "undeclared"],
            "app-undeclared",
        ),
    ] {
        let mut full = vec![HELPER_COPY, "helper"];
        full.extend_from_slice(args);
        procs.push(files.spawn(server, &[], name, &full));
    }
    for (name, port) in [("a", "9443"), ("b", "9444")] {
        procs.push(files.tls_server(server, name, port));
    }
    wait_listening(
        server,
        &[
            "8080", "9000", "7070", "7071", "7777", "9443", "9444", "15010",
        ],
    );

    // Capture, then the sidecars as uid 1337.
    let uid = [
        "setpriv",
        "--reuid",
        PROXY_UID,
        "--regid",
        PROXY_UID,
        "--clear-groups",
    ];
    weft(
        server,
        &[
            "iptables",
            "--proxy-uid",
            PROXY_UID,
            "--exclude-inbound-ports",
            "15010",
            "--ipv6",
        ],
    );
    weft(client, &["iptables", "--proxy-uid", PROXY_UID, "--ipv6"]);
    let server_proxy = procs.len();
    for (ns, workload, xds) in [
        (server, "test/echo", "127.0.0.1:15010"),
        (client, "test/client", "10.77.0.2:15010"),
    ] {
        procs.push(files.spawn(
            ns,
            &uid,
            &format!("proxy {workload}"),
            &[
                WEFT_COPY,
                "proxy",
                "--mode",
                "transparent",
                "--xds",
                xds,
                "--workload",
                workload,
                "--admin",
                "127.0.0.1:15000",
                "--outbound",
                "[::]:15001",
                "--inbound",
                "[::]:15006",
            ],
        ));
    }
    for ns in [server, client] {
        eventually(&format!("proxy in {ns} ready"), || {
            curl(ns, &["http://127.0.0.1:15000/healthz/ready"]).0 == 200
        });
    }
    // Readiness on the workload's address, port 15021 (a kubelet probe):
    // served by the sidecar, which `weft iptables` leaves uncaptured.
    let (code, body) = curl(client, &["http://10.77.0.2:15021/healthz/ready"]);
    assert_eq!((code, body.as_str()), (200, "LIVE\n"));

    // HTTP to the service's VIP: client sidecar (route by Host) → server
    // sidecar (virtualInbound, port 8080) → the app.
    let before = (
        stat(client, "http.outbound.downstream_rq_2xx"),
        stat(server, "http.inbound.downstream_rq_2xx"),
    );
    let (code, body) = curl(client, &[&format!("http://{VIP}:8080/hello")]);
    assert_eq!(code, 200, "HTTP through both sidecars: {body}");
    assert!(body.starts_with("echo-http "), "{body}");
    assert!(body.contains("request: GET /hello HTTP/1.1"), "{body}");
    assert!(
        body.contains("header: x-request-id: "),
        "the client sidecar adds x-request-id: {body}"
    );
    assert!(
        body.contains("peer: 127.0.0.1:"),
        "the app hears from its sidecar: {body}"
    );
    assert_eq!(
        stat(client, "http.outbound.downstream_rq_2xx"),
        before.0 + 1
    );
    assert_eq!(stat(server, "http.inbound.downstream_rq_2xx"), before.1 + 1);
    // By name, as an app with DNS for the service would call it.
    let resolve = format!("echo.test.svc.cluster.local:8080:{VIP}");
    let (code, body) = curl(
        client,
        &[
            "--resolve",
            &resolve,
            "http://echo.test.svc.cluster.local:8080/by-name",
        ],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("authority: echo.test.svc.cluster.local:8080"),
        "{body}"
    );

    // TCP through the VIP's own listener (10.77.100.10_9000).
    let tcp_before = (
        stat(client, "http.outbound.downstream_cx_tcp_total"),
        stat(server, "http.inbound.downstream_cx_tcp_total"),
    );
    let (reply, _) = files.tcp(client, &format!("{VIP}:9000"), "ping over tcp");
    assert_eq!(reply, "ping over tcp");
    assert_eq!(
        stat(client, "http.outbound.downstream_cx_tcp_total"),
        tcp_before.0 + 1
    );
    assert_eq!(
        stat(server, "http.inbound.downstream_cx_tcp_total"),
        tcp_before.1 + 1
    );

    // The undeclared port 7070 carries HTTP: sniffed as HTTP on both sides.
    let rq = (
        stat(client, "http.outbound.downstream_rq_2xx"),
        stat(server, "http.inbound.downstream_rq_2xx"),
    );
    let (code, body) = curl(client, &[&format!("http://{VIP}:7070/sniffed")]);
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("echo-web "), "{body}");
    assert!(
        body.contains("header: x-request-id: "),
        "routed as HTTP: {body}"
    );
    assert_eq!(stat(client, "http.outbound.downstream_rq_2xx"), rq.0 + 1);
    assert_eq!(stat(server, "http.inbound.downstream_rq_2xx"), rq.1 + 1);
    // ... and h2c prior knowledge is HTTP too.
    let (code, body) = curl(
        client,
        &["--http2-prior-knowledge", &format!("http://{VIP}:7070/h2")],
    );
    assert_eq!(code, 200, "{body}");
    // (The app hears HTTP/1.1: the clusters of an undeclared port carry
    // no protocol options, so upstream HTTP is HTTP/1.1.)
    assert!(body.contains("request: GET /h2 HTTP/"), "{body}");
    assert!(
        body.contains("header: x-request-id: "),
        "routed as HTTP: {body}"
    );

    // The undeclared port 7071 carries raw bytes: sniffed as TCP.
    let tcp_before = stat(client, "http.outbound.downstream_cx_tcp_total");
    let (reply, _) = files.tcp(client, &format!("{VIP}:7071"), "not http at all");
    assert_eq!(reply, "not http at all");
    assert_eq!(
        stat(client, "http.outbound.downstream_cx_tcp_total"),
        tcp_before + 1
    );

    // TLS passthrough by SNI: two TLS services on 8443, told apart by
    // the ClientHello's server name; the TLS is end to end.
    for name in ["a", "b"] {
        let host = format!("{name}.tls.test");
        let resolve = format!("{host}:8443:{SERVER_IP}");
        let (code, body) = curl(
            client,
            &[
                "-k",
                "--resolve",
                &resolve,
                &format!("https://{host}:8443/name.txt"),
            ],
        );
        assert_eq!(code, 200, "TLS to {host}: {body}");
        assert_eq!(body.trim(), host, "SNI {host} reached the wrong server");
    }

    // An endpoint's own address, IPv4 and IPv6: no virtual host names it,
    // so Istio's `allow_any` route sends it to PassthroughCluster, i.e. to
    // the original destination, where the server's sidecar takes it in.
    for (addr, what) in [
        (format!("{SERVER_IP}:8080"), "IPv4"),
        ("[fd00:77::2]:8080".to_string(), "IPv6"),
    ] {
        let rq = (
            stat(client, "http.outbound.downstream_rq_2xx"),
            stat(server, "http.inbound.downstream_rq_2xx"),
        );
        let (code, body) = curl(client, &[&format!("http://{addr}/direct")]);
        assert_eq!(code, 200, "{what} to {addr}: {body}");
        assert!(body.starts_with("echo-http "), "{body}");
        assert!(body.contains(&format!("authority: {addr}")), "{body}");
        assert_eq!(
            stat(client, "http.outbound.downstream_rq_2xx"),
            rq.0 + 1,
            "{what}"
        );
        assert_eq!(
            stat(server, "http.inbound.downstream_rq_2xx"),
            rq.1 + 1,
            "{what}"
        );
    }

    // A port no service declares: passed through by both sidecars (the
    // server's dials the app from 127.0.0.6 / ::6, which capture lets by).
    let tcp_before = (
        stat(client, "http.outbound.downstream_cx_tcp_total"),
        stat(server, "http.inbound.downstream_cx_tcp_total"),
    );
    let (reply, _) = files.tcp(client, &format!("{SERVER_IP}:7777"), "passed through");
    assert_eq!(reply, "passed through");
    let (reply, _) = files.tcp(client, "[fd00:77::2]:7777", "passed through v6");
    assert_eq!(reply, "passed through v6");
    assert_eq!(
        stat(client, "http.outbound.downstream_cx_tcp_total"),
        tcp_before.0 + 2
    );
    assert_eq!(
        stat(server, "http.inbound.downstream_cx_tcp_total"),
        tcp_before.1 + 2
    );

    // Dialling a capture port directly would loop: the proxy closes it.
    // (Closed at once — an empty reply or a reset — not an echo or a
    // read timeout.)
    let (reply, took) = files.tcp(server, "127.0.0.1:15001", "loop?");
    assert!(
        !reply.contains("loop?") && took < Duration::from_secs(3),
        "a direct connection to 15001: {reply:?} after {took:?}"
    );

    // What the two hops cost (printed, not asserted: the machine is
    // shared): 200 keep-alive GETs in one curl, through both sidecars and
    // straight to the app.
    let through = latencies(client, &format!("http://{VIP}:8080/t"));
    let direct = latencies(server, "http://127.0.0.1:8080/t");
    println!(
        "latency over 200 keep-alive GETs: through both sidecars p50 {:.3} ms p99 {:.3} ms; direct p50 {:.3} ms p99 {:.3} ms",
        through.0, through.1, direct.0, direct.1
    );

    // Nothing failed along the way.
    for (ns, dir) in [(client, "outbound"), (server, "inbound")] {
        assert_eq!(
            stat(ns, &format!("http.{dir}.downstream_rq_5xx")),
            0,
            "{ns}"
        );
    }

    // The server again with TPROXY inbound (mangle table, IP_TRANSPARENT
    // listener, original destination = the socket's own address).
    drop(procs.remove(server_proxy));
    weft(server, &["iptables", "--cleanup"]);
    weft(
        server,
        &[
            "iptables",
            "--proxy-uid",
            PROXY_UID,
            "--exclude-inbound-ports",
            "15010",
            "--inbound-interception-mode",
            "TPROXY",
        ],
    );
    let caps = [
        &uid[..],
        &["--inh-caps", "+net_admin", "--ambient-caps", "+net_admin"],
    ]
    .concat();
    procs.push(files.spawn(
        server,
        &caps,
        "proxy test/echo TPROXY",
        &[
            WEFT_COPY,
            "proxy",
            "--mode",
            "transparent",
            "--xds",
            "127.0.0.1:15010",
            "--workload",
            "test/echo",
            "--admin",
            "127.0.0.1:15000",
            "--inbound-interception-mode",
            "TPROXY",
        ],
    ));
    eventually("TPROXY proxy ready", || {
        curl(server, &["http://127.0.0.1:15000/healthz/ready"]).0 == 200
    });
    let (reply, _) = files.tcp(client, &format!("{VIP}:9000"), "ping via tproxy");
    assert_eq!(reply, "ping via tproxy");
    assert_eq!(stat(server, "http.inbound.downstream_cx_tcp_total"), 1);
    let (code, body) = curl(client, &[&format!("http://{VIP}:8080/tproxy")]);
    assert_eq!(code, 200, "HTTP to a TPROXY sidecar: {body}");
    assert!(body.contains("request: GET /tproxy HTTP/1.1"), "{body}");
    assert!(body.contains("header: x-request-id: "), "{body}");
    assert_eq!(stat(server, "http.inbound.downstream_rq_2xx"), 1);
    drop(procs);
}
