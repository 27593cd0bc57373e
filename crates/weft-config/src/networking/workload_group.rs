//! `WorkloadGroup`: the template VMs use to register themselves as
//! `WorkloadEntry`s, with a readiness probe (like a Deployment's pod
//! template).
//!
//! Checks follow Istio's `ValidateWorkloadGroup` and its CRD rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload_entry::{EntryRules, WorkloadEntry, check_workload_entry};
use crate::validate::{Validate, Validator, check_port, check_selector_labels};

/// `WorkloadGroup` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadGroup {
    /// Labels and annotations given to every WorkloadEntry of the group.
    pub metadata: Option<WorkloadGroupMeta>,
    /// The WorkloadEntry template (address and labels are filled in per
    /// workload); required.
    pub template: Option<WorkloadEntry>,
    /// Readiness probe run by the workloads' proxies.
    pub probe: Option<ReadinessProbe>,
}

/// `WorkloadGroup.ObjectMeta`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadGroupMeta {
    /// Labels of the workloads.
    pub labels: BTreeMap<String, String>,
    /// Annotations of the workloads.
    pub annotations: BTreeMap<String, String>,
}

/// `ReadinessProbe`: exactly one of `httpGet`, `tcpSocket`, `exec`, `grpc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReadinessProbe {
    /// Seconds after start before the first probe.
    pub initial_delay_seconds: i32,
    /// Seconds before a probe times out (default 1).
    pub timeout_seconds: i32,
    /// Seconds between probes (default 10).
    pub period_seconds: i32,
    /// Successes in a row to become ready (default 1).
    pub success_threshold: i32,
    /// Failures in a row to become unready (default 3).
    pub failure_threshold: i32,
    /// An HTTP GET; ready on a 2xx/3xx status.
    pub http_get: Option<HttpHealthCheck>,
    /// A TCP connect.
    pub tcp_socket: Option<TcpHealthCheck>,
    /// A command; ready on exit status 0.
    pub exec: Option<ExecHealthCheck>,
    /// A gRPC health check call.
    pub grpc: Option<GrpcHealthCheck>,
}

/// `HTTPHealthCheckConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpHealthCheck {
    /// Request path.
    pub path: String,
    /// Port to probe; required.
    pub port: u32,
    /// Host to connect to (default: the workload's IP).
    pub host: String,
    /// `HTTP` (default) or `HTTPS`.
    pub scheme: String,
    /// Request headers.
    pub http_headers: Vec<ProbeHttpHeader>,
}

/// `HTTPHeader` of a probe request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProbeHttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// `TCPHealthCheckConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpHealthCheck {
    /// Host to connect to (default localhost).
    pub host: String,
    /// Port to connect to; required.
    pub port: u32,
}

/// `ExecHealthCheckConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecHealthCheck {
    /// Command and arguments; required.
    pub command: Vec<String>,
}

/// `GrpcHealthCheckConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcHealthCheck {
    /// Port of the gRPC server; required.
    pub port: u32,
    /// Fully qualified service name to check (default: the server).
    pub service: String,
}

impl Validate for WorkloadGroup {
    fn validate(&self, v: &mut Validator) {
        match &self.template {
            None => {
                v.required("template").hint(
                    "a WorkloadGroup needs a template, e.g. template: {serviceAccount: default}",
                );
            }
            Some(t) => v.field("template", |v| {
                check_workload_entry(v, t, &EntryRules::template())
            }),
        }
        if let Some(m) = &self.metadata {
            v.field("metadata", |v| {
                v.field("labels", |v| check_selector_labels(v, &m.labels));
                for (name, map) in [("labels", &m.labels), ("annotations", &m.annotations)] {
                    if map.len() > 256 {
                        v.field(name, |v| {
                            v.error(format!(
                                "at most 256 {name} can be set, found {}",
                                map.len()
                            ));
                        });
                    }
                }
            });
        }
        v.nested("probe", &self.probe);
    }
}

impl Validate for ReadinessProbe {
    fn validate(&self, v: &mut Validator) {
        for (name, n) in [
            ("initialDelaySeconds", self.initial_delay_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("periodSeconds", self.period_seconds),
            ("successThreshold", self.success_threshold),
            ("failureThreshold", self.failure_threshold),
        ] {
            if n < 0 {
                v.field(name, |v| {
                    v.error(format!("{name} must be non-negative, not {n}"));
                });
            }
        }
        let set = [
            self.http_get.is_some(),
            self.tcp_socket.is_some(),
            self.exec.is_some(),
            self.grpc.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set == 0 {
            v.error("a probe needs a health check method")
                .hint("set one of httpGet, tcpSocket, exec or grpc");
        } else if set > 1 {
            v.conflict("only one of httpGet, tcpSocket, exec or grpc can be set");
        }
        if let Some(h) = &self.http_get {
            v.field("httpGet", |v| {
                probe_port(v, h.port);
                if !matches!(h.scheme.as_str(), "" | "HTTP" | "HTTPS") {
                    v.field("scheme", |v| {
                        v.error(format!(
                            "scheme must be one of [HTTP, HTTPS], not {:?}",
                            h.scheme
                        ));
                    });
                }
                if !h.path.is_empty() && !h.path.starts_with('/') {
                    v.field("path", |v| {
                        v.error(format!("path {:?} must start with '/'", h.path));
                    });
                }
                v.each("httpHeaders", &h.http_headers, |v, hd| {
                    let valid = !hd.name.is_empty()
                        && hd
                            .name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                    if !valid {
                        v.field("name", |v| {
                            v.error(format!(
                                "header name {:?} is not a valid header name",
                                hd.name
                            ));
                        });
                    }
                });
            });
        }
        if let Some(t) = &self.tcp_socket {
            v.field("tcpSocket", |v| probe_port(v, t.port));
        }
        if let Some(e) = &self.exec {
            v.field("exec", |v| {
                if e.command.is_empty() {
                    v.required("command")
                        .hint("e.g. command: [cat, /tmp/healthy]");
                }
                v.each("command", &e.command, |v, c| {
                    if c.is_empty() {
                        v.error("command entries must not be empty");
                    }
                });
            });
        }
        if let Some(g) = &self.grpc {
            v.field("grpc", |v| probe_port(v, g.port));
        }
    }
}

fn probe_port(v: &mut Validator, port: u32) {
    if port == 0 {
        v.required("port");
    } else {
        v.field("port", |v| check_port(v, port));
    }
}

#[cfg(test)]
mod tests;
