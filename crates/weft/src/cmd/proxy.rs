//! `weft proxy`: the sidecar proxy for one workload.

use std::net::SocketAddr;
use std::process::ExitCode;

use weft_config::duration::Duration;

/// How traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The app uses the proxy as its HTTP proxy (`--outbound`); no root needed.
    Explicit,
    /// iptables redirects traffic to 15001/15006 (not built yet).
    Transparent,
}

/// `weft proxy` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane's xDS (ADS, plaintext gRPC) address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds: String,
    /// The WorkloadEntry this proxy serves: its labels, service account and ports come from it.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    workload: String,
    /// How traffic reaches the proxy.
    #[arg(long, value_enum, default_value_t = Mode::Explicit)]
    mode: Mode,
    /// Explicit mode: the HTTP proxy listener the app points at (`curl -x`, HTTP_PROXY).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15001")]
    outbound: SocketAddr,
    /// Transparent mode: the inbound capture port (explicit mode binds the WorkloadEntry's address and ports instead).
    #[arg(long, value_name = "ADDR")]
    inbound: Option<SocketAddr>,
    /// Where the app listens: `HOST:PORT`, or per inbound port `PORT=HOST:PORT,...` (default: 127.0.0.1 on each inbound port).
    #[arg(long, value_name = "ADDR")]
    app: Option<String>,
    /// The admin API: /ready, /healthz/ready, /config_dump, /clusters, /listeners, /stats, /quitquitquit.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Worker threads carrying traffic (Istio's proxy `concurrency`).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// How long SIGTERM waits for open connections to finish.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    drain_timeout: Duration,
}

/// Runs `weft proxy` until SIGTERM, Ctrl-C or `/quitquitquit`.
pub fn run(args: Args) -> ExitCode {
    match config(&args) {
        Ok(config) => serve(config, args.concurrency),
        Err(e) => {
            eprintln!("weft proxy: {e}");
            ExitCode::from(2)
        }
    }
}

fn config(args: &Args) -> Result<weft_proxy::Config, String> {
    let (namespace, name) = args
        .workload
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("--workload {:?}: expected NAMESPACE/NAME", args.workload))?;
    let mode = match args.mode {
        Mode::Explicit => weft_proxy::Mode::Explicit,
        Mode::Transparent => {
            return Err("--mode transparent is not built yet (iptables capture and SO_ORIGINAL_DST come next); use --mode explicit".into());
        }
    };
    if args.inbound.is_some() && mode == weft_proxy::Mode::Explicit {
        return Err("--inbound applies to transparent mode; in explicit mode the inbound listeners bind the WorkloadEntry's address and ports".into());
    }
    let mut c = weft_proxy::Config::new(args.xds.clone(), namespace, name);
    c.mode = mode;
    c.outbound = args.outbound;
    c.admin = args.admin;
    c.app = args.app.clone();
    c.drain_timeout = args.drain_timeout.get();
    if !args.outbound.ip().is_unspecified() {
        c.node_ip = args.outbound.ip().to_string();
    }
    Ok(c)
}

fn serve(config: weft_proxy::Config, concurrency: u16) -> ExitCode {
    let runtime = match weft_proxy::worker_runtime(usize::from(concurrency)) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::debug!(target: "weft::proxy", ?config, concurrency, "starting");
    match runtime.block_on(weft_proxy::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
