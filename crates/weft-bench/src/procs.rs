//! The processes of the data-plane benchmark: the backend, Weft proxies,
//! nginx and haproxy, each killed when its guard drops (also on error), and
//! the configuration files they are started with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The host name the benchmark's service is reached by through Weft.
pub const HOST: &str = "echo.bench.svc.cluster.local";
/// Its HTTP port.
pub const HTTP_PORT: u16 = 8080;
/// Its gRPC port.
pub const GRPC_PORT: u16 = 9090;

/// A started process; it and its children killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Its children first (nginx's workers outlive a killed master).
        let pid = self.child.id();
        for kid in children_or_self(pid).into_iter().filter(|&k| k != pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &kid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guard {
    /// Spawns `cmd` (stdin closed, stderr to a log file in `dir`).
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Guard> {
        let log = std::fs::File::create(dir.join(format!("{name}.log")))
            .with_context(|| format!("create the log of {name}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        Ok(Guard {
            child,
            name: name.into(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if it has exited.
    pub fn alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited: {status}", self.name),
            Err(e) => bail!("{}: {e}", self.name),
        }
    }
}

/// A free loopback port (bound and released; another process could take it
/// in between, which on a benchmark machine is unlikely).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

/// The backend: `weft-sample --http --grpc` on the given ports.
pub fn sample(bin: &Path, http: u16, grpc: u16, dir: &Path) -> Result<Guard> {
    let mut cmd = Command::new(bin);
    cmd.args(["--name", "echo", "--http", &format!("127.0.0.1:{http}")])
        .args(["--grpc", &format!("127.0.0.1:{grpc}")])
        .env("WEFT_LOG", "warn")
        .stdout(Stdio::piped());
    let mut guard = Guard::spawn("weft-sample", &mut cmd, dir)?;
    let out = guard.child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        bail!("weft-sample did not report listening within 20 s");
    }
    Ok(guard)
}

/// `weft proxy` for `workload` with its admin and outbound on the given
/// ports, one worker thread, logging at warn.
pub fn weft_proxy(
    weft: &Path,
    xds: u16,
    workload: &str,
    admin: u16,
    outbound: u16,
    app: Option<&str>,
    dir: &Path,
) -> Result<Guard> {
    let mut cmd = Command::new(weft);
    cmd.args(["proxy", "--xds", &format!("127.0.0.1:{xds}")])
        .args(["--workload", workload, "--concurrency", "1"])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--outbound", &format!("127.0.0.1:{outbound}")])
        .env("WEFT_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(app) = app {
        cmd.args(["--app", app]);
    }
    let name = format!("weft-proxy-{}", workload.replace('/', "-"));
    Guard::spawn(&name, &mut cmd, dir)
}

/// One HTTP/1.1 GET to 127.0.0.1:`port` with request target `target` and
/// `Host: host`: the status code, if a response came within 2 s.
pub fn probe(port: u16, target: &str, host: &str) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Waits (up to `limit`) until `probe` answers 200, checking `guards` are alive.
pub fn wait_200(
    port: u16,
    target: &str,
    host: &str,
    limit: Duration,
    guards: &mut [Guard],
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        for g in guards.iter_mut() {
            g.alive()?;
        }
        let got = probe(port, target, host);
        if got == Some(200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "GET {target} (Host {host}) on port {port} gave {got:?}, not 200, within {limit:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The Weft mesh: service `echo.bench` (http 8080, grpc 9090) served by
/// WorkloadEntry `bench/server` whose proxy's inbound listens on `inbound_http`
/// and `inbound_grpc`, a `bench/client` workload, and `extra` more services
/// (each with one endpoint on a closed port) to measure memory with many
/// services configured.
pub fn mesh_yaml(inbound_http: u16, inbound_grpc: u16, extra: usize) -> String {
    let mut y = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: bench}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {HTTP_PORT}, name: http, protocol: HTTP}}, {{number: {GRPC_PORT}, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: server, namespace: bench}}
spec: {{address: 127.0.0.1, ports: {{http: {inbound_http}, grpc: {inbound_grpc}}}, labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: client, namespace: bench}}
spec: {{address: 127.0.0.1, labels: {{app: client}}}}
"
    );
    for i in 0..extra {
        y.push_str(&format!(
            "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: bench}}
spec:
  hosts: [svc-{i}.bench.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.{}, ports: {{http: 9}}}}]
",
            2 + i % 250
        ));
    }
    y
}

/// Ports a reverse proxy listens on (HTTP/1.1, h2c, gRPC over h2c) and the
/// backend's (HTTP, gRPC).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// HTTP/1.1 listener.
    pub h1: u16,
    /// h2c (prior knowledge) listener.
    pub h2: u16,
    /// gRPC (h2c) listener.
    pub grpc: u16,
    /// The backend's HTTP port.
    pub app: u16,
    /// The backend's gRPC port.
    pub app_grpc: u16,
}

/// nginx: one worker, no access log, keep-alive upstreams, files in `dir`.
pub fn nginx_conf(p: Ports, dir: &Path, as_root: bool) -> String {
    let d = dir.display();
    let user = if as_root { "user root;\n" } else { "" };
    let loc = "proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";";
    format!(
        "{user}daemon off;
worker_processes 1;
error_log {d}/nginx-error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{app}; keepalive 128; keepalive_requests 1000000; }}
  upstream grpc {{ server 127.0.0.1:{app_grpc}; keepalive 128; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:{h1}; location / {{ {loc} }} }}
  server {{ listen 127.0.0.1:{h2} http2; http2_max_requests 1000000; location / {{ {loc} }} }}
  server {{ listen 127.0.0.1:{grpc} http2; http2_max_requests 1000000; location / {{ grpc_pass grpc://grpc; }} }}
}}
",
        app = p.app,
        app_grpc = p.app_grpc,
        h1 = p.h1,
        h2 = p.h2,
        grpc = p.grpc,
    )
}

/// haproxy: one thread, HTTP mode, connection reuse to the backend.
pub fn haproxy_conf(p: Ports) -> String {
    format!(
        "global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend h1
  bind 127.0.0.1:{h1}
  default_backend app
frontend h2
  bind 127.0.0.1:{h2} proto h2
  default_backend app
frontend grpc
  bind 127.0.0.1:{grpc} proto h2
  default_backend grpc
backend app
  server s1 127.0.0.1:{app}
backend grpc
  server s1 127.0.0.1:{app_grpc} proto h2
",
        h1 = p.h1,
        h2 = p.h2,
        grpc = p.grpc,
        app = p.app,
        app_grpc = p.app_grpc,
    )
}

/// The worker processes of nginx master `pid` (its children), or `pid` itself
/// if it has none.
pub fn children_or_self(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                kids.push(child);
            }
        }
    }
    if kids.is_empty() { vec![pid] } else { kids }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_the_ports() {
        let y = mesh_yaml(4001, 4002, 100);
        assert!(y.contains("ports: {http: 4001, grpc: 4002}"));
        assert_eq!(y.matches("kind: ServiceEntry").count(), 101);
        assert!(y.contains("svc-99.bench.svc.cluster.local"));
        let p = Ports {
            h1: 1,
            h2: 2,
            grpc: 3,
            app: 4,
            app_grpc: 5,
        };
        let n = nginx_conf(p, Path::new("/tmp/x"), false);
        assert!(n.contains("listen 127.0.0.1:2 http2;") && n.contains("server 127.0.0.1:5;"));
        assert!(n.contains("worker_processes 1;") && !n.contains("user root"));
        let h = haproxy_conf(p);
        assert!(h.contains("nbthread 1") && h.contains("server s1 127.0.0.1:5 proto h2"));
        assert_eq!(children_or_self(u32::MAX), vec![u32::MAX]);
    }
}
