//! `weft`: the one binary of the Weft service mesh.
//!
//! Parses the command line (clap) and hands typed options to the library
//! crates. Each subcommand lives in `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Weft: a service mesh that reads Istio's configuration.
#[derive(Debug, Parser)]
#[command(name = "weft", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate and analyze mesh config like `istioctl analyze`.
    Analyze(cmd::analyze::Args),
    /// Run the control plane: serve Envoy xDS v3 from a directory of Istio YAML.
    Control(cmd::control::Args),
    /// Install, print or remove the iptables rules that send a workload's TCP
    /// through its sidecar (outbound to 15001, inbound to 15006), like istio-iptables.
    Iptables(cmd::iptables::Args),
    /// Run a sidecar proxy for one workload, configured by the control plane over xDS.
    Proxy(cmd::proxy::Args),
    /// Show what the control plane sent one proxy: clusters, listeners, routes, endpoints.
    ProxyConfig(cmd::proxy_config::Args),
    /// Show whether every connected proxy has ACKed what the control plane sent.
    ProxyStatus(cmd::proxy_status::Args),
}

/// Servers say what they do; one-shot tools only warn.
fn default_log_level(command: &Command) -> &'static str {
    match command {
        Command::Control(_) | Command::Proxy(_) => "info",
        Command::Analyze(_)
        | Command::Iptables(_)
        | Command::ProxyConfig(_)
        | Command::ProxyStatus(_) => "warn",
    }
}

/// mimalloc rather than glibc's malloc: the proxy allocates per request
/// (headers, bodies, tasks) and glibc's malloc was a tenth of its CPU
/// (`bench/README.md`). Built without transparent huge pages (`no_thp`):
/// mimalloc's `madvise(MADV_HUGEPAGE)` on its arenas made an idle proxy
/// 22 MiB resident instead of 13 (where the kernel's THP mode is
/// `always`, `MIMALLOC_ALLOW_THP=0` opts the process out).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| default_log_level(&cli.command).into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Analyze(args) => cmd::analyze::run(args),
        Command::Control(args) => cmd::control::run(args),
        Command::Iptables(args) => cmd::iptables::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::ProxyConfig(args) => cmd::proxy_config::run(args),
        Command::ProxyStatus(args) => cmd::proxy_status::run(args),
    }
}
