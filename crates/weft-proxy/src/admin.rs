//! The admin API on `--admin`: readiness (`/ready`, `/healthz/ready`:
//! 200 once the first whole config is applied, 503 before), `/config_dump`
//! (the proxy's own model as JSON), `/clusters` and `/listeners` (Envoy's
//! text formats: endpoints' health flags, `/failed_outlier_check` for an
//! ejected one, circuit breaker limits), `/stats` (with each cluster's
//! breaker and outlier counters), and `/quitquitquit` (drain and exit).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::listener::{NetworkFilter, Routes};
use crate::route::{Action, RouteTable, Target};
use crate::snapshot::Snapshot;
use crate::stats::HttpStats;
use crate::xds::XdsStatus;

/// What the admin API reads.
#[derive(Debug)]
pub struct Admin {
    /// The config in force.
    pub config: Arc<ArcSwap<Snapshot>>,
    /// Whether the first whole config is in.
    pub ready: watch::Receiver<bool>,
    /// The xDS client's status.
    pub xds: Arc<XdsStatus>,
    /// Outbound counters.
    pub outbound: Arc<HttpStats>,
    /// Inbound counters.
    pub inbound: Arc<HttpStats>,
    /// The effective settings, as JSON.
    pub settings: Value,
    /// Set to start draining.
    pub quit: watch::Sender<bool>,
    /// Whether draining has started (readiness turns 503).
    pub draining: watch::Receiver<bool>,
}

/// Serves the admin API on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/ready", get(ready))
        .route("/healthz/ready", get(ready))
        .route("/config_dump", get(config_dump))
        .route("/clusters", get(clusters))
        .route("/listeners", get(listeners))
        .route("/stats", get(stats))
        .route("/quitquitquit", post(quit))
        .with_state(admin);
    run(listener, app, "admin", shutdown).await;
}

/// Serves readiness alone on `listener` (istio-agent's 15021: kubelet's
/// probes reach it on the pod's address, where the admin API stays on
/// loopback) until `shutdown` fires: `/healthz/ready`, as on the admin
/// API.
pub async fn serve_readiness(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz/ready", get(ready))
        .with_state(admin);
    run(listener, app, "readiness", shutdown).await;
}

async fn run(listener: TcpListener, app: Router, what: &str, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(target: "weft::admin", error = %e, "{what} server failed");
    }
}

/// The address the admin API is served on, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

async fn ready(State(a): State<Arc<Admin>>) -> impl IntoResponse {
    if *a.draining.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
    } else if *a.ready.borrow() {
        (StatusCode::OK, "LIVE\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "PRE_INITIALIZING: no config from the control plane yet\n",
        )
    }
}

async fn quit(State(a): State<Arc<Admin>>) -> impl IntoResponse {
    tracing::info!(target: "weft::admin", "/quitquitquit: draining");
    let _ = a.quit.send(true);
    "OK\n"
}

async fn stats(State(a): State<Arc<Admin>>) -> String {
    let mut out = String::new();
    a.outbound.render("http.outbound", &mut out);
    a.inbound.render("http.inbound", &mut out);
    let x = &a.xds;
    let _ = writeln!(
        out,
        "xds.connected: {}",
        u8::from(x.connected.load(Ordering::Relaxed))
    );
    let _ = writeln!(out, "xds.connects: {}", x.connects.load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "xds.update_success: {}",
        x.applied.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "xds.update_rejected: {}",
        x.rejected.load(Ordering::Relaxed)
    );
    let s = a.config.load_full();
    let mut names: Vec<&String> = s.clusters.keys().collect();
    names.sort();
    for name in names {
        if let Some(c) = s.cluster(name) {
            cluster_stats(name, c, &mut out);
        }
    }
    out
}

/// A cluster's circuit breaker, retry and outlier detection counters, Envoy's
/// names under `cluster.<name>.`.
fn cluster_stats(name: &str, c: &crate::snapshot::ClusterEntry, out: &mut String) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let b = &c.breakers;
    let lines = [
        ("upstream_rq_active", u64::from(b.active_requests())),
        (
            "upstream_rq_pending_active",
            u64::from(b.pending_requests()),
        ),
        ("upstream_cx_overflow", get(&b.cx_overflow)),
        ("upstream_rq_pending_overflow", get(&b.rq_pending_overflow)),
        ("upstream_rq_retry", get(&b.rq_retry)),
        ("upstream_rq_retry_success", get(&b.rq_retry_success)),
        (
            "upstream_rq_retry_limit_exceeded",
            get(&b.rq_retry_limit_exceeded),
        ),
        ("upstream_rq_retry_overflow", get(&b.rq_retry_overflow)),
        (
            "upstream_cx_max_duration_reached",
            get(&b.cx_max_duration_reached),
        ),
    ];
    for (stat, value) in lines {
        let _ = writeln!(out, "cluster.{name}.{stat}: {value}");
    }
    let Some(d) = c.detector() else { return };
    let o = &c.outlier_stats;
    let _ = writeln!(
        out,
        "cluster.{name}.outlier_detection.ejections_active: {}",
        d.ejected()
    );
    let _ = writeln!(
        out,
        "cluster.{name}.outlier_detection.ejections_enforced_total: {}",
        get(&o.enforced_total)
    );
    let _ = writeln!(
        out,
        "cluster.{name}.outlier_detection.ejections_overflow: {}",
        get(&o.overflow)
    );
    for r in crate::outlier::Reason::ALL {
        let i = r as usize;
        let _ = writeln!(
            out,
            "cluster.{name}.outlier_detection.ejections_enforced_{}: {}",
            r.as_str(),
            get(&o.enforced[i])
        );
        let _ = writeln!(
            out,
            "cluster.{name}.outlier_detection.ejections_detected_{}: {}",
            r.as_str(),
            get(&o.detected[i])
        );
    }
}

async fn clusters(State(a): State<Arc<Admin>>) -> String {
    let s = a.config.load_full();
    let mut names: Vec<&String> = s.clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let Some(c) = s.cluster(name) else { continue };
        let _ = writeln!(out, "{name}::observability_name::{name}");
        let l = &c.breakers.limits;
        for (limit, value) in [
            ("max_connections", l.max_connections),
            ("max_pending_requests", l.max_pending_requests),
            ("max_requests", l.max_requests),
            ("max_retries", l.max_retries),
        ] {
            let _ = writeln!(out, "{name}::default_priority::{limit}::{value}");
        }
        if let Some(o) = &c.cluster.outlier {
            let _ = writeln!(
                out,
                "{name}::outlier::ejections_active::{}",
                c.detector().map_or(0, |d| d.ejected())
            );
            let _ = writeln!(
                out,
                "{name}::outlier::base_ejection_time_ms::{}",
                o.base_ejection_time.as_millis()
            );
        }
        for e in &c.assignment.endpoints {
            let addr = &e.address;
            let health = health_flags(e);
            let _ = writeln!(out, "{name}::{addr}::rq_active::{}", e.active_requests());
            let _ = writeln!(out, "{name}::{addr}::health_flags::{health}");
            let _ = writeln!(out, "{name}::{addr}::weight::{}", e.weight);
            let _ = writeln!(out, "{name}::{addr}::priority::{}", e.priority);
            if !e.locality.is_empty() {
                let _ = writeln!(out, "{name}::{addr}::locality::{}", e.locality);
            }
        }
    }
    out
}

/// An endpoint's health flags as Envoy's `/clusters` prints them.
fn health_flags(e: &crate::endpoint::Endpoint) -> String {
    let mut flags = String::new();
    if e.outlier.is_ejected() {
        flags.push_str("/failed_outlier_check");
    }
    if !e.healthy {
        flags.push_str("/failed_eds_health");
    }
    if flags.is_empty() {
        flags.push_str("healthy");
    }
    flags
}

async fn listeners(State(a): State<Arc<Admin>>) -> String {
    let s = a.config.load_full();
    let mut out = String::new();
    for l in s.parts.listeners.values() {
        let addr = l.address.map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, "{}::{addr}", l.name);
    }
    out
}

async fn config_dump(State(a): State<Arc<Admin>>) -> Json<Value> {
    let s = a.config.load_full();
    let clusters: Vec<Value> = s
        .parts
        .clusters
        .values()
        .map(|c| {
            let entry = s.cluster(&c.name);
            let endpoints = entry
                .map(|e| e.assignment.endpoints.clone())
                .unwrap_or_default();
            let levels = entry.map(|e| e.balancer().levels()).unwrap_or_default();
            json!({
                "name": c.name,
                "discovery": c.discovery,
                "lb_policy": c.lb_policy,
                "lb": c.lb,
                "priority_levels": levels,
                "protocol": c.protocol,
                "connect_timeout_ms": c.connect_timeout.as_millis() as u64,
                "circuit_breakers": c.limits,
                "outlier_detection": c.outlier,
                "endpoints": endpoints.iter().map(|e| json!({
                    "address": e.address.to_string(),
                    "weight": e.weight,
                    "healthy": e.healthy,
                    "ejected": e.outlier.is_ejected(),
                    "priority": e.priority,
                    "locality": e.locality,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let listeners: Vec<Value> = s
        .parts
        .listeners
        .values()
        .map(|l| {
            json!({
                "name": l.name,
                "address": l.address.map(|a| a.to_string()),
                "bind": l.bind,
                "direction": l.direction,
                "filter_chains": l.chains.iter().chain(l.default_chain.as_ref()).map(|c| json!({
                    "name": c.name,
                    "destination_port": c.destination_port,
                    "server_names": c.server_names,
                    "transport_protocol": c.transport_protocol,
                    "application_protocols": c.application_protocols,
                    "filter": match &c.filter {
                        NetworkFilter::Http(Routes::Rds(n)) => json!({"http": {"rds": n}}),
                        NetworkFilter::Http(Routes::Inline(t)) => json!({"http": {"routes": routes(t)}}),
                        NetworkFilter::Tcp(t) => json!({"tcp": target(t)}),
                    },
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let route_configs: Vec<Value> = s.parts.routes.values().map(|t| routes(t)).collect();
    Json(json!({
        "settings": a.settings,
        "ready": *a.ready.borrow(),
        "versions": s.parts.versions,
        "last_rejection": **a.xds.last_rejection.load(),
        "clusters": clusters,
        "listeners": listeners,
        "routes": route_configs,
    }))
}

fn target(t: &Target) -> Value {
    match t {
        Target::Cluster(c) => json!({"cluster": c}),
        Target::Weighted { clusters, .. } => json!({
            "weighted_clusters": clusters.iter().map(|c| json!({"name": c.name, "weight": c.weight})).collect::<Vec<_>>()
        }),
    }
}

fn routes(t: &RouteTable) -> Value {
    json!({
        "name": t.name,
        // With VHDS: the virtual hosts are VHDS's, put together with it.
        "vhds": t.vhds(),
        "virtual_hosts": t.virtual_hosts.iter().map(|v| json!({
            "name": v.name,
            "domains": v.domains,
            "routes": v.routes.iter().map(|r| json!({
                "name": r.name,
                "match": format!("{:?}", r.matcher),
                "action": match &r.action {
                    Action::Forward(f) => json!({
                        "forward": target(&f.target),
                        "timeout_ms": f.timeout.map(|t| t.as_millis() as u64),
                        "prefix_rewrite": f.prefix_rewrite,
                        "host_rewrite": f.host_rewrite,
                    }),
                    Action::Direct { status, .. } => json!({"direct_response": status.as_u16()}),
                    Action::Redirect(rd) => json!({"redirect": rd.status.as_u16()}),
                },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
