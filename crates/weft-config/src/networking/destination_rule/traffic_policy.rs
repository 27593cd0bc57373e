//! `TrafficPolicy` and what it holds besides load balancing: connection
//! pools, outlier detection, client TLS, port-level policies, tunnels.

use serde::{Deserialize, Serialize};

use super::{LoadBalancerSettings, check_duration, check_non_negative};
use crate::diag::Code;
use crate::duration::Duration;
use crate::networking::PortSelector;
use crate::networking::workload_entry::fqdn_error;
use crate::validate::{Validate, Validator, check_percent, check_port};

/// `TrafficPolicy`: how traffic to a host (or subset, or port) is handled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficPolicy {
    /// Load-balancing algorithm.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits per upstream host.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing hosts.
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the upstream.
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides (not merged with the settings above).
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnel TCP to the host over HTTP CONNECT/POST.
    pub tunnel: Option<TunnelSettings>,
    /// Send a PROXY protocol header upstream.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limit on concurrent retries relative to active requests.
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.RetryBudget`: Envoy's retry budget circuit breaker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryBudget {
    /// Concurrent retries allowed, as a percentage (0-100) of active and
    /// pending requests (default 20).
    pub percent: Option<f64>,
    /// Retries always allowed, however low the traffic (default 3).
    pub min_retry_concurrency: u32,
    /// Window of past requests the budget counts (default 0s: only the
    /// requests in flight).
    pub budget_interval: Option<Duration>,
}

/// `TrafficPolicy.PortTrafficPolicy`: policies for one port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortTrafficPolicy {
    /// The destination port; required.
    pub port: Option<PortSelector>,
    /// Load-balancing algorithm.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits per upstream host.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing hosts.
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS to the upstream.
    pub tls: Option<ClientTlsSettings>,
}

/// `TrafficPolicy.TunnelSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TunnelSettings {
    /// `CONNECT` (default) or `POST`.
    pub protocol: String,
    /// Host (FQDN or IP) the connection is tunneled to; required.
    pub target_host: String,
    /// Port the connection is tunneled to; required.
    pub target_port: u32,
}

/// `TrafficPolicy.ProxyProtocol`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyProtocol {
    /// PROXY protocol version (default `V1`).
    pub version: ProxyProtocolVersion,
}

/// `TrafficPolicy.ProxyProtocol.VERSION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProxyProtocolVersion {
    /// Human-readable version 1.
    #[default]
    V1,
    /// Binary version 2.
    V2,
}

/// `ConnectionPoolSettings`: limits per upstream host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionPoolSettings {
    /// TCP (and HTTP/1) connection settings.
    pub tcp: Option<TcpSettings>,
    /// HTTP request settings.
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSettings {
    /// Maximum connections to a host (default 2^32-1).
    pub max_connections: i32,
    /// Connect timeout (default 10s).
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive on upstream sockets.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum lifetime of a connection (default unlimited).
    pub max_connection_duration: Option<Duration>,
    /// Idle timeout of TCP proxying (default 1h).
    pub idle_timeout: Option<Duration>,
}

/// `TCPSettings.TcpKeepalive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dead (default: the OS's).
    pub probes: u32,
    /// Idle time before the first probe (default: the OS's).
    pub time: Option<Duration>,
    /// Time between probes (default: the OS's).
    pub interval: Option<Duration>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpSettings {
    /// Maximum requests queued for a connection (default 2^32-1).
    pub http1_max_pending_requests: i32,
    /// Maximum active requests to a host (default 2^32-1).
    pub http2_max_requests: i32,
    /// Requests per connection; 1 disables keep-alive (default 0: unlimited).
    pub max_requests_per_connection: i32,
    /// Maximum outstanding retries across the hosts (default 2^32-1).
    pub max_retries: i32,
    /// Idle timeout of pooled connections (default 1h).
    pub idle_timeout: Option<Duration>,
    /// Whether to upgrade HTTP/1.1 connections to HTTP/2.
    pub h2_upgrade_policy: H2UpgradePolicy,
    /// Use the client's HTTP version upstream.
    pub use_client_protocol: bool,
    /// Maximum concurrent streams per HTTP/2 connection (default 2^31-1).
    pub max_concurrent_streams: i32,
    /// HTTP/2 PING keepalive on upstream connections.
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// HTTP/2 keepalive (PING) settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Http2KeepAlive {
    /// Time between PINGs.
    pub interval: Option<Duration>,
    /// How long to wait for a PING reply before closing.
    pub timeout: Option<Duration>,
}

/// `HTTPSettings.H2UpgradePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh default.
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// `OutlierDetection`: eject hosts that keep failing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutlierDetection {
    /// Deprecated: use `consecutiveGatewayErrors` or `consecutive5xxErrors`.
    pub consecutive_errors: i32,
    /// Count local-origin failures (connect errors, timeouts) separately.
    pub split_external_local_origin_errors: bool,
    /// Local-origin failures before ejection (default 5; needs the split).
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502/503/504 (or connect errors) before ejection (default off).
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx (or connect errors) before ejection (default 5; 0 disables).
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweeps (default 10s).
    pub interval: Option<Duration>,
    /// Minimum ejection time, multiplied by the ejection count (default 30s).
    pub base_ejection_time: Option<Duration>,
    /// Maximum percent of hosts ejected (default 10).
    pub max_ejection_percent: i32,
    /// Detection pauses below this percent of healthy hosts (default 0).
    pub min_health_percent: i32,
    /// HTTP status codes (100-599) counted as errors, instead of 5xx
    /// (default: 5xx only).
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// `ClientTLSSettings`: TLS the proxy originates to the upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientTlsSettings {
    /// TLS mode (default `DISABLE`).
    pub mode: ClientTlsMode,
    /// Client certificate path (MUTUAL).
    pub client_certificate: String,
    /// Client private key path (MUTUAL).
    pub private_key: String,
    /// CA certificates path to verify the server with (default: the OS's).
    pub ca_certificates: String,
    /// Secret holding key, certificate and CA, instead of the paths.
    pub credential_name: String,
    /// SANs the server certificate must carry.
    pub subject_alt_names: Vec<String>,
    /// SNI to send (default: from the request's Host).
    pub sni: String,
    /// Skip verifying the server certificate.
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list path.
    pub ca_crl: String,
}

/// `ClientTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Plain text.
    #[default]
    Disable,
    /// TLS, verifying the server.
    Simple,
    /// TLS with a client certificate.
    Mutual,
    /// Mesh mTLS with Istio's workload certificates.
    IstioMutual,
}

impl Validate for TrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
            && self.port_level_settings.is_empty()
            && self.tunnel.is_none()
            && self.proxy_protocol.is_none()
            && self.retry_budget.is_none()
        {
            v.error("traffic policy must have at least one field")
                .hint("remove the empty trafficPolicy");
            return;
        }
        if self.tunnel.is_some() && self.proxy_protocol.is_some() {
            v.conflict("tunnel and proxyProtocol must not be set together");
        }
        let has_outlier = self.outlier_detection.is_some();
        v.nested("outlierDetection", &self.outlier_detection);
        v.nested("connectionPool", &self.connection_pool);
        if let Some(lb) = &self.load_balancer {
            v.field("loadBalancer", |v| lb.check(v, has_outlier));
        }
        v.nested("tls", &self.tls);
        v.field("portLevelSettings", |v| {
            for (i, p) in self.port_level_settings.iter().enumerate() {
                v.index(i, |v| {
                    p.validate(v);
                    let number = p.port.as_ref().map(|p| p.number);
                    let earlier = self.port_level_settings[..i].iter().position(|q| {
                        number.is_some() && q.port.as_ref().map(|q| q.number) == number
                    });
                    if let (Some(j), Some(n)) = (earlier, number) {
                        v.field("port", |v| {
                            v.error(format!(
                                "port {n} already has a policy at portLevelSettings[{j}]"
                            ))
                            .hint("merge the two port-level policies");
                        });
                    }
                });
            }
        });
        v.nested("tunnel", &self.tunnel);
        v.nested("retryBudget", &self.retry_budget);
    }
}

impl Validate for RetryBudget {
    fn validate(&self, v: &mut Validator) {
        if let Some(p) = self.percent {
            v.field("percent", |v| check_percent(v, p));
        }
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        match &self.port {
            None => {
                v.required("port")
                    .hint("a port-level policy names its port: port: {number: 8080}");
            }
            Some(p) => v.field("port", |v| v.field("number", |v| check_port(v, p.number))),
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            v.error("port traffic policy must have at least one field");
            return;
        }
        let has_outlier = self.outlier_detection.is_some();
        v.nested("outlierDetection", &self.outlier_detection);
        v.nested("connectionPool", &self.connection_pool);
        if let Some(lb) = &self.load_balancer {
            v.field("loadBalancer", |v| lb.check(v, has_outlier));
        }
        v.nested("tls", &self.tls);
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, v: &mut Validator) {
        if !matches!(self.protocol.as_str(), "" | "CONNECT" | "POST") {
            v.field("protocol", |v| {
                v.error(format!(
                    "tunnel protocol must be \"CONNECT\" or \"POST\", not {:?}",
                    self.protocol
                ));
            });
        }
        if self.target_host.is_empty() {
            v.required("targetHost");
        } else if self.target_host.parse::<std::net::IpAddr>().is_err()
            && let Some(e) = fqdn_error(&self.target_host)
        {
            v.field("targetHost", |v| {
                v.error(format!(
                    "tunnel target host must be valid FQDN or IP address: {e}"
                ));
            });
        }
        if self.target_port == 0 {
            v.required("targetPort");
        } else {
            v.field("targetPort", |v| check_port(v, self.target_port));
        }
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, v: &mut Validator) {
        if self.tcp.is_none() && self.http.is_none() {
            v.error("connection pool must have at least one field")
                .hint("set tcp or http limits, or remove connectionPool");
            return;
        }
        if let Some(h) = &self.http {
            v.field("http", |v| {
                check_non_negative(v, "http1MaxPendingRequests", h.http1_max_pending_requests);
                check_non_negative(v, "http2MaxRequests", h.http2_max_requests);
                check_non_negative(v, "maxRequestsPerConnection", h.max_requests_per_connection);
                check_non_negative(v, "maxRetries", h.max_retries);
                check_non_negative(v, "maxConcurrentStreams", h.max_concurrent_streams);
                check_duration(v, "idleTimeout", &h.idle_timeout);
                if h.h2_upgrade_policy == H2UpgradePolicy::Upgrade && h.use_client_protocol {
                    v.conflict(
                        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                    );
                }
                if let Some(k) = &h.http2_keep_alive {
                    v.field("http2KeepAlive", |v| {
                        check_duration(v, "interval", &k.interval);
                        check_duration(v, "timeout", &k.timeout);
                    });
                }
            });
        }
        if let Some(t) = &self.tcp {
            v.field("tcp", |v| {
                check_non_negative(v, "maxConnections", t.max_connections);
                check_duration(v, "connectTimeout", &t.connect_timeout);
                check_duration(v, "maxConnectionDuration", &t.max_connection_duration);
                check_duration(v, "idleTimeout", &t.idle_timeout);
                v.nested("tcpKeepalive", &t.tcp_keepalive);
            });
        }
    }
}

impl Validate for TcpKeepalive {
    fn validate(&self, v: &mut Validator) {
        check_duration(v, "time", &self.time);
        check_duration(v, "interval", &self.interval);
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, v: &mut Validator) {
        check_duration(v, "baseEjectionTime", &self.base_ejection_time);
        check_duration(v, "interval", &self.interval);
        if self.consecutive_errors != 0 {
            v.field("consecutiveErrors", |v| {
                if self.consecutive_errors < 0 {
                    v.error("consecutiveErrors must be non-negative");
                }
                v.report(
                    Code::Deprecated,
                    "outlier detection consecutive errors is deprecated",
                )
                .hint("use consecutiveGatewayErrors or consecutive5xxErrors");
            });
        }
        if !self.split_external_local_origin_errors
            && self
                .consecutive_local_origin_failures
                .is_some_and(|n| n > 0)
        {
            v.field("consecutiveLocalOriginFailures", |v| {
                v.error("outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
                    .hint("set splitExternalLocalOriginErrors: true");
            });
        }
        for (name, p) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("minHealthPercent", self.min_health_percent),
        ] {
            v.field(name, |v| check_percent(v, f64::from(p)));
        }
        v.each(
            "outlierDetectionHttpErrorCodes",
            &self.outlier_detection_http_error_codes,
            |v, code| {
                if !(100..=599).contains(code) {
                    v.error(format!(
                        "HTTP status code {code} is invalid: must be between 100 and 599"
                    ));
                }
            },
        );
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let cred = !self.credential_name.is_empty();
        if let Some(rest) = self.credential_name.strip_prefix("configmap://") {
            let ns = rest.split_once('/').map(|(ns, _)| ns);
            if rest.is_empty() || ns.is_some_and(|ns| ns != v.namespace()) {
                let own = v.namespace().to_string();
                v.field("credentialName", |v| {
                    v.error(format!(
                        "invalid configmap:// credentialName: namespace must match the configuration namespace {own:?}"
                    ));
                });
            }
        }
        if self.insecure_skip_verify == Some(true) {
            let sans = !self.subject_alt_names.is_empty();
            let ca = !self.ca_certificates.is_empty();
            match self.mode {
                ClientTlsMode::Simple if ca || cred || sans => {
                    v.conflict("cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true");
                }
                ClientTlsMode::Mutual if ca || sans => {
                    v.conflict("cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true");
                }
                _ => {}
            }
        }
        let files = [
            ("clientCertificate", &self.client_certificate),
            ("privateKey", &self.private_key),
            ("caCertificates", &self.ca_certificates),
            ("caCrl", &self.ca_crl),
        ];
        match self.mode {
            ClientTlsMode::Simple | ClientTlsMode::Mutual if cred => {
                if files.iter().any(|(_, f)| !f.is_empty()) {
                    v.conflict("cannot specify client certificates or CA certificate or CA CRL if credentialName is set")
                        .hint("put them in the credential's secret, or drop credentialName");
                }
            }
            ClientTlsMode::Mutual => {
                if self.client_certificate.is_empty() {
                    v.required("clientCertificate").hint(
                        "MUTUAL TLS needs clientCertificate and privateKey, or a credentialName",
                    );
                }
                if self.private_key.is_empty() {
                    v.required("privateKey");
                }
            }
            ClientTlsMode::IstioMutual | ClientTlsMode::Disable => {
                let mode = if self.mode == ClientTlsMode::Disable {
                    "DISABLE"
                } else {
                    "ISTIO_MUTUAL"
                };
                for (name, f) in files
                    .iter()
                    .chain([("credentialName", &self.credential_name)].iter())
                {
                    if !f.is_empty() {
                        v.field(name, |v| {
                            v.warn(format!("{name} is ignored with TLS mode {mode}"));
                        });
                    }
                }
            }
            ClientTlsMode::Simple => {}
        }
        if !self.sni.is_empty() {
            let s = &self.sni;
            if s.len() > 255 || s.contains(['*', '/', ':', ' ']) || s.starts_with('.') {
                v.field("sni", |v| {
                    v.error(format!("sni {s:?} is not a valid server name"))
                        .hint("SNI is a plain host name such as api.example.com");
                });
            }
        }
        v.each("subjectAltNames", &self.subject_alt_names, |v, s| {
            if s.is_empty() {
                v.error("subject alt name must not be empty");
            }
        });
    }
}
