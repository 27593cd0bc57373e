//! Integration tests of `weft-sample`: the real binary, started on free
//! loopback ports, driven by real clients — curl (HTTP/1.1 and h2c), Python
//! grpcio (gRPC and health), tokio-tungstenite (WebSocket), plain TCP — and
//! chained to itself with `--call`.
//!
//! One test binary with a module per area, so the suite links once.

mod chain;
mod grpc;
mod http;
mod tcp;
mod ws;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `weft-sample`; killed when dropped, however the test ends.
#[derive(Debug)]
pub struct Sample {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl Sample {
    /// Starts `weft-sample ARGS` and waits (up to 10 s) for its
    /// "listening" line.
    pub fn start(args: &[&str]) -> Sample {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weft-sample"))
            .args(args)
            .env("WEFT_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start weft-sample");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("weft-sample prints its listening line");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("weft-sample"), "{line}");
        let rest: Vec<&str> = words.collect();
        assert_eq!(rest.get(2), Some(&"listening"), "{line}");
        let addrs = rest[3..]
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=addr");
                (k.to_string(), v.parse().expect("an address"))
            })
            .collect();
        Sample { child, addrs }
    }

    /// The bound address of `http`, `grpc` or `tcp`.
    pub fn addr(&self, key: &str) -> SocketAddr {
        *self
            .addrs
            .get(key)
            .unwrap_or_else(|| panic!("no {key} address"))
    }

    /// `http://ADDR` of the HTTP listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr("http"))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weft-sample still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got: status, response headers (lower-case names), body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The value of a response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS -i ARGS` and splits its output.
pub fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}
