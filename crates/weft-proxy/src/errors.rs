//! Every way a request can fail in the proxy, and what the client then
//! sees: the HTTP status, Envoy's response flag (`NR`, `UH`, `UF`, `UT`,
//! ...) for logs, metrics and the admin stats, and the body Envoy sends.
//! Written once here; the request path returns a [`ProxyError`] and never
//! picks a status itself.

use http::StatusCode;

/// Who is to blame for a failed request, as Envoy's response flags say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResponseFlag {
    /// `NR`: no route (no listener, virtual host or route matched).
    NoRoute,
    /// `NC`: the route names a cluster the proxy doesn't have.
    NoCluster,
    /// `UH`: the cluster has no healthy endpoint.
    NoHealthyUpstream,
    /// `UF`: connecting to the upstream failed.
    UpstreamConnectionFailure,
    /// `UC`: the upstream closed or reset the connection before answering.
    UpstreamConnectionTermination,
    /// `UPE`: the upstream's response was not valid HTTP.
    UpstreamProtocolError,
    /// `UR`: the upstream reset the request's stream (HTTP/2
    /// `REFUSED_STREAM`) before answering.
    UpstreamRemoteReset,
    /// `UT`: the upstream didn't answer within the route's timeout.
    UpstreamRequestTimeout,
    /// `DPE`: the downstream request was malformed.
    DownstreamProtocolError,
    /// `DI`: the fault filter delayed the request.
    DelayInjected,
    /// `FI`: the fault filter aborted the request.
    FaultInjected,
    /// `URX`: the retries ran out (the last attempt's answer is passed on).
    UpstreamRetryLimitExceeded,
    /// `UO`: a circuit breaker's limit was reached (overflow).
    UpstreamOverflow,
}

impl ResponseFlag {
    /// Every flag, for stats.
    pub const ALL: [ResponseFlag; 13] = [
        ResponseFlag::NoRoute,
        ResponseFlag::NoCluster,
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::UpstreamProtocolError,
        ResponseFlag::UpstreamRemoteReset,
        ResponseFlag::UpstreamRequestTimeout,
        ResponseFlag::DownstreamProtocolError,
        ResponseFlag::DelayInjected,
        ResponseFlag::FaultInjected,
        ResponseFlag::UpstreamRetryLimitExceeded,
        ResponseFlag::UpstreamOverflow,
    ];

    /// Envoy's short name (`%RESPONSE_FLAGS%` in access logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoCluster => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamProtocolError => "UPE",
            ResponseFlag::UpstreamRemoteReset => "UR",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::UpstreamOverflow => "UO",
        }
    }

    /// Its index in [`ResponseFlag::ALL`].
    pub fn index(self) -> usize {
        ResponseFlag::ALL
            .iter()
            .position(|f| *f == self)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ResponseFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body (or `grpc-message`) of an aborted request, as Envoy's.
pub const FAULT_ABORT_MESSAGE: &str = "fault filter abort";

/// A request the proxy could not carry to an upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No outbound listener for the port, or no virtual host or route matched.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The route's cluster is not in the proxy's config.
    #[error("cluster {0} not found")]
    NoCluster(String),
    /// The cluster has no healthy endpoint.
    #[error("no healthy endpoint in cluster {0}")]
    NoHealthyUpstream(String),
    /// Connecting failed.
    #[error("connecting to {endpoint} failed: {reason}")]
    ConnectFailure {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The upstream closed or reset the connection before its response headers.
    #[error("upstream {endpoint} closed the connection: {reason}")]
    Terminated {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
        /// The HTTP/1.1 connection ended (closed or reset) before any byte
        /// of the response: the upstream closing an idle keep-alive
        /// connection just as a request is sent on it (a drain, its idle
        /// timeout), or closing its listener over connections not yet
        /// accepted (a drain again).
        unanswered: bool,
    },
    /// The upstream's response was not valid HTTP (an HTTP/1.1 head that
    /// doesn't parse or is too large, an HTTP/2 protocol violation): Envoy's
    /// `502 UPE`, "reset reason: protocol error".
    #[error("upstream {endpoint} broke the protocol: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The upstream refused the request's HTTP/2 stream (`REFUSED_STREAM`):
    /// it did not process it, so sending it again is safe.
    #[error("upstream {endpoint} refused the stream: {reason}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// No response within the route's timeout.
    #[error("upstream {0} did not answer in time")]
    Timeout(String),
    /// The request can't be proxied as it is.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A circuit breaker of the cluster refused the request.
    #[error("cluster {cluster} overflowed: {why}")]
    Overflow {
        /// The cluster.
        cluster: String,
        /// Which limit.
        why: crate::breaker::Overflow,
    },
    /// The route's fault injection aborted the request.
    #[error("fault injection aborted the request")]
    FaultAbort {
        /// The HTTP status (200 for a gRPC abort).
        status: StatusCode,
        /// The gRPC status code of a gRPC abort.
        grpc: Option<u32>,
    },
}

impl ProxyError {
    /// A circuit breaker's refusal of a request to `cluster`: `UO`, or
    /// `UT` when it waited for a connection until the route's timeout.
    pub fn overflow(cluster: &str, why: crate::breaker::Overflow) -> ProxyError {
        match why {
            crate::breaker::Overflow::Timeout => ProxyError::Timeout(cluster.to_string()),
            why => ProxyError::Overflow {
                cluster: cluster.to_string(),
                why,
            },
        }
    }

    /// Envoy's response flag for this error.
    pub fn flag(&self) -> ResponseFlag {
        match self {
            ProxyError::NoRoute(_) => ResponseFlag::NoRoute,
            ProxyError::NoCluster(_) => ResponseFlag::NoCluster,
            ProxyError::NoHealthyUpstream(_) => ResponseFlag::NoHealthyUpstream,
            ProxyError::ConnectFailure { .. } => ResponseFlag::UpstreamConnectionFailure,
            ProxyError::Terminated { .. } => ResponseFlag::UpstreamConnectionTermination,
            ProxyError::Protocol { .. } => ResponseFlag::UpstreamProtocolError,
            ProxyError::Refused { .. } => ResponseFlag::UpstreamRemoteReset,
            ProxyError::Timeout(_) => ResponseFlag::UpstreamRequestTimeout,
            ProxyError::BadRequest(_) => ResponseFlag::DownstreamProtocolError,
            ProxyError::FaultAbort { .. } => ResponseFlag::FaultInjected,
            ProxyError::Overflow { .. } => ResponseFlag::UpstreamOverflow,
        }
    }

    /// The status the client gets (Envoy's).
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute(_) => StatusCode::NOT_FOUND,
            ProxyError::NoCluster(_)
            | ProxyError::NoHealthyUpstream(_)
            | ProxyError::ConnectFailure { .. }
            | ProxyError::Terminated { .. }
            | ProxyError::Refused { .. }
            | ProxyError::Overflow { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Protocol { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::FaultAbort { status, .. } => *status,
        }
    }

    /// The body Envoy sends with it (`NR` has none).
    pub fn body(&self) -> &'static str {
        match self {
            ProxyError::NoRoute(_) => "",
            ProxyError::NoCluster(_) => "",
            ProxyError::NoHealthyUpstream(_) => "no healthy upstream",
            ProxyError::ConnectFailure { .. } => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            }
            ProxyError::Terminated { .. } => {
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
            }
            ProxyError::Protocol { .. } => {
                "upstream connect error or disconnect/reset before headers. reset reason: protocol error"
            }
            ProxyError::Refused { .. } => {
                "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
            }
            ProxyError::Timeout(_) => "upstream request timeout",
            ProxyError::Overflow { .. } => {
                "upstream connect error or disconnect/reset before headers. reset reason: overflow"
            }
            ProxyError::BadRequest(_) => "Bad Request",
            ProxyError::FaultAbort { grpc: Some(_), .. } => "",
            ProxyError::FaultAbort { grpc: None, .. } => FAULT_ABORT_MESSAGE,
        }
    }

    /// The gRPC status (and its message) a gRPC client gets in a
    /// trailers-only response, for errors answered that way.
    pub fn grpc_status(&self) -> Option<(u32, &'static str)> {
        match self {
            ProxyError::FaultAbort {
                grpc: Some(code), ..
            } => Some((*code, FAULT_ABORT_MESSAGE)),
            _ => None,
        }
    }

    /// The gRPC status a gRPC client gets for this error: the one asked
    /// for (a gRPC fault abort), else Envoy's mapping of the HTTP status
    /// (`httpToGrpcStatus`), with the body as the message.
    pub fn grpc_reply(&self) -> (u32, &'static str) {
        if let Some(s) = self.grpc_status() {
            return s;
        }
        let code = grpc_status_of_http(self.status());
        let message = match self.body() {
            "" => self.flag().as_str(),
            b => b,
        };
        (code, message)
    }

    /// Headers Envoy adds to this error's response: `x-envoy-overloaded:
    /// true` when a circuit breaker refused the request.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            ProxyError::Overflow { .. } => &[("x-envoy-overloaded", "true")],
            _ => &[],
        }
    }

    /// Whether the request never reached an upstream, so sending it again
    /// elsewhere is safe (for retries).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::ConnectFailure { .. }
                | ProxyError::NoHealthyUpstream(_)
                | ProxyError::Refused { .. }
        )
    }
}

/// Envoy's `httpToGrpcStatus`: the gRPC status a local reply with HTTP
/// status `status` carries when the request was gRPC.
pub fn grpc_status_of_http(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_flags_are_envoys() {
        let cases = [
            (ProxyError::NoRoute("x".into()), 404, "NR"),
            (ProxyError::NoHealthyUpstream("c".into()), 503, "UH"),
            (
                ProxyError::ConnectFailure {
                    endpoint: "e".into(),
                    reason: "refused".into(),
                },
                503,
                "UF",
            ),
            (ProxyError::Timeout("e".into()), 504, "UT"),
            (
                ProxyError::Refused {
                    endpoint: "e".into(),
                    reason: "refused".into(),
                },
                503,
                "UR",
            ),
            (
                ProxyError::Protocol {
                    endpoint: "e".into(),
                    reason: "invalid HTTP status-code parsed".into(),
                },
                502,
                "UPE",
            ),
            (ProxyError::BadRequest("no host".into()), 400, "DPE"),
            (
                ProxyError::Overflow {
                    cluster: "c".into(),
                    why: crate::breaker::Overflow::Pending,
                },
                503,
                "UO",
            ),
            (
                ProxyError::FaultAbort {
                    status: StatusCode::IM_A_TEAPOT,
                    grpc: None,
                },
                418,
                "FI",
            ),
        ];
        for (e, status, flag) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
            assert_eq!(e.flag().as_str(), flag, "{e}");
            assert_eq!(ResponseFlag::ALL[e.flag().index()], e.flag());
        }
        let grpc = ProxyError::FaultAbort {
            status: StatusCode::OK,
            grpc: Some(14),
        };
        assert_eq!(grpc.grpc_status(), Some((14, "fault filter abort")));
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(ResponseFlag::DelayInjected.as_str(), "DI");
        let uo = ProxyError::Overflow {
            cluster: "c".into(),
            why: crate::breaker::Overflow::Requests,
        };
        assert_eq!(uo.headers(), &[("x-envoy-overloaded", "true")]);
        assert_eq!(uo.grpc_reply().0, 14);
        assert!(ProxyError::NoRoute("x".into()).headers().is_empty());
        assert_eq!(grpc.grpc_reply(), (14, "fault filter abort"));
        let uh = ProxyError::NoHealthyUpstream("c".into());
        assert_eq!(uh.grpc_reply(), (14, "no healthy upstream"));
        assert_eq!(ProxyError::NoRoute("x".into()).grpc_reply(), (12, "NR"));
        let http_abort = ProxyError::FaultAbort {
            status: StatusCode::SERVICE_UNAVAILABLE,
            grpc: None,
        };
        assert_eq!(http_abort.grpc_reply(), (14, "fault filter abort"));
    }
}
