//! WorkloadGroup auto-registration as a user runs it: a real
//! `weft control` with a ServiceEntry selecting `app: vm` and a
//! WorkloadGroup of that label (no WorkloadEntry for the VM), a
//! weft-sample app behind `weft proxy --auto-register-group vm`, and a
//! client proxy that curl reaches the service through.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proxy, eventually, free_port, service_entry, workload_entry};

const URL: &str = "http://vm.shop.svc.cluster.local:9080/";
const GRACE: Duration = Duration::from_secs(1);

/// One GET through the proxy on `outbound`: status and body.
fn get(outbound: u16) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-x", &format!("http://127.0.0.1:{outbound}"), URL])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The `/debug/configz` entry of WorkloadEntry `shop/NAME`, if in force.
fn configz_entry(debug: u16, name: &str) -> Option<serde_json::Value> {
    let configz: serde_json::Value =
        serde_json::from_str(&common::curl(debug, "/debug/configz")).expect("configz json");
    configz["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "WorkloadEntry" && r["namespace"] == "shop" && r["name"] == name)
        .cloned()
}

#[test]
fn a_vm_joins_from_its_workload_group_and_leaves_after_the_grace_period() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = weft_sample::Config::new("vm");
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let app = sample.http_addr().expect("http address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending()).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let group = format!(
        r#"apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: vm, namespace: shop}}
spec:
  metadata: {{labels: {{version: v1}}}}
  template: {{serviceAccount: vm, ports: {{http: {port}}}, labels: {{app: vm}}}}
---
"#
    );
    let mesh = format!(
        "{}{group}{}",
        service_entry("shop", "vm", "vm"),
        workload_entry("shop", "client", "client", free_port(), "")
    );
    std::fs::write(dir.path().join("mesh.yaml"), mesh).expect("write config");
    let grace = format!("{}ms", GRACE.as_millis());
    let (_control, xds, debug) =
        common::start_with(dir.path(), &["--workload-entry-grace-period", &grace]);
    let client = Proxy::ready(xds, "shop/client", &[]);
    assert_eq!(get(client.outbound).0, 503, "no VM yet");

    // The VM's proxy names only its namespace and group.
    let app = app.to_string();
    let vm = Proxy::ready(
        xds,
        "shop",
        &["--auto-register-group", "vm", "--app", app.as_str()],
    );
    eventually(Duration::from_secs(20), "the client reaches the VM", || {
        let (status, body) = get(client.outbound);
        status == 200 && body.starts_with("vm ")
    });
    let entry = configz_entry(debug, "vm-127.0.0.1").expect("the entry in configz");
    assert_eq!(
        entry["source"],
        "auto-registered from WorkloadGroup shop/vm"
    );
    let syncz = common::curl(debug, "/debug/syncz");
    assert!(
        syncz.contains("sidecar~127.0.0.1~vm-127.0.0.1.shop~shop.svc.cluster.local"),
        "{syncz}"
    );

    // The VM goes: its entry is kept for the grace period, then removed.
    drop(vm);
    let gone = Instant::now();
    eventually(Duration::from_secs(20), "the entry removed", || {
        configz_entry(debug, "vm-127.0.0.1").is_none()
    });
    assert!(
        gone.elapsed() >= GRACE,
        "removed after {:?}",
        gone.elapsed()
    );
    assert_eq!(get(client.outbound).0, 503);
}
