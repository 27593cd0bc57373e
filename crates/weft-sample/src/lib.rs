//! `weft-sample`: the application that Weft's data-plane tests, the demo and
//! the benchmarks put behind the mesh.
//!
//! One process serves, each on its own optional listener:
//! - HTTP/1.1 and h2c on one port (`http`): an echo of the request, status,
//!   delay and byte-count endpoints, WebSocket echo on `/ws`, and calls to
//!   other services (`--call`) with trace headers propagated (`call`);
//! - gRPC (`grpc`): `helloworld.Greeter` and `grpc.health.v1.Health`;
//! - TCP (`tcp`): a pure echo that honours half-close.
//!
//! [`Sample::bind`] binds every listener (ports may be 0), so the caller can
//! print the actual addresses before [`Sample::serve`] runs them until the
//! shutdown signal.

mod body;
mod call;
mod echo;
mod error;
mod flaky;
mod grpc;
mod http;
mod tcp;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use call::{CallTarget, Proxy, TRACE_HEADERS};
pub use error::Error;
pub use flaky::Flaky;

/// How long connections may take to finish after the shutdown signal before
/// they are dropped.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the sample serves and how it calls others.
#[derive(Clone, Debug)]
pub struct Config {
    /// Service name, echoed in every reply and in `x-sample-name`.
    pub name: String,
    /// Version label, echoed in every reply and in `x-sample-version`.
    pub version: String,
    /// Address for HTTP/1.1, h2c and WebSocket; none: not served.
    pub http: Option<SocketAddr>,
    /// Address for gRPC; none: not served.
    pub grpc: Option<SocketAddr>,
    /// Address for the TCP echo; none: not served.
    pub tcp: Option<SocketAddr>,
    /// URLs called on each HTTP request, in order of the reply's `call` lines.
    pub calls: Vec<CallTarget>,
    /// HTTP proxy for the calls (absolute-form requests); none: direct.
    pub proxy: Option<Proxy>,
    /// Time limit of one call, connection included.
    pub call_timeout: Duration,
    /// Failing or stalling the first requests on purpose (tests).
    pub flaky: Flaky,
}

impl Config {
    /// A config with nothing to serve, the name given, version `v1` and a
    /// 5 s call timeout.
    pub fn new(name: impl Into<String>) -> Self {
        Config {
            name: name.into(),
            version: "v1".into(),
            http: None,
            grpc: None,
            tcp: None,
            calls: Vec::new(),
            proxy: None,
            call_timeout: Duration::from_secs(5),
            flaky: Flaky::default(),
        }
    }
}

/// The sample with its listeners bound, ready to serve.
#[derive(Debug)]
pub struct Sample {
    config: Config,
    http: Option<TcpListener>,
    grpc: Option<TcpListener>,
    tcp: Option<TcpListener>,
}

/// Binds a listener, naming what it is for in the error.
async fn listen(
    what: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, Error> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| Error::Bind { what, addr, source }),
    }
}

impl Sample {
    /// Checks the config and binds every listener it names.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        if config.http.is_none() && config.grpc.is_none() && config.tcp.is_none() {
            return Err(Error::NothingToServe);
        }
        if !config.calls.is_empty() && config.http.is_none() {
            return Err(Error::CallsWithoutHttp);
        }
        http::Identity::new(&config.name, &config.version)?;
        Ok(Sample {
            http: listen("http", config.http).await?,
            grpc: listen("grpc", config.grpc).await?,
            tcp: listen("tcp", config.tcp).await?,
            config,
        })
    }

    /// The bound HTTP address (the actual port when 0 was asked for).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound TCP echo address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The line printed once bound, which tests and scripts wait for:
    /// `weft-sample NAME VERSION listening http=ADDR grpc=ADDR tcp=ADDR`
    /// (only the listeners that are served).
    pub fn listening_line(&self) -> String {
        let mut line = format!(
            "weft-sample {} {} listening",
            self.config.name, self.config.version
        );
        for (key, addr) in [
            ("http", self.http_addr()),
            ("grpc", self.grpc_addr()),
            ("tcp", self.tcp_addr()),
        ] {
            if let Some(addr) = addr {
                line.push_str(&format!(" {key}={addr}"));
            }
        }
        line
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives open
    /// connections up to [`DRAIN_TIMEOUT`] to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let config = Arc::new(self.config);
        if let Some(listener) = self.http {
            let state = http::State::new(&config)?;
            tasks.spawn(http::serve(listener, state, stop_rx.clone()));
        }
        if let Some(listener) = self.grpc {
            let greeter = grpc::Greeter::new(&config.name, &config.version, config.flaky);
            tasks.spawn(grpc::serve(listener, greeter, stop_rx.clone()));
        }
        if let Some(listener) = self.tcp {
            tasks.spawn(tcp::serve(listener, stop_rx.clone()));
        }
        drop(stop_rx);
        tokio::pin!(shutdown);
        let mut result = Ok(());
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                done = tasks.join_next() => match done {
                    // A server ended by itself: that is an error; stop the others.
                    Some(Ok(Err(e))) => { result = Err(e); break; }
                    Some(Ok(Ok(()))) => {}
                    Some(Err(e)) => { result = Err(Error::Task(e.to_string())); break; }
                    None => return Ok(()),
                },
            }
        }
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(Err(e)) = done {
                    tracing::warn!(error = %e, "server ended with an error while draining");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("servers did not stop in time; exiting anyway");
        }
        result
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
