//! `weft-bench dataplane`: one backend (`weft-sample`), reached directly,
//! through one and two Weft proxies and through nginx and haproxy, loaded
//! with `wrk` (HTTP/1.1), `h2load` (HTTP/2, gRPC unary, and its bursty
//! 1 000 rps) and an evenly spaced 1 000 rps ([`crate::paced`]) for
//! latency; proxy CPU and peak RSS from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control::{Control, ProcSample};
use crate::procs::{self, GRPC_PORT, Guard, HOST, HTTP_PORT, Ports};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `weft` binary.
    pub weft: PathBuf,
    /// The `weft-sample` binary.
    pub sample: PathBuf,
    /// Seconds of each load run.
    pub secs: u64,
}

/// Where a load tool sends a request.
#[derive(Clone, Debug)]
struct Target {
    /// The loopback port to connect to.
    port: u16,
    /// Host (authority) of the requests.
    host: String,
    /// Whether the port is an HTTP proxy (absolute-form requests in HTTP/1.1).
    proxy: bool,
}

/// What one setup measured.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// The setup's name.
    pub name: String,
    /// HTTP/1.1 max throughput (wrk, req/s).
    pub h1_rps: f64,
    /// Proxy CPU seconds over the wrk run per 1 000 requests.
    pub h1_cpu_per_k: f64,
    /// HTTP/2 max throughput (h2load, req/s).
    pub h2_rps: f64,
    /// Proxy CPU seconds over the h2load run per 1 000 requests.
    pub h2_cpu_per_k: f64,
    /// gRPC unary throughput (h2load, req/s).
    pub grpc_rps: f64,
    /// Latency at 1 000 rps, evenly spaced arrivals ([`crate::paced`]):
    /// p50, p99, p99.9 (ms).
    pub lat: [f64; 3],
    /// The direct row only: the evenly spaced latency measured again
    /// after every other setup (a one-off stall of the machine in either
    /// run shows as the two disagreeing; the lower p99 is the baseline).
    pub lat_again: Option<[f64; 3]>,
    /// Latency at 1 000 rps from `h2load --rps` (10 clients whose timers
    /// fire together: bursts of 10 every 10 ms): p50, p99, p99.9 (ms).
    pub lat_burst: [f64; 3],
    /// Peak RSS of the proxy processes over every load (sum of VmHWM, bytes).
    pub rss: u64,
    /// RSS of the proxy processes before any load, config applied (sum, bytes).
    pub rss_idle: u64,
    /// Peak RSS of the proxy processes during the HTTP/1.1 and the HTTP/2
    /// runs, each measured alone (peak reset before each, bytes).
    pub rss_load: [u64; 2],
    /// Failed requests over all runs, and notes.
    pub notes: Vec<String>,
    /// Whether there are proxy processes (not direct).
    pub proxied: bool,
}

/// Which tools are installed.
pub fn missing_tools() -> Vec<&'static str> {
    ["wrk", "h2load", "nginx", "haproxy"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t} >/dev/null")])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect()
}

/// Runs every setup whose tools are installed, in order.
pub fn run(opts: &Options) -> Result<Vec<Row>> {
    let missing = missing_tools();
    for t in &missing {
        eprintln!(
            "weft-bench: `{t}` is missing: run `sudo bench/setup.sh`; setups needing it are skipped"
        );
    }
    if missing.contains(&"wrk") || missing.contains(&"h2load") {
        bail!("wrk and h2load are needed for every setup: run `sudo bench/setup.sh`");
    }
    let dir = tempfile::tempdir().context("temp dir")?;
    let d = dir.path();
    let (app, app_grpc) = (procs::free_port()?, procs::free_port()?);
    let mut backend = vec![procs::sample(&opts.sample, app, app_grpc, d)?];
    procs::wait_200(
        app,
        "/bytes/1024",
        "x",
        Duration::from_secs(10),
        &mut backend,
    )?;
    std::fs::write(d.join("grpc.bin"), grpc_request()).context("write the gRPC body")?;
    let mut rows = Vec::new();
    let direct = |port| Target {
        port,
        host: format!("127.0.0.1:{port}"),
        proxy: false,
    };
    eprintln!("weft-bench: direct ...");
    rows.push(measure(
        opts,
        d,
        "direct",
        &direct(app),
        &direct(app),
        &direct(app_grpc),
        &mut [],
    )?);
    for (name, hops, extra) in [
        ("Weft, 1 hop (server sidecar)", 1, 0),
        ("Weft, 2 hops (client + server sidecar)", 2, 0),
        ("Weft, 2 hops, 100 more services configured", 2, 100),
    ] {
        eprintln!("weft-bench: {name} ...");
        rows.push(weft(opts, d, name, hops, extra, app, app_grpc)?);
    }
    let ports = |d: &Path| -> Result<Ports> {
        let _ = d;
        Ok(Ports {
            h1: procs::free_port()?,
            h2: procs::free_port()?,
            grpc: procs::free_port()?,
            app,
            app_grpc,
        })
    };
    if !missing.contains(&"nginx") {
        eprintln!("weft-bench: nginx ...");
        let p = ports(d)?;
        let conf = d.join("nginx.conf");
        std::fs::write(&conf, procs::nginx_conf(p, d, is_root())).context("nginx.conf")?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p").arg(d).arg("-c").arg(&conf);
        let mut g = vec![Guard::spawn("nginx", &mut cmd, d)?];
        procs::wait_200(p.h1, "/bytes/1024", "x", Duration::from_secs(10), &mut g)?;
        rows.push(measure(
            opts,
            d,
            "nginx (reverse proxy)",
            &direct(p.h1),
            &direct(p.h2),
            &direct(p.grpc),
            &mut g,
        )?);
    }
    if !missing.contains(&"haproxy") {
        eprintln!("weft-bench: haproxy ...");
        let p = ports(d)?;
        let conf = d.join("haproxy.cfg");
        std::fs::write(&conf, procs::haproxy_conf(p)).context("haproxy.cfg")?;
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&conf);
        let mut g = vec![Guard::spawn("haproxy", &mut cmd, d)?];
        procs::wait_200(p.h1, "/bytes/1024", "x", Duration::from_secs(10), &mut g)?;
        rows.push(measure(
            opts,
            d,
            "haproxy (reverse proxy)",
            &direct(p.h1),
            &direct(p.h2),
            &direct(p.grpc),
            &mut g,
        )?);
    }
    // The direct latency once more, now that every proxy ran: the
    // baseline of "added" is the calmer of the two runs.
    eprintln!("weft-bench: direct latency again ...");
    let (again, failed) = paced_latency(&direct(app), opts.secs)?;
    if let Some(d) = rows.first_mut() {
        d.lat_again = Some(again);
        if failed > 0 {
            d.notes
                .push(format!("1 000 rps evenly spaced, again: {failed} failed"));
        }
    }
    drop(backend);
    Ok(rows)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// The Weft setups: control plane, server sidecar, and a client sidecar for 2 hops.
fn weft(
    opts: &Options,
    d: &Path,
    name: &str,
    hops: u8,
    extra: usize,
    app: u16,
    app_grpc: u16,
) -> Result<Row> {
    let cfg = d.join(format!("mesh-{hops}-{extra}"));
    std::fs::create_dir_all(&cfg).context("mesh dir")?;
    let (ih, ig) = (procs::free_port()?, procs::free_port()?);
    std::fs::write(cfg.join("mesh.yaml"), procs::mesh_yaml(ih, ig, extra)).context("mesh")?;
    let control = Control::start(&opts.weft, &cfg, "100ms")?;
    let app_arg = format!("{ih}=127.0.0.1:{app},{ig}=127.0.0.1:{app_grpc}");
    let mut guards = vec![procs::weft_proxy(
        &opts.weft,
        control.xds_port,
        "bench/server",
        procs::free_port()?,
        procs::free_port()?,
        Some(&app_arg),
        d,
    )?];
    procs::wait_200(
        ih,
        "/bytes/1024",
        HOST,
        Duration::from_secs(30),
        &mut guards,
    )?;
    let (h, g) = if hops == 1 {
        let t = |port| Target {
            port,
            host: format!("{HOST}:{HTTP_PORT}"),
            proxy: false,
        };
        (t(ih), t(ig))
    } else {
        let out = procs::free_port()?;
        guards.push(procs::weft_proxy(
            &opts.weft,
            control.xds_port,
            "bench/client",
            procs::free_port()?,
            out,
            None,
            d,
        )?);
        let url = format!("http://{HOST}:{HTTP_PORT}/bytes/1024");
        procs::wait_200(out, &url, HOST, Duration::from_secs(30), &mut guards)?;
        let t = |p| Target {
            port: out,
            host: format!("{HOST}:{p}"),
            proxy: true,
        };
        (t(HTTP_PORT), t(GRPC_PORT))
    };
    let row = measure(opts, d, name, &h, &h, &g, &mut guards);
    drop(guards);
    drop(control);
    row
}

/// `helloworld.HelloRequest { name: "bench" }` in a gRPC frame.
fn grpc_request() -> Vec<u8> {
    let msg = [&[0x0a, 5][..], b"bench"].concat();
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| ProcSample::read(p).ok())
        .map(|s| s.cpu)
        .sum()
}

/// Sum of the processes' resident set now (bytes).
fn rss_now(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| ProcSample::read(p).ok())
        .map(|s| s.rss)
        .sum()
}

/// Sum of the processes' peak resident set (VmHWM, bytes).
fn rss_peak(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&p| ProcSample::read(p).ok())
        .map(|s| s.hwm)
        .sum()
}

/// Resets the processes' VmHWM to their RSS now (`/proc/PID/clear_refs`,
/// 5), so the next [`rss_peak`] is the peak of what runs in between.
/// Returns false where the kernel doesn't allow it.
fn reset_peak(pids: &[u32]) -> bool {
    pids.iter()
        .all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
}

fn pids_of(guards: &[Guard]) -> Vec<u32> {
    guards
        .iter()
        .flat_map(|g| procs::children_or_self(g.pid()))
        .collect()
}

/// Runs the four loads against one setup.
fn measure(
    opts: &Options,
    d: &Path,
    name: &str,
    h1: &Target,
    h2: &Target,
    grpc: &Target,
    guards: &mut [Guard],
) -> Result<Row> {
    let pids = pids_of(guards);
    let secs = opts.secs.to_string();
    let mut row = Row {
        name: name.into(),
        proxied: !guards.is_empty(),
        ..Row::default()
    };
    row.rss_idle = rss_now(&pids);
    // Peaks per load when the kernel lets us reset them; else over all.
    let per_load = reset_peak(&pids);
    // HTTP/1.1 max throughput: wrk, 1 thread, 64 connections.
    let path = if h1.proxy {
        format!("http://{}/bytes/1024", h1.host)
    } else {
        "/bytes/1024".into()
    };
    let script = d.join("wrk.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.path = \"{path}\"\nwrk.headers[\"Host\"] = \"{}\"\n",
            h1.host
        ),
    )
    .context("wrk.lua")?;
    let before = cpu(&pids);
    let out = tool(
        "wrk",
        &[
            "-t1",
            "-c64",
            &format!("-d{secs}s"),
            "-s",
            &script.to_string_lossy(),
            &format!("http://127.0.0.1:{}/", h1.port),
        ],
        opts.secs,
    )?;
    let spent = cpu(&pids) - before;
    let (reqs, rps, bad) = parse_wrk(&out).with_context(|| format!("wrk output:\n{out}"))?;
    row.h1_rps = rps;
    row.h1_cpu_per_k = spent / reqs.max(1.0) * 1000.0;
    row.rss_load[0] = rss_peak(&pids);
    row.rss = row.rss_load[0];
    if per_load {
        reset_peak(&pids);
    }
    if bad > 0 {
        row.notes.push(format!("HTTP/1.1: {bad} failed"));
    }
    // HTTP/2: h2load, 1 thread, 64 connections, 10 streams each.
    let before = cpu(&pids);
    let url = format!("http://{}/bytes/1024", h2.host);
    let out = h2load(h2, &url, &["-c64", "-m10", "-D", &secs], opts.secs)?;
    let spent = cpu(&pids) - before;
    let (reqs, rps, bad) = parse_h2load(&out).with_context(|| format!("h2load output:\n{out}"))?;
    row.h2_rps = rps;
    row.h2_cpu_per_k = spent / reqs.max(1.0) * 1000.0;
    row.rss_load[1] = rss_peak(&pids);
    row.rss = row.rss.max(row.rss_load[1]);
    if bad > 0 {
        row.notes.push(format!("HTTP/2: {bad} failed"));
    }
    // gRPC unary over h2c.
    let url = format!("http://{}/helloworld.Greeter/SayHello", grpc.host);
    let body = d.join("grpc.bin");
    let out = h2load(
        grpc,
        &url,
        &[
            "-c64",
            "-m10",
            "-D",
            &secs,
            "-d",
            &body.to_string_lossy(),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
        ],
        opts.secs,
    )?;
    let (_, rps, bad) = parse_h2load(&out).with_context(|| format!("h2load output:\n{out}"))?;
    row.grpc_rps = rps;
    if bad > 0 {
        row.notes.push(format!("gRPC: {bad} failed"));
    }
    // Latency at a fixed 1 000 rps, HTTP/1.1, 10 connections: evenly
    // spaced (one request a millisecond), then h2load's bursts.
    let (lat, failed) = paced_latency(h1, opts.secs)?;
    if failed > 0 {
        row.notes
            .push(format!("1 000 rps evenly spaced: {failed} failed"));
    }
    row.lat = lat;
    // h2load: 10 connections × 100 rps, every request logged.
    let log = d.join("latency.tsv");
    let url = format!("http://{}/bytes/1024", h1.host);
    let log_arg = format!("--log-file={}", log.display());
    let out = h2load(
        h1,
        &url,
        &["--h1", "-c10", "--rps=100", "-D", &secs, &log_arg],
        opts.secs,
    )?;
    let (_, _, bad) = parse_h2load(&out).with_context(|| format!("h2load output:\n{out}"))?;
    if bad > 0 {
        row.notes.push(format!("1 000 rps in bursts: {bad} failed"));
    }
    let text = std::fs::read_to_string(&log).context("read the h2load log")?;
    row.lat_burst = percentiles(&text, &[0.50, 0.99, 0.999]);
    row.rss = row.rss.max(rss_peak(&pids));
    for g in guards.iter_mut() {
        g.alive()?;
    }
    Ok(row)
}

/// HTTP/1.1 at an evenly spaced 1 000 rps over 10 connections for `secs`
/// ([`crate::paced`]): p50, p99, p99.9 (ms) and how many failed.
fn paced_latency(h1: &Target, secs: u64) -> Result<([f64; 3], u64)> {
    let target = if h1.proxy {
        format!("http://{}/bytes/1024", h1.host)
    } else {
        "/bytes/1024".to_string()
    };
    let paced = crate::paced::run(&crate::paced::Paced {
        port: h1.port,
        target,
        host: h1.host.clone(),
        rate: 1000,
        conns: 10,
        duration: Duration::from_secs(secs),
    })?;
    let lat = crate::paced::percentiles(&paced.latencies_us, &[0.50, 0.99, 0.999]);
    Ok((lat, paced.failed))
}

/// h2load against `t`, via `--connect-to` when `t` is an HTTP proxy (the
/// URL keeps the service's authority).
fn h2load(t: &Target, url: &str, args: &[&str], secs: u64) -> Result<String> {
    let mut all: Vec<String> = vec!["-t1".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    if t.proxy || !url.contains("127.0.0.1") {
        all.push(format!("--connect-to=127.0.0.1:{}", t.port));
    }
    all.push(url.into());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    tool("h2load", &refs, secs)
}

/// Runs a load tool, killing it if it runs 30 s past its duration.
fn tool(name: &str, args: &[&str], secs: u64) -> Result<String> {
    let out = Command::new("timeout")
        .args(["-s", "KILL", &(secs + 30).to_string(), name])
        .args(args)
        .output()
        .with_context(|| format!("run {name}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{name} {args:?} failed ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// wrk: (requests, requests/s, non-2xx + socket errors).
pub fn parse_wrk(out: &str) -> Option<(f64, f64, u64)> {
    let reqs = out
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let mut bad = 0;
    for l in out.lines() {
        if let Some(v) = l.trim().strip_prefix("Non-2xx or 3xx responses:") {
            bad += v.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(v) = l.trim().strip_prefix("Socket errors:") {
            bad += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some((reqs, rps, bad))
}

/// h2load: (requests done, requests/s, failed + errored + non-2xx).
pub fn parse_h2load(out: &str) -> Option<(f64, f64, u64)> {
    let rps = out
        .lines()
        .find(|l| l.starts_with("finished in"))?
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let req = out.lines().find(|l| l.starts_with("requests:"))?;
    let num = |key: &str| -> Option<u64> {
        req.split(',')
            .find(|p| p.trim().ends_with(key))?
            .split_whitespace()
            .find_map(|w| w.parse().ok())
    };
    let status = out.lines().find(|l| l.starts_with("status codes:"))?;
    let s2xx: u64 = status
        .split(',')
        .find(|p| p.contains("2xx"))?
        .split_whitespace()
        .find_map(|w| w.parse().ok())?;
    let done = num("done")?;
    Some((
        done as f64,
        rps,
        num("failed")? + num("errored")? + done.saturating_sub(s2xx),
    ))
}

/// Percentiles (ms) of the third column (µs) of an h2load `--log-file`.
pub fn percentiles(log: &str, qs: &[f64; 3]) -> [f64; 3] {
    let v: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    crate::paced::percentiles(&v, qs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_output() {
        let wrk = "  Latency   1.00ms\n  120000 requests in 10.00s, 140.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 3\nRequests/sec:  12000.50\n";
        assert_eq!(parse_wrk(wrk), Some((120000.0, 12000.5, 6)));
        let h2 = "finished in 10.00s, 25000.10 req/s, 26.00MB/s\nrequests: 250001 total, 250001 started, 250000 done, 249990 succeeded, 10 failed, 0 errored, 0 timeout\nstatus codes: 249990 2xx, 0 3xx, 0 4xx, 10 5xx\n";
        assert_eq!(parse_h2load(h2), Some((250000.0, 25000.1, 20)));
        let log: String = (1..=1000).map(|i| format!("0\t200\t{i}\n")).collect();
        assert_eq!(percentiles(&log, &[0.5, 0.99, 0.999]), [0.5, 0.99, 0.999]);
        assert_eq!(grpc_request(), b"\0\0\0\0\x07\x0a\x05bench");
    }
}
