//! `weft control`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use weft_config::duration::Duration;

/// `weft control` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory (or file) of Istio YAML to serve; watched for changes. May be repeated.
    #[arg(long, value_name = "DIR", required = true)]
    config: Vec<PathBuf>,
    /// Address to serve Envoy xDS v3 (ADS, plaintext gRPC) on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_addr: SocketAddr,
    /// Address to serve the debug API (/debug/syncz, /debug/configz) and /metrics on.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    debug_addr: SocketAddr,
    /// Namespace for resources that don't name one.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Push a change once the config has been quiet this long.
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    debounce_after: Duration,
    /// Push a change at the latest this long after it, even while edits keep coming.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    debounce_max: Duration,
    /// Most proxies being pushed a change at once (Istio's PILOT_PUSH_THROTTLE); the others wait their turn.
    #[arg(
        long,
        value_name = "N",
        default_value_t = weft_control::ads::DEFAULT_PUSH_THROTTLE as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    push_throttle: u32,
    /// How long a WorkloadEntry auto-registered from a WorkloadGroup (a proxy with AUTO_REGISTER_GROUP) outlives the proxy's last connection; a reconnect within it keeps the entry (Istio's PILOT_WORKLOAD_ENTRY_GRACE_PERIOD).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    workload_entry_grace_period: Duration,
}

/// Runs `weft control` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft control: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = weft_control::server::Config {
        config: args.config,
        default_namespace: args.namespace,
        xds_addr: args.xds_addr,
        debug_addr: args.debug_addr,
        debounce_after: args.debounce_after.get(),
        debounce_max: args.debounce_max.get(),
        push_throttle: args.push_throttle as usize,
        workload_entry_grace_period: args.workload_entry_grace_period.get(),
    };
    let result = runtime.block_on(async {
        let shutdown = super::shutdown_signal("weft control");
        weft_control::server::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft control: {e}");
            ExitCode::FAILURE
        }
    }
}
