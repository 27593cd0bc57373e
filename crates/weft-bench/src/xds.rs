//! The control-plane benchmark: `N` simulated sidecars against one real
//! `weft control` serving a mesh of `M` services, measuring what the
//! control plane holds per connected proxy, how long the fleet takes to
//! connect and sync, and how fast a route change and an endpoint change
//! reach every proxy (file write → new version ACKed by each client).
//!
//! Every phase has a deadline, and the control plane's RSS is watched so
//! a run that would exhaust the machine stops early and says so.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use weft_xds::TypeUrl;

use crate::client::{self, Fleet, Identity, Protocol, TYPES};
use crate::control::{Control, ProcSample};
use crate::mesh::{self, Mesh, Scope};

/// How to run one benchmark.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `weft` binary.
    pub weft: PathBuf,
    /// Simulated proxies.
    pub proxies: usize,
    /// Services in the mesh.
    pub services: usize,
    /// What each proxy sees (a Sidecar per namespace or not).
    pub scope: Scope,
    /// How the simulated proxies speak xDS.
    pub protocol: Protocol,
    /// Route changes to time (the median one is reported).
    pub route_runs: usize,
    /// Whether to time an endpoint-only change too.
    pub endpoint_run: bool,
    /// Clients connecting (not yet synced) at once.
    pub concurrency: usize,
    /// Longest the whole fleet may take to connect and sync.
    pub sync_timeout: Duration,
    /// Longest one change may take to reach every client.
    pub converge_timeout: Duration,
    /// Stop the run when the control plane's RSS passes this (bytes).
    pub max_rss: u64,
    /// `weft control --debounce-after`.
    pub debounce_after: String,
}

/// What one change cost and how fast it arrived.
#[derive(Clone, Debug, Default)]
pub struct Push {
    /// Clients that ACKed the new version in time.
    pub converged: usize,
    /// Clients expected to.
    pub expected: usize,
    /// Seconds from the file write to the first, median, 99th percentile
    /// and last client's ACK.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Control-plane CPU seconds (user + system) from the write until all converged.
    pub cpu: f64,
    /// Control-plane RSS when all had converged (bytes).
    pub rss: u64,
    /// Encoded bytes of the resources in the response carrying the change
    /// (the first client's).
    pub bytes: u64,
}

/// The result of one benchmark run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Simulated proxies asked for.
    pub proxies: usize,
    /// Services in the mesh.
    pub services: usize,
    /// What each proxy sees.
    pub scope: Scope,
    /// How the proxies spoke xDS.
    pub protocol: Protocol,
    /// Clients that synced every type.
    pub synced: usize,
    /// Clients that failed (first error kept in `error`).
    pub failed: usize,
    /// The first client error.
    pub error: Option<String>,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// Control plane before any client (config loaded).
    pub idle: ProcSample,
    /// Control plane with every client synced (or at the abort).
    pub synced_sample: ProcSample,
    /// Seconds to connect and sync every client.
    pub sync_secs: f64,
    /// Per type ([`TYPES`]): resources and encoded bytes client 0 holds.
    pub per_proxy: [(u64, u64); 5],
    /// Each route change, in order.
    pub routes: Vec<Push>,
    /// The endpoint change.
    pub endpoint: Option<Push>,
    /// Control plane at the end (its HWM is the run's peak).
    pub end: ProcSample,
    /// This harness at the end.
    pub harness: ProcSample,
    /// This harness before the first client.
    pub harness_idle: ProcSample,
    /// This harness with every client synced (or at the abort).
    pub harness_synced: ProcSample,
}

impl Outcome {
    /// The route change with the median p99.
    pub fn median_route(&self) -> Option<&Push> {
        let mut runs: Vec<&Push> = self.routes.iter().collect();
        runs.sort_by(|a, b| a.p99.total_cmp(&b.p99));
        runs.get(runs.len() / 2).copied()
    }

    /// Control-plane memory per synced proxy (bytes): the RSS growth from
    /// idle to synced, divided by the clients synced.
    pub fn rss_per_proxy(&self) -> Option<u64> {
        (self.synced > 0)
            .then(|| self.synced_sample.rss.saturating_sub(self.idle.rss) / self.synced as u64)
    }

    /// Harness memory per synced client (bytes): its RSS growth from
    /// before the first client to all synced, divided by the clients synced.
    pub fn harness_per_client(&self) -> Option<u64> {
        (self.synced > 0).then(|| {
            self.harness_synced
                .rss
                .saturating_sub(self.harness_idle.rss)
                / self.synced as u64
        })
    }
}

/// The identity of client `i`: the first ones are the mesh's workloads
/// (same pod name, namespace and address, so they get inbound listeners),
/// the rest are other pods in the same namespaces.
pub fn identity(mesh: &Mesh, workloads: &[mesh::Workload], i: usize) -> Identity {
    match workloads.get(i) {
        Some(w) => Identity {
            pod: w.name.clone(),
            namespace: w.namespace.clone(),
            ip: w.address.clone(),
        },
        None => Identity {
            pod: format!("pod-{i}"),
            namespace: format!("ns-{}", i % mesh.namespaces),
            ip: mesh::address(2, i),
        },
    }
}

/// Runs the benchmark once (a fresh control plane and config).
pub async fn run(opts: &Options) -> Result<Outcome> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let mesh = Mesh::new(opts.services).with_scope(opts.scope);
    mesh.write(dir.path()).context("write the mesh config")?;
    let control = Control::start(&opts.weft, dir.path(), &opts.debounce_after)?;
    let mut out = Outcome {
        proxies: opts.proxies,
        services: mesh.services,
        scope: opts.scope,
        protocol: opts.protocol,
        idle: control.sample()?,
        harness_idle: ProcSample::own()?,
        ..Outcome::default()
    };

    let fleet = Arc::new(Fleet::new(opts.proxies, opts.protocol));
    let workloads = mesh.workloads();
    let port = control.xds_port;
    let launcher = {
        let fleet = fleet.clone();
        let mesh = mesh.clone();
        let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        tokio::spawn(async move {
            // Dropping this set (when the launcher is aborted) ends every client.
            let mut clients = JoinSet::new();
            for i in 0..fleet.clients.len() {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let identity = identity(&mesh, &workloads, i);
                let fleet = fleet.clone();
                clients.spawn(client::run(port, identity, fleet, i, permit));
            }
            std::future::pending::<()>().await;
            drop(clients);
        })
    };

    let started = Instant::now();
    loop {
        let synced = fleet.clients.iter().filter(|c| c.synced()).count();
        let failed = fleet
            .clients
            .iter()
            .filter(|c| c.error.get().is_some())
            .count();
        let sample = control.sample()?;
        out.synced = synced;
        out.failed = failed;
        out.synced_sample = sample;
        out.harness_synced = ProcSample::own()?;
        if synced + failed >= opts.proxies {
            break;
        }
        if sample.rss > opts.max_rss {
            out.aborted = Some(format!(
                "control-plane RSS {} passed the limit {} with {synced} of {} proxies synced",
                gib(sample.rss),
                gib(opts.max_rss),
                opts.proxies
            ));
            break;
        }
        if started.elapsed() > opts.sync_timeout {
            out.aborted = Some(format!(
                "{synced} of {} proxies synced after {:?} (the sync timeout)",
                opts.proxies, opts.sync_timeout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out.sync_secs = started.elapsed().as_secs_f64();
    out.error = fleet.clients.iter().find_map(|c| c.error.get().cloned());
    if let Some(c) = fleet.clients.first() {
        for (t, slot) in out.per_proxy.iter_mut().enumerate() {
            *slot = (
                c.resources[t].load(Ordering::Relaxed),
                c.bytes[t].load(Ordering::Relaxed),
            );
        }
    }

    if out.aborted.is_none() {
        // Both changes are to service 0: with namespace visibility only the
        // proxies of its namespace see it (and are pushed); others are not
        // expected to move.
        let workloads = mesh.workloads();
        let ns0 = mesh.namespace_of(0);
        let expected: Vec<bool> = (0..opts.proxies)
            .map(|i| match opts.scope {
                Scope::Full => true,
                Scope::Namespace => identity(&mesh, &workloads, i).namespace == ns0,
            })
            .collect();
        let expects = |i: usize| expected.get(i).copied().unwrap_or(false);
        for r in 0..opts.route_runs {
            // 80 -> 70 -> 60 ...: every run is a real weight change.
            let weight = 70u32.saturating_sub(10 * r as u32 % 70);
            let push = measure(
                &control,
                &fleet,
                opts.protocol.route_type(),
                opts,
                expects,
                || mesh.write_route_weight(dir.path(), weight),
            )
            .await?;
            out.routes.push(push);
        }
        if opts.endpoint_run {
            let push = measure(
                &control,
                &fleet,
                TypeUrl::ClusterLoadAssignment,
                opts,
                expects,
                || mesh.add_endpoint(dir.path(), 0),
            )
            .await?;
            out.endpoint = Some(push);
        }
    }
    out.end = control.sample()?;
    out.harness = ProcSample::own()?;
    launcher.abort();
    let _ = launcher.await;
    drop(control);
    Ok(out)
}

/// Makes a change with `change`, then waits until every live client that
/// `expects` the change has ACKed a newer version of `t` than it had;
/// times each from the write.
async fn measure(
    control: &Control,
    fleet: &Fleet,
    t: TypeUrl,
    opts: &Options,
    expects: impl Fn(usize) -> bool,
    change: impl FnOnce() -> std::io::Result<()>,
) -> Result<Push> {
    let live: Vec<(usize, u64)> = fleet
        .clients
        .iter()
        .enumerate()
        .filter(|(i, c)| expects(*i) && c.synced() && c.error.get().is_none())
        .map(|(i, c)| (i, c.ack(t).0))
        .collect();
    let before = control.sample()?;
    let t0 = fleet.now();
    change().context("edit the config")?;
    let deadline = Instant::now() + opts.converge_timeout;
    let mut latencies: Vec<u64>;
    loop {
        latencies = live
            .iter()
            .filter_map(|(i, base)| {
                let (v, at) = fleet.clients[*i].ack(t);
                (v > *base).then(|| at.saturating_sub(t0))
            })
            .collect();
        let gone = live
            .iter()
            .filter(|(i, _)| fleet.clients[*i].error.get().is_some())
            .count();
        if latencies.len() + gone >= live.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = control.sample()?;
    let bytes = live
        .first()
        .and_then(|(i, _)| client::index(t).map(|t| (i, t)))
        .map_or(0, |(i, t)| {
            fleet.clients[*i].bytes[t].load(Ordering::Relaxed)
        });
    latencies.sort_unstable();
    let secs = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e9
    };
    Ok(Push {
        converged: latencies.len(),
        expected: live.len(),
        min: latencies.first().map_or(f64::NAN, |v| *v as f64 / 1e9),
        p50: secs(0.50),
        p99: secs(0.99),
        max: secs(1.0),
        cpu: after.cpu - before.cpu,
        rss: after.rss,
        bytes,
    })
}

/// `1.23 GiB`.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The type names of [`TYPES`] (`CDS`, `EDS`, `LDS`, `RDS`, `VHDS`).
pub fn type_names() -> [&'static str; 5] {
    TYPES.map(TypeUrl::short_name)
}
