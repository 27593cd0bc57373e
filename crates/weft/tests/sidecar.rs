//! The Sidecar resource end to end, in explicit mode on loopback: a real
//! `weft control`, a weft-sample app served in-process as the service
//! `web.shop` (on the app's own port), and three `weft proxy`s of one
//! namespace that curl uses (with `-x`, or dialling a bound egress
//! listener). The mesh allows any outbound traffic (no mesh config); one
//! Sidecar makes that REGISTRY_ONLY for the proxy it selects, another
//! puts a proxy's listener for the port on its own address.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{Proxy, eventually};

/// One GET with curl (through `proxy` if given, with `host` as `Host` if
/// given): the status (0 if curl failed).
fn get(url: &str, proxy: Option<u16>, host: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ]);
    if let Some(p) = proxy {
        cmd.args(["-x", &format!("http://127.0.0.1:{p}")]);
    }
    if let Some(h) = host {
        cmd.args(["-H", &format!("Host: {h}")]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `web.shop` on the app's port `port` (its endpoint the app itself), the
/// three client workloads, and the two Sidecars.
fn mesh(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: shop}}
spec:
  hosts: [web.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: open, namespace: shop}}
spec: {{address: 127.0.0.1, labels: {{app: open}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: locked, namespace: shop}}
spec: {{address: 127.0.0.1, labels: {{app: locked}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: bound, namespace: shop}}
spec: {{address: 127.0.0.1, labels: {{app: bound}}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: locked, namespace: shop}}
spec:
  workloadSelector: {{labels: {{app: locked}}}}
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: bound, namespace: shop}}
spec:
  workloadSelector: {{labels: {{app: bound}}}}
  egress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: 127.0.0.2
    hosts: ["./*"]
"#
    )
}

#[test]
fn a_sidecar_blocks_unknown_hosts_for_its_proxy_and_binds_its_egress_listener() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = weft_sample::Config::new("web");
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let app = sample.http_addr().expect("http address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending::<()>()).await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), mesh(app.port())).expect("write mesh");
    let (_control, xds, _debug) = common::start(dir.path());
    let open = Proxy::ready(xds, "shop/open", &[]);
    let locked = Proxy::ready(xds, "shop/locked", &[]);
    let bound = Proxy::ready(xds, "shop/bound", &[]);
    let known = format!("http://web.shop.svc.cluster.local:{}/", app.port());
    // A host no service claims, on the service's port: the catch-all.
    let unknown = format!("http://127.0.0.1:{}/", app.port());
    eventually(Duration::from_secs(20), "both proxies route web", || {
        get(&known, Some(open.outbound), None) == 200
            && get(&known, Some(locked.outbound), None) == 200
    });
    // The mesh's ALLOW_ANY: passed through to the app.
    assert_eq!(get(&unknown, Some(open.outbound), None), 200);
    // The Sidecar's REGISTRY_ONLY: Istio's block_all, 502.
    assert_eq!(get(&unknown, Some(locked.outbound), None), 502);
    // The bound egress listener: the app dials 127.0.0.2:<port> itself;
    // the port's routes are there, and no longer behind the proxy port.
    let at_bind = format!("http://127.0.0.2:{}/", app.port());
    let host = format!("web.shop.svc.cluster.local:{}", app.port());
    eventually(
        Duration::from_secs(20),
        "the bound listener routes web",
        || get(&at_bind, None, Some(&host)) == 200,
    );
    assert_eq!(get(&known, Some(bound.outbound), None), 404);
    drop((open, locked, bound));
    rt.shutdown_background();
}
