//! Upstream pools follow the config: a cluster removed by xDS has its
//! idle upstream connections closed (Envoy drains a removed cluster's
//! pools), while the other clusters keep theirs; a DestinationRule's
//! `tcp.maxConnectionDuration` makes the proxy replace its upstream
//! connections as they reach that age. A real `weft control`
//! watching a directory, a client `weft proxy` in explicit mode, and two
//! plain HTTP/1.1 keep-alive backends that count their connections.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Proxy, eventually};

/// A keep-alive HTTP/1.1 server answering `ok` to every request; it
/// counts the connections it accepted and those its peer closed.
struct Backend {
    port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, c) = (accepted.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                std::thread::spawn(move || {
                    answer(stream);
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            port,
            accepted,
            closed,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Answers each request head (no bodies here) until the peer closes.
fn answer(mut s: TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            got.drain(..end + 4);
            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
        }
    }
}

fn service(name: &str, port: u16) -> String {
    format!(
        r#"{}apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-1, namespace: pools}}
spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: {name}}}}}
---
"#,
        common::service_entry("pools", name, name)
    )
}

fn mesh(dir: &Path, services: &[(&str, u16)]) {
    mesh_with(dir, services, "")
}

/// [`mesh`], with `more` (e.g. DestinationRules) at the end.
fn mesh_with(dir: &Path, services: &[(&str, u16)], more: &str) {
    let mut yaml = String::from(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: client, namespace: pools}\nspec: {address: 127.0.0.1, labels: {app: client}}\n---\n",
    );
    for (name, port) in services {
        yaml.push_str(&service(name, *port));
    }
    yaml.push_str(more);
    // Written whole, then moved: the watcher never reads half a file.
    let tmp = dir.join(".mesh.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write mesh");
    std::fs::rename(&tmp, dir.join("mesh.yaml")).expect("move mesh");
}

/// A GET of `name`'s service through the proxy: the status.
fn get(proxy: u16, name: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-x", &format!("http://127.0.0.1:{proxy}")])
        .arg(format!("http://{name}.pools.svc.cluster.local:9080/"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_removed_clusters_idle_upstream_connections_are_closed() {
    let (gone, kept) = (Backend::start(), Backend::start());
    let dir = tempfile::tempdir().expect("tempdir");
    mesh(dir.path(), &[("gone", gone.port), ("kept", kept.port)]);
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::ready(xds, "pools/client", &[]);
    for name in ["gone", "kept"] {
        eventually(Duration::from_secs(10), "the service is routed", || {
            get(client.outbound, name) == 200
        });
    }
    // The upstream connections stay pooled, idle, after curl is gone.
    assert_eq!((gone.accepted(), kept.accepted()), (1, 1));
    assert_eq!((gone.closed(), kept.closed()), (0, 0));
    // "gone" leaves the config: its idle connection is closed soon.
    mesh(dir.path(), &[("kept", kept.port)]);
    eventually(
        Duration::from_secs(10),
        "the removed cluster's idle connection closes",
        || gone.closed() == 1,
    );
    assert_ne!(get(client.outbound, "gone"), 200, "no route any more");
    // "kept" keeps its connection: the next request reuses it.
    assert_eq!(get(client.outbound, "kept"), 200);
    assert_eq!((kept.accepted(), kept.closed()), (1, 0));
}

#[test]
fn max_connection_duration_replaces_upstream_connections_without_failing_requests() {
    let (aging, steady) = (Backend::start(), Backend::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: aging, namespace: pools}
spec:
  host: aging.pools.svc.cluster.local
  trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1s}}}
---
"#;
    mesh_with(
        dir.path(),
        &[("aging", aging.port), ("steady", steady.port)],
        rule,
    );
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::ready(xds, "pools/client", &[]);
    for name in ["aging", "steady"] {
        eventually(Duration::from_secs(10), "the service is routed", || {
            get(client.outbound, name) == 200
        });
    }
    // A request to each every 100 ms for 3.5 s: 35 each, paced.
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for i in 0..35u32 {
        for name in ["aging", "steady"] {
            let status = get(client.outbound, name);
            if status != 200 {
                failed.push((i, name, status));
            }
        }
        let next = Duration::from_millis(100) * (i + 1);
        std::thread::sleep(next.saturating_sub(started.elapsed()));
    }
    let lasted = started.elapsed();
    eprintln!(
        "in {lasted:?}: aging backend {} connections accepted, {} closed; steady backend {}",
        aging.accepted(),
        aging.closed(),
        steady.accepted()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // A connection lives 1 s: over 3.5 s the aging backend sees a new
    // one about every second (4 when requests keep their pace; 3 leaves
    // room for a slow machine); the other keeps its one.
    assert!(
        aging.accepted() >= 3,
        "{} connections to the aging backend in {lasted:?}",
        aging.accepted()
    );
    assert_eq!(steady.accepted(), 1);
    eventually(Duration::from_secs(5), "the old ones closed", || {
        aging.closed() + 1 >= aging.accepted()
    });
    let (_, stats) = client.admin_get("/stats");
    let reached = stats
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "cluster.outbound|9080||aging.pools.svc.cluster.local.upstream_cx_max_duration_reached: ",
            )?
            .trim()
            .parse::<u64>()
            .ok()
        })
        .unwrap_or(0);
    assert!(
        reached + 1 >= aging.accepted() as u64,
        "upstream_cx_max_duration_reached {reached} for {} connections",
        aging.accepted()
    );
}
