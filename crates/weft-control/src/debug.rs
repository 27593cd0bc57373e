//! The control plane's debug HTTP API (Istio's 15014):
//! `/debug/syncz` (each connected proxy and, per type, the version sent,
//! ACKed or NACKed), `/debug/configz` (every resource in force — read from
//! a file, or auto-registered from a WorkloadGroup — and every problem in
//! the files), `/debug/config_dump?proxy=ID` (what one proxy
//! was sent, as Envoy's admin config dump: [`crate::config_dump`]) and
//! `/metrics` (Prometheus, with Istio's `pilot_*` names where one exists).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::watch;
use weft_config::{Diagnostic, Severity};
use weft_xds::TypeUrl;

use crate::ads::{CONVERGENCE_BUCKETS, Generation, Histogram, ProxyStatus, Stats};

/// What the debug API reads.
#[derive(Clone, Debug)]
pub struct DebugState {
    /// The ADS server's counters and proxy table.
    pub stats: Arc<Stats>,
    /// The generation in force.
    pub generations: watch::Receiver<Arc<Generation>>,
}

/// The debug API's routes.
pub fn router(state: DebugState) -> Router {
    Router::new()
        .route("/debug/syncz", get(syncz))
        .route("/debug/configz", get(configz))
        .route("/debug/config_dump", get(crate::config_dump::handler))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn syncz(State(state): State<DebugState>) -> Json<Vec<ProxyStatus>> {
    Json(state.stats.proxy_statuses())
}

/// One resource in force, for `/debug/configz`.
#[derive(Debug, Serialize)]
struct ConfigEntry {
    kind: String,
    namespace: String,
    name: String,
    /// `file`, or `auto-registered from WorkloadGroup NS/NAME` for a
    /// WorkloadEntry made for a connected proxy (no file and line then).
    source: String,
    /// The WorkloadGroup of an auto-registered entry, `NS/NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    file: String,
    line: usize,
    /// Its current document is invalid; this is the last good version.
    stale: bool,
}

#[derive(Debug, Serialize)]
struct Configz {
    version: u64,
    resources: Vec<ConfigEntry>,
    diagnostics: Vec<Diagnostic>,
}

async fn configz(State(state): State<DebugState>) -> Json<Configz> {
    let generation = state.generations.borrow().clone();
    let config = &generation.config;
    let resources = config
        .resources
        .iter()
        .map(|(key, r)| {
            let group = r
                .source
                .auto_registered_from
                .as_ref()
                .map(|g| format!("{}/{}", g.namespace, g.name));
            ConfigEntry {
                kind: key.kind.to_string(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                source: group.as_ref().map_or_else(
                    || "file".to_string(),
                    |g| format!("auto-registered from WorkloadGroup {g}"),
                ),
                group,
                file: r.source.file.display().to_string(),
                line: r.source.line,
                stale: config.stale.contains(key),
            }
        })
        .collect();
    Json(Configz {
        version: config.version,
        resources,
        diagnostics: config.diagnostics.clone(),
    })
}

async fn metrics(State(state): State<DebugState>) -> impl IntoResponse {
    let generation = state.generations.borrow().clone();
    let errors = generation
        .config
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let services: usize = generation.registry.services.values().map(Vec::len).sum();
    let text = render_metrics(&state.stats, errors, services);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The Prometheus text exposition. Written out rather than through a
/// metrics library because Istio's dashboards query counters without the
/// `_total` suffix such libraries add (`pilot_xds_pushes{type="cds"}`).
fn render_metrics(stats: &Stats, config_errors: usize, services: usize) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "pilot_xds",
        "Number of proxies connected over xDS.",
        stats.connected.load(Ordering::Relaxed),
    );
    gauge(
        "pilot_services",
        "Total services known to the control plane.",
        services as u64,
    );
    gauge(
        "weft_config_errors",
        "Errors in the config files now (their resources keep their last good version).",
        config_errors as u64,
    );
    let mut counter = |name: &str, help: &str, values: &[std::sync::atomic::AtomicU64; 6]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, t) in TypeUrl::ALL.iter().enumerate() {
            let label = t.short_name().to_ascii_lowercase();
            let _ = writeln!(
                out,
                "{name}{{type=\"{label}\"}} {}",
                values[i].load(Ordering::Relaxed)
            );
        }
    };
    counter(
        "pilot_xds_pushes",
        "xDS responses sent, by type.",
        &stats.pushes_by_type,
    );
    counter(
        "pilot_total_xds_rejects",
        "xDS responses rejected (NACKed) by proxies, by type.",
        &stats.nacks_by_type,
    );
    render_histogram(
        &mut out,
        "pilot_proxy_convergence_time",
        "Delay in seconds between a config change being published and its push being sent to a proxy.",
        &stats.convergence,
    );
    out
}

/// A Prometheus histogram: cumulative `_bucket{le}`, `_sum`, `_count`.
fn render_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let (buckets, sum, count) = h.snapshot();
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let bounds = CONVERGENCE_BUCKETS.iter().map(|b| b.to_string());
    for (le, n) in bounds.chain(["+Inf".to_string()]).zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configz_tells_auto_registered_entries_from_files() {
        use weft_registry::autoregister::{Config, Workload};
        let mesh = crate::translate::test_inputs::TestMesh::new(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: vm, namespace: shop}\nspec: {template: {labels: {app: vm}}}\n",
        );
        let (_files, rx) = watch::channel(Arc::new(mesh.config));
        let auto = weft_registry::AutoRegistry::new(rx, Config::default());
        let _vm = auto
            .connect(Workload {
                proxy: "sidecar~10.0.0.5~vm.shop~shop.svc.cluster.local".into(),
                namespace: "shop".into(),
                group: "vm".into(),
                address: "10.0.0.5".into(),
                ..Workload::default()
            })
            .expect("registers");
        let generation = Generation::new(1, auto.snapshot(), Arc::default());
        let (_publish, generations) = watch::channel(Arc::new(generation));
        let state = DebugState {
            stats: Arc::default(),
            generations,
        };
        let Json(configz) = configz(State(state)).await;
        let json = serde_json::to_value(&configz).expect("json");
        let resources = json["resources"].as_array().expect("resources");
        let find = |name: &str| {
            resources
                .iter()
                .find(|r| r["name"] == name)
                .unwrap_or_else(|| panic!("{name} in {resources:?}"))
        };
        let entry = find("vm-10.0.0.5");
        assert_eq!(entry["kind"], "WorkloadEntry");
        assert_eq!(
            entry["source"],
            "auto-registered from WorkloadGroup shop/vm"
        );
        assert_eq!(entry["group"], "shop/vm");
        assert_eq!(entry["file"], "");
        let group = find("vm");
        assert_eq!(group["source"], "file");
        assert_eq!(group["file"], "mesh.yaml");
        assert!(group.get("group").is_none(), "{group}");
    }

    #[test]
    fn metrics_use_istio_names() {
        let stats = Stats::default();
        stats.connected.store(2, Ordering::Relaxed);
        stats.pushes_by_type[1].store(7, Ordering::Relaxed);
        let text = render_metrics(&stats, 1, 5);
        assert!(text.contains("\npilot_xds 2\n"), "{text}");
        assert!(
            text.contains("pilot_xds_pushes{type=\"cds\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("pilot_total_xds_rejects{type=\"lds\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("weft_config_errors 1\n"), "{text}");
        assert!(text.contains("# TYPE pilot_xds_pushes counter"), "{text}");
        assert!(
            !text.contains("_total{") && !text.contains("_total "),
            "{text}"
        );
    }

    #[test]
    fn convergence_is_a_histogram_with_istio_buckets() {
        let stats = Stats::default();
        stats
            .convergence
            .observe(std::time::Duration::from_millis(200));
        stats.convergence.observe(std::time::Duration::from_secs(2));
        let text = render_metrics(&stats, 0, 0);
        assert!(
            text.contains("# TYPE pilot_proxy_convergence_time histogram\n"),
            "{text}"
        );
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("pilot_proxy_convergence_time_bucket"))
            .collect();
        assert_eq!(
            buckets,
            [
                "pilot_proxy_convergence_time_bucket{le=\"0.1\"} 0",
                "pilot_proxy_convergence_time_bucket{le=\"0.5\"} 1",
                "pilot_proxy_convergence_time_bucket{le=\"1\"} 1",
                "pilot_proxy_convergence_time_bucket{le=\"3\"} 2",
                "pilot_proxy_convergence_time_bucket{le=\"5\"} 2",
                "pilot_proxy_convergence_time_bucket{le=\"10\"} 2",
                "pilot_proxy_convergence_time_bucket{le=\"20\"} 2",
                "pilot_proxy_convergence_time_bucket{le=\"30\"} 2",
                "pilot_proxy_convergence_time_bucket{le=\"+Inf\"} 2",
            ]
        );
        assert!(
            text.contains("\npilot_proxy_convergence_time_sum 2.2\n"),
            "{text}"
        );
        assert!(
            text.contains("\npilot_proxy_convergence_time_count 2\n"),
            "{text}"
        );
    }
}
