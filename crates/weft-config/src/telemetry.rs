//! `Telemetry` (`telemetry.istio.io`): tracing, metrics and access logging
//! for the selected workloads, each sent to MeshConfig extension providers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::security::{LabelSelector, PolicyTargetReference, check_policy_scope};
use crate::validate::{Validate, Validator, check_percent};
use crate::validate::{check_duration as check_min_duration, check_header_name};

/// `Telemetry` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Telemetry {
    /// Workloads the policy applies to (not with `targetRef(s)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// A single Gateway API target (hidden older form of `targetRefs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API targets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Tracing settings (Istio supports one entry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<Tracing>,
    /// Metrics settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metrics>,
    /// Access logging settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLogging>,
}

/// `WorkloadMode`: which side of the traffic a setting applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Both outbound (client) and inbound (server) traffic.
    #[default]
    ClientAndServer,
    /// Outbound traffic of the workload.
    Client,
    /// Inbound traffic of the workload.
    Server,
}

/// `ProviderRef`: a MeshConfig extension provider by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderRef {
    /// Name of a MeshConfig `extensionProviders` entry (or a built-in one).
    pub name: String,
}

/// `Tracing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Tracing {
    /// Which traffic direction this applies to.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<TracingSelector>,
    /// Providers to report spans to (Istio supports one); default: the
    /// mesh's default tracing provider.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Percentage of requests to sample when no decision was made upstream,
    /// 0..=100 (default 0 unless the mesh sets one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    /// Report no spans (context is still propagated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    /// Extra tags on every span, by tag name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    /// Let the request ID decide sampling (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
    /// Add Istio's own tags to spans (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_istio_tags: Option<bool>,
}

/// `Tracing.TracingSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TracingSelector {
    /// Traffic direction.
    pub mode: WorkloadMode,
}

/// `Tracing.CustomTag`: exactly one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomTag {
    /// A fixed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<LiteralTag>,
    /// The value of an environment variable of the proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentTag>,
    /// The value of a request header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderTag>,
    /// The value of an access-log substitution formatter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatter: Option<FormatterTag>,
}

/// `Tracing.Literal`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LiteralTag {
    /// The tag value (required).
    pub value: String,
}

/// `Tracing.Formatter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FormatterTag {
    /// Format string, as in HTTP access logs (e.g.
    /// `%UPSTREAM_CLUSTER%`; required).
    pub value: String,
}

/// `Tracing.Environment`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvironmentTag {
    /// Environment variable name (required).
    pub name: String,
    /// Value when the variable is not set.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// `Tracing.RequestHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderTag {
    /// Header name (required).
    pub name: String,
    /// Value when the header is absent.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// `Metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Metrics {
    /// Providers this applies to; default: the mesh's default metrics provider.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Overrides, applied in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<MetricsOverrides>,
    /// How often TCP metrics are reported (default 5s; at least 1ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_interval: Option<Duration>,
}

/// `MetricsOverrides`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsOverrides {
    /// Which metrics and direction; unset: all metrics, both directions.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<MetricSelector>,
    /// Turn the selected metrics off (`false` re-enables what a parent disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Tag (label) changes, by tag name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_overrides: BTreeMap<String, TagOverride>,
}

/// `MetricSelector`: one of `metric` or `customMetric`, and a mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricSelector {
    /// A standard Istio metric (default `ALL_METRICS` when neither is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<IstioMetric>,
    /// A metric by its name, free-form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metric: Option<String>,
    /// Traffic direction.
    pub mode: WorkloadMode,
}

/// `MetricSelector.IstioMetric`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IstioMetric {
    /// Every standard metric.
    #[default]
    AllMetrics,
    /// `istio_requests_total`.
    RequestCount,
    /// `istio_request_duration_milliseconds`.
    RequestDuration,
    /// `istio_request_bytes`.
    RequestSize,
    /// `istio_response_bytes`.
    ResponseSize,
    /// `istio_tcp_connections_opened_total`.
    TcpOpenedConnections,
    /// `istio_tcp_connections_closed_total`.
    TcpClosedConnections,
    /// `istio_tcp_sent_bytes_total`.
    TcpSentBytes,
    /// `istio_tcp_received_bytes_total`.
    TcpReceivedBytes,
    /// `istio_request_messages_total`.
    GrpcRequestMessages,
    /// `istio_response_messages_total`.
    GrpcResponseMessages,
}

/// `MetricsOverrides.TagOverride`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TagOverride {
    /// Add/replace or remove the tag (default `UPSERT`).
    pub operation: TagOperation,
    /// CEL expression for the value (UPSERT only); `None` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `MetricsOverrides.TagOverride.Operation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagOperation {
    /// Insert or update the tag with `value`.
    #[default]
    Upsert,
    /// Drop the tag.
    Remove,
}

/// `AccessLogging`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogging {
    /// Which traffic direction this applies to.
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<LogSelector>,
    /// Providers this applies to; default: the mesh's default access log provider.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    /// Turn access logs off (`false` re-enables what a parent disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Log only the requests this filter selects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<AccessLogFilter>,
}

/// `AccessLogging.LogSelector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogSelector {
    /// Traffic direction.
    pub mode: WorkloadMode,
}

/// `AccessLogging.Filter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessLogFilter {
    /// CEL expression, e.g. `response.code >= 400`.
    pub expression: String,
}

impl Validate for Telemetry {
    fn validate(&self, v: &mut Validator) {
        check_policy_scope(v, &self.selector, &self.target_ref, &self.target_refs);
        if self.tracing.len() > 1 {
            v.field("tracing", |v| {
                v.warn("multiple tracing is not currently supported: only the first entry is used")
                    .hint("merge the entries into one");
            });
        }
        v.each("tracing", &self.tracing, |v, t| t.validate(v));
        v.each("metrics", &self.metrics, |v, m| m.validate(v));
        v.each("accessLogging", &self.access_logging, |v, l| l.validate(v));
    }
}

fn check_providers(v: &mut Validator, providers: &[ProviderRef]) {
    v.each("providers", providers, |v, p| {
        if p.name.is_empty() {
            v.required("name")
                .hint("name a MeshConfig extensionProvider, e.g. `name: prometheus`");
        }
    });
}

impl Validate for Tracing {
    fn validate(&self, v: &mut Validator) {
        if self.providers.len() > 1 {
            v.field("providers", |v| {
                v.warn("multiple providers is not currently supported: only the first is used");
            });
        }
        check_providers(v, &self.providers);
        if let Some(p) = self.random_sampling_percentage {
            v.field("randomSamplingPercentage", |v| check_percent(v, p));
        }
        for (name, tag) in &self.custom_tags {
            v.field("customTags", |v| {
                v.key(name, |v| {
                    if name.is_empty() {
                        v.error("tag name may not be empty");
                    }
                    tag.validate(v);
                });
            });
        }
    }
}

impl Validate for CustomTag {
    fn validate(&self, v: &mut Validator) {
        let set = usize::from(self.literal.is_some())
            + usize::from(self.environment.is_some())
            + usize::from(self.header.is_some())
            + usize::from(self.formatter.is_some());
        if set == 0 {
            v.error("a custom tag needs exactly one of literal, environment, header or formatter")
                .hint("e.g. `literal: {value: prod}` or `header: {name: x-user}`");
        } else if set > 1 {
            v.conflict("only one of literal, environment, header or formatter can be set");
        }
        if let Some(l) = &self.literal {
            v.field("literal", |v| {
                if l.value.is_empty() {
                    v.required("value");
                }
            });
        }
        if let Some(e) = &self.environment {
            v.field("environment", |v| {
                if e.name.is_empty() {
                    v.required("name");
                }
            });
        }
        if let Some(h) = &self.header {
            v.field("header", |v| {
                if h.name.is_empty() {
                    v.required("name");
                } else {
                    v.field("name", |v| check_header_name(v, &h.name));
                }
            });
        }
        if let Some(f) = &self.formatter {
            v.field("formatter", |v| {
                if f.value.is_empty() {
                    v.required("value")
                        .hint("an access-log format string, e.g. `%UPSTREAM_CLUSTER%`");
                }
            });
        }
    }
}

impl Validate for Metrics {
    fn validate(&self, v: &mut Validator) {
        check_providers(v, &self.providers);
        v.each("overrides", &self.overrides, |v, o| o.validate(v));
        if let Some(d) = self.reporting_interval {
            v.field("reportingInterval", |v| check_min_duration(v, d));
        }
    }
}

impl Validate for MetricsOverrides {
    fn validate(&self, v: &mut Validator) {
        if let Some(m) = &self.match_ {
            v.field("match", |v| {
                if m.metric.is_some() && m.custom_metric.is_some() {
                    v.conflict("only one of metric or customMetric can be set");
                }
                if m.custom_metric.as_deref() == Some("") {
                    v.field("customMetric", |v| {
                        v.error("customMetric in body should be at least 1 chars long");
                    });
                }
            });
        }
        for (name, tag) in &self.tag_overrides {
            v.field("tagOverrides", |v| {
                v.key(name, |v| {
                    if name.is_empty() {
                        v.error("tagOverrides name may not be empty");
                    }
                    match (tag.operation, tag.value.as_deref()) {
                        (TagOperation::Upsert, None | Some("")) => {
                            v.field("value", |v| {
                                v.report(
                                    crate::diag::Code::RequiredField,
                                    "value must be set when operation is UPSERT",
                                )
                                .hint("give a CEL expression, e.g. `value: request.host`, or use `operation: REMOVE`");
                            });
                        }
                        (TagOperation::Remove, Some(_)) => {
                            v.field("value", |v| {
                                v.error("value must not be set when operation is REMOVE");
                            });
                        }
                        _ => {}
                    }
                });
            });
        }
    }
}

impl Validate for AccessLogging {
    fn validate(&self, v: &mut Validator) {
        check_providers(v, &self.providers);
        if let Some(f) = &self.filter {
            v.field("filter", |v| {
                if f.expression.trim().is_empty() {
                    v.required("expression")
                        .hint("a CEL expression such as `response.code >= 400`");
                } else if let Some(msg) = cel_shape_error(&f.expression) {
                    v.field("expression", |v| {
                        v.error(format!(
                            "{:?} is not a valid CEL expression: {msg}",
                            f.expression
                        ));
                    });
                }
            });
        }
    }
}

/// A cheap syntax check of a CEL expression: balanced brackets and closed
/// string literals. (Full CEL type checking needs the attribute schema.)
fn cel_shape_error(expr: &str) -> Option<String> {
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let quote = c;
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == quote {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Some(format!("unterminated string literal starting with {quote}"));
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(want) {
                    return Some(format!("unbalanced {c:?}"));
                }
            }
            _ => {}
        }
    }
    stack.last().map(|c| format!("unclosed {c:?}"))
}

#[cfg(test)]
mod tests;
