//! Helpers shared by the integration tests that run `weft control`.

#![allow(dead_code)] // each test binary uses part of this

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether this is a CI run: `CI` set (and not `false` or `0`), as `.ci/run`
/// exports it and CI services do. There every test must run: one that
/// can't (not root, a tool missing) fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// What starts the line a skipped test prints; `scripts/test.sh` counts
/// and repeats these lines at the end of its run.
pub const SKIPPED: &str = "SKIPPED (did not run):";

/// Says that `test` did not run and why, on the terminal as it happens
/// (written to stderr itself: libtest's capture would hide `eprintln!`).
pub fn announce_skip(test: &str, reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{SKIPPED} {test}: {reason}");
}

/// For a test whose prerequisite is missing here: in CI the test fails;
/// elsewhere the skip is announced and the test should return.
pub fn skip(test: &str, reason: &str) {
    assert!(
        !in_ci(),
        "{test} cannot run in CI: {reason} (run scripts/setup.sh as root)"
    );
    announce_skip(test, reason);
}

/// Kills the control plane when the test ends, however it ends.
pub struct Control(pub Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft control` on free ports, its log echoed to the test's
/// stderr under `[control]`; returns it, the xDS port and the debug port.
pub fn start(dir: &Path) -> (Control, u16, u16) {
    start_with(dir, &[])
}

/// [`start`] with more flags.
pub fn start_with(dir: &Path, extra: &[&str]) -> (Control, u16, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["control", "--config"])
        .arg(dir)
        .args([
            "--xds-addr",
            "127.0.0.1:0",
            "--debug-addr",
            "127.0.0.1:0",
            "--debounce-after",
            "20ms",
        ])
        .args(extra)
        .env("WEFT_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weft control");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for key in ["xds", "debug"] {
                let marker = format!("{key}=127.0.0.1:");
                if let Some(port) = line
                    .split(&marker)
                    .nth(1)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = tx.send((key, port));
                }
            }
            eprintln!("[control] {line}");
        }
    });
    let (mut xds, mut debug) = (None, None);
    while xds.is_none() || debug.is_none() {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("weft control reports its addresses")
        {
            ("xds", p) => xds = Some(p),
            (_, p) => debug = Some(p),
        }
    }
    (
        Control(child),
        xds.unwrap_or_default(),
        debug.unwrap_or_default(),
    )
}

/// GETs a path of the debug API with curl, as a user would.
pub fn curl(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `weft proxy --xds 127.0.0.1:XDS --workload WORKLOAD` in
/// explicit mode on free outbound and admin ports, with `extra` flags,
/// its log echoed to the test's stderr under `[proxy WORKLOAD]`; returns
/// the process and the outbound and admin ports it reports.
pub fn spawn_proxy(xds: u16, workload: &str, extra: &[&str]) -> (Child, u16, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["proxy", "--xds", &format!("127.0.0.1:{xds}")])
        .args(["--workload", workload])
        .args(["--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(extra)
        .env(
            "WEFT_LOG",
            std::env::var("TEST_PROXY_LOG").unwrap_or("info".into()),
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weft proxy");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let name = workload.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let port = |key: &str| {
                line.split(&format!("{key}=127.0.0.1:"))
                    .nth(1)
                    .and_then(|p| p.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
            };
            if let (Some(o), Some(a)) = (port("outbound"), port("admin")) {
                let _ = tx.send((o, a));
            }
            eprintln!("[proxy {name}] {line}");
        }
    });
    let (outbound, admin) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("weft proxy reports its addresses");
    (child, outbound, admin)
}

/// Polls `ok` every 50 ms until it holds; fails the test with `what`
/// after `limit`.
pub fn eventually(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `weft proxy` in explicit mode; killed when dropped. Each test
/// file adds the methods its checks need.
pub struct Proxy {
    pub child: Child,
    pub outbound: u16,
    pub admin: u16,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts it ([`spawn_proxy`]) without waiting for its config.
    pub fn spawn(xds: u16, workload: &str, extra: &[&str]) -> Proxy {
        let (child, outbound, admin) = spawn_proxy(xds, workload, extra);
        Proxy {
            child,
            outbound,
            admin,
        }
    }

    /// Starts it and waits until `/healthz/ready` answers 200.
    pub fn ready(xds: u16, workload: &str, extra: &[&str]) -> Proxy {
        let p = Proxy::spawn(xds, workload, extra);
        p.wait_ready();
        p
    }

    /// Waits (20 s at most) until `/healthz/ready` answers 200.
    pub fn wait_ready(&self) {
        eventually(Duration::from_secs(20), "proxy ready", || {
            self.admin_get("/healthz/ready").0 == 200
        });
    }

    /// A GET of `path` on the admin port: status (0 if curl failed) and body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{}{path}", self.admin))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// A ServiceEntry `NAME.NS.svc.cluster.local` with one HTTP port 9080,
/// selecting the workloads labelled `app: APP`.
pub fn service_entry(ns: &str, name: &str, app: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}.{ns}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: {app}}}}}
---
"#
    )
}

/// A WorkloadEntry on 127.0.0.1 whose `http` port is `port`, labelled
/// `app: APP`; `extra` goes at the end of its spec (e.g. `, locality: r1/z1`).
pub fn workload_entry(ns: &str, name: &str, app: &str, port: u16, extra: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}, namespace: {ns}}}
spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {app}}}{extra}}}
---
"#
    )
}

/// A loopback port for a config to name before anything listens on it
/// (a WorkloadEntry's port, a ServiceEntry endpoint's): distinct within
/// this test binary and below the kernel's ephemeral range, so that no
/// process binding port 0 meanwhile (the proxies' admin and outbound
/// listeners, every client's outgoing connection) can take it before its
/// owner binds it — with port-0 picks that happened between tests running
/// in parallel, and a sidecar found its inbound port taken.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // The ephemeral range starts at 32768 by default; stay under it.
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    const FLOOR: u32 = 10_000;
    if low <= FLOOR + 1_000 {
        // An unusual range: take the kernel's pick and its small risk.
        return std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
    }
    let span = low - FLOOR;
    // Test binaries run one after another; each starts somewhere else.
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let port = FLOOR + NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = u16::try_from(port).expect("a port number");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FLOOR}..{low}");
}
