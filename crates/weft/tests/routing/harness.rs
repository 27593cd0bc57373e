//! What the routing tests start and call: `weft proxy` processes,
//! in-process weft-sample apps, a mirror backend that counts what it
//! sees, curl and Python grpcio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};

/// A running `weft proxy`; killed when dropped.
pub struct Proxy {
    child: Child,
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
    /// Starts `weft proxy --workload NAMESPACE/NAME` and waits for its addresses.
    pub fn start(xds: u16, workload: &str) -> Proxy {
        Proxy::start_with(xds, workload, &[])
    }

    /// [`Proxy::start`] with more flags (`--app ADDR` for a server's sidecar).
    pub fn start_with(xds: u16, workload: &str, extra: &[&str]) -> Proxy {
        let (child, outbound, admin) = crate::common::spawn_proxy(xds, workload, extra);
        Proxy {
            child,
            outbound,
            admin,
        }
    }

    /// Waits (up to `limit`) for the process to exit by itself: its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weft proxy did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn admin(&self, path: &str) -> String {
        curl(&format!("http://127.0.0.1:{}{path}", self.admin), None, &[]).body
    }

    pub fn stat(&self, name: &str) -> u64 {
        let body = self.admin("/stats");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no stat {name} in\n{body}"))
    }
}

/// A curl reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Response headers, lowercased names (`name: value` lines).
    pub headers: String,
    pub body: String,
    /// Time to the whole reply.
    pub took: Duration,
}

impl Reply {
    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One curl request (through `proxy` if given) with extra curl `args`.
pub fn curl(url: &str, proxy: Option<u16>, args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = dir.path().join("headers");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"])
        .arg("-D")
        .arg(&head);
    if let Some(p) = proxy {
        cmd.args(["-x", &format!("http://127.0.0.1:{p}")]);
    }
    let started = Instant::now();
    let out = cmd.args(args).arg(url).output().expect("run curl");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Reply {
        status: code.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(&head).unwrap_or_default(),
        body: body.to_string(),
        took,
    }
}

/// `n` GETs of `url` through `proxy` on one keep-alive connection: each status.
pub fn statuses(url: &str, proxy: u16, n: usize) -> Vec<u16> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-x",
        &format!("http://127.0.0.1:{proxy}"),
    ])
    .args(["-w", "%{http_code}\n"]);
    for _ in 0..n {
        cmd.args(["-o", "/dev/null", url]);
    }
    let out = cmd.output().expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap_or(0))
        .collect()
}

/// Waits for `ok` with a deadline.
pub fn eventually(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub use crate::common::free_port;

/// A weft-sample app served in-process until the runtime ends.
pub struct App {
    pub addr: SocketAddr,
}

impl App {
    /// Serves HTTP (or gRPC) with `flaky` behaviour.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        name: &str,
        grpc: bool,
        flaky: weft_sample::Flaky,
    ) -> App {
        let mut config = weft_sample::Config::new(name);
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        if grpc {
            config.grpc = any;
        } else {
            config.http = any;
        }
        config.flaky = flaky;
        let sample = rt
            .block_on(weft_sample::Sample::bind(config))
            .expect("bind sample");
        let addr = if grpc {
            sample.grpc_addr()
        } else {
            sample.http_addr()
        }
        .expect("address");
        rt.spawn(async move {
            let _ = sample.serve(std::future::pending::<()>()).await;
        });
        App { addr }
    }
}

/// What the mirror backend saw: each request's path and Host.
pub type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A mirror backend: answers 200 to every HTTP/1.1 request (after 3 s
/// for paths starting `/mirror-slow`) and records path and Host. A fake
/// written for the test; only the proxy's own requests reach it.
pub fn shadow(rt: &tokio::runtime::Runtime) -> (SocketAddr, Seen) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind shadow");
    let addr = listener.local_addr().expect("address");
    let seen: Seen = Arc::default();
    let record = seen.clone();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = TokioBufReader::new(read);
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut host, mut length) = (String::new(), 0usize);
                    loop {
                        let mut h = String::new();
                        if read.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "host" => host = v.trim().to_string(),
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if read.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    if let Ok(mut s) = record.lock() {
                        s.push((path.clone(), host));
                    }
                    if path.starts_with("/mirror-slow") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A streaming gRPC call through `proxy` to `authority` with grpcio
/// (`routing/grpc_stream.py`: `stream NAME COUNT FAIL_WITH` or `chat
/// NAME...`): the replies, the status and both metadata sets.
pub fn grpc_stream(proxy: u16, authority: &str, args: &[&str]) -> serde_json::Value {
    python_json("grpc_stream.py", proxy, authority, args)
}

/// Runs `routing/SCRIPT 127.0.0.1:PROXY AUTHORITY ARGS…` with the venv's
/// Python (grpcio): the JSON it prints.
fn python_json(script: &str, proxy: u16, authority: &str, args: &[&str]) -> serde_json::Value {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs grpcio into .venv)",
        python.display()
    );
    let out = Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/routing")
                .join(script),
        )
        .args([&format!("127.0.0.1:{proxy}"), authority])
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

/// gRPC calls through `proxy` to `authority` with grpcio: codes → counts, and details.
pub fn grpc_calls(proxy: u16, authority: &str, n: usize, metadata: &[&str]) -> serde_json::Value {
    let n = n.to_string();
    let args: Vec<&str> = std::iter::once(n.as_str())
        .chain(metadata.iter().copied())
        .collect();
    python_json("grpc_call.py", proxy, authority, &args)
}
