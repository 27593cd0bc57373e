//! Subcommands.

pub mod analyze;
pub mod control;
pub mod iptables;
pub mod proxy;
pub mod proxy_config;
pub mod proxy_status;

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM, with both handlers
/// installed now rather than when the future is first polled: a signal that
/// arrives between start-up and that first poll (a busy machine, a test that
/// stops the process right after it reports ready) must start a drain, not
/// kill the process with the default action. Call it inside the runtime.
pub fn shutdown_signal(what: &'static str) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let watch = |kind: SignalKind, name: &str| {
        signal(kind)
            .inspect_err(|e| tracing::warn!(error = %e, "{what}: cannot watch for {name}"))
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
