//! Outlier detection and circuit breakers in `weft proxy` as a user sees
//! them: a real `weft control` and client `weft proxy`, curl through it
//! with `-x`, weft-sample backends (in-process, each on a runtime of its
//! own so it can be killed — its listener and connections close — and
//! started again on the same port), and a raw backend that answers 502.
//! Retries are turned off where failures are counted, so every failure
//! the proxy lets through reaches curl (Istio's default retries would
//! hide a connect failure).

mod common;

use common::{Proxy, eventually};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

impl Proxy {
    fn client(xds: u16) -> Proxy {
        Proxy::ready(xds, "res/client", &[])
    }

    fn admin(&self, path: &str) -> String {
        self.admin_get(path).1
    }

    /// The value of one `/stats` line.
    fn stat(&self, name: &str) -> Option<u64> {
        let prefix = format!("{name}: ");
        self.admin("/stats")
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
    }

    fn url(service: &str, path: &str) -> String {
        format!("http://{service}.res.svc.cluster.local:9080{path}")
    }

    fn curl(&self) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "30", "-x"])
            .arg(format!("http://127.0.0.1:{}", self.outbound));
        cmd
    }

    /// `n` GETs in one curl (one connection): each reply's status and
    /// `x-sample-version`.
    fn many(&self, service: &str, n: usize) -> Vec<(u16, String)> {
        let mut cmd = self.curl();
        cmd.args(["-w", "%{http_code}|%header{x-sample-version}\n"]);
        for _ in 0..n {
            cmd.args(["-o", "/dev/null", &Self::url(service, "/")]);
        }
        let out = cmd.output().expect("run curl");
        let replies: Vec<(u16, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (code, version) = l.split_once('|').unwrap_or((l, ""));
                (code.parse().unwrap_or(0), version.to_string())
            })
            .collect();
        assert_eq!(replies.len(), n, "{replies:?}");
        replies
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A weft-sample HTTP app of `version` on `addr` (port 0: any), served
/// until `rt` is shut down.
fn backend(rt: &tokio::runtime::Runtime, version: &str, addr: SocketAddr) -> SocketAddr {
    let mut config = weft_sample::Config::new("res");
    config.version = version.into();
    config.http = Some(addr);
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let addr = sample.http_addr().expect("address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending::<()>()).await;
    });
    addr
}

/// A weft-sample TCP echo, served until `rt` is shut down.
fn tcp_echo(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let mut config = weft_sample::Config::new("res");
    config.tcp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let addr = sample.tcp_addr().expect("address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending::<()>()).await;
    });
    addr
}

/// Opens a `CONNECT` tunnel through the proxy's outbound port; its
/// answer's head, and the connection.
fn connect_tunnel(outbound: u16, authority: &str) -> (String, std::net::TcpStream) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", outbound)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    )
    .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match std::io::Read::read(&mut s, &mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).to_ascii_lowercase(), s)
}

/// A backend that answers every HTTP/1.1 request with 502 (keep-alive);
/// its threads end with the test binary.
fn bad_gateway() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let Ok(read) = stream.try_clone() else { return };
                let mut reader = BufReader::new(read);
                let mut writer = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            let reply = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nx-sample-version: bad\r\n\r\n";
                            if writer.write_all(reply.as_bytes()).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}

fn rule(name: &str, traffic_policy: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: res}}
spec:
  host: {name}.res.svc.cluster.local
  trafficPolicy: {traffic_policy}
---
"#
    )
}

const CLIENT: &str = r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: res}
spec: {address: 127.0.0.1, labels: {app: client}, locality: r1/z1}
"#;

/// No retries: Istio's default (2 attempts on connect failures, to other
/// hosts) would hide the failure that ejects the endpoint.
const FAILOVER_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: failover, namespace: res}
spec:
  hosts: [failover.res.svc.cluster.local]
  http:
  - route: [{destination: {host: failover.res.svc.cluster.local}}]
    retries: {attempts: 0}
---
"#;

fn cluster(service: &str) -> String {
    format!("outbound|9080||{service}.res.svc.cluster.local")
}

/// The mesh: `failover` (near in the client's locality, far elsewhere,
/// ejected after one 5xx for 3 s), `gw` (a good and a 502 backend,
/// ejected after two gateway errors), `cb` (one connection, one pending
/// request), `perconn` and `keep` (two requests per connection, or any),
/// their HTTP/2 twins `h2conn` and `h2keep`, and `h2cb` (HTTP/2, one
/// request per connection, one connection, one pending request) — all
/// of these on the one `good` backend: pools are per cluster.
fn write_mesh(
    dir: &Path,
    near: SocketAddr,
    far: SocketAddr,
    good: SocketAddr,
    bad: SocketAddr,
    echo: SocketAddr,
) {
    let mut yaml = String::new();
    yaml.push_str(&common::service_entry("res", "failover", "failover"));
    yaml.push_str(&rule(
        "failover",
        "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3s}}",
    ));
    yaml.push_str(FAILOVER_VS);
    yaml.push_str(&common::workload_entry(
        "res",
        "near",
        "failover",
        near.port(),
        ", locality: r1/z1",
    ));
    yaml.push_str(&common::workload_entry(
        "res",
        "far",
        "failover",
        far.port(),
        ", locality: r2/z2",
    ));
    yaml.push_str(&common::service_entry("res", "gw", "gw"));
    yaml.push_str(&rule(
        "gw",
        "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutiveGatewayErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50}}",
    ));
    yaml.push_str(&common::workload_entry(
        "res",
        "gw-good",
        "gw",
        good.port(),
        "",
    ));
    yaml.push_str(&common::workload_entry(
        "res",
        "gw-bad",
        "gw",
        bad.port(),
        "",
    ));
    yaml.push_str(&common::service_entry("res", "cb", "cb"));
    yaml.push_str(&rule(
        "cb",
        "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}}",
    ));
    yaml.push_str(&common::workload_entry(
        "res",
        "cb-1",
        "cb",
        good.port(),
        "",
    ));
    yaml.push_str(&common::service_entry("res", "perconn", "perconn"));
    yaml.push_str(&rule(
        "perconn",
        "{connectionPool: {http: {maxRequestsPerConnection: 2}}}",
    ));
    yaml.push_str(&common::workload_entry(
        "res",
        "perconn-1",
        "perconn",
        good.port(),
        "",
    ));
    for (name, policy) in [
        (
            "h2conn",
            "{connectionPool: {http: {h2UpgradePolicy: UPGRADE, maxRequestsPerConnection: 2}}}",
        ),
        (
            "h2keep",
            "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}",
        ),
        (
            "h2cb",
            "{connectionPool: {tcp: {maxConnections: 1}, http: {h2UpgradePolicy: UPGRADE, maxRequestsPerConnection: 1, http1MaxPendingRequests: 1}}}",
        ),
    ] {
        yaml.push_str(&common::service_entry("res", name, name));
        yaml.push_str(&rule(name, policy));
        yaml.push_str(&common::workload_entry(
            "res",
            &format!("{name}-1"),
            name,
            good.port(),
            "",
        ));
    }
    yaml.push_str(&common::service_entry("res", "keep", "keep"));
    yaml.push_str(&common::workload_entry(
        "res",
        "keep-1",
        "keep",
        good.port(),
        "",
    ));
    yaml.push_str(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcpcb, namespace: res}
spec:
  hosts: [tcpcb.res.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: tcpcb}}
---
"#,
    );
    yaml.push_str(&rule(
        "tcpcb",
        "{connectionPool: {tcp: {maxConnections: 1}}}",
    ));
    yaml.push_str(&format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: tcpcb-1, namespace: res}}\nspec: {{address: 127.0.0.1, ports: {{tcp: {}}}, labels: {{app: tcpcb}}}}\n---\n",
        echo.port()
    ));
    yaml.push_str(CLIENT);
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

#[test]
fn outlier_detection_and_circuit_breakers() {
    let rt = runtime();
    let near_rt = runtime();
    let near = backend(&near_rt, "near", SocketAddr::from(([127, 0, 0, 1], 0)));
    let far = backend(&rt, "far", SocketAddr::from(([127, 0, 0, 1], 0)));
    let good = backend(&rt, "good", SocketAddr::from(([127, 0, 0, 1], 0)));
    let bad = bad_gateway();
    let echo = tcp_echo(&rt);
    let dir = tempfile::tempdir().expect("tempdir");
    write_mesh(dir.path(), near, far, good, bad, echo);
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::client(xds);
    let failover = cluster("failover");
    let line = |addr: SocketAddr, what: &str| format!("{failover}::{addr}::{what}");
    eventually(
        Duration::from_secs(20),
        "all clusters with endpoints",
        || {
            let c = client.admin("/clusters");
            c.contains(&line(near, "priority::0"))
                && c.contains(&line(far, "priority::1"))
                && c.contains(&format!("{}::{bad}::", cluster("gw")))
                && c.contains(&format!("{}::{good}::", cluster("perconn")))
                && c.contains(&format!("{}::{good}::", cluster("h2cb")))
                && c.contains(&format!(
                    "outbound|9000||tcpcb.res.svc.cluster.local::{echo}::"
                ))
        },
    );

    // 1. Locality failover by outlier detection. Healthy: all traffic
    // stays in the client's locality.
    let replies = client.many("failover", 20);
    assert!(
        replies.iter().all(|r| r == &(200, "near".into())),
        "{replies:?}"
    );
    // The near backend dies: its first failure ejects it (Envoy fails
    // exactly that one request; the request path ejects before it
    // answers, so the next request already fails over), and the rest go
    // to the other locality.
    near_rt.shutdown_timeout(Duration::from_secs(2));
    let replies = client.many("failover", 20);
    let ejected_at = Instant::now();
    let failed = replies.iter().filter(|r| r.0 != 200).count();
    assert_eq!(failed, 1, "failures: {replies:?}");
    assert!(
        replies[failed..].iter().all(|r| r == &(200, "far".into())),
        "{replies:?}"
    );
    assert!(replies[..failed].iter().all(|r| r.0 == 503), "{replies:?}");
    let clusters = client.admin("/clusters");
    assert!(
        clusters.contains(&line(near, "health_flags::/failed_outlier_check")),
        "{clusters}"
    );
    assert!(clusters.contains(&format!("{failover}::outlier::ejections_active::1")));
    let stat = |s: &str| client.stat(&format!("cluster.{failover}.outlier_detection.{s}"));
    assert_eq!(stat("ejections_active"), Some(1));
    assert_eq!(stat("ejections_enforced_total"), Some(1));
    assert_eq!(stat("ejections_enforced_consecutive_5xx"), Some(1));
    // Started again on the same port: still ejected until its 3 s are up…
    let near_rt = runtime();
    eventually(Duration::from_secs(5), "near listening again", || {
        std::net::TcpListener::bind(near).is_ok()
    });
    assert_eq!(backend(&near_rt, "near", near), near);
    if ejected_at.elapsed() < Duration::from_secs(2) {
        let replies = client.many("failover", 10);
        assert!(
            replies.iter().all(|r| r == &(200, "far".into())),
            "{replies:?}"
        );
    }
    // … then back in load balancing (at the first sweep after them), and
    // the traffic returns home.
    eventually(Duration::from_secs(10), "near returned", || {
        client
            .admin("/clusters")
            .contains(&line(near, "health_flags::healthy"))
    });
    assert!(
        ejected_at.elapsed() >= Duration::from_secs(2),
        "returned early"
    );
    let replies = client.many("failover", 20);
    assert!(
        replies.iter().all(|r| r == &(200, "near".into())),
        "{replies:?}"
    );
    assert_eq!(stat("ejections_active"), Some(0));

    // 2. Consecutive gateway errors: the 502 backend is ejected after two
    // in a row (round robin sends it every other request).
    let replies = client.many("gw", 30);
    let bad_gateways = replies.iter().filter(|r| r.0 == 502).count();
    assert!((2..=3).contains(&bad_gateways), "{replies:?}");
    assert!(
        replies[10..].iter().all(|r| r == &(200, "good".into())),
        "{replies:?}"
    );
    let gw = cluster("gw");
    assert!(
        client
            .admin("/clusters")
            .contains(&format!("{gw}::{bad}::health_flags::/failed_outlier_check"))
    );
    let gw_stat = |s: &str| client.stat(&format!("cluster.{gw}.outlier_detection.{s}"));
    assert_eq!(
        gw_stat("ejections_enforced_consecutive_gateway_failure"),
        Some(1)
    );
    // Istio enforces only what it is given: no 5xx ejection here.
    assert_eq!(gw_stat("ejections_enforced_consecutive_5xx"), Some(0));

    // 3. Circuit breakers: one connection, one request waiting for it;
    // of five concurrent slow requests two are served, three overflow.
    let cb = cluster("cb");
    assert!(
        client
            .admin("/clusters")
            .contains(&format!("{cb}::default_priority::max_connections::1"))
    );
    let started = Instant::now();
    let curls: Vec<Child> = (0..5)
        .map(|_| {
            let mut cmd = client.curl();
            cmd.args(["-D", "-", "-o", "/dev/null"])
                .arg(Proxy::url("cb", "/delay/3000"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("run curl")
        })
        .collect();
    let heads: Vec<String> = curls
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("curl ends");
            String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
        })
        .collect();
    let ok = heads
        .iter()
        .filter(|h| h.starts_with("http/1.1 200"))
        .count();
    let overflowed: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("http/1.1 503"))
        .collect();
    assert_eq!((ok, overflowed.len()), (2, 3), "{heads:?}");
    assert!(
        overflowed
            .iter()
            .all(|h| h.contains("x-envoy-overloaded: true")),
        "{overflowed:?}"
    );
    // The waiting one was served after the first: two delays in a row.
    assert!(started.elapsed() >= Duration::from_secs(6));
    let cb_stat = |s: &str| client.stat(&format!("cluster.{cb}.{s}"));
    assert_eq!(cb_stat("upstream_rq_pending_overflow"), Some(3));
    assert_eq!(cb_stat("upstream_cx_overflow"), Some(4));
    assert_eq!(cb_stat("upstream_rq_active"), Some(0));
    assert_eq!(client.stat("http.outbound.response_flags.UO"), Some(3));

    // 4. maxRequestsPerConnection 2: six requests take three upstream
    // connections (the backend echoes each one's peer); without it, one —
    // though all of these clusters reach the same backend, none reuses
    // another's connections. HTTP/2 the same: a connection that carried
    // two streams drains, the next request opens another.
    let peers = |service: &str| -> BTreeSet<String> {
        let mut cmd = client.curl();
        for _ in 0..6 {
            cmd.arg(Proxy::url(service, "/"));
        }
        let out = cmd.output().expect("run curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("peer: ").map(str::to_string))
            .collect()
    };
    assert_eq!(peers("perconn").len(), 3);
    assert_eq!(peers("keep").len(), 1);
    assert_eq!(peers("h2conn").len(), 3);
    assert_eq!(peers("h2keep").len(), 1);
    assert_eq!(peers("keep").len(), 1, "still the one connection");

    // 4b. HTTP/2 circuit breakers: one connection of one stream each, one
    // pending request: of three concurrent slow requests two are served,
    // one after the other (the second waits for the first's connection
    // to close), and one overflows.
    let started = Instant::now();
    let curls: Vec<Child> = (0..3)
        .map(|_| {
            let mut cmd = client.curl();
            cmd.args(["-D", "-", "-o", "/dev/null"])
                .arg(Proxy::url("h2cb", "/delay/2000"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("run curl")
        })
        .collect();
    let heads: Vec<String> = curls
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("curl ends");
            String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
        })
        .collect();
    let served = heads
        .iter()
        .filter(|h| h.starts_with("http/1.1 200"))
        .count();
    let overflowed = heads
        .iter()
        .filter(|h| h.starts_with("http/1.1 503"))
        .count();
    assert_eq!((served, overflowed), (2, 1), "{heads:?}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    let h2cb_stat = |s: &str| client.stat(&format!("cluster.{}.{s}", cluster("h2cb")));
    assert_eq!(h2cb_stat("upstream_rq_pending_overflow"), Some(1));
    assert_eq!(h2cb_stat("upstream_cx_overflow"), Some(2));

    // 5. TCP maxConnections 1: a second tunnel while the first is open
    // overflows; once the first closes, a new one gets through.
    let tcp = "tcpcb.res.svc.cluster.local:9000";
    let (head, mut first) = connect_tunnel(client.outbound, tcp);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    first.write_all(b"ping").expect("send");
    let mut echoed = [0u8; 4];
    std::io::Read::read_exact(&mut first, &mut echoed).expect("echo");
    assert_eq!(&echoed, b"ping");
    let (head, _) = connect_tunnel(client.outbound, tcp);
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("x-envoy-overloaded: true"), "{head}");
    drop(first);
    eventually(Duration::from_secs(10), "the slot freed", || {
        connect_tunnel(client.outbound, tcp)
            .0
            .starts_with("http/1.1 200")
    });
    let tcp_stat =
        client.stat("cluster.outbound|9000||tcpcb.res.svc.cluster.local.upstream_cx_overflow");
    assert!(tcp_stat >= Some(1), "{tcp_stat:?}");
}
