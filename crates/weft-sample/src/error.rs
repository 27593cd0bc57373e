//! The sample's start-up and serving errors.

use std::net::SocketAddr;

/// Why the sample could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No listener was asked for.
    #[error("nothing to serve: give --http, --grpc or --tcp")]
    NothingToServe,
    /// `--call` needs the HTTP listener: calls are made per HTTP request.
    #[error("--call needs --http: calls are made for each incoming HTTP request")]
    CallsWithoutHttp,
    /// A name or version that can't be sent as a header value.
    #[error("{what} {value:?} can't be sent in a header: use visible ASCII")]
    BadLabel {
        /// `name` or `version`.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// `http`, `grpc` or `tcp`.
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(String),
}
