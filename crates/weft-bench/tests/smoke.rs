//! The benchmark harness itself, kept working: a tiny fleet (5 proxies,
//! 3 services) against the real `weft` binary must sync and converge on
//! a route change and an endpoint change. Correctness only — no timing is
//! asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weft_bench::client::Protocol;
use weft_bench::mesh::Scope;
use weft_bench::xds::{self, Options};

/// The `weft` binary of this build's profile, built if needed.
///
/// `CARGO_BIN_EXE_weft` exists only inside the `weft` package, so this
/// asks cargo to build `-p weft` into the same target directory (a no-op
/// when it's fresh) and takes it from beside this test's own executable
/// (`<target>/<profile>/deps/smoke-…`).
fn weft_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("<target>").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "weft", "--bin", "weft"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build -p weft");
    assert!(status.success(), "cargo build -p weft failed");
    let weft = profile_dir.join("weft");
    assert!(weft.is_file(), "no {}", weft.display());
    weft
}

/// One run of 5 proxies × 3 services with `scope`; its checks.
fn tiny_fleet(weft: &Path, scope: Scope) -> weft_bench::xds::Outcome {
    tiny_fleet_over(weft, scope, Protocol::Sotw)
}

/// The same over `protocol`.
fn tiny_fleet_over(weft: &Path, scope: Scope, protocol: Protocol) -> weft_bench::xds::Outcome {
    let opts = Options {
        weft: weft.to_path_buf(),
        proxies: 5,
        services: 3,
        scope,
        protocol,
        route_runs: 2,
        endpoint_run: true,
        concurrency: 5,
        sync_timeout: Duration::from_secs(60),
        converge_timeout: Duration::from_secs(30),
        max_rss: 4 << 30,
        debounce_after: "20ms".into(),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let out = runtime.block_on(xds::run(&opts)).expect("benchmark run");
    assert_eq!(out.aborted, None);
    assert_eq!((out.synced, out.failed), (5, 0), "{:?}", out.error);
    // svc-0 alone (v1, v2 subsets) in client 0's namespace.
    let [cds, eds, lds, rds, vhds] = out.per_proxy;
    assert_eq!(
        vhds.0 >= 1,
        protocol == Protocol::Vhds,
        "virtual hosts {vhds:?}"
    );
    assert!(
        cds.0 >= 3 && eds.0 >= 3,
        "clusters {cds:?}, endpoints {eds:?}"
    );
    assert!(
        lds.0 >= 1 && rds.0 >= 1,
        "listeners {lds:?}, routes {rds:?}"
    );
    assert_eq!(out.routes.len(), 2);
    // Namespace visibility: the changes (to svc-0) reach the 3 proxies of
    // its namespace (svc-0's workloads) and no one else.
    let expected = match scope {
        Scope::Full => 5,
        Scope::Namespace => 3,
    };
    for push in out.routes.iter().chain(out.endpoint.iter()) {
        assert_eq!(push.converged, expected, "{push:?}");
        assert_eq!(push.expected, expected, "{push:?}");
        assert!(push.min <= push.p50 && push.p50 <= push.p99 && push.p99 <= push.max);
    }
    assert!(out.endpoint.is_some());
    assert!(out.rss_per_proxy().is_some());
    assert!(out.harness_per_client().is_some());
    out
}

#[test]
fn a_tiny_fleet_syncs_and_converges_with_either_visibility() {
    let weft = weft_binary();
    let full = tiny_fleet(&weft, Scope::Full);
    // 3 services: svc-0 (v1, v2 subsets), svc-1 (+ gRPC port), svc-2 (subsets).
    let (cds, eds) = (full.per_proxy[0], full.per_proxy[1]);
    assert!(
        cds.0 >= 6 && eds.0 >= 6,
        "clusters {cds:?}, endpoints {eds:?}"
    );
    let scoped = tiny_fleet(&weft, Scope::Namespace);
    // A Sidecar per namespace: each proxy gets its namespace's services
    // only (one of the three here), so fewer clusters and route bytes.
    assert!(
        scoped.per_proxy[0].0 < full.per_proxy[0].0,
        "clusters {:?} vs {:?}",
        scoped.per_proxy[0],
        full.per_proxy[0]
    );
    assert!(
        scoped.per_proxy[3].1 < full.per_proxy[3].1,
        "route bytes {:?} vs {:?}",
        scoped.per_proxy[3],
        full.per_proxy[3]
    );
}

#[test]
fn a_tiny_fleet_converges_over_delta_and_vhds() {
    let weft = weft_binary();
    let sotw = tiny_fleet(&weft, Scope::Full);
    let delta = tiny_fleet_over(&weft, Scope::Full, Protocol::Delta);
    let vhds = tiny_fleet_over(&weft, Scope::Full, Protocol::Vhds);
    // VHDS: a route change sends the one virtual host, not the route
    // configuration with all of them.
    let bytes = |o: &weft_bench::xds::Outcome| o.median_route().map(|p| p.bytes).unwrap_or(0);
    assert!(bytes(&vhds) > 0, "{:?}", vhds.routes);
    assert!(
        bytes(&vhds) < bytes(&sotw) && bytes(&vhds) < bytes(&delta),
        "vhds {} sotw {} delta {}",
        bytes(&vhds),
        bytes(&sotw),
        bytes(&delta)
    );
}
