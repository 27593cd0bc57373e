//! Helpers shared by the integration tests that run `weft control`.

#![allow(dead_code)] // each test binary uses part of this

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the control plane when the test ends, however it ends.
pub struct Control(pub Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weft control` on free ports; returns it, the xDS port and the debug port.
pub fn start(dir: &Path) -> (Control, u16, u16) {
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
        .env("WEFT_LOG", "info")
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
