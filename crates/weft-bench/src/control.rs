//! The control plane under test: a real `weft control` process, and what
//! `/proc` says about it (memory, CPU time).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A running `weft control`; killed when dropped.
#[derive(Debug)]
pub struct Control {
    child: Child,
    /// The port it serves xDS on (127.0.0.1).
    pub xds_port: u16,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    /// Starts `weft` (the binary at `weft`) as `weft control --config dir`
    /// on free loopback ports, logging at warn, and waits (up to 30 s) for
    /// the xDS port it reports. Its warnings are copied to our stderr.
    pub fn start(weft: &Path, dir: &Path, debounce_after: &str) -> Result<Control> {
        let mut child = Command::new(weft)
            .args(["control", "--config"])
            .arg(dir)
            .args([
                "--xds-addr",
                "127.0.0.1:0",
                "--debug-addr",
                "127.0.0.1:0",
                "--debounce-after",
                debounce_after,
            ])
            // warn, but keep the one info line that says where xDS is served.
            .env("WEFT_LOG", "warn,weft::control=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", weft.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("xds=127.0.0.1:")
                    .nth(1)
                    .and_then(|p| p.split_whitespace().next())
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                } else if !line.contains("INFO") {
                    eprintln!("weft control: {line}");
                }
            }
        });
        let mut control = Control { child, xds_port: 0 };
        control.xds_port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let status = control.child.try_wait().ok().flatten();
                bail!("weft control did not report its xDS address within 30 s (exit: {status:?})")
            }
        };
        Ok(control)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Memory and CPU time now.
    pub fn sample(&self) -> Result<ProcSample> {
        ProcSample::read(self.pid())
    }
}

/// Memory and CPU of a process, from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// Resident set size now (bytes).
    pub rss: u64,
    /// Peak resident set size (bytes).
    pub hwm: u64,
    /// User + system CPU time so far (seconds).
    pub cpu: f64,
}

impl ProcSample {
    /// Reads process `pid`.
    pub fn read(pid: u32) -> Result<ProcSample> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let status = std::fs::read_to_string(dir.join("status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let stat = std::fs::read_to_string(dir.join("stat"))
            .with_context(|| format!("read /proc/{pid}/stat"))?;
        Ok(ProcSample {
            rss: kib("VmRSS:"),
            hwm: kib("VmHWM:"),
            cpu: cpu_seconds(&stat).with_context(|| format!("parse /proc/{pid}/stat"))?,
        })
    }

    /// This process.
    pub fn own() -> Result<ProcSample> {
        ProcSample::read(std::process::id())
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once; 100 (Linux's) if that fails.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line =
            "1234 (weft (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 5 0 0";
        let t = clock_ticks();
        assert_eq!(cpu_seconds(line), Some(300.0 / t));
        assert_eq!(cpu_seconds("garbage"), None);
        let own = ProcSample::own().expect("own sample");
        assert!(own.rss > 0 && own.hwm >= own.rss);
    }
}
