//! MeshConfig `extensionProviders`: tracing, metrics, access log, external
//! authorization and SDS backends that Telemetry and AuthorizationPolicy
//! name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::diag::Code;
use crate::duration::Duration;
use crate::validate::check_duration_field as check_opt_duration;
use crate::validate::check_header_name;
use crate::validate::{Validate, Validator, check_host, is_dns1123_label};

/// `MeshConfig.ExtensionProvider`: a name and exactly one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtensionProvider {
    /// Unique name, referenced by AuthorizationPolicy and Telemetry.
    pub name: String,
    /// External authorization over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_http: Option<ExtAuthzHttp>,
    /// External authorization over gRPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_ext_authz_grpc: Option<ExtAuthzGrpc>,
    /// Zipkin tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipkin: Option<ZipkinProvider>,
    /// Deprecated: Lightstep tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lightstep: Option<LightstepProvider>,
    /// Datadog tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datadog: Option<TracingService>,
    /// Stackdriver tracing, metrics and logging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stackdriver: Option<StackdriverProvider>,
    /// Deprecated: OpenCensus agent tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opencensus: Option<OpenCensusProvider>,
    /// Apache SkyWalking tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skywalking: Option<SkyWalkingProvider>,
    /// OpenTelemetry (OTLP) tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opentelemetry: Option<OpenTelemetryProvider>,
    /// Prometheus metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// Access logs to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_file_access_log: Option<FileAccessLogProvider>,
    /// HTTP access logs to an Envoy ALS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_http_als: Option<HttpAlsProvider>,
    /// TCP access logs to an Envoy ALS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_tcp_als: Option<TcpAlsProvider>,
    /// Access logs to an OpenTelemetry collector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_otel_als: Option<OtelAlsProvider>,
    /// An external SDS server supplying secrets (`sds://<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sds: Option<SdsProvider>,
}

/// What kind of signal a provider serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProviderKind {
    Authz,
    Tracing,
    Metrics,
    Logging,
    Secrets,
}

/// `EnvoyExternalAuthorizationHttpProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtAuthzHttp {
    /// `[<namespace>/]<hostname>` of the authorizer (required).
    pub service: String,
    /// Port of the service (required).
    pub port: u32,
    /// Check timeout (default 600s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Prefix added to the check request path (starts with `/`).
    pub path_prefix: String,
    /// Allow requests when the authorizer fails.
    pub fail_open: bool,
    /// Recompute the route after the check.
    pub clear_route_cache: bool,
    /// HTTP status returned on authorizer errors (default 403).
    pub status_on_error: String,
    /// Deprecated: request headers sent to the authorizer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_headers_in_check: Vec<String>,
    /// Request headers sent to the authorizer (exact/prefix/suffix).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers_in_check: Vec<String>,
    /// Fixed headers added to the check request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub include_additional_headers_in_check: BTreeMap<String, String>,
    /// Send the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<ExtAuthzRequestBody>,
    /// Authorizer headers copied upstream on allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    /// Authorizer headers copied downstream on deny.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
    /// Authorizer headers copied downstream on allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_allow: Vec<String>,
}

/// `EnvoyExternalAuthorizationGrpcProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtAuthzGrpc {
    /// `[<namespace>/]<hostname>` of the authorizer (required).
    pub service: String,
    /// Port of the service (required).
    pub port: u32,
    /// Check timeout (default 600s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Allow requests when the authorizer fails.
    pub fail_open: bool,
    /// Recompute the route after the check.
    pub clear_route_cache: bool,
    /// HTTP status returned on authorizer errors (default 403).
    pub status_on_error: String,
    /// Send the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_request_body_in_check: Option<ExtAuthzRequestBody>,
}

/// `EnvoyExternalAuthorizationRequestBody`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExtAuthzRequestBody {
    /// Largest body buffered, in bytes.
    pub max_request_bytes: u32,
    /// Send a partial body instead of answering 413.
    pub allow_partial_message: bool,
    /// Send the body as raw bytes (gRPC only).
    pub pack_as_bytes: bool,
}

/// `ZipkinTracingProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ZipkinProvider {
    /// `[<namespace>/]<hostname>` of the collector (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Longest path tag.
    pub max_tag_length: u32,
    /// Use 64-bit trace IDs.
    #[serde(rename = "enable64bitTraceId")]
    pub enable_64bit_trace_id: bool,
    /// Collector endpoint path (default `/api/v2/spans`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Trace context headers sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_context_option: Option<ZipkinTraceContext>,
    /// Timeout of a span export request to the collector (default: Envoy's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra HTTP headers sent to the collector (e.g. credentials).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<OtelHeader>,
}

/// `ZipkinTracingProvider.TraceContextOption`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ZipkinTraceContext {
    /// B3 headers only.
    #[default]
    UseB3,
    /// B3 and W3C `traceparent`.
    UseB3WithW3cPropagation,
}

/// `LightstepTracingProvider` (deprecated).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LightstepProvider {
    /// `[<namespace>/]<hostname>` of the collector (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Access token (required).
    pub access_token: String,
    /// Longest path tag.
    pub max_tag_length: u32,
}

/// A tracing backend with service, port and tag length (`DatadogTracingProvider`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TracingService {
    /// `[<namespace>/]<hostname>` of the agent (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Longest path tag.
    pub max_tag_length: u32,
}

/// `StackdriverProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StackdriverProvider {
    /// Deprecated: debug output.
    pub debug: bool,
    /// Attributes per span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_number_of_attributes: Option<i64>,
    /// Annotations per span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_number_of_annotations: Option<i64>,
    /// Message events per span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_number_of_message_events: Option<i64>,
    /// Longest path tag.
    pub max_tag_length: u32,
    /// Logging labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<StackdriverLogging>,
}

/// `StackdriverProvider.Logging`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StackdriverLogging {
    /// Label name to CEL expression.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `OpenCensusAgentTracingProvider` (deprecated).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OpenCensusProvider {
    /// `[<namespace>/]<hostname>` of the agent (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Context propagation headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<OpenCensusTraceContext>,
    /// Longest path tag.
    pub max_tag_length: u32,
}

/// `OpenCensusAgentTracingProvider.TraceContext`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpenCensusTraceContext {
    /// Unset.
    #[default]
    Unspecified,
    /// W3C `traceparent`.
    W3cTraceContext,
    /// gRPC binary header.
    GrpcBin,
    /// Google Cloud trace header.
    CloudTraceContext,
    /// B3 headers.
    B3,
}

/// `SkyWalkingTracingProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkyWalkingProvider {
    /// `[<namespace>/]<hostname>` of the receiver (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// OAP access token.
    pub access_token: String,
}

/// `OpenTelemetryTracingProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OpenTelemetryProvider {
    /// `[<namespace>/]<hostname>` of the OTLP endpoint (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Longest path tag.
    pub max_tag_length: u32,
    /// Export over OTLP/HTTP (not with `grpc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<OtelHttpService>,
    /// Export over OTLP/gRPC settings (not with `http`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<OtelGrpcService>,
    /// Resource detectors (`environment`, `dynatrace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_detectors: Option<Json>,
    /// Dynatrace sampler settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynatrace_sampler: Option<Json>,
}

/// `OpenTelemetryTracingProvider.HttpService`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtelHttpService {
    /// Export path (e.g. `/v1/traces`).
    pub path: String,
    /// Export timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<OtelHeader>,
}

/// `OpenTelemetryTracingProvider.GrpcService`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtelGrpcService {
    /// Export timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra metadata.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub initial_metadata: Vec<OtelHeader>,
}

/// `ExtensionProvider.HttpHeader`: a header (name and value or environment
/// variable), sent to OpenTelemetry and Zipkin collectors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtelHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Environment variable holding the value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub env_name: String,
}

/// `PrometheusMetricsProvider` (no settings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PrometheusProvider {}

/// `EnvoyFileAccessLogProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileAccessLogProvider {
    /// File path (default `/dev/stdout`).
    pub path: String,
    /// Log format (one of `text` or `labels`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Access log format: `text` or `labels` (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogFormat {
    /// Text format with Envoy command operators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON format: field name to command operator (`{}` for Envoy's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Json>,
}

/// `EnvoyHttpGrpcV3LogProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpAlsProvider {
    /// `[<namespace>/]<hostname>` of the ALS (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Log name.
    pub log_name: String,
    /// Filter state objects to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_state_objects_to_log: Vec<String>,
    /// Request headers to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_request_headers_to_log: Vec<String>,
    /// Response headers to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_response_headers_to_log: Vec<String>,
    /// Response trailers to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_response_trailers_to_log: Vec<String>,
}

/// `EnvoyTcpGrpcV3LogProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpAlsProvider {
    /// `[<namespace>/]<hostname>` of the ALS (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Log name.
    pub log_name: String,
    /// Filter state objects to log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_state_objects_to_log: Vec<String>,
}

/// `EnvoyOpenTelemetryLogProvider`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtelAlsProvider {
    /// `[<namespace>/]<hostname>` of the collector (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
    /// Log name.
    pub log_name: String,
    /// Body (`text`) and attributes (`labels`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// `SDSProvider`: an external secret discovery service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SdsProvider {
    /// Cluster name of the SDS server.
    pub name: String,
    /// `[<namespace>/]<hostname>` of the server (required).
    pub service: String,
    /// Port (required).
    pub port: u32,
}

impl ExtensionProvider {
    /// The provider types set, by JSON name.
    fn set_types(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        macro_rules! check {
            ($($field:ident => $name:literal),*) => {
                $( if self.$field.is_some() { set.push($name); } )*
            };
        }
        check!(
            envoy_ext_authz_http => "envoyExtAuthzHttp",
            envoy_ext_authz_grpc => "envoyExtAuthzGrpc",
            zipkin => "zipkin",
            lightstep => "lightstep",
            datadog => "datadog",
            stackdriver => "stackdriver",
            opencensus => "opencensus",
            skywalking => "skywalking",
            opentelemetry => "opentelemetry",
            prometheus => "prometheus",
            envoy_file_access_log => "envoyFileAccessLog",
            envoy_http_als => "envoyHttpAls",
            envoy_tcp_als => "envoyTcpAls",
            envoy_otel_als => "envoyOtelAls",
            sds => "sds"
        );
        set
    }

    pub(super) fn kind(&self) -> Option<ProviderKind> {
        let t = self.set_types();
        let first = *t.first()?;
        Some(match first {
            "envoyExtAuthzHttp" | "envoyExtAuthzGrpc" => ProviderKind::Authz,
            "prometheus" => ProviderKind::Metrics,
            "stackdriver" => ProviderKind::Tracing,
            "envoyFileAccessLog" | "envoyHttpAls" | "envoyTcpAls" | "envoyOtelAls" => {
                ProviderKind::Logging
            }
            "sds" => ProviderKind::Secrets,
            _ => ProviderKind::Tracing,
        })
    }
}

impl Validate for ExtensionProvider {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.required("name")
                .hint("give the provider a unique name to reference it by");
        }
        let set = self.set_types();
        match set.len() {
            0 => {
                v.error(format!(
                    "extension provider {:?} has no provider type: set one of envoyExtAuthzHttp, envoyExtAuthzGrpc, zipkin, datadog, stackdriver, skywalking, opentelemetry, prometheus, envoyFileAccessLog, envoyHttpAls, envoyTcpAls, envoyOtelAls",
                    self.name
                ));
            }
            1 => {}
            _ => {
                v.conflict(format!(
                    "extension provider {:?} sets {}: exactly one provider type is allowed",
                    self.name,
                    set.join(" and ")
                ))
                .hint("split it into one provider per type, each with its own name");
            }
        }
        if let Some(p) = &self.envoy_ext_authz_http {
            v.field("envoyExtAuthzHttp", |v| {
                check_service_port(v, &p.service, p.port);
                check_opt_duration(v, "timeout", p.timeout);
                check_status_on_error(v, &p.status_on_error);
                if !p.path_prefix.is_empty() && !p.path_prefix.starts_with('/') {
                    v.field("pathPrefix", |v| {
                        v.error(format!(
                            "pathPrefix should begin with `/` but found {:?}",
                            p.path_prefix
                        ));
                    });
                }
                if !p.include_headers_in_check.is_empty() {
                    v.field("includeHeadersInCheck", |v| {
                        v.report(Code::Deprecated, "includeHeadersInCheck is deprecated")
                            .hint("use includeRequestHeadersInCheck");
                    });
                }
                for (name, list) in [
                    (
                        "includeRequestHeadersInCheck",
                        &p.include_request_headers_in_check,
                    ),
                    ("headersToUpstreamOnAllow", &p.headers_to_upstream_on_allow),
                    (
                        "headersToDownstreamOnDeny",
                        &p.headers_to_downstream_on_deny,
                    ),
                    (
                        "headersToDownstreamOnAllow",
                        &p.headers_to_downstream_on_allow,
                    ),
                ] {
                    v.each(name, list, |v, h| check_header_pattern(v, h));
                }
                for key in p.include_additional_headers_in_check.keys() {
                    v.field("includeAdditionalHeadersInCheck", |v| {
                        v.key(key, |v| check_header_name(v, key));
                    });
                }
            });
        }
        if let Some(p) = &self.envoy_ext_authz_grpc {
            v.field("envoyExtAuthzGrpc", |v| {
                check_service_port(v, &p.service, p.port);
                check_opt_duration(v, "timeout", p.timeout);
                check_status_on_error(v, &p.status_on_error);
            });
        }
        if let Some(p) = &self.zipkin {
            v.field("zipkin", |v| {
                check_service_port(v, &p.service, p.port);
                if !p.path.is_empty() && !p.path.starts_with('/') {
                    v.field("path", |v| {
                        v.error(format!("path should begin with `/` but found {:?}", p.path));
                    });
                }
                check_opt_duration(v, "timeout", p.timeout);
                v.each("headers", &p.headers, check_otel_header);
            });
        }
        if let Some(p) = &self.lightstep {
            v.field("lightstep", |v| {
                v.report(Code::Deprecated, "the lightstep provider is deprecated")
                    .hint("use an opentelemetry provider");
                check_service_port(v, &p.service, p.port);
                if p.access_token.is_empty() {
                    v.required("accessToken");
                }
            });
        }
        if let Some(p) = &self.datadog {
            v.field("datadog", |v| check_service_port(v, &p.service, p.port));
        }
        if let Some(p) = &self.opencensus {
            v.field("opencensus", |v| {
                v.report(Code::Deprecated, "the opencensus provider is deprecated")
                    .hint("use an opentelemetry provider");
                check_service_port(v, &p.service, p.port);
            });
        }
        if let Some(p) = &self.skywalking {
            v.field("skywalking", |v| check_service_port(v, &p.service, p.port));
        }
        if let Some(p) = &self.opentelemetry {
            v.field("opentelemetry", |v| {
                check_service_port(v, &p.service, p.port);
                if p.http.is_some() && p.grpc.is_some() {
                    v.conflict("OpenTelemetryTracingProvider cannot specify both grpc and http");
                }
                if let Some(h) = &p.http {
                    v.field("http", |v| {
                        if !h.path.is_empty() && !h.path.starts_with('/') {
                            v.field("path", |v| {
                                v.error(format!(
                                    "path should begin with `/` but found {:?}",
                                    h.path
                                ));
                            });
                        }
                        check_opt_duration(v, "timeout", h.timeout);
                        v.each("headers", &h.headers, check_otel_header);
                    });
                }
                if let Some(g) = &p.grpc {
                    v.field("grpc", |v| {
                        check_opt_duration(v, "timeout", g.timeout);
                        v.each("initialMetadata", &g.initial_metadata, check_otel_header);
                    });
                }
            });
        }
        if let Some(p) = &self.envoy_file_access_log {
            v.field("envoyFileAccessLog", |v| {
                if let Some(f) = &p.log_format {
                    v.field("logFormat", |v| {
                        if f.text.is_some() && f.labels.is_some() {
                            v.conflict("only one of text or labels can be set");
                        }
                        check_labels_object(v, f);
                    });
                }
            });
        }
        if let Some(p) = &self.envoy_http_als {
            v.field("envoyHttpAls", |v| {
                check_service_port(v, &p.service, p.port)
            });
        }
        if let Some(p) = &self.envoy_tcp_als {
            v.field("envoyTcpAls", |v| check_service_port(v, &p.service, p.port));
        }
        if let Some(p) = &self.envoy_otel_als {
            v.field("envoyOtelAls", |v| {
                check_service_port(v, &p.service, p.port);
                if let Some(f) = &p.log_format {
                    v.field("logFormat", |v| check_labels_object(v, f));
                }
            });
        }
        if let Some(p) = &self.sds {
            v.field("sds", |v| check_service_port(v, &p.service, p.port));
        }
    }
}

/// An extension provider's `service` (`[<namespace>/]<hostname>`) and `port`.
fn check_service_port(v: &mut Validator, service: &str, port: u32) {
    if service.is_empty() {
        v.required("service")
            .hint("`[<namespace>/]<hostname>`, e.g. my-ext-authz.foo.svc.cluster.local");
    } else {
        v.field("service", |v| match service.split_once('/') {
            None => {
                if service.parse::<IpAddr>().is_err() {
                    check_host(v, service, false);
                }
            }
            Some((ns, host)) => {
                if ns.is_empty() || host.is_empty() {
                    v.error("namespace and hostname in service cannot be empty");
                } else if !matches!(ns, "*" | "." | "~") && !is_dns1123_label(ns) {
                    v.error(format!("invalid namespace value {ns:?} in service"));
                } else if !host.contains('.') && host != "*" {
                    v.error(format!(
                        "short names (non FQDN) are not allowed after a namespace: {service:?}"
                    ))
                    .hint("write the full host, e.g. foo/ext-authz.foo.svc.cluster.local");
                } else {
                    check_host(v, host, true);
                }
            }
        });
    }
    if port == 0 {
        v.required("port");
    } else if port > 65535 {
        v.field("port", |v| {
            v.error(format!(
                "port number {port} is invalid: port must be between 1-65535"
            ));
        });
    }
}

/// Envoy's known HTTP status codes (`envoy.type.v3.StatusCode`).
const ENVOY_STATUS_CODES: &[u16] = &[
    100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
    400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
    422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
];

fn check_status_on_error(v: &mut Validator, status: &str) {
    if status.is_empty() {
        return;
    }
    let ok = status
        .parse::<u16>()
        .is_ok_and(|c| ENVOY_STATUS_CODES.contains(&c));
    if !ok {
        v.field("statusOnError", |v| {
            v.error(format!(
                "unsupported statusOnError value {status:?}: must be an HTTP status code such as \"403\" or \"503\""
            ));
        });
    }
}

/// Header match patterns of ext_authz (`name`, `prefix*`, `*suffix`).
fn check_header_pattern(v: &mut Validator, pattern: &str) {
    let bare = pattern.trim_start_matches('*').trim_end_matches('*');
    if pattern.is_empty() {
        v.error("empty value not allowed");
    } else if pattern.matches('*').count() > 1 || (bare.contains('*')) {
        v.error(format!(
            "{pattern:?}: '*' may only be a prefix or a suffix of a header pattern"
        ));
    } else if !bare.is_empty() && !crate::validate::is_token(bare) {
        v.error(format!("{pattern:?} is not a valid header name pattern"));
    }
}

fn check_otel_header(v: &mut Validator, h: &OtelHeader) {
    if h.name.is_empty() {
        v.required("name");
    } else {
        v.field("name", |v| check_header_name(v, &h.name));
    }
    if !h.value.is_empty() && !h.env_name.is_empty() {
        v.conflict("only one of value or envName can be set");
    }
}

fn check_labels_object(v: &mut Validator, f: &LogFormat) {
    if let Some(labels) = &f.labels
        && !labels.is_object()
    {
        v.field("labels", |v| {
            v.error("labels must be an object of field name to format (use `{}` for Envoy's default JSON format)");
        });
    }
}
