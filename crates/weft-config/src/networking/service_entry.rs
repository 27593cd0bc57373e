//! `ServiceEntry`: adds a service to the mesh's registry — an external API,
//! a database on VMs, or a name for workloads selected by labels.
//!
//! The checks follow Istio's webhook (`ValidateServiceEntry`) and the CEL
//! rules of its CRD, whose messages the shared samples quote.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Protocol;
use super::workload_entry::{EntryRules, WorkloadEntry, check_workload_entry, fqdn_error};
use super::{WorkloadSelector, workload_entry::is_name_label};
use crate::diag::Code;
use crate::validate::{Validate, Validator, check_export_to, check_ip_or_cidr, check_port};

/// `ServiceEntry` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEntry {
    /// Host names of the service (a leading `*` wildcard is allowed); required.
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    pub addresses: Vec<String>,
    /// Ports of the service.
    pub ports: Vec<ServicePort>,
    /// Whether the service is outside the mesh (default) or part of it.
    pub location: ServiceLocation,
    /// How endpoints' addresses are found (default `NONE`).
    pub resolution: ServiceResolution,
    /// Endpoints of the service; not with `workloadSelector`.
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects the service's workloads (pods and WorkloadEntries) by label.
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces that see the service (`.`, `*`, `~` or names; default all).
    pub export_to: Vec<String>,
    /// Subject alternative names the server certificate must carry.
    pub subject_alt_names: Vec<String>,
}

/// `ServicePort`: a port of a ServiceEntry.
pub type ServicePort = super::Port;

/// `ServiceEntry.Location`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceLocation {
    /// Outside the mesh: no mTLS, no Istio identity.
    #[default]
    MeshExternal,
    /// Part of the mesh (e.g. VMs with a sidecar).
    MeshInternal,
}

/// `ServiceEntry.Resolution`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceResolution {
    /// Forward to the original destination IP.
    #[default]
    None,
    /// The endpoints' IP addresses.
    Static,
    /// Resolve the endpoints' (or hosts') names, using every address.
    Dns,
    /// Resolve names, using the first address for new connections.
    DnsRoundRobin,
    /// Resolve the name from the request's Host/SNI (wildcard hosts).
    DynamicDns,
}

impl ServiceResolution {
    fn as_str(self) -> &'static str {
        match self {
            ServiceResolution::None => "NONE",
            ServiceResolution::Static => "STATIC",
            ServiceResolution::Dns => "DNS",
            ServiceResolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            ServiceResolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

/// The protocol names Istio accepts, for hints.
pub(crate) const PROTOCOLS: &str =
    "HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, MYSQL, REDIS";

/// Checks a port protocol name (empty is allowed: the proxy detects it).
pub(crate) fn check_protocol(v: &mut Validator, protocol: &str) {
    if !protocol.is_empty() && Protocol::parse_known(protocol).is_none() {
        v.error(format!("unsupported protocol: {protocol:?}"))
            .hint(format!("use one of {PROTOCOLS}"));
    }
}

impl Validate for ServiceEntry {
    fn validate(&self, v: &mut Validator) {
        let res = self.resolution;
        if self.hosts.is_empty() {
            v.required("hosts")
                .hint("a ServiceEntry names at least one host, e.g. api.example.com");
        }
        let mut hosts_ok = Vec::with_capacity(self.hosts.len());
        let mut seen = BTreeSet::new();
        v.each("hosts", &self.hosts, |v, h| {
            let before = v.issues().len();
            check_entry_host(v, h);
            if !seen.insert(h.to_ascii_lowercase()) {
                v.warn(format!("host {h:?} is listed twice"));
            }
            hosts_ok.push(
                v.issues()[before..]
                    .iter()
                    .all(|i| i.code != Code::InvalidValue),
            );
        });
        self.check_selector(v);
        v.each("addresses", &self.addresses, |v, a| {
            if a.starts_with("unix://") {
                v.error("unix domain socket addresses are not supported in addresses")
                    .hint("put the socket in endpoints[].address with resolution STATIC");
                return;
            }
            check_ip_or_cidr(v, a);
            if a.contains('/')
                && !matches!(res, ServiceResolution::None | ServiceResolution::Static)
            {
                v.error("CIDR addresses are allowed only for NONE/STATIC resolution types")
                    .hint("use single IP addresses, or resolution NONE/STATIC");
            }
        });
        let port_names = self.check_ports(v);
        self.check_endpoints(v, &port_names, &hosts_ok);
        if res != ServiceResolution::None && self.hosts.len() > 1 {
            let bad = self.ports.iter().position(|p| {
                Protocol::parse_known(&p.protocol).is_none_or(|p| !p.is_http() && !p.is_tls())
            });
            if let Some(i) = bad {
                v.field("ports", |v| {
                    v.index(i, |v| {
                        v.error("multiple hosts provided with non-HTTP, non-TLS ports")
                            .hint("plain TCP cannot tell the hosts apart: use one ServiceEntry per host, or resolution NONE");
                    });
                });
            }
        }
        check_export_to(v, &self.export_to, true);
        v.each("subjectAltNames", &self.subject_alt_names, |v, s| {
            if s.is_empty() {
                v.error("subject alt name must not be empty");
            }
        });
    }
}

impl ServiceEntry {
    fn check_selector(&self, v: &mut Validator) {
        let Some(sel) = &self.workload_selector else {
            return;
        };
        v.field("workloadSelector", |v| {
            sel.validate(v);
            if sel.labels.is_empty() {
                v.warn("workload selector specified without labels: it selects every workload in the namespace");
            }
        });
        if !self.endpoints.is_empty() {
            v.conflict("only one of WorkloadSelector or Endpoints can be set")
                .hint("list endpoints, or select workloads by label, not both");
        }
        if matches!(
            self.resolution,
            ServiceResolution::Dns | ServiceResolution::DnsRoundRobin | ServiceResolution::None
        ) {
            v.field("workloadSelector", |v| {
                v.warn(format!(
                    "workloadSelector should not be set when resolution mode is {}",
                    self.resolution.as_str()
                ))
                .hint("workload selection needs resolution STATIC");
            });
        }
    }

    /// Checks the ports; returns their names.
    fn check_ports(&self, v: &mut Validator) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        v.field("ports", |v| {
            for (i, p) in self.ports.iter().enumerate() {
                v.index(i, |v| {
                    if p.name.is_empty() {
                        v.required("name").hint("name each port, e.g. http or tcp-db");
                    } else {
                        v.field("name", |v| {
                            if !is_name_label(&p.name) {
                                v.error(format!(
                                    "invalid port name {:?}: port names are DNS labels (letters, digits and '-', up to 63)",
                                    p.name
                                ));
                            }
                            if let Some(j) = self.ports[..i].iter().position(|q| q.name == p.name) {
                                v.error(format!(
                                    "Duplicate value: port name {:?} is already used by ports[{j}]",
                                    p.name
                                ));
                            }
                        });
                        names.insert(p.name.clone());
                    }
                    v.field("number", |v| {
                        check_port(v, p.number);
                        if let Some(j) = self.ports[..i].iter().position(|q| q.number == p.number) {
                            v.error(format!(
                                "port number cannot be duplicated: {} is also ports[{j}]",
                                p.number
                            ));
                        }
                    });
                    v.field("protocol", |v| check_protocol(v, &p.protocol));
                    if p.target_port != 0 {
                        v.field("targetPort", |v| {
                            check_port(v, p.target_port);
                            if self.resolution == ServiceResolution::None {
                                v.warn("targetPort has no effect when resolution mode is NONE");
                            }
                        });
                    }
                });
            }
        });
        names
    }

    fn check_endpoints(&self, v: &mut Validator, ports: &BTreeSet<String>, hosts_ok: &[bool]) {
        let res = self.resolution;
        let mut rules = EntryRules {
            service_ports: Some(ports),
            allow_hostname: true,
            allow_unix: false,
            require_address: false,
            template: false,
        };
        match res {
            ServiceResolution::None => {
                if !self.endpoints.is_empty() {
                    v.field("endpoints", |v| {
                        v.error("NONE mode cannot set endpoints")
                            .hint("resolution defaults to NONE: set resolution STATIC (IP endpoints) or DNS (host names)");
                    });
                }
            }
            ServiceResolution::Static => {
                rules.allow_hostname = false;
                rules.allow_unix = true;
            }
            ServiceResolution::Dns | ServiceResolution::DnsRoundRobin => {
                rules.require_address = true;
                if self.endpoints.is_empty() {
                    for (i, h) in self.hosts.iter().enumerate() {
                        if hosts_ok.get(i) == Some(&true) && fqdn_error(h).is_some() {
                            v.field("hosts", |v| {
                                v.index(i, |v| {
                                    v.error(format!(
                                        "hosts must be FQDN if no endpoints are provided for resolution mode {}",
                                        res.as_str()
                                    ))
                                    .hint("DNS resolution looks the host up; list endpoints for wildcard hosts");
                                });
                            });
                        }
                    }
                }
                if res == ServiceResolution::DnsRoundRobin && self.endpoints.len() > 1 {
                    v.field("endpoints", |v| {
                        v.error(format!(
                            "DNS_ROUND_ROBIN mode cannot have multiple endpoints (found {})",
                            self.endpoints.len()
                        ))
                        .hint("use resolution DNS to spread over several endpoints");
                    });
                }
                if !self.addresses.is_empty()
                    && self.hosts.len() > 1
                    && self
                        .ports
                        .iter()
                        .any(|p| Protocol::parse_known(&p.protocol).is_some_and(Protocol::is_tcp))
                {
                    v.warn("service entry can not have more than one host specified simultaneously with address and tcp port");
                }
            }
            ServiceResolution::DynamicDns => {
                if !self.endpoints.is_empty() {
                    v.field("endpoints", |v| {
                        v.warn("endpoints are ignored with resolution DYNAMIC_DNS");
                    });
                }
                if self.location == ServiceLocation::MeshInternal {
                    v.field("location", |v| {
                        v.error(
                            "DYNAMIC_DNS resolution is only supported for MESH_EXTERNAL services",
                        );
                    });
                }
                for (i, h) in self.hosts.iter().enumerate() {
                    if !h.starts_with('*') {
                        v.field("hosts", |v| {
                            v.index(i, |v| {
                                v.warn(format!(
                                    "host {h:?} is not a wildcard: DYNAMIC_DNS is meant for wildcard hosts"
                                ))
                                .hint("use resolution DNS for a single host name");
                            });
                        });
                    }
                }
                return;
            }
        }
        v.each("endpoints", &self.endpoints, |v, e| {
            check_workload_entry(v, e, &rules);
        });
    }
}

/// Checks a ServiceEntry host as Istio's `ValidateWildcardDomain` plus its
/// CRD rule: not `*`; a wildcard only at the start of the first label
/// (`*.example.com`, or the odd but accepted `*example.com`).
fn check_entry_host(v: &mut Validator, host: &str) {
    if host == "*" {
        v.error("hostname cannot be wildcard")
            .hint("name the external hosts, e.g. \"*.example.com\" or \"api.example.com\"");
        return;
    }
    if host.is_empty() {
        v.error("host must not be empty");
        return;
    }
    if host.len() > 255 {
        v.error(format!("host {host:?} is longer than 255 characters"));
        return;
    }
    let (first, rest) = match host.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (host, None),
    };
    let label = first
        .strip_prefix("*-")
        .or_else(|| first.strip_prefix('*'))
        .unwrap_or(first);
    let first_ok = (first == "*") || is_name_label(label);
    if !first_ok {
        let detail = if first.contains('*') {
            "a wildcard may only be a leading \"*\"".to_string()
        } else {
            format!("label {first:?} is invalid")
        };
        v.error(format!("invalid host {host:?}: {detail}"))
            .hint("host labels are letters, digits and '-', separated by dots; wildcards as \"*.example.com\"");
        return;
    }
    if let Some(rest) = rest
        && let Some(e) = fqdn_error(rest)
    {
        v.error(format!("invalid host {host:?}: {e}"));
        return;
    }
    if host.contains('*') && !host.starts_with("*.") {
        v.warn(format!(
            "partial wildcard {host:?}: only \"*.domain\" wildcards are portable"
        ))
        .hint("write \"*.example.com\" to match subdomains");
    }
}

#[cfg(test)]
mod tests;
