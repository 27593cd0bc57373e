//! The acceptance test of the control plane: a third-party xDS client —
//! Python grpcio's built-in `xds:///` resolver — routed by `weft control`
//! between two real gRPC greeter backends (v1, v2):
//! - an 80/20 VirtualService split holds over 1000 calls (± 5 %);
//! - a header-match rule sends marked calls to v2 only;
//! - editing the YAML to 0/100 moves all traffic within 2 s, same client;
//! - removing a backend's WorkloadEntry stops traffic to it.
//!
//! The venv with grpcio is made by `scripts/setup.sh` (`.venv/`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Control, start};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs grpcio into .venv)",
        p.display()
    );
    p
}

fn greeter_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_xds/greeter.py")
}

/// A greeter backend; killed when dropped.
struct Backend(Child, u16);

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn backend(name: &str) -> Backend {
    let mut child = Command::new(python())
        .arg(greeter_script())
        .args(["serve", "0", name])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start greeter");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("greeter says it is serving");
    let port = line
        .trim()
        .strip_prefix("serving ")
        .and_then(|p| p.parse().ok())
        .expect("greeter port");
    Backend(child, port)
}

fn mesh(v1: u16, v2: u16, weights: (u32, u32), with_v1: bool) -> String {
    let v1_entry = if with_v1 {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: greeter-v1, namespace: shop}}\nspec: {{address: 127.0.0.1, ports: {{grpc: {v1}}}, labels: {{app: greeter, version: v1}}}}\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: greeter, namespace: shop}}
spec:
  hosts: [greeter.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: greeter}}}}
{v1_entry}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: greeter-v2, namespace: shop}}
spec: {{address: 127.0.0.1, ports: {{grpc: {v2}}}, labels: {{app: greeter, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: greeter, namespace: shop}}
spec:
  host: greeter
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: greeter, namespace: shop}}
spec:
  hosts: [greeter]
  http:
  - match: [{{headers: {{x-canary: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: greeter, subset: v2}}}}]
  - route:
    - {{destination: {{host: greeter, subset: v1}}, weight: {}}}
    - {{destination: {{host: greeter, subset: v2}}, weight: {}}}
"#,
        weights.0, weights.1
    )
}

fn bootstrap(dir: &Path, xds_port: u16) -> PathBuf {
    let path = dir.join("bootstrap.json");
    let json = format!(
        r#"{{"xds_servers":[{{"server_uri":"127.0.0.1:{xds_port}","channel_creds":[{{"type":"insecure"}}],"server_features":["xds_v3"]}}],
"node":{{"id":"sidecar~127.0.0.1~client.shop~shop.svc.cluster.local","metadata":{{"GENERATOR":"grpc","NAMESPACE":"shop"}}}}}}"#
    );
    std::fs::write(&path, json).expect("bootstrap");
    path
}

const TARGET: &str = "xds:///greeter.shop.svc.cluster.local:50051";

/// Runs `greeter.py call`; returns (v1, v2, errors, last error).
fn call(bootstrap: &Path, n: u32, metadata: &[&str]) -> (u64, u64, u64, String) {
    let out = Command::new(python())
        .arg(greeter_script())
        .args(["call", TARGET, &n.to_string()])
        .args(metadata)
        .env("GRPC_XDS_BOOTSTRAP", bootstrap)
        .output()
        .expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client output {stdout:?}: {e}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let count = |k: &str| v["replies"][k].as_u64().unwrap_or(0);
    (
        count("v1"),
        count("v2"),
        v["errors"].as_u64().unwrap_or(0),
        v["last_error"].to_string(),
    )
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Starts `greeter.py follow` for `seconds`; its lines are `EPOCH_MS REPLY`.
/// A client calling without pause on one channel for some seconds: its
/// calls (`EPOCH_MS REPLY`) read as they come.
struct Follower {
    child: Child,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(u128, String)>>>,
    reader: std::thread::JoinHandle<()>,
}

fn follow(bootstrap: &Path, seconds: u32) -> Follower {
    use std::io::BufRead;
    let mut child = Command::new(python())
        .arg(greeter_script())
        .args(["follow", TARGET, &seconds.to_string()])
        .env("GRPC_XDS_BOOTSTRAP", bootstrap)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start follower");
    let stdout = child.stdout.take().expect("stdout");
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some((t, r)) = line.split_once(' ')
                && let Ok(t) = t.parse()
            {
                seen.lock().expect("calls").push((t, r.to_string()));
            }
        }
    });
    Follower {
        child,
        calls,
        reader,
    }
}

impl Follower {
    /// Waits (10 s at most) until `n` calls were answered by `reply`.
    fn wait_for(&self, n: usize, reply: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = self
                .calls
                .lock()
                .expect("calls")
                .iter()
                .filter(|(_, r)| r == reply)
                .count();
            if got >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the follower got {got} of {n} calls from {reply}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every call of the follower, once it has ended.
fn timeline(f: Follower) -> Vec<(u128, String)> {
    let Follower {
        mut child,
        calls,
        reader,
    } = f;
    child.wait().expect("follower");
    reader.join().expect("reader");
    std::mem::take(&mut *calls.lock().expect("calls"))
}

#[test]
fn grpcio_xds_client_follows_weft_routing() {
    let v1 = backend("v1");
    let v2 = backend("v2");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    std::fs::write(
        config.join("greeter.yaml"),
        mesh(v1.1, v2.1, (80, 20), true),
    )
    .expect("write");
    let (_control, xds, _debug): (Control, u16, u16) = start(&config);
    let bootstrap = bootstrap(dir.path(), xds);

    // 80/20 over 1000 calls, ± 5 %.
    let (n1, n2, errors, last) = call(&bootstrap, 1000, &[]);
    assert_eq!(errors, 0, "{last}");
    assert!(
        (750..=850).contains(&n1) && n1 + n2 == 1000,
        "split {n1}/{n2} is not 80/20 ± 5%"
    );

    // The header rule sends marked calls to v2 only.
    let (n1, n2, errors, last) = call(&bootstrap, 50, &["x-canary=yes"]);
    assert_eq!((n1, n2, errors), (0, 50, 0), "{last}");

    // 0/100 while one client keeps calling: all of its traffic moves to v2 within 2 s.
    let follower = follow(&bootstrap, 6);
    follower.wait_for(20, "v1");
    let edited = now_ms();
    std::fs::write(
        config.join("greeter.yaml"),
        mesh(v1.1, v2.1, (0, 100), true),
    )
    .expect("write");
    let calls = timeline(follower);
    assert!(
        calls.iter().any(|(t, r)| *t < edited && r == "v1"),
        "v1 served before the edit"
    );
    let late: Vec<&String> = calls
        .iter()
        .filter(|(t, _)| *t > edited + 2000)
        .map(|(_, r)| r)
        .collect();
    assert!(
        late.len() > 20,
        "too few calls after the edit: {}",
        late.len()
    );
    assert!(
        late.iter().all(|r| *r == "v2"),
        "traffic not all on v2 2 s after the edit: {late:?}"
    );

    // A 50/50 split (so v1 surely serves some calls before its removal),
    // then remove v1's WorkloadEntry: no traffic reaches v1.
    std::fs::write(
        config.join("greeter.yaml"),
        mesh(v1.1, v2.1, (50, 50), true),
    )
    .expect("write");
    let follower = follow(&bootstrap, 6);
    follower.wait_for(20, "v1");
    let removed = now_ms();
    std::fs::write(
        config.join("greeter.yaml"),
        mesh(v1.1, v2.1, (50, 50), false),
    )
    .expect("write");
    let calls = timeline(follower);
    assert!(
        calls.iter().any(|(t, r)| *t < removed && r == "v1"),
        "v1 served before its removal"
    );
    let after: Vec<&String> = calls
        .iter()
        .filter(|(t, _)| *t > removed + 2000)
        .map(|(_, r)| r)
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|r| *r != "v1"),
        "v1 still reached after its removal: {after:?}"
    );
}
