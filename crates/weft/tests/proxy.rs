//! `weft proxy` as a user runs it, in explicit mode on loopback: a real
//! `weft control`, two weft-sample apps (reviews v1 and v2, served
//! in-process from the weft-sample library) each behind its own
//! `weft proxy`, and a client proxy that curl uses with `-x`.

mod common;

use common::{Proxy, eventually, free_port};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

impl Proxy {
    /// Starts `weft proxy --workload shop/NAME` and waits for its
    /// "listening" line.
    fn start(xds: u16, workload: &str, app: Option<SocketAddr>) -> Proxy {
        Self::start_with(xds, workload, app, &[])
    }

    /// [`Proxy::start`] with more flags.
    fn start_with(xds: u16, workload: &str, app: Option<SocketAddr>, extra: &[&str]) -> Proxy {
        let mut args = vec!["--drain-timeout", "2s"];
        let app = app.map(|a| a.to_string());
        if let Some(app) = &app {
            args.extend(["--app", app.as_str()]);
        }
        args.extend(extra);
        Proxy::spawn(xds, workload, &args)
    }

    fn admin(&self, path: &str) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}{path}", self.admin), None, &[])
    }

    fn stat(&self, name: &str) -> u64 {
        let (_, body) = self.admin("/stats");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no stat {name} in\n{body}"))
    }

    /// SIGTERM, then the exit status (within `limit`).
    fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "weft proxy did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One GET with curl (through `proxy` if given): status and body.
fn get(url: &str, proxy: Option<u16>, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]);
    if let Some(p) = proxy {
        cmd.args(["-x", &format!("http://127.0.0.1:{p}")]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `n` GETs of `url` through `proxy` in one curl (one keep-alive
/// connection): each response's status and `x-sample-version`.
fn many(url: &str, proxy: u16, n: usize, headers: &[&str]) -> Vec<(u16, String)> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-x",
        &format!("http://127.0.0.1:{proxy}"),
    ])
    .args(["-w", "%{http_code} %header{x-sample-version}\n"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    for _ in 0..n {
        cmd.args(["-o", "/dev/null", url]);
    }
    let out = cmd.output().expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (code, version) = l.split_once(' ').unwrap_or((l, ""));
            (code.parse().unwrap_or(0), version.trim().to_string())
        })
        .collect()
}

/// `n` GETs of `url` through `proxy` in one curl: each response's status
/// and how many connections curl opened for it (`%{num_connects}`: 0 when
/// it reused its keep-alive connection).
fn keep_alive(url: &str, proxy: u16, n: usize) -> Vec<(u16, u32)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "60", "-x"])
        .arg(format!("http://127.0.0.1:{proxy}"))
        .args(["-w", "%{http_code} %{num_connects}\n"]);
    for _ in 0..n {
        cmd.args(["-o", "/dev/null", url]);
    }
    let out = cmd.output().expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (code, connects) = l.split_once(' ').unwrap_or((l, ""));
            (
                code.parse().unwrap_or(0),
                connects.trim().parse().unwrap_or(u32::MAX),
            )
        })
        .collect()
}

/// A weft-sample app served in-process until `stop` is sent.
struct App {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    fn start(rt: &tokio::runtime::Runtime, version: &str) -> App {
        let mut config = weft_sample::Config::new("reviews");
        config.version = version.into();
        config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self::serve(rt, config, |s| s.http_addr())
    }

    fn tcp_echo(rt: &tokio::runtime::Runtime) -> App {
        let mut config = weft_sample::Config::new("echo");
        config.tcp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self::serve(rt, config, |s| s.tcp_addr())
    }

    fn serve(
        rt: &tokio::runtime::Runtime,
        config: weft_sample::Config,
        addr: fn(&weft_sample::Sample) -> Option<SocketAddr>,
    ) -> App {
        let sample = rt
            .block_on(weft_sample::Sample::bind(config))
            .expect("bind sample");
        let addr = addr(&sample).expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = rt.spawn(async move {
            let _ = sample
                .serve(async {
                    let _ = stopped.await;
                })
                .await;
        });
        App {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn kill(&mut self, rt: &tokio::runtime::Runtime) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = rt.block_on(t);
        }
    }
}

const REVIEWS: &str = "http://reviews.shop.svc.cluster.local:9080/reviews/0";

fn mesh(dir: &Path, v1: u16, v2: u16, echo: u16, ratings: u16) {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{app: reviews, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{app: reviews, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: shop}}
spec: {{address: 127.0.0.1, labels: {{app: client}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: shop}}
spec:
  hosts: [echo.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9070, name: tcp, protocol: TCP}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{tcp: {echo}}}, labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings, namespace: shop}}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9081, name: http2, protocol: HTTP2}}]
  workloadSelector: {{labels: {{app: ratings}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: ratings, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{http2: {ratings}}}, labels: {{app: ratings}}}}
"#
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

/// The shop of [`mesh`] served by a `weft control`, with a runtime for the
/// in-process apps; `ports` are reviews v1 and v2, echo, and ratings.
struct Shop {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    control: common::Control,
    xds: u16,
    debug: u16,
    ports: [u16; 4],
}

fn shop() -> Shop {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = [free_port(), free_port(), free_port(), free_port()];
    mesh(dir.path(), ports[0], ports[1], ports[2], ports[3]);
    let (control, xds, debug) = common::start(dir.path());
    Shop {
        rt,
        dir,
        control,
        xds,
        debug,
        ports,
    }
}

const SPLIT: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"#;

#[test]
fn explicit_mode_routes_splits_and_fails_like_envoy() {
    let Shop {
        rt,
        dir,
        mut control,
        xds,
        ports: [v1_port, v2_port, ..],
        ..
    } = shop();
    let app1 = App::start(&rt, "v1");
    let mut app2 = App::start(&rt, "v2");
    let p1 = Proxy::start(xds, "shop/reviews-v1", Some(app1.addr));
    let p2 = Proxy::start(xds, "shop/reviews-v2", Some(app2.addr));
    let echo = App::tcp_echo(&rt);
    let echo_proxy = Proxy::start(xds, "shop/echo", Some(echo.addr));
    let ratings = App::start(&rt, "v1");
    let ratings_proxy = Proxy::start(xds, "shop/ratings", Some(ratings.addr));
    let mut client = Proxy::start(xds, "shop/client", None);
    for p in [&p1, &p2, &echo_proxy, &ratings_proxy, &client] {
        p.wait_ready();
    }
    // The inbound listeners bind the WorkloadEntries' ports.
    eventually(Duration::from_secs(10), "v1's inbound listener", || {
        get(&format!("http://127.0.0.1:{v1_port}/"), None, &[]).0 == 200
    });

    // Through the client proxy: both versions answer, with Envoy's headers.
    let (status, body) = get(REVIEWS, Some(client.outbound), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reviews v"), "{body}");
    assert!(body.contains("header: x-request-id: "), "{body}");
    assert!(body.contains("header: x-forwarded-proto: http"), "{body}");
    let (_, dump) = client.admin("/config_dump");
    assert!(
        dump.contains("outbound|9080||reviews.shop.svc.cluster.local"),
        "{dump}"
    );
    let (_, clusters) = client.admin("/clusters");
    assert!(
        clusters.contains(&format!("::127.0.0.1:{v2_port}::health_flags::healthy")),
        "{clusters}"
    );
    let (_, listeners) = p1.admin("/listeners");
    assert!(
        listeners.contains(&format!("127.0.0.1_{v1_port}")),
        "{listeners}"
    );

    // An HTTP2 port: HTTP/2 to the server's proxy and on to the app, the
    // service's name kept as :authority.
    let (status, body) = get(
        "http://ratings.shop.svc.cluster.local:9081/ratings/1",
        Some(client.outbound),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("request: GET /ratings/1 HTTP/2.0"), "{body}");
    assert!(
        body.contains("authority: ratings.shop.svc.cluster.local:9081"),
        "{body}"
    );

    // An 80/20 split.
    std::fs::write(dir.path().join("split.yaml"), SPLIT).expect("write split");
    eventually(
        Duration::from_secs(10),
        "the split reaches the client proxy",
        || client.admin("/config_dump").1.contains("weighted_clusters"),
    );
    let replies = many(REVIEWS, client.outbound, 400, &[]);
    assert_eq!(replies.len(), 400);
    assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    let v1 = replies.iter().filter(|(_, v)| v == "v1").count();
    let share = v1 as f64 / 400.0;
    assert!((0.73..=0.87).contains(&share), "v1 got {v1} of 400");

    // Config changes under load: four keep-alive clients, two of them on
    // 20 ms requests (so some are in flight at any moment), while the
    // weights change twice. Requests are answered while the edits land,
    // none fails, and no connection is dropped: after its first request
    // each client reuses its connection (curl's num_connects is 0).
    let outbound = client.outbound;
    let slow = "http://reviews.shop.svc.cluster.local:9080/delay/20";
    let total = "http.outbound.downstream_rq_total";
    let started = client.stat(total);
    let loads: Vec<_> = [(REVIEWS, 300), (REVIEWS, 300), (slow, 80), (slow, 80)]
        .into_iter()
        .map(|(url, n)| std::thread::spawn(move || keep_alive(url, outbound, n)))
        .collect();
    eventually(Duration::from_secs(10), "the load is running", || {
        client.stat(total) >= started + 20
    });
    let window_start = client.stat(total);
    let window = Instant::now();
    for weights in [("50", "50"), ("80", "20")] {
        let edited = SPLIT
            .replace("weight: 80", &format!("weight: {}", weights.0))
            .replace("weight: 20", &format!("weight: {}", weights.1));
        std::fs::write(dir.path().join("split.yaml"), edited).expect("edit split");
        let want = format!("\"weight\":{}", weights.0);
        eventually(
            Duration::from_secs(10),
            "the new weights are applied",
            || client.admin("/config_dump").1.contains(&want),
        );
    }
    let during = client.stat(total) - window_start;
    let slow_still_running = loads[2..].iter().all(|l| !l.is_finished());
    eprintln!(
        "measured: {during} requests answered in the {:?} the weights took to change",
        window.elapsed()
    );
    assert!(during > 0, "no request was answered while the edits landed");
    assert!(
        slow_still_running,
        "the slow clients ended before the edits were applied"
    );
    for (i, load) in loads.into_iter().enumerate() {
        let replies = load.join().expect("load");
        let n = if i < 2 { 300 } else { 80 };
        assert_eq!(replies.len(), n, "client {i}: {replies:?}");
        assert!(
            replies.iter().all(|(status, _)| *status == 200),
            "client {i}: {replies:?}"
        );
        let connects: Vec<u32> = replies.iter().map(|(_, c)| *c).collect();
        assert_eq!(connects[0], 1, "client {i}: {connects:?}");
        assert!(
            connects[1..].iter().all(|c| *c == 0),
            "client {i} had to reconnect: {connects:?}"
        );
    }

    // A header match routes to v2.
    let jason = many(REVIEWS, client.outbound, 20, &["end-user: jason"]);
    assert!(
        jason.iter().all(|r| *r == (200, "v2".to_string())),
        "{jason:?}"
    );

    // No route: a port no service has → 404, flag NR.
    let before = client.stat("http.outbound.response_flags.NR");
    let (status, _) = get(
        "http://nowhere.shop.svc.cluster.local:9999/",
        Some(client.outbound),
        &[],
    );
    assert_eq!(status, 404);
    assert_eq!(client.stat("http.outbound.response_flags.NR"), before + 1);

    // A WebSocket (HTTP/1.1 Upgrade) through both proxies, both directions.
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", client.outbound))
            .await
            .expect("connect");
        let request = "ws://reviews.shop.svc.cluster.local:9080/ws"
            .into_client_request()
            .expect("request");
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp)
            .await
            .expect("WebSocket handshake through the proxies");
        assert_eq!(resp.status(), 101);
        for text in ["one", "two"] {
            ws.send(Message::Text(text.into())).await.expect("send");
            let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("an echo in time")
                .expect("an echo")
                .expect("a message");
            assert_eq!(echoed, Message::Text(text.into()));
        }
        let _ = ws.close(None).await;
    });

    // CONNECT to a TCP service: through both proxies to the echo, with half-close.
    let mut tunnel = std::net::TcpStream::connect(("127.0.0.1", client.outbound)).expect("connect");
    tunnel
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tunnel
        .write_all(b"CONNECT echo.shop.svc.cluster.local:9070 HTTP/1.1\r\nHost: echo.shop.svc.cluster.local:9070\r\n\r\n")
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tunnel.read(&mut byte).expect("read"),
            1,
            "tunnel closed: {head:?}"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel.write_all(b"hello through the mesh").expect("write");
    tunnel
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut echoed = String::new();
    tunnel.read_to_string(&mut echoed).expect("read to the end");
    assert_eq!(echoed, "hello through the mesh");

    // The same with a real client: OpenBSD netcat's HTTP CONNECT (an
    // HTTP/1.0 CONNECT, no Host), `-N` half-closing after its stdin ends.
    let nc = nc_through_proxy(
        client.outbound,
        "echo.shop.svc.cluster.local",
        9070,
        b"netcat says hi\n",
    );
    assert_eq!(nc, "netcat says hi\n");

    // v2's app dies: its proxy can't connect (503 UF).
    app2.kill(&rt);
    let dead = many(REVIEWS, client.outbound, 10, &["end-user: jason"]);
    assert!(dead.iter().all(|(s, _)| *s == 503), "{dead:?}");
    assert!(p2.stat("http.inbound.response_flags.UF") >= 10);

    // Without the split, the service's default route retries a 503 on
    // another endpoint (Istio's default retry policy): every request gets v1.
    std::fs::remove_file(dir.path().join("split.yaml")).expect("remove split");
    eventually(Duration::from_secs(10), "the split is gone", || {
        !client.admin("/config_dump").1.contains("weighted_clusters")
    });
    let uf_before = p2.stat("http.inbound.response_flags.UF");
    let retried = many(REVIEWS, client.outbound, 40, &[]);
    assert!(
        retried.iter().all(|r| *r == (200, "v1".to_string())),
        "{retried:?}"
    );
    assert!(
        p2.stat("http.inbound.response_flags.UF") > uf_before,
        "some first attempts went to v2"
    );

    // The control plane goes away: traffic goes on with the last config.
    let _ = control.0.kill();
    let _ = control.0.wait();
    let after = many(REVIEWS, client.outbound, 20, &[]);
    assert!(after.iter().all(|(s, _)| *s == 200), "{after:?}");

    // SIGTERM drains: a request in flight at v1's proxy finishes, then it exits 0.
    let slow = std::thread::spawn(move || {
        get(&format!("http://127.0.0.1:{v1_port}/delay/1500"), None, &[])
    });
    eventually(
        Duration::from_secs(10),
        "the slow request is in flight",
        || p1.admin("/clusters").1.contains("::rq_active::1"),
    );
    let mut p1 = p1;
    let status = p1.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let (status, body) = slow.join().expect("slow request");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reviews v1"), "{body}");

    let status = client.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

/// Istio's rolling restart, on loopback: SIGTERM one of two server
/// sidecars while the client sidecar carries a steady load (keep-alive
/// connections, some requests slow enough to be in flight at the signal).
/// No request may fail: those in flight at the draining sidecar finish,
/// its keep-alive connections are told to close (or closed idle), and
/// the client sidecar sends again, on the other endpoint, what met a
/// refused connect once it is gone (Istio's default retry policy) or a
/// connection it closed before answering (a GET is idempotent). The
/// drained sidecar exits 0. (Before the second, 1 in 2 runs failed a
/// request 503 UC; before the retry's fallback to an untried endpoint,
/// every run failed some 503 UF: least request kept picking the refusing
/// endpoint, which has the fewest requests active.)
#[test]
fn sigterm_of_a_server_sidecar_under_load_fails_no_request() {
    // (Bound, not `..`: the config dir and control plane must outlive the test.)
    let Shop {
        rt,
        dir: _dir,
        control: _control,
        xds,
        ..
    } = shop();
    let app1 = App::start(&rt, "v1");
    let app2 = App::start(&rt, "v2");
    let mut p1 = Proxy::start(xds, "shop/reviews-v1", Some(app1.addr));
    let p2 = Proxy::start(xds, "shop/reviews-v2", Some(app2.addr));
    let client = Proxy::start(xds, "shop/client", None);
    for p in [&p1, &p2, &client] {
        p.wait_ready();
    }
    eventually(Duration::from_secs(10), "both versions answer", || {
        let got = many(REVIEWS, client.outbound, 10, &[]);
        got.iter().any(|r| r.1 == "v1") && got.iter().any(|r| r.1 == "v2")
    });

    // Four keep-alive clients, two of them on 40 ms requests, for ~3 s.
    let outbound = client.outbound;
    let slow = "http://reviews.shop.svc.cluster.local:9080/delay/40";
    let loads: Vec<_> = [(REVIEWS, 600), (REVIEWS, 600), (slow, 60), (slow, 60)]
        .into_iter()
        .map(|(url, n)| std::thread::spawn(move || many(url, outbound, n, &[])))
        .collect();
    eventually(Duration::from_secs(10), "v1 carries load", || {
        p1.admin("/clusters").1.contains("::rq_active::1")
    });
    let status = p1.terminate(Duration::from_secs(10));
    assert!(status.success(), "the drained sidecar: {status:?}");
    let mut all = Vec::new();
    for l in loads {
        all.extend(l.join().expect("load"));
    }
    assert_eq!(all.len(), 1320, "every request got an answer");
    let failed: Vec<_> = all.iter().filter(|(s, _)| *s != 200).collect();
    if !failed.is_empty() {
        let stats = client.admin("/stats").1;
        let flags: Vec<&str> = stats
            .lines()
            .filter(|l| l.contains("response_flags") && !l.ends_with(": 0"))
            .collect();
        panic!(
            "{} of 1320 failed: {failed:?}; client sidecar: {flags:?}",
            failed.len()
        );
    }
    // Both served, and after the drain only v2 could.
    assert!(all.iter().any(|r| r.1 == "v1") && all.iter().any(|r| r.1 == "v2"));
    let after = many(REVIEWS, client.outbound, 10, &[]);
    assert!(
        after.iter().all(|r| *r == (200, "v2".to_string())),
        "{after:?}"
    );
}

#[test]
fn a_draining_sidecar_still_carries_its_apps_outbound_calls() {
    // (Bound, not `..`: the config dir and control plane must outlive the test.)
    let Shop {
        rt,
        dir: _dir,
        control: _control,
        xds,
        ports,
        ..
    } = shop();
    let app1 = App::start(&rt, "v1");
    let app2 = App::start(&rt, "v2");
    let mut p1 = Proxy::start(xds, "shop/reviews-v1", Some(app1.addr));
    let p2 = Proxy::start(xds, "shop/reviews-v2", Some(app2.addr));
    for p in [&p1, &p2] {
        p.wait_ready();
    }
    // A slow request in to reviews-v1 (straight to its sidecar's inbound
    // listener), in flight when its sidecar gets SIGTERM.
    let inbound = format!("http://127.0.0.1:{}/delay/1500", ports[0]);
    let host = "Host: reviews.shop.svc.cluster.local:9080";
    let slow = {
        let inbound = inbound.clone();
        std::thread::spawn(move || get(&inbound, None, &[host]))
    };
    eventually(Duration::from_secs(10), "the slow request is in", || {
        p1.admin("/clusters").1.contains("::rq_active::1")
    });
    let killed = Command::new("kill")
        .args(["-TERM", &p1.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    eventually(Duration::from_secs(5), "draining", || {
        p1.admin("/healthz/ready").0 == 503
    });
    // Peers can't come in any more...
    assert_eq!(
        get(&inbound, None, &[host]).0,
        0,
        "inbound stopped accepting"
    );
    // ...but the app, finishing its request, can still call out through
    // its sidecar (Istio drains inbound only): reviews v1 refuses, so
    // it is v2 that answers.
    let (status, body) = get(REVIEWS, Some(p1.outbound), &[]);
    assert_eq!(status, 200, "an outbound call while draining: {body}");
    assert!(body.starts_with("reviews v2"), "{body}");
    let (status, body) = slow.join().expect("slow request");
    assert_eq!(status, 200, "the request in flight: {body}");
    assert!(body.starts_with("reviews v1"), "{body}");
    let status = p1.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

/// What `nc.openbsd -N -X connect -x 127.0.0.1:PROXY HOST PORT` printed
/// for `input` on its stdin (it exits once the far side closes).
fn nc_through_proxy(proxy: u16, host: &str, port: u16, input: &[u8]) -> String {
    use std::process::{Command, Stdio};
    let mut nc = Command::new("nc.openbsd")
        .args(["-N", "-w", "10", "-X", "connect", "-x"])
        .arg(format!("127.0.0.1:{proxy}"))
        .arg(host)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nc.openbsd (scripts/setup.sh installs netcat-openbsd)");
    nc.stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to nc");
    let out = nc.wait_with_output().expect("nc ends");
    assert!(
        out.status.success(),
        "nc: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The control plane's `/debug/syncz`: one object per stream.
fn syncz(debug: u16) -> Vec<serde_json::Value> {
    let syncz = common::curl(debug, "/debug/syncz");
    let proxies: serde_json::Value = serde_json::from_str(&syncz).expect("syncz json");
    proxies.as_array().expect("a list").clone()
}

/// The proxies' streams as `weft control`'s syncz lists them: (id, delta,
/// every type sent ACKed and none NACKed).
fn streams(debug: u16) -> Vec<(String, bool, bool)> {
    syncz(debug)
        .iter()
        .map(|p| {
            let types = p["types"].as_object().expect("types");
            let acked = !types.is_empty()
                && types
                    .values()
                    .all(|t| t["acked"] == t["sent"] && t["nacked"].is_null());
            (
                p["id"].as_str().unwrap_or_default().to_string(),
                p["delta"] == true,
                acked,
            )
        })
        .collect()
}

/// Each stream on the control plane's syncz: whether it is delta, and the
/// types it was sent.
fn type_keys(debug: u16) -> Vec<(bool, Vec<String>)> {
    syncz(debug)
        .iter()
        .map(|p| {
            let types = p["types"].as_object().expect("types");
            (p["delta"] == true, types.keys().cloned().collect())
        })
        .collect()
}

#[test]
fn both_xds_protocols_follow_a_route_change() {
    let Shop {
        rt,
        dir,
        control: _control,
        xds,
        debug,
        ..
    } = shop();
    let app1 = App::start(&rt, "v1");
    let app2 = App::start(&rt, "v2");
    // The servers' sidecars speak delta (the default), the two clients one each.
    let p1 = Proxy::start(xds, "shop/reviews-v1", Some(app1.addr));
    let p2 = Proxy::start(xds, "shop/reviews-v2", Some(app2.addr));
    let sotw = Proxy::start_with(xds, "shop/client", None, &["--xds-protocol", "sotw"]);
    let delta = Proxy::start_with(xds, "shop/client", None, &["--xds-protocol", "delta"]);
    for p in [&p1, &p2, &sotw, &delta] {
        p.wait_ready();
    }
    let (_, dump) = sotw.admin("/config_dump");
    assert!(dump.contains("\"xds_protocol\":\"sotw\""), "{dump}");
    let (_, dump) = delta.admin("/config_dump");
    assert!(dump.contains("\"xds_protocol\":\"delta\""), "{dump}");
    // The control plane sees one SotW stream and three delta ones, all ACKed.
    eventually(Duration::from_secs(10), "every stream ACKed", || {
        let s = streams(debug);
        s.len() == 4 && s.iter().all(|(_, _, acked)| *acked)
    });
    let kinds = streams(debug);
    assert_eq!(
        kinds.iter().filter(|(_, delta, _)| !delta).count(),
        1,
        "{kinds:?}"
    );
    // Delta proxies get their virtual hosts by VHDS (route configurations
    // without virtual hosts, then each virtual host as its own resource);
    // the SotW one gets whole route configurations.
    let vhds_streams = type_keys(debug)
        .iter()
        .filter(|(delta, keys)| {
            assert_eq!(keys.iter().any(|k| k == "VHDS"), *delta, "{keys:?}");
            *delta
        })
        .count();
    assert_eq!(vhds_streams, 3);
    let (_, dump) = delta.admin("/config_dump");
    assert!(dump.contains("\"vhds\":true"), "{dump}");
    let (_, dump) = sotw.admin("/config_dump");
    assert!(!dump.contains("\"vhds\":true"), "{dump}");
    for p in [&sotw, &delta] {
        let replies = many(REVIEWS, p.outbound, 20, &["end-user: jason"]);
        assert!(replies.iter().all(|(s, _)| *s == 200), "{replies:?}");
    }

    // A route change: jason goes to v2, the rest 80/20.
    std::fs::write(dir.path().join("split.yaml"), SPLIT).expect("write split");
    for p in [&sotw, &delta] {
        eventually(
            Duration::from_secs(10),
            "the split reaches the client",
            || p.admin("/config_dump").1.contains("weighted_clusters"),
        );
        let jason = many(REVIEWS, p.outbound, 20, &["end-user: jason"]);
        assert!(
            jason.iter().all(|r| *r == (200, "v2".to_string())),
            "{jason:?}"
        );
    }
    // And back: everyone reaches both versions again, nothing was NACKed.
    std::fs::remove_file(dir.path().join("split.yaml")).expect("remove split");
    for p in [&sotw, &delta] {
        eventually(Duration::from_secs(10), "the split is gone", || {
            !p.admin("/config_dump").1.contains("weighted_clusters")
        });
        assert_eq!(p.stat("xds.update_rejected"), 0);
    }
    eventually(Duration::from_secs(10), "every stream ACKed", || {
        streams(debug).iter().all(|(_, _, acked)| *acked)
    });
}

#[test]
fn ready_once_configured_and_reconnects_to_a_restarted_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    mesh(
        dir.path(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let xds = free_port();
    // No control plane yet: the proxy keeps trying and is not ready.
    // Readiness is also served on its own port (istio-agent's 15021).
    let readiness_port = free_port();
    let readiness_addr = format!("127.0.0.1:{readiness_port}");
    let mut proxy = Proxy::start_with(xds, "shop/client", None, &["--readiness", &readiness_addr]);
    let readiness = |path: &str| get(&format!("http://{readiness_addr}{path}"), None, &[]);
    let (status, body) = proxy.admin("/healthz/ready");
    assert_eq!(status, 503, "{body}");
    assert_eq!(proxy.admin("/ready").0, 503);
    assert_eq!(readiness("/healthz/ready"), (status, body));
    // Only readiness there: the admin API stays on --admin.
    assert_eq!(readiness("/config_dump").0, 404);
    assert_eq!(proxy.stat("xds.connected"), 0);
    let (status, _) = get(REVIEWS, Some(proxy.outbound), &[]);
    assert_eq!(status, 404, "no config: no route");

    let start_control = || {
        common::Control(
            Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(["control", "--config"])
                .arg(dir.path())
                .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
                .args(["--debug-addr", "127.0.0.1:0", "--debounce-after", "20ms"])
                .env("WEFT_LOG", "warn")
                .spawn()
                .expect("start weft control"),
        )
    };
    let control = start_control();
    proxy.wait_ready();
    let (_, dump) = proxy.admin("/config_dump");
    assert!(dump.contains("\"ready\":true"), "{dump}");
    assert_eq!(readiness("/healthz/ready").0, 200);

    // The control plane restarts with new config: the proxy reconnects
    // (backing off meanwhile) and takes it.
    drop(control);
    eventually(Duration::from_secs(10), "the stream is seen down", || {
        proxy.stat("xds.connected") == 0
    });
    std::fs::write(dir.path().join("split.yaml"), SPLIT).expect("write split");
    let _control = start_control();
    eventually(
        Duration::from_secs(20),
        "reconnected with the new config",
        || proxy.admin("/config_dump").1.contains("weighted_clusters"),
    );
    assert!(proxy.stat("xds.connects") >= 2);
    assert_eq!(proxy.admin("/healthz/ready").0, 200);
    let status = proxy.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_are_usage_errors_with_a_reason() {
    for (args, expect) in [
        (
            &["--workload", "no-namespace"][..],
            "expected NAMESPACE/NAME",
        ),
        (
            &[
                "--workload",
                "shop/a",
                "--inbound-interception-mode",
                "TPROXY",
            ][..],
            "applies to transparent mode",
        ),
        (
            &["--workload", "shop/a", "--inbound", "127.0.0.1:15006"][..],
            "applies to transparent mode",
        ),
        (
            &["--workload", "shop/a", "--xds-protocol", "incremental"][..],
            "possible values: delta, sotw",
        ),
        (
            &["--workload", "shop/a", "--readiness", ":15021"][..],
            "is not HOST:PORT (an IP address and a port) or `none`",
        ),
        (&[][..], "--workload <NAMESPACE/NAME>"),
        (
            &["--auto-register-group", "shop/vm"][..],
            "expected the name of a WorkloadGroup",
        ),
        (
            &["--auto-register-group", "vm", "--workload", "shop/"][..],
            "expected NAMESPACE/NAME",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("proxy")
            .args(args)
            .output()
            .expect("run weft proxy");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

/// What a raw client gets back on one connection to `port` after sending
/// `request`: the response bytes until the proxy closes (or 5 s).
fn raw(port: u16, request: &[u8]) -> (String, Duration) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    c.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn malformed_oversized_and_slow_requests_are_bounded() {
    // No control plane is needed: these are turned away before routing.
    let proxy = Proxy::start_with(
        free_port(),
        "shop/client",
        None,
        &[
            "--request-headers-timeout",
            "1s",
            "--max-request-headers-kb",
            "16",
        ],
    );
    let port = proxy.outbound;
    // Garbage: 400.
    let (resp, _) = raw(port, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp:?}");
    // A header block past the limit (16 KiB here): 431.
    let big = format!(
        "GET http://reviews.shop:9080/ HTTP/1.1\r\nHost: reviews.shop:9080\r\nx-big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let (resp, _) = raw(port, big.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp:?}");
    // More than 100 headers: 431.
    let mut many =
        String::from("GET http://reviews.shop:9080/ HTTP/1.1\r\nHost: reviews.shop:9080\r\n");
    for i in 0..120 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (resp, _) = raw(port, many.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp:?}");
    // Two Host lines, even equal ones: 400 (RFC 9112 §3.2), before any routing.
    for hosts in [
        "Host: a.shop\r\nHost: reviews.shop:9080",
        "Host: reviews.shop:9080\r\nHost: reviews.shop:9080",
    ] {
        let req = format!("GET /reviews HTTP/1.1\r\n{hosts}\r\n\r\n");
        let (resp, _) = raw(port, req.as_bytes());
        assert!(resp.starts_with("HTTP/1.1 400"), "{hosts}: {resp:?}");
    }
    // Slowloris: headers that never end are cut off after the timeout.
    let (resp, took) = raw(
        port,
        b"GET http://reviews.shop:9080/ HTTP/1.1\r\nHost: reviews.shop:9080\r\nx-slow: 1\r\n",
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}: {resp:?}"
    );
    assert!(!resp.starts_with("HTTP/1.1 2"), "{resp:?}");
    // The proxy is fine: a well-formed request is answered (no config yet: 404 NR).
    let (status, _) = get(REVIEWS, Some(port), &[]);
    assert_eq!(status, 404);
    let (status, _) = get(REVIEWS, Some(port), &["x-fine: 1"]);
    assert_eq!(status, 404);
}
