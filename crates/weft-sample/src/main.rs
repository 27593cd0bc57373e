//! `weft-sample`: the command line of the sample application (see the
//! library's docs for what it serves).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use weft_sample::{CallTarget, Config, Proxy, Sample};

/// A test and demo application for Weft: HTTP/1.1 + h2c echo (with
/// /status/N, /delay/MS, /bytes/N and WebSocket echo on /ws), a gRPC
/// greeter with health, a TCP echo, and calls to other services.
///
/// Prints "weft-sample NAME VERSION listening http=ADDR grpc=ADDR tcp=ADDR"
/// on standard output once every listener is bound; logs go to standard
/// error (WEFT_LOG sets the level, default info). Stops on SIGTERM or
/// Ctrl-C, letting open connections finish for up to 5 s.
#[derive(Debug, Parser)]
#[command(name = "weft-sample")]
struct Args {
    /// Service name, shown in every reply and the x-sample-name header.
    #[arg(long, default_value = "sample")]
    name: String,
    /// Version label, shown in every reply and the x-sample-version header.
    #[arg(long, default_value = "v1")]
    version: String,
    /// Serve HTTP/1.1, h2c (prior knowledge) and WebSocket on this address (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<SocketAddr>,
    /// Serve gRPC (helloworld.Greeter, grpc.health.v1.Health) on this address.
    #[arg(long, value_name = "HOST:PORT")]
    grpc: Option<SocketAddr>,
    /// Serve a TCP echo (half-close aware) on this address.
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<SocketAddr>,
    /// On each HTTP request, GET this http:// URL too and report the reply; repeatable.
    #[arg(long = "call", value_name = "URL")]
    calls: Vec<CallTarget>,
    /// Send the calls through this HTTP proxy (absolute-form requests), e.g. http://127.0.0.1:15001.
    #[arg(long, value_name = "URL")]
    proxy: Option<Proxy>,
    /// Time limit of one call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    call_timeout_ms: u64,
    /// Fail the first N requests (HTTP 503, gRPC UNAVAILABLE; HTTP and gRPC counted apart), for testing retries.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fail_first: u64,
    /// Then answer the next N requests only after --stall-ms, for testing timeouts.
    #[arg(long, value_name = "N", default_value_t = 0)]
    stall_first: u64,
    /// How long a stalled request waits, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    stall_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config {
        name: args.name,
        version: args.version,
        http: args.http,
        grpc: args.grpc,
        tcp: args.tcp,
        calls: args.calls,
        proxy: args.proxy,
        call_timeout: Duration::from_millis(args.call_timeout_ms),
        flaky: weft_sample::Flaky {
            fail_first: args.fail_first,
            stall_first: args.stall_first,
            stall: Duration::from_millis(args.stall_ms),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft-sample: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        let sample = Sample::bind(config).await?;
        let line = sample.listening_line();
        tracing::info!("{line}");
        let mut stdout = std::io::stdout().lock();
        // A closed stdout must not stop the server: the line is a courtesy.
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        drop(stdout);
        sample.serve(shutdown).await
    });
    // Don't wait for tasks still running (upgraded WebSockets, calls).
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft-sample: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM, with both handlers
/// installed now, before the listening line is printed: a test that sends
/// SIGTERM right after reading it must get a drain, not the default action
/// (which kills the process and resets open connections). Call it inside the
/// runtime. (The same as `weft`'s; the two binaries share no crate.)
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind: SignalKind, name: &str| {
        signal(kind)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot watch for {name}"))
            .ok()
    };
    let int = watch(SignalKind::interrupt(), "SIGINT");
    let term = watch(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(int) => {},
            () = received(term) => {},
        }
    }
}

/// Resolves when `signal` next arrives; never, if it could not be watched.
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
