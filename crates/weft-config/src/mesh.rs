//! `MeshConfig` (`istio.mesh.v1alpha1.MeshConfig`): mesh-wide settings, read
//! from the `mesh` key of Istio's `istio` ConfigMap or a `--mesh` file.
//!
//! Every top-level field of the current proto is typed; a few nested
//! messages owned by other resource kinds (`tcpKeepalive`,
//! `localityLbSetting`, `defaultHttpRetryPolicy`, client TLS settings) and
//! the deep parts of `defaultConfig` are kept as JSON values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::diag::Code;
use crate::duration::Duration;
use crate::security::check_http_url;
use crate::validate::{Validate, Validator, check_host, check_selector_labels, is_dns1123_label};
use crate::validate::{
    check_duration as check_min_duration, check_duration_field, check_export_list,
};

mod providers;
mod proxy;

pub use providers::*;
pub use proxy::*;

use providers::ProviderKind;

/// `MeshConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfig {
    /// Port capturing all outbound traffic (default 15001).
    pub proxy_listen_port: i32,
    /// Port capturing all inbound traffic (default 15006).
    pub proxy_inbound_listen_port: i32,
    /// Port for HTTP PROXY (CONNECT) requests, when set.
    pub proxy_http_port: i32,
    /// Upstream connect timeout (default 10s; 1ms..1h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Deprecated: protocol sniffing timeout (0s disables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_detection_timeout: Option<Duration>,
    /// TCP keepalive for upstream connections (DestinationRule `TcpKeepalive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<crate::networking::TcpKeepalive>,
    /// Ingress class handled by Istio's ingress controller.
    pub ingress_class: String,
    /// Service of the ingress controller (default `istio-ingressgateway`).
    pub ingress_service: String,
    /// Which Ingress resources Istio handles (default `STRICT`).
    pub ingress_controller_mode: IngressControllerMode,
    /// Gateway selector (`istio: <value>`) used for Ingress (default `ingressgateway`).
    pub ingress_selector: String,
    /// Generate trace spans and request IDs.
    pub enable_tracing: bool,
    /// Access log file (e.g. `/dev/stdout`); empty disables access logs.
    pub access_log_file: String,
    /// Access log format; empty uses the proxy's default.
    pub access_log_format: String,
    /// Access log encoding (default `TEXT`).
    pub access_log_encoding: AccessLogEncoding,
    /// Send access logs to Envoy's gRPC Access Log Service.
    pub enable_envoy_access_log_service: bool,
    /// Turn off the listener access log (`NR` responses).
    pub disable_envoy_listener_log: bool,
    /// Default proxy configuration of sidecars and gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    /// Handling of outbound traffic to unknown destinations (default `ALLOW_ANY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Where inbound traffic is forwarded to (pod IP or localhost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_traffic_policy: Option<InboundTrafficPolicy>,
    /// Configuration sources (MCP/xDS servers, `k8s://`, `fs:///`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_sources: Vec<ConfigSource>,
    /// Use mutual TLS automatically where the server accepts it (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_auto_mtls: Option<bool>,
    /// SPIFFE trust domain (default `cluster.local`).
    pub trust_domain: String,
    /// Other trust domains treated as this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_domain_aliases: Vec<String>,
    /// Extra root certificates for workload-to-workload TLS (at most 100).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<CertificateData>,
    /// Default `exportTo` of services (default `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_service_export_to: Vec<String>,
    /// Default `exportTo` of VirtualServices (default `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_virtual_service_export_to: Vec<String>,
    /// Default `exportTo` of DestinationRules (default `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub default_destination_rule_export_to: Vec<String>,
    /// Administrative root namespace (default `istio-system`).
    pub root_namespace: String,
    /// Locality load balancing (DestinationRule `LocalityLoadBalancerSetting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<crate::networking::LocalityLbSetting>,
    /// DNS refresh rate of STRICT_DNS clusters (default 60s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<Duration>,
    /// Upgrade HTTP/1.1 connections to HTTP/2 by default.
    pub h2_upgrade_policy: H2UpgradePolicy,
    /// Stat name pattern of inbound clusters (`%SERVICE%`, `%SERVICE_PORT%`, ...).
    pub inbound_cluster_stat_name: String,
    /// Stat name pattern of outbound clusters (`%SERVICE%`, `%SUBSET_NAME%`, ...).
    pub outbound_cluster_stat_name: String,
    /// Deprecated: certificates istiod provisions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Certificate>,
    /// Deprecated: Thrift rate limiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thrift_config: Option<ThriftConfig>,
    /// Settings for selected services (cluster-local).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_settings: Vec<ServiceSettings>,
    /// Merge application metrics into the proxy's Prometheus endpoint (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<bool>,
    /// Deprecated: verify server certificates of DestinationRule TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_certificate_at_client: Option<bool>,
    /// External CA that istiod forwards certificate requests to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaConfig>,
    /// Extension providers (tracing, metrics, logging, ext_authz), at most 100.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension_providers: Vec<ExtensionProvider>,
    /// Providers used when a Telemetry names none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    /// Namespaces istiod watches (ORed Kubernetes label selectors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discovery_selectors: Vec<KubeLabelSelector>,
    /// URL path normalization (default `DEFAULT`: RFC 3986 + backslashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<ProxyPathNormalization>,
    /// Default HTTP retry policy (VirtualService `HTTPRetry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<crate::networking::HttpRetry>,
    /// TLS of mesh (ISTIO_MUTUAL) traffic.
    #[serde(rename = "meshMTLS", skip_serializing_if = "Option::is_none")]
    pub mesh_mtls: Option<MeshTlsConfig>,
    /// TLS defaults of all other traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_defaults: Option<MeshTlsConfig>,
    /// Which services are local to their cluster and which are global.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_scope_configs: Vec<ServiceScopeConfigs>,
}

/// `MeshConfig.IngressControllerMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngressControllerMode {
    /// Unset (means `STRICT`).
    #[default]
    Unspecified,
    /// No Ingress support.
    Off,
    /// Ingresses without a class or with `ingressClass`.
    Default,
    /// Only Ingresses with `ingressClass`.
    Strict,
}

/// `MeshConfig.AccessLogEncoding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    /// Plain text lines.
    #[default]
    Text,
    /// JSON objects.
    Json,
}

/// `MeshConfig.H2UpgradePolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Keep HTTP/1.1.
    #[default]
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// `MeshConfig.OutboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutboundTrafficPolicy {
    /// The mode.
    pub mode: OutboundTrafficMode,
}

pub use crate::networking::OutboundTrafficMode;

/// `MeshConfig.InboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InboundTrafficPolicy {
    /// The mode.
    pub mode: InboundTrafficMode,
}

/// `MeshConfig.InboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InboundTrafficMode {
    /// Forward to the pod IP the traffic was addressed to.
    #[default]
    Passthrough,
    /// Forward to localhost.
    Localhost,
}

/// `ConfigSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigSource {
    /// `host:port` of an MCP/xDS server, `xds://`, `k8s://` or `fs:///dir`.
    pub address: String,
    /// Client TLS to the server (DestinationRule `ClientTLSSettings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<crate::networking::ClientTlsSettings>,
    /// Resources taken from this source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscribed_resources: Vec<ConfigResource>,
}

/// `Resource`: what a config source supplies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigResource {
    /// Services and endpoints.
    #[default]
    ServiceRegistry,
}

/// `MeshConfig.CertificateData`: a trust anchor (one of `pem` or
/// `spiffeBundleUrl`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CertificateData {
    /// PEM certificate(s).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pem: String,
    /// SPIFFE bundle endpoint URL (Web PKI authenticated).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spiffe_bundle_url: String,
    /// Kubernetes signers using this anchor; empty means all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cert_signers: Vec<String>,
    /// Trust domains of this anchor; empty means the mesh's and its aliases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
}

/// Deprecated `Certificate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Certificate {
    /// Secret to store the certificate in.
    pub secret_name: String,
    /// DNS names of the certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

/// Deprecated `MeshConfig.ThriftConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ThriftConfig {
    /// Rate limit service URL.
    pub rate_limit_url: String,
    /// Rate limit service timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_timeout: Option<Duration>,
}

/// `MeshConfig.ServiceSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSettings {
    /// The settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ServiceSettingsSettings>,
    /// Hosts they apply to (`*.ns.svc.cluster.local` wildcards allowed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// `MeshConfig.ServiceSettings.Settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSettingsSettings {
    /// Clients only reach endpoints in their own cluster.
    pub cluster_local: bool,
}

/// `MeshConfig.CA`: an external CA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaConfig {
    /// `host:port` of the CA (required).
    pub address: String,
    /// Client TLS to the CA (`ClientTLSSettings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_settings: Option<crate::networking::ClientTlsSettings>,
    /// Timeout of forwarded CSRs (default 10s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Duration>,
    /// Whether istiod (not the agent) talks to the CA (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istiod_side: Option<bool>,
}

/// `MeshConfig.DefaultProviders`: provider names by signal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DefaultProviders {
    /// Default tracing provider(s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<String>,
    /// Default metrics provider(s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
    /// Default access log provider(s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<String>,
}

/// A Kubernetes `LabelSelector` (`discoverySelectors`, service scopes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeLabelSelector {
    /// Labels that must all match.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Expressions that must all match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// A Kubernetes `LabelSelectorRequirement`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist` (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<SelectorOperator>,
    /// Values for `In`/`NotIn`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Kubernetes label selector operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label's value is none of `values` (or it is absent).
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// `MeshConfig.ProxyPathNormalization`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyPathNormalization {
    /// The normalization.
    pub normalization: PathNormalization,
}

/// `MeshConfig.ProxyPathNormalization.NormalizationType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathNormalization {
    /// `BASE` plus backslash to slash (the default).
    #[default]
    Default,
    /// No normalization.
    None,
    /// RFC 3986 normalization.
    Base,
    /// `BASE` plus merging of `//`.
    MergeSlashes,
    /// `MERGE_SLASHES` plus decoding of `%2F`, `%5C`.
    DecodeAndMergeSlashes,
}

/// `MeshConfig.TLSConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshTlsConfig {
    /// Minimum TLS version (default TLS 1.2).
    pub min_protocol_version: MeshTlsProtocol,
    /// ECDH curves (not for meshMTLS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    /// Cipher suites for TLS 1.0-1.2 (OpenSSL names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// `MeshConfig.TLSConfig.TLSProtocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MeshTlsProtocol {
    /// The default (TLS 1.2).
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

/// `MeshConfig.ServiceScopeConfigs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceScopeConfigs {
    /// Namespaces whose services this applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<KubeLabelSelector>,
    /// Services this applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services_selector: Option<KubeLabelSelector>,
    /// Cluster-local or mesh-wide.
    pub scope: ServiceScope,
}

/// `MeshConfig.ServiceScopeConfigs.Scope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceScope {
    /// Visible in its own cluster only.
    #[default]
    Local,
    /// Visible mesh-wide.
    Global,
}

// ---- validation -------------------------------------------------------------

impl Validate for MeshConfig {
    fn validate(&self, v: &mut Validator) {
        for (name, port) in [
            ("proxyListenPort", self.proxy_listen_port),
            ("proxyInboundListenPort", self.proxy_inbound_listen_port),
            ("proxyHttpPort", self.proxy_http_port),
        ] {
            if port != 0 {
                v.field(name, |v| check_i32_port(v, port));
            }
        }
        if let Some(t) = self.connect_timeout {
            v.field("connectTimeout", |v| {
                if t.get() < std::time::Duration::from_millis(1) || t > Duration::from_secs(3600) {
                    v.error(format!(
                        "invalid connect timeout {t}: must be between 1ms and 1h"
                    ));
                }
            });
        }
        if let Some(t) = self.protocol_detection_timeout {
            v.field("protocolDetectionTimeout", |v| {
                v.report(Code::Deprecated, "protocolDetectionTimeout is deprecated")
                    .hint("remove it; protocol sniffing no longer times out by default");
                if !t.is_zero() {
                    check_min_duration(v, t);
                }
            });
        }
        if let Some(t) = self.dns_refresh_rate {
            v.field("dnsRefreshRate", |v| check_min_duration(v, t));
        }
        if self.access_log_encoding == AccessLogEncoding::Json
            && !self.access_log_format.trim().is_empty()
            && !serde_json::from_str::<Json>(&self.access_log_format).is_ok_and(|j| j.is_object())
        {
            v.field("accessLogFormat", |v| {
                v.error("accessLogFormat must be a JSON object when accessLogEncoding is JSON")
                    .hint("e.g. '{\"status\": \"%RESPONSE_CODE%\", \"path\": \"%REQ(:PATH)%\"}'");
            });
        }
        v.nested("defaultConfig", &self.default_config);
        v.nested("tcpKeepalive", &self.tcp_keepalive);
        v.nested("localityLbSetting", &self.locality_lb_setting);
        v.nested("defaultHttpRetryPolicy", &self.default_http_retry_policy);
        v.each("configSources", &self.config_sources, |v, s| {
            if s.address.is_empty() {
                v.required("address")
                    .hint("`host:port` of an xDS server, `k8s://` or `fs:///path`");
            }
            v.nested("tlsSettings", &s.tls_settings);
        });
        if !self.trust_domain.is_empty() {
            v.field("trustDomain", |v| check_trust_domain(v, &self.trust_domain));
        }
        v.each("trustDomainAliases", &self.trust_domain_aliases, |v, td| {
            check_trust_domain(v, td);
        });
        if self.ca_certificates.len() > 100 {
            v.field("caCertificates", |v| {
                v.error("at most 100 caCertificates may be set");
            });
        }
        v.each("caCertificates", &self.ca_certificates, |v, c| {
            c.validate(v)
        });
        for (name, list) in [
            ("defaultServiceExportTo", &self.default_service_export_to),
            (
                "defaultVirtualServiceExportTo",
                &self.default_virtual_service_export_to,
            ),
            (
                "defaultDestinationRuleExportTo",
                &self.default_destination_rule_export_to,
            ),
        ] {
            v.field(name, |v| check_export_list(v, list, true));
        }
        if !self.root_namespace.is_empty() && !is_dns1123_label(&self.root_namespace) {
            v.field("rootNamespace", |v| {
                v.error(format!(
                    "rootNamespace {:?} is not a valid namespace name",
                    self.root_namespace
                ))
                .hint("namespace names are lower-case letters, digits and '-', up to 63");
            });
        }
        for (name, pattern, vars) in [
            (
                "inboundClusterStatName",
                &self.inbound_cluster_stat_name,
                &[
                    "SERVICE",
                    "SERVICE_FQDN",
                    "SERVICE_PORT",
                    "TARGET_PORT",
                    "SERVICE_PORT_NAME",
                ][..],
            ),
            (
                "outboundClusterStatName",
                &self.outbound_cluster_stat_name,
                &[
                    "SERVICE",
                    "SERVICE_FQDN",
                    "SERVICE_PORT",
                    "SERVICE_PORT_NAME",
                    "SUBSET_NAME",
                ][..],
            ),
        ] {
            v.field(name, |v| check_stat_pattern(v, pattern, vars));
        }
        if !self.certificates.is_empty() {
            v.field("certificates", |v| {
                v.report(Code::Deprecated, "certificates is deprecated and ignored");
            });
        }
        if self.thrift_config.is_some() {
            v.field("thriftConfig", |v| {
                v.report(
                    Code::Deprecated,
                    "thriftConfig is deprecated: Thrift support was removed",
                );
            });
        }
        if self.verify_certificate_at_client.is_some() {
            v.field("verifyCertificateAtClient", |v| {
                v.report(Code::Deprecated, "verifyCertificateAtClient is deprecated: server certificates are always verified when a CA is given")
                    .hint("use DestinationRule `insecureSkipVerify` per host instead");
            });
        }
        v.each("serviceSettings", &self.service_settings, |v, s| {
            v.each("hosts", &s.hosts, |v, h| check_host(v, h, true));
        });
        v.nested("ca", &self.ca);
        if self.extension_providers.len() > 100 {
            v.field("extensionProviders", |v| {
                v.error("at most 100 extensionProviders may be set");
            });
        }
        let mut names = BTreeSet::new();
        v.each("extensionProviders", &self.extension_providers, |v, p| {
            p.validate(v);
            if !p.name.is_empty() && !names.insert(p.name.clone()) {
                v.field("name", |v| {
                    v.error(format!("duplicate extension provider name {}", p.name))
                        .hint("extension provider names must be unique");
                });
            }
        });
        if let Some(d) = &self.default_providers {
            v.field("defaultProviders", |v| self.check_default_providers(v, d));
        }
        v.each("discoverySelectors", &self.discovery_selectors, |v, s| {
            s.validate(v);
        });
        if let Some(m) = &self.mesh_mtls {
            v.field("meshMTLS", |v| {
                if !m.ecdh_curves.is_empty() {
                    v.field("ecdhCurves", |v| {
                        v.error("mesh TLS does not support ECDH curves configuration")
                            .hint("set ecdhCurves under tlsDefaults (non ISTIO_MUTUAL traffic)");
                    });
                }
                check_cipher_suites(v, &m.cipher_suites);
            });
        }
        if let Some(t) = &self.tls_defaults {
            v.field("tlsDefaults", |v| {
                check_ecdh_curves(v, &t.ecdh_curves);
                check_cipher_suites(v, &t.cipher_suites);
            });
        }
        v.each("serviceScopeConfigs", &self.service_scope_configs, |v, s| {
            v.nested("namespaceSelector", &s.namespace_selector);
            v.nested("servicesSelector", &s.services_selector);
            if s.namespace_selector.is_none() && s.services_selector.is_none() {
                v.warn("a service scope without namespaceSelector or servicesSelector selects nothing");
            }
        });
    }
}

impl MeshConfig {
    /// Built-in providers Istio adds to every mesh config.
    const BUILTIN_PROVIDERS: &'static [(&'static str, ProviderKind)] = &[
        ("prometheus", ProviderKind::Metrics),
        ("envoy", ProviderKind::Logging),
    ];

    fn provider_kind(&self, name: &str) -> Option<ProviderKind> {
        self.extension_providers
            .iter()
            .find(|p| p.name == name)
            .and_then(ExtensionProvider::kind)
            .or_else(|| {
                Self::BUILTIN_PROVIDERS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, k)| *k)
            })
    }

    fn check_default_providers(&self, v: &mut Validator, d: &DefaultProviders) {
        for (field, list, want) in [
            ("tracing", &d.tracing, ProviderKind::Tracing),
            ("metrics", &d.metrics, ProviderKind::Metrics),
            ("accessLogging", &d.access_logging, ProviderKind::Logging),
        ] {
            v.each(field, list, |v, name| {
                let defined = self.extension_providers.iter().any(|p| p.name == *name)
                    || Self::BUILTIN_PROVIDERS.iter().any(|(n, _)| n == name);
                if !defined {
                    let known: Vec<&str> = self
                        .extension_providers
                        .iter()
                        .map(|p| p.name.as_str())
                        .chain(Self::BUILTIN_PROVIDERS.iter().map(|(n, _)| *n))
                        .collect();
                    v.error(format!(
                        "default provider {name:?} is not defined in extensionProviders"
                    ))
                    .hint(format!("defined providers: {}", known.join(", ")));
                    return;
                }
                let kind = self.provider_kind(name);
                let fits = match kind {
                    None => true,
                    // Stackdriver serves every signal.
                    Some(k) if k == want => true,
                    _ => self
                        .extension_providers
                        .iter()
                        .any(|p| p.name == *name && p.stackdriver.is_some()),
                };
                if !fits {
                    v.error(format!(
                        "provider {name:?} is not a {} provider",
                        match want {
                            ProviderKind::Tracing => "tracing",
                            ProviderKind::Metrics => "metrics",
                            _ => "access logging",
                        }
                    ));
                }
            });
        }
    }
}

impl Validate for CertificateData {
    fn validate(&self, v: &mut Validator) {
        match (self.pem.is_empty(), self.spiffe_bundle_url.is_empty()) {
            (true, true) => {
                v.error("one of pem or spiffeBundleUrl must be set");
            }
            (false, false) => {
                v.conflict("only one of pem or spiffeBundleUrl can be set");
            }
            (false, true) => {
                if !self.pem.contains("-----BEGIN CERTIFICATE-----") {
                    v.field("pem", |v| {
                        v.error("pem is not a PEM certificate: it has no -----BEGIN CERTIFICATE----- block");
                    });
                }
            }
            (true, false) => v.field("spiffeBundleUrl", |v| {
                check_http_url(v, &self.spiffe_bundle_url);
            }),
        }
        v.each("certSigners", &self.cert_signers, |v, s| {
            if s.is_empty() {
                v.error("empty value not allowed");
            }
        });
        v.each("trustDomains", &self.trust_domains, |v, td| {
            check_trust_domain(v, td)
        });
    }
}

impl Validate for CaConfig {
    fn validate(&self, v: &mut Validator) {
        if self.address.is_empty() {
            v.required("address")
                .hint("`host:port` of the CA, e.g. custom-ca.default.svc.cluster.local:8932");
        } else {
            v.field("address", |v| check_host_port(v, &self.address));
        }
        check_duration_field(v, "requestTimeout", self.request_timeout);
        v.nested("tlsSettings", &self.tls_settings);
    }
}

impl Validate for KubeLabelSelector {
    fn validate(&self, v: &mut Validator) {
        v.field("matchLabels", |v| {
            check_selector_labels(v, &self.match_labels)
        });
        v.each("matchExpressions", &self.match_expressions, |v, e| {
            if e.key.is_empty() {
                v.required("key");
            }
            match e.operator {
                None => {
                    v.required("operator")
                        .hint("one of In, NotIn, Exists, DoesNotExist");
                }
                Some(SelectorOperator::In | SelectorOperator::NotIn) if e.values.is_empty() => {
                    v.field("values", |v| {
                        v.report(
                            Code::RequiredField,
                            "values must be non-empty for In and NotIn",
                        );
                    });
                }
                Some(SelectorOperator::Exists | SelectorOperator::DoesNotExist)
                    if !e.values.is_empty() =>
                {
                    v.field("values", |v| {
                        v.error("values must be empty for Exists and DoesNotExist");
                    });
                }
                _ => {}
            }
        });
    }
}

// ---- helpers ----------------------------------------------------------------

fn check_i32_port(v: &mut Validator, port: i32) {
    if !(1..=65535).contains(&port) {
        v.error(format!(
            "port number {port} is invalid: port must be between 1-65535"
        ));
    }
}

/// Istio's `ValidateTrustDomain`: DNS-1123 labels joined by dots.
fn check_trust_domain(v: &mut Validator, td: &str) {
    if td.is_empty() {
        v.error("empty trust domain not allowed");
        return;
    }
    let labels: Vec<&str> = td.strip_suffix('.').unwrap_or(td).split('.').collect();
    if labels.iter().any(|l| !is_dns1123_label(l)) {
        v.error(format!("trust domain name {td:?} invalid"))
            .hint("a trust domain is lower-case DNS labels joined by dots, e.g. cluster.local");
    }
}

/// Unknown `%VARIABLE%`s in a cluster stat name pattern are left as-is.
fn check_stat_pattern(v: &mut Validator, pattern: &str, vars: &[&str]) {
    let parts: Vec<&str> = pattern.split('%').collect();
    for (i, var) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 < parts.len() && !vars.contains(var) {
            v.warn(format!("unknown variable %{var}% in stat name pattern"))
                .hint(format!(
                    "supported: {}",
                    vars.iter()
                        .map(|v| format!("%{v}%"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
        }
    }
}

/// `host:port` with a valid host (DNS name or IP) and port.
fn check_host_port(v: &mut Validator, addr: &str) {
    let split = if let Some(rest) = addr.strip_prefix('[') {
        rest.split_once("]:")
    } else {
        addr.rsplit_once(':')
    };
    let Some((host, port)) = split else {
        v.error(format!(
            "{addr:?} is not a host:port address: the port is missing"
        ));
        return;
    };
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => {}
        _ => {
            v.error(format!(
                "{addr:?}: port {port:?} must be a number between 1-65535"
            ));
        }
    }
    if host.parse::<IpAddr>().is_err() {
        check_host(v, host, false);
    }
}

/// ECDH curves Envoy (BoringSSL) knows.
const ECDH_CURVES: &[&str] = &[
    "P-224",
    "P-256",
    "P-521",
    "P-384",
    "X25519",
    "X25519Kyber768Draft00",
    "X25519MLKEM768",
];

fn check_ecdh_curves(v: &mut Validator, curves: &[String]) {
    for (i, c) in curves.iter().enumerate() {
        v.field("ecdhCurves", |v| {
            v.index(i, |v| {
                if !c.is_empty() && !ECDH_CURVES.contains(&c.as_str()) {
                    v.warn(format!(
                        "unrecognized ECDH curve {c:?}: Envoy will ignore it"
                    ))
                    .hint(format!("known curves: {}", ECDH_CURVES.join(", ")));
                } else if curves[..i].contains(c) {
                    v.warn(format!("duplicate ECDH curve {c:?}"));
                }
            });
        });
    }
}

/// Cipher suites Envoy (BoringSSL) supports.
const CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

fn check_cipher_suites(v: &mut Validator, suites: &[String]) {
    for (i, c) in suites.iter().enumerate() {
        v.field("cipherSuites", |v| {
            v.index(i, |v| {
                // `ALL`, `-X` and `+X` are OpenSSL operators, not names.
                let operator = c == "ALL" || c.starts_with(['-', '+', '!', '[']);
                if !c.is_empty() && !operator && !CIPHER_SUITES.contains(&c.as_str()) {
                    v.warn(format!(
                        "unsupported cipher suite {c:?}: Envoy will ignore it"
                    ))
                    .hint("use OpenSSL names such as ECDHE-RSA-AES128-GCM-SHA256");
                } else if suites[..i].contains(c) {
                    v.warn(format!("duplicate cipher suite {c:?}"));
                }
            });
        });
    }
}

/// Parses MeshConfig YAML (the `mesh` key of Istio's `istio` ConfigMap, or
/// a `--mesh` file). Diagnostics carry lines relative to `text`.
pub fn parse_mesh(
    text: &str,
) -> Result<(MeshConfig, Vec<crate::diag::Diagnostic>), Box<crate::diag::Diagnostic>> {
    crate::load::parse_fragment(text, "mesh config")
}

#[cfg(test)]
mod tests;
