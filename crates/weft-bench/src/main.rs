//! `weft-bench`: whole-system benchmarks of Weft.
//!
//! ```sh
//! cargo build --release -p weft
//! cargo run --release -p weft-bench -- xds --proxies 1000,5000,10000 --services 1000
//! cargo build --release -p weft -p weft-sample
//! cargo run --release -p weft-bench -- dataplane
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use weft_bench::client::Protocol;
use weft_bench::mesh::Scope;
use weft_bench::report::{self, Facts};
use weft_bench::xds::{self, Options};
use weft_bench::{dataplane, dpreport};

#[derive(Debug, Parser)]
#[command(name = "weft-bench", about = "Whole-system benchmarks of Weft")]
enum Cli {
    /// The control plane under N simulated sidecars (SotW ADS: CDS, EDS, LDS, RDS).
    Xds(XdsArgs),
    /// Write the benchmark's generated mesh into a directory (to inspect it,
    /// `weft analyze` it, or serve it with `weft control`).
    Mesh(MeshArgs),
    /// The data plane: one backend direct, through 1 and 2 Weft proxies, nginx
    /// and haproxy, under wrk and h2load (install them with `bench/setup.sh`).
    Dataplane(DataplaneArgs),
    /// An evenly spaced fixed-rate HTTP/1.1 load (the dataplane benchmark's
    /// latency run) against one loopback port; prints p50/p99/p99.9.
    Paced(PacedArgs),
    /// Print the dataplane benchmark's mesh YAML (the echo service, its
    /// server and client workloads, and `--extra` more services), as
    /// bench/callgrind.sh and bench/h2mem.sh serve it.
    EchoMesh(EchoMeshArgs),
}

#[derive(Debug, clap::Args)]
struct EchoMeshArgs {
    /// The server sidecar's inbound HTTP port (the WorkloadEntry's `http`).
    #[arg(long)]
    inbound_http: u16,
    /// The server sidecar's inbound gRPC port (the WorkloadEntry's `grpc`).
    #[arg(long)]
    inbound_grpc: u16,
    /// More services, each with one endpoint (config size, not traffic).
    #[arg(long, default_value_t = 0)]
    extra: usize,
}

#[derive(Debug, clap::Args)]
struct PacedArgs {
    /// Loopback port to connect to.
    #[arg(long)]
    port: u16,
    /// Request target: `/path`, or `http://host/path` through an HTTP proxy.
    #[arg(long, default_value = "/")]
    target: String,
    /// The `Host` header.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Requests a second over all connections.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 10)]
    conns: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

#[derive(Debug, clap::Args)]
struct DataplaneArgs {
    /// Seconds of each load run (four runs per setup).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// The `weft` binary (`cargo build --release -p weft -p weft-sample`).
    #[arg(long, value_name = "PATH", default_value = "target/release/weft")]
    weft: PathBuf,
    /// The `weft-sample` binary (the backend).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/release/weft-sample"
    )]
    sample: PathBuf,
    /// Where to write the results section ("-": nowhere, print only).
    #[arg(long, default_value = "bench/README.md")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct MeshArgs {
    /// Directory to write into (created if missing).
    dir: PathBuf,
    /// Services in the mesh.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// What each proxy sees: `namespace` adds a Sidecar per namespace
    /// (egress `./*` and `istio-system/*`).
    #[arg(long, value_enum, default_value = "full")]
    sidecar_scope: Scope,
}

#[derive(Debug, clap::Args)]
struct XdsArgs {
    /// Numbers of simulated proxies, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 5000, 10000])]
    proxies: Vec<usize>,
    /// Services in the generated mesh (comma-separated: each with every --proxies).
    #[arg(long, value_delimiter = ',', default_values_t = [1000])]
    services: Vec<usize>,
    /// What each proxy sees, one run per value (comma-separated): `full`
    /// (no Sidecar) or `namespace` (a Sidecar per namespace with egress
    /// `./*` and `istio-system/*`, as large meshes scope their proxies).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["full"])]
    sidecar_scope: Vec<Scope>,
    /// How the simulated proxies speak xDS, one run per value
    /// (comma-separated): `sotw` (state of the world), `delta`, or `vhds`
    /// (delta with `weft.vhds`: virtual hosts as their own resources, as
    /// `weft proxy` does).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["sotw"])]
    protocol: Vec<Protocol>,
    /// The `weft` binary (build it with `cargo build --release -p weft`).
    #[arg(long, value_name = "PATH", default_value = "target/release/weft")]
    weft: PathBuf,
    /// Route changes timed per run; the median is reported.
    #[arg(long, default_value_t = 3)]
    route_runs: usize,
    /// Clients connecting (not yet synced) at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Longest the fleet may take to connect and sync (seconds).
    #[arg(long, default_value_t = 900)]
    sync_timeout: u64,
    /// Longest one change may take to reach every proxy (seconds).
    #[arg(long, default_value_t = 300)]
    converge_timeout: u64,
    /// Stop a run when the control plane's RSS passes this (GiB).
    #[arg(long, default_value_t = 12.0)]
    max_rss_gib: f64,
    /// `weft control --debounce-after` (the default is weft's own).
    #[arg(long, default_value = "100ms")]
    debounce_after: String,
    /// Where to write the results section ("-": nowhere, print only).
    #[arg(long, default_value = "bench/README.md")]
    out: PathBuf,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let args = match cli {
        Cli::Xds(args) => args,
        Cli::Dataplane(args) => return dataplane(&args),
        Cli::EchoMesh(a) => {
            print!(
                "{}",
                weft_bench::procs::mesh_yaml(a.inbound_http, a.inbound_grpc, a.extra)
            );
            return Ok(());
        }
        Cli::Paced(a) => {
            let out = weft_bench::paced::run(&weft_bench::paced::Paced {
                port: a.port,
                target: a.target,
                host: a.host,
                rate: a.rate,
                conns: a.conns,
                duration: Duration::from_secs(a.secs),
            })?;
            let [p50, p99, p999] =
                weft_bench::paced::percentiles(&out.latencies_us, &[0.5, 0.99, 0.999]);
            println!(
                "{} requests, {} failed; p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms",
                out.latencies_us.len(),
                out.failed
            );
            return Ok(());
        }
        Cli::Mesh(args) => {
            std::fs::create_dir_all(&args.dir)
                .with_context(|| format!("create {}", args.dir.display()))?;
            weft_bench::mesh::Mesh::new(args.services)
                .with_scope(args.sidecar_scope)
                .write(&args.dir)
                .with_context(|| format!("write the mesh into {}", args.dir.display()))?;
            eprintln!(
                "weft-bench: {} services written to {}",
                args.services,
                args.dir.display()
            );
            return Ok(());
        }
    };
    if !args.weft.is_file() {
        bail!(
            "no weft binary at {}: run `cargo build --release -p weft` first (or pass --weft PATH)",
            args.weft.display()
        );
    }
    let most = args.proxies.iter().copied().max().unwrap_or(0) as u64;
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raise RLIMIT_NOFILE")?;
    if limit < most + 256 {
        bail!(
            "RLIMIT_NOFILE is {limit}; {most} proxies need at least {} open files (raise the hard limit)",
            most + 256
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut outcomes = Vec::new();
    let runs = args
        .services
        .iter()
        .flat_map(|&s| args.sidecar_scope.iter().map(move |&v| (s, v)))
        .flat_map(|(s, v)| args.protocol.iter().map(move |&x| (s, v, x)))
        .flat_map(|(s, v, x)| args.proxies.iter().map(move |&p| (s, v, x, p)));
    for (services, scope, protocol, proxies) in runs {
        let opts = Options {
            weft: args.weft.clone(),
            proxies,
            services,
            scope,
            protocol,
            route_runs: args.route_runs,
            endpoint_run: true,
            concurrency: args.concurrency,
            sync_timeout: Duration::from_secs(args.sync_timeout),
            converge_timeout: Duration::from_secs(args.converge_timeout),
            max_rss: (args.max_rss_gib * f64::from(1u32 << 30)) as u64,
            debounce_after: args.debounce_after.clone(),
        };
        eprintln!(
            "weft-bench: {proxies} proxies × {services} services, {} visibility, {} ...",
            scope.as_str(),
            protocol.as_str()
        );
        let outcome = runtime.block_on(xds::run(&opts))?;
        eprintln!(
            "weft-bench: {proxies} proxies: {} synced in {:.1} s{}",
            outcome.synced,
            outcome.sync_secs,
            outcome
                .aborted
                .as_ref()
                .map_or(String::new(), |a| format!(" (stopped early: {a})"))
        );
        outcomes.push(outcome);
    }
    let facts = Facts {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        command: std::iter::once("cargo run --release -p weft-bench --".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        weft: format!(
            "`{}` at commit {}",
            args.weft.display(),
            command_output("git", &["rev-parse", "--short", "HEAD"])
        ),
    };
    let section = report::markdown(&facts, &outcomes);
    println!("{section}");
    if args.out.as_os_str() != "-" {
        report::write_into(&args.out, &section)
            .with_context(|| format!("write {}", args.out.display()))?;
        eprintln!("weft-bench: results written to {}", args.out.display());
    }
    Ok(())
}

fn dataplane(args: &DataplaneArgs) -> Result<()> {
    for bin in [&args.weft, &args.sample] {
        if !bin.is_file() {
            bail!(
                "no binary at {}: run `cargo build --release -p weft -p weft-sample` first",
                bin.display()
            );
        }
    }
    let rows = dataplane::run(&dataplane::Options {
        weft: args.weft.clone(),
        sample: args.sample.clone(),
        secs: args.secs,
    })?;
    let version = |cmd: &str, arg: &str| {
        let out = std::process::Command::new(cmd).arg(arg).output().ok();
        out.map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("unknown")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "not installed".into())
    };
    let header = format!(
        "Measured {} on {} cores (`nproc`), loopback only, the load generator, backend and proxies sharing them. \
         Command: `cargo run --release -p weft-bench -- {}`. Weft at commit {}; {}; {}; {}; {}.",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        command_output("git", &["rev-parse", "--short", "HEAD"]),
        version("nginx", "-v"),
        version("haproxy", "-v"),
        version("wrk", "-v"),
        version("h2load", "--version"),
    );
    let section = dpreport::markdown(&header, &rows);
    println!("{section}");
    if args.out.as_os_str() != "-" {
        report::write_between(&args.out, dpreport::START, dpreport::END, &section)
            .with_context(|| format!("write {}", args.out.display()))?;
        eprintln!("weft-bench: results written to {}", args.out.display());
    }
    Ok(())
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
