//! Weft's data plane: the sidecar proxy.
//!
//! [`run`] starts one proxy for one workload: the xDS client ([`xds`])
//! keeps an immutable [`snapshot::Snapshot`] of the control plane's CDS,
//! EDS, LDS and RDS, converted once into Weft's own model ([`cluster`],
//! [`endpoint`], [`listener`], [`route`]); the outbound HTTP proxy
//! ([`outbound`], explicit mode) and the bound inbound listeners
//! ([`listener::serve`]) carry requests along [`forward`] (route →
//! [`hash`] key → [`balance`] → pooled upstream), failing per [`errors`]; [`admin`]
//! serves readiness, config and stats. Threads: the worker runtime the
//! caller runs [`run`] on carries traffic; a `weft-control` thread with its
//! own runtime runs the xDS client and the admin API, so a busy data path
//! never delays config or readiness.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

pub mod admin;
pub mod balance;
pub mod breaker;
pub mod cluster;
pub mod cors;
pub mod deadline;
pub mod drain;
pub mod endpoint;
pub mod errors;
pub mod fasthash;
pub mod fault;
pub mod forward;
pub mod forwarded;
pub mod hash;
pub mod instance_ips;
pub mod listener;
pub mod mirror;
pub mod outbound;
pub mod outlier;
pub mod pool;
pub mod replay;
pub mod retry;
pub mod route;
pub mod snapshot;
pub mod sniff;
pub mod stats;
pub mod tcp;
pub mod transparent;
pub mod xds;

use snapshot::Snapshot;

/// How traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    /// The app uses the proxy as its HTTP proxy; inbound listeners bind the
    /// WorkloadEntry's address and ports (Istio's `INTERCEPTION_MODE` NONE).
    Explicit,
    /// iptables (`weft iptables`) redirects the workload's traffic to the
    /// outbound and inbound capture ports; see [`transparent`].
    Transparent,
}

/// What the proxy is to the control plane (the node id's first field, as
/// istio-agent's `proxy sidecar` / `proxy router`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum NodeType {
    /// A workload's sidecar (`sidecar~...`).
    #[default]
    Sidecar,
    /// A gateway (`router~...`): it gets the Gateway resources' listeners.
    Router,
}

/// A proxy's settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    /// The control plane's ADS address, `HOST:PORT`.
    pub xds: String,
    /// The WorkloadEntry's namespace.
    pub namespace: String,
    /// The WorkloadEntry's name (with [`Config::auto_register_group`]:
    /// the node's name; the control plane names the entry it makes).
    pub workload: String,
    /// The WorkloadGroup of `namespace` to register from: the control
    /// plane makes the proxy's WorkloadEntry from it while the proxy is
    /// connected (node metadata `AUTO_REGISTER_GROUP`). Default none.
    pub auto_register_group: Option<String>,
    /// How traffic reaches the proxy.
    pub mode: Mode,
    /// Sidecar or gateway (default sidecar).
    pub node_type: NodeType,
    /// The outbound listener: explicit mode's HTTP proxy port (default
    /// 127.0.0.1:15001), transparent mode's capture port (the CLI's
    /// default there is 0.0.0.0:15001).
    pub outbound: SocketAddr,
    /// Transparent mode: the inbound capture port (default 0.0.0.0:15006).
    pub inbound: SocketAddr,
    /// Transparent mode: inbound arrives by TPROXY (the inbound listener
    /// is `IP_TRANSPARENT`; Istio's `INTERCEPTION_MODE` TPROXY), not
    /// REDIRECT. Default false.
    pub tproxy: bool,
    /// How long protocol detection waits for a connection's first bytes
    /// on ports that need it (SNI, sniffed HTTP); `None` waits as long as
    /// it takes (Istio's `protocolDetectionTimeout: 0s`). Default 1 s.
    pub detect_timeout: Option<Duration>,
    /// Where the app listens (`ADDR`, or `PORT=ADDR,...`), sent as `APP_ADDRESS`.
    pub app: Option<String>,
    /// The admin API (default 127.0.0.1:15000).
    pub admin: SocketAddr,
    /// Where `/healthz/ready` is served on its own, if anywhere
    /// (istio-agent's 15021; default none).
    pub readiness: Option<SocketAddr>,
    /// The IP in the node id (default: the outbound listener's, or 127.0.0.1).
    pub node_ip: String,
    /// The workload's IPs, reported as Istio's `INSTANCE_IPS` (empty:
    /// `node_ip` alone).
    pub instance_ips: Vec<String>,
    /// How long SIGTERM waits for open connections (default 5 s).
    pub drain_timeout: Duration,
    /// How long an update may wait for what it references (default 2 s).
    pub warm_timeout: Duration,
    /// The xDS protocol: delta (default; with VHDS) or state of the world.
    pub xds_protocol: xds::Protocol,
    /// Bounds on downstream HTTP requests (header size and count, header
    /// read time).
    pub http_limits: drain::HttpLimits,
}

impl Config {
    /// The defaults for a workload.
    pub fn new(
        xds: impl Into<String>,
        namespace: impl Into<String>,
        workload: impl Into<String>,
    ) -> Self {
        Config {
            xds: xds.into(),
            namespace: namespace.into(),
            workload: workload.into(),
            auto_register_group: None,
            mode: Mode::Explicit,
            node_type: NodeType::Sidecar,
            outbound: SocketAddr::from(([127, 0, 0, 1], 15001)),
            inbound: SocketAddr::from(([0, 0, 0, 0], 15006)),
            tproxy: false,
            detect_timeout: Some(Duration::from_secs(1)),
            app: None,
            admin: SocketAddr::from(([127, 0, 0, 1], 15000)),
            readiness: None,
            node_ip: "127.0.0.1".into(),
            instance_ips: Vec::new(),
            drain_timeout: Duration::from_secs(5),
            warm_timeout: Duration::from_secs(2),
            xds_protocol: xds::Protocol::Delta,
            http_limits: drain::HttpLimits::default(),
        }
    }
}

/// Why the proxy can't run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener can't be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// What it is for.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The control thread could not start.
    #[error("cannot start the control thread: {0}")]
    Thread(std::io::Error),
}

/// The worker runtime for `concurrency` threads (Istio's proxy
/// `concurrency`). One worker is a current-thread runtime: the thread
/// that runs [`run`] carries all traffic, with no work-stealing queues and
/// no wake-ups across threads (what Envoy's single worker does). More
/// workers are a multi-thread runtime of that many threads.
pub fn worker_runtime(concurrency: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if concurrency <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(concurrency);
        b
    };
    builder.thread_name("weft-worker").enable_all().build()
}

/// Runs the proxy on the current (worker) runtime until `shutdown`
/// resolves or `/quitquitquit` is called, then drains, within the drain
/// timeout: the inbound side first (stops accepting, lets open
/// connections finish) while the outbound listener still serves the
/// app, then the outbound side; returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let transparent = config.mode == Mode::Transparent;
    let outbound_listener = if transparent {
        transparent::bind(config.outbound, false)
    } else {
        tokio::net::TcpListener::bind(config.outbound).await
    }
    .map_err(|source| Error::Bind {
        what: "outbound",
        addr: config.outbound,
        source,
    })?;
    let inbound_listener = if transparent {
        Some(
            transparent::bind(config.inbound, config.tproxy).map_err(|source| Error::Bind {
                what: "inbound",
                addr: config.inbound,
                source,
            })?,
        )
    } else {
        None
    };
    let admin_listener =
        std::net::TcpListener::bind(config.admin).map_err(|source| Error::Bind {
            what: "admin",
            addr: config.admin,
            source,
        })?;
    admin_listener
        .set_nonblocking(true)
        .map_err(|source| Error::Bind {
            what: "admin",
            addr: config.admin,
            source,
        })?;
    let readiness_listener = config
        .readiness
        .map(|addr| {
            let bind_error = |source| Error::Bind {
                what: "readiness",
                addr,
                source,
            };
            let l = std::net::TcpListener::bind(addr).map_err(bind_error)?;
            l.set_nonblocking(true).map_err(bind_error)?;
            Ok::<_, Error>(l)
        })
        .transpose()?;
    let outbound_addr = outbound_listener.local_addr().unwrap_or(config.outbound);
    let admin_addr = admin_listener.local_addr().unwrap_or(config.admin);
    let readiness = readiness_listener
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| format!(" readiness={a}"))
        .unwrap_or_default();
    let workload = format!("{}/{}", config.namespace, config.workload);
    match inbound_listener.as_ref().map(|l| l.local_addr()) {
        Some(inbound) => {
            let inbound = inbound.map_or_else(|_| config.inbound.to_string(), |a| a.to_string());
            tracing::info!(target: "weft::proxy", %workload, tproxy = config.tproxy, "weft proxy listening (transparent) outbound={outbound_addr} inbound={inbound} admin={admin_addr}{readiness}");
        }
        None => {
            tracing::info!(target: "weft::proxy", %workload, "weft proxy listening outbound={outbound_addr} admin={admin_addr}{readiness}");
        }
    }
    tracing::debug!(target: "weft::proxy", config = %serde_json::to_string(&config).unwrap_or_default(), "effective config");

    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (ready_tx, ready_rx) = watch::channel(false);
    let (drain_tx, drain_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (applied_tx, applied_rx) = watch::channel(0u64);
    let xds_status = Arc::new(xds::XdsStatus::default());
    let outbound_stats = Arc::new(stats::HttpStats::default());
    let inbound_stats = Arc::new(stats::HttpStats::default());
    let admin = Arc::new(admin::Admin {
        config: snapshot.clone(),
        ready: ready_rx,
        xds: xds_status.clone(),
        outbound: outbound_stats.clone(),
        inbound: inbound_stats.clone(),
        settings: serde_json::to_value(&config).unwrap_or_default(),
        quit: drain_tx.clone(),
        draining: drain_rx.clone(),
    });
    let settings = xds::XdsConfig {
        address: config.xds.clone(),
        node: xds::NodeInfo {
            kind: match config.node_type {
                NodeType::Sidecar => "sidecar",
                NodeType::Router => "router",
            },
            ip: config.node_ip.clone(),
            ips: config.instance_ips.clone(),
            workload: config.workload.clone(),
            namespace: config.namespace.clone(),
            interception: match (config.mode, config.tproxy) {
                (Mode::Explicit, _) => "NONE",
                (Mode::Transparent, false) => "REDIRECT",
                (Mode::Transparent, true) => "TPROXY",
            }
            .into(),
            app_address: config.app.clone(),
            auto_register_group: config.auto_register_group.clone(),
        },
        warm_timeout: config.warm_timeout,
        initial_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(15),
        protocol: config.xds_protocol,
    };
    // The control thread: xDS and admin on their own runtime.
    let control = {
        let (snapshot, status, stop) = (snapshot.clone(), xds_status.clone(), stop_rx.clone());
        std::thread::Builder::new()
            .name("weft-control".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(target: "weft::proxy", error = %e, "cannot start the control runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let admin_listener = match tokio::net::TcpListener::from_std(admin_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(target: "weft::admin", error = %e, "admin listener");
                            return;
                        }
                    };
                    let readiness_task = readiness_listener.map(|l| match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => Some(tokio::spawn(admin::serve_readiness(l, admin.clone(), stop.clone()))),
                        Err(e) => {
                            tracing::error!(target: "weft::admin", error = %e, "readiness listener");
                            None
                        }
                    });
                    let admin_task = tokio::spawn(admin::serve(admin_listener, admin, stop.clone()));
                    xds::run(settings, snapshot, ready_tx, applied_tx, status, stop).await;
                    let _ = admin_task.await;
                    if let Some(Some(t)) = readiness_task {
                        let _ = t.await;
                    }
                });
            })
            .map_err(Error::Thread)?
    };

    // Two drains, as Istio drains a sidecar (`/drain_listeners?inboundonly`):
    // SIGTERM drains what peers send in (inbound and bound listeners stop
    // accepting, their requests finish); the app's own outbound calls are
    // served on — it may need them to finish those requests — until the
    // inbound side is done, and only then drain too.
    let (close_tx, close_rx) = watch::channel(false);
    let drain = drain::Drain::new(drain_rx).with_limits(config.http_limits);
    let outbound_drain = drain::Drain::new(close_rx).with_limits(config.http_limits);
    let upstreams = forward::Upstreams::new();
    // A cluster's pools close when a snapshot no longer has it (ends
    // with the control thread, which holds the sender).
    tokio::spawn(
        upstreams
            .clone()
            .follow(snapshot.clone(), applied_rx.clone()),
    );
    // Appended to x-forwarded-for for peers on loopback, as Envoy appends
    // its node's address.
    let local_ip: Option<std::net::IpAddr> = config.node_ip.parse().ok();
    let bound = |stats: Arc<stats::HttpStats>, skip: Vec<String>| {
        Arc::new(listener::serve::Bound {
            config: snapshot.clone(),
            upstreams: upstreams.clone(),
            stats,
            detect_timeout: config.detect_timeout,
            skip,
            local_ip,
        })
    };
    let (mut tasks, mut outbound_tasks) = (Vec::new(), Vec::new());
    match inbound_listener {
        Some(inbound_listener) => {
            // The capture ports serve the virtual listeners; any other
            // listener LDS asks to bind is bound as in explicit mode.
            let skip = vec![
                transparent::VIRTUAL_OUTBOUND.to_string(),
                transparent::VIRTUAL_INBOUND.to_string(),
            ];
            let outbound = bound(outbound_stats, Vec::new());
            let inbound = bound(inbound_stats, skip);
            outbound_tasks.push(tokio::spawn(transparent::serve(
                outbound_listener,
                transparent::Side::Outbound,
                outbound,
                outbound_drain.clone(),
            )));
            tasks.push(tokio::spawn(transparent::serve(
                inbound_listener,
                transparent::Side::Inbound,
                inbound.clone(),
                drain.clone(),
            )));
            tasks.push(tokio::spawn(listener::serve::manage(
                inbound,
                applied_rx,
                drain.clone(),
                outbound_drain.clone(),
            )));
        }
        None => {
            let outbound = Arc::new(outbound::Outbound {
                config: snapshot.clone(),
                upstreams: upstreams.clone(),
                stats: outbound_stats,
                detect_timeout: config.detect_timeout,
                local_ip,
            });
            let inbound = bound(inbound_stats, Vec::new());
            outbound_tasks.push(tokio::spawn(outbound::serve(
                outbound_listener,
                outbound,
                outbound_drain.clone(),
            )));
            tasks.push(tokio::spawn(listener::serve::manage(
                inbound,
                applied_rx,
                drain.clone(),
                outbound_drain.clone(),
            )));
        }
    }

    tokio::select! {
        _ = shutdown => tracing::info!(target: "weft::proxy", "shutting down: draining"),
        _ = drain.started() => {}
    }
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::now() + config.drain_timeout;
    for t in tasks {
        let _ = t.await;
    }
    let inbound_left = drain.wait(config.drain_timeout).await;
    tracing::debug!(target: "weft::proxy", "inbound drained: draining outbound");
    let _ = close_tx.send(true);
    for t in outbound_tasks {
        let _ = t.await;
    }
    let left = inbound_left
        + outbound_drain
            .wait(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
    if left > 0 {
        tracing::warn!(target: "weft::proxy", connections = left, "drain timeout: closing the connections still open");
    }
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || control.join()).await;
    tracing::info!(target: "weft::proxy", "stopped");
    Ok(())
}
