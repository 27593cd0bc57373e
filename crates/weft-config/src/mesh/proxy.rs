//! `ProxyConfig`: the proxy settings of MeshConfig `defaultConfig` (and of
//! the `proxy.istio.io/config` annotation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{check_host_port, check_i32_port};
use crate::diag::Code;
use crate::duration::Duration;
use crate::validate::check_duration as check_min_duration;
use crate::validate::check_duration_field as check_opt_duration;
use crate::validate::{Validate, Validator};

/// `ProxyConfig` (MeshConfig `defaultConfig`): top-level fields typed,
/// nested complex ones kept as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyConfig {
    /// Directory of generated Envoy configuration.
    pub config_path: String,
    /// Path of the proxy binary.
    pub binary_path: String,
    /// Service cluster name (deprecated; see `tracingServiceName`).
    pub service_cluster: String,
    /// How the tracing service name is derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing_service_name: Option<TracingServiceName>,
    /// Drain time on hot restart (whole seconds, default 45s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<Duration>,
    /// Deprecated: parent shutdown duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shutdown_duration: Option<Duration>,
    /// `host:port` of the discovery service (istiod).
    pub discovery_address: String,
    /// `host:port` of a statsd UDP sink.
    pub statsd_udp_address: String,
    /// Deprecated: `host:port` of the metrics service (use `envoyMetricsService`).
    pub envoy_metrics_service_address: String,
    /// Proxy admin port (default 15000).
    pub proxy_admin_port: i32,
    /// Deprecated: availability zone.
    pub availability_zone: String,
    /// Authentication to the control plane.
    pub control_plane_auth_policy: AuthenticationPolicy,
    /// Custom Envoy bootstrap file.
    pub custom_config_file: String,
    /// Maximum stat name length.
    pub stat_name_length: i32,
    /// Worker threads (0: one per core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    /// Bootstrap template path.
    pub proxy_bootstrap_template_path: String,
    /// How inbound traffic is intercepted.
    pub interception_mode: InterceptionMode,
    /// Tracing settings (`zipkin`, `datadog`, `sampling`, `customTags`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Json>,
    /// Deprecated: SDS settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sds: Option<Json>,
    /// gRPC access log service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_access_log_service: Option<RemoteService>,
    /// Metrics service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service: Option<RemoteService>,
    /// Environment variables of the proxy agent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_metadata: BTreeMap<String, String>,
    /// Envoy runtime values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime_values: BTreeMap<String, String>,
    /// Status (health) port (default 15020).
    pub status_port: i32,
    /// Extra stat tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_stat_tags: Vec<String>,
    /// Gateway network topology (`numTrustedProxies`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_topology: Option<Json>,
    /// Drain time on pod termination (default 5s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_drain_duration: Option<Duration>,
    /// Mesh ID.
    pub mesh_id: String,
    /// Readiness probe of VM workloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Json>,
    /// Which Envoy stats are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_stats_matcher: Option<Json>,
    /// Start the application after the proxy is ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
    /// Extra root certificates (PEM) for the proxy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates_pem: Vec<String>,
    /// Proxy image variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Json>,
    /// Private key provider (CryptoMB, QAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_provider: Option<Json>,
    /// Headers the proxy adds or forwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_headers: Option<Json>,
    /// Access log file flush interval (default 1s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_flush_interval: Option<Duration>,
    /// Access log buffer flushed at this size, in KiB (default 64).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_flush_min_size_kb: Option<u32>,
    /// Stats endpoint compression settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_compression: Option<Json>,
}

/// `ProxyConfig.TracingServiceName`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TracingServiceName {
    /// `app` label and namespace.
    #[default]
    AppLabelAndNamespace,
    /// Canonical service name.
    CanonicalNameOnly,
    /// Canonical service name and namespace.
    CanonicalNameAndNamespace,
}

/// `AuthenticationPolicy` (control plane).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationPolicy {
    /// Plain text.
    #[default]
    None,
    /// Mutual TLS.
    MutualTls,
    /// Inherit (not valid for the control plane).
    Inherit,
}

/// `ProxyConfig.InboundInterceptionMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterceptionMode {
    /// iptables REDIRECT.
    #[default]
    Redirect,
    /// iptables TPROXY (keeps source addresses).
    Tproxy,
    /// No interception.
    None,
}

/// `RemoteService`: an Envoy gRPC service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteService {
    /// `host:port`.
    pub address: String,
    /// Client TLS (`ClientTLSSettings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<Json>,
    /// TCP keepalive (`TcpKeepalive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<Json>,
}

impl Validate for ProxyConfig {
    fn validate(&self, v: &mut Validator) {
        if !self.service_cluster.is_empty() && self.tracing_service_name.is_some() {
            v.conflict("only one of serviceCluster or tracingServiceName can be set")
                .hint("tracingServiceName replaces the deprecated serviceCluster");
        }
        if let Some(d) = self.drain_duration {
            v.field("drainDuration", |v| {
                check_min_duration(v, d);
                if d.get().subsec_nanos() != 0 {
                    v.error(format!(
                        "drain duration {d}: drain time only supports durations to seconds precision"
                    ));
                }
            });
        }
        if self.parent_shutdown_duration.is_some() {
            v.field("parentShutdownDuration", |v| {
                v.report(
                    Code::Deprecated,
                    "parentShutdownDuration is deprecated and ignored",
                );
            });
        }
        check_opt_duration(v, "fileFlushInterval", self.file_flush_interval);
        for (name, addr) in [
            ("discoveryAddress", &self.discovery_address),
            ("statsdUdpAddress", &self.statsd_udp_address),
            (
                "envoyMetricsServiceAddress",
                &self.envoy_metrics_service_address,
            ),
        ] {
            if !addr.is_empty() {
                v.field(name, |v| check_host_port(v, addr));
            }
        }
        if !self.envoy_metrics_service_address.is_empty() {
            v.field("envoyMetricsServiceAddress", |v| {
                v.report(Code::Deprecated, "envoyMetricsServiceAddress is deprecated")
                    .hint("use envoyMetricsService: {address: ...}");
            });
        }
        for (name, svc) in [
            ("envoyAccessLogService", &self.envoy_access_log_service),
            ("envoyMetricsService", &self.envoy_metrics_service),
        ] {
            if let Some(s) = svc.as_ref().filter(|s| !s.address.is_empty()) {
                v.field(name, |v| {
                    v.field("address", |v| check_host_port(v, &s.address))
                });
            }
        }
        for (name, port) in [
            ("proxyAdminPort", self.proxy_admin_port),
            ("statusPort", self.status_port),
        ] {
            if port != 0 {
                v.field(name, |v| check_i32_port(v, port));
            }
        }
        if self.control_plane_auth_policy == AuthenticationPolicy::Inherit {
            v.field("controlPlaneAuthPolicy", |v| {
                v.error("controlPlaneAuthPolicy must be NONE or MUTUAL_TLS");
            });
        }
        if self.concurrency.is_some_and(|c| c < 0) {
            v.field("concurrency", |v| {
                v.error("concurrency must be greater than or equal to 0");
            });
        }
        if self.stat_name_length < 0 {
            v.field("statNameLength", |v| {
                v.error("statNameLength must be greater than or equal to 0");
            });
        }
        if self
            .proxy_metadata
            .contains_key("ISTIO_META_DNS_AUTO_ALLOCATE")
        {
            v.field("proxyMetadata", |v| {
                v.key("ISTIO_META_DNS_AUTO_ALLOCATE", |v| {
                    v.report(
                        Code::Deprecated,
                        "'ISTIO_META_DNS_AUTO_ALLOCATE' is deprecated",
                    )
                    .hint("use DNS auto-allocation v2 (PILOT_ENABLE_IP_AUTOALLOCATE)");
                });
            });
        }
        v.each("caCertificatesPem", &self.ca_certificates_pem, |v, pem| {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                v.error("not a PEM certificate: it has no -----BEGIN CERTIFICATE----- block");
            }
        });
    }
}
