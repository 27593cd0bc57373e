//! `weft control`: the config store and the registry in, generations out
//! to the ADS server, served on the xDS address.
//!
//! Changes are debounced: a new generation is published once the inputs
//! have been quiet for `debounce_after` (100 ms by default), and at the
//! latest `debounce_max` (1 s) after the first change of a burst, so a
//! steady trickle of edits can't starve the proxies.
//!
//! The config in force is the store's with the WorkloadEntries of
//! auto-registered proxies added ([`weft_registry::autoregister`]); the
//! file registry and the generations are made from that.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use weft_config::LoadOptions;
use weft_config::store::{Snapshot, Store};
use weft_registry::{AutoRegistry, FileRegistry, Registry, autoregister};

use crate::ads::{AdsServer, Generation};
use crate::debug;

/// How to run the control plane.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directories or files of Istio YAML (watched).
    pub config: Vec<PathBuf>,
    /// Namespace for resources that name none.
    pub default_namespace: String,
    /// Where ADS is served (plaintext gRPC; Istio's 15010).
    pub xds_addr: SocketAddr,
    /// Where the debug API and metrics are served (HTTP; Istio's 15014).
    pub debug_addr: SocketAddr,
    /// Quiet time before a change is pushed (default 100 ms).
    pub debounce_after: Duration,
    /// Longest a change waits while edits keep coming (default 1 s).
    pub debounce_max: Duration,
    /// Most pushes sent at once (Istio's `PILOT_PUSH_THROTTLE`; default
    /// [`crate::ads::DEFAULT_PUSH_THROTTLE`], 100).
    pub push_throttle: usize,
    /// How long an auto-registered WorkloadEntry outlives its workload's
    /// last connection (Istio's `PILOT_WORKLOAD_ENTRY_GRACE_PERIOD`;
    /// default 10 s).
    pub workload_entry_grace_period: Duration,
}

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the control plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The xDS address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The config directory could not be watched.
    #[error("cannot watch the config: {0}")]
    Watch(#[from] notify::Error),
    /// A background thread could not start.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("xDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Runs the control plane until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = Store::open(
        config.config.clone(),
        LoadOptions {
            default_namespace: config.default_namespace.clone(),
        },
    );
    for d in store.snapshot().diagnostics.iter().filter(|d| d.is_error()) {
        tracing::warn!(target: "weft::config", "{d}");
    }
    let _watch = store.watch(Duration::from_millis(50))?;
    let autoregister = AutoRegistry::new(
        store.snapshots(),
        autoregister::Config {
            grace_period: config.workload_entry_grace_period,
            controller: controller_name(),
        },
    );
    let in_force = autoregister.snapshots();
    let registry = FileRegistry::follow_snapshots(in_force.clone())?;
    let first = generation(1, &in_force, &registry);
    tracing::info!(
        target: "weft::control",
        resources = first.config.resources.len(),
        services = first.registry.services.len(),
        "config loaded"
    );
    let (publish, generations) = watch::channel(Arc::new(first));
    let publisher = tokio::spawn(publish_generations(
        in_force,
        registry.clone(),
        publish,
        config.debounce_after,
        config.debounce_max,
    ));
    let listener = TcpListener::bind(config.xds_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.xds_addr,
            source,
        })?;
    let debug_listener = TcpListener::bind(config.debug_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.debug_addr,
            source,
        })?;
    let ads = AdsServer::new(generations.clone())
        .with_push_throttle(config.push_throttle)
        .with_auto_registration(autoregister);
    let debug = debug::router(debug::DebugState {
        stats: ads.stats().clone(),
        generations,
    });
    tracing::info!(target: "weft::control", debug = %debug_listener.local_addr()?, "serving the debug API and /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(debug_listener, debug).await {
            tracing::error!(target: "weft::control", "debug API stopped: {e}");
        }
    });
    let local = listener.local_addr()?;
    tracing::info!(
        target: "weft::control",
        xds = %local,
        "serving xDS (ADS, CDS, EDS, LDS, RDS; state of the world and delta)"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = tonic::transport::Server::builder()
        .add_routes(crate::ads::routes(&ads))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    tokio::pin!(serve);
    tokio::select! {
        r = &mut serve => return r.map_err(Error::from),
        () = shutdown => tracing::info!(target: "weft::control", "shutting down"),
    }
    // Stop publishing: dropping the sender ends every open ADS stream with
    // UNAVAILABLE (proxies keep their config and reconnect elsewhere). Then
    // give connections a moment to close; a client that keeps its side of a
    // stream open can't hold the process.
    publisher.abort();
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, serve).await {
        Ok(r) => r?,
        Err(_) => tracing::info!(target: "weft::control", "closing the connections still open"),
    }
    Ok(())
}

/// Who this control plane is in `istio.io/workloadController` (Istio
/// writes its pod name): the host name.
fn controller_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weft-control".to_string())
}

fn generation(
    version: u64,
    config: &watch::Receiver<Arc<Snapshot>>,
    registry: &FileRegistry,
) -> Generation {
    let config = config.borrow().clone();
    Generation::new(version, config, registry.snapshot())
}

/// Publishes a new generation after each debounced burst of changes to the
/// config in force (`config`: the store's snapshots, with auto-registered
/// entries) or the registry.
pub(crate) async fn publish_generations(
    mut config: watch::Receiver<Arc<Snapshot>>,
    registry: FileRegistry,
    publish: watch::Sender<Arc<Generation>>,
    after: Duration,
    max: Duration,
) {
    let mut endpoints = registry.subscribe();
    let mut version = 1;
    loop {
        // Wait for the first change of a burst.
        tokio::select! {
            r = config.changed() => if r.is_err() { return },
            r = endpoints.changed() => if r.is_err() { return },
        }
        let deadline = tokio::time::Instant::now() + max;
        // Then until quiet for `after`, or `max` has passed.
        loop {
            let quiet = tokio::time::sleep(after);
            tokio::select! {
                _ = quiet => break,
                _ = tokio::time::sleep_until(deadline) => break,
                r = config.changed() => if r.is_err() { return },
                r = endpoints.changed() => if r.is_err() { return },
            }
        }
        config.mark_unchanged();
        endpoints.mark_unchanged();
        let next = generation(version + 1, &config, &registry);
        let current = publish.borrow().clone();
        if Arc::ptr_eq(&next.config, &current.config)
            && Arc::ptr_eq(&next.registry, &current.registry)
        {
            continue;
        }
        version += 1;
        tracing::info!(target: "weft::control", version, "pushing new config");
        publish.send_replace(Arc::new(next));
    }
}

#[cfg(test)]
mod tests;
