//! `WorkloadEntry`: one workload outside Kubernetes (a VM, a bare-metal
//! host) with its address, ports and labels. The same type describes the
//! `endpoints` of a `ServiceEntry` and the `template` of a `WorkloadGroup`,
//! so its checks live in [`check_workload_entry`], parameterised by
//! [`EntryRules`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::validate::{
    Validate, Validator, check_port, check_selector_labels, is_dns1123_subdomain,
};

/// `WorkloadEntry` spec (also a `ServiceEntry` endpoint and a
/// `WorkloadGroup` template).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadEntry {
    /// IP address, DNS name (DNS resolution only) or `unix:///path` socket,
    /// without port; may be empty when `network` is set.
    pub address: String,
    /// Service port name → port on this workload (overrides `targetPort`).
    pub ports: BTreeMap<String, u32>,
    /// Labels of the workload.
    pub labels: BTreeMap<String, String>,
    /// Network the workload is on (multi-network meshes); required without address.
    pub network: String,
    /// Failure domain, `region/zone/subzone`.
    pub locality: String,
    /// Load-balancing weight (0 means the default, 1).
    pub weight: u32,
    /// Service account the workload runs as (its identity).
    pub service_account: String,
}

impl Validate for WorkloadEntry {
    fn validate(&self, v: &mut Validator) {
        check_workload_entry(v, self, &EntryRules::standalone());
    }
}

/// What a [`WorkloadEntry`] may contain depends on where it is written.
#[derive(Clone, Copy, Debug)]
pub struct EntryRules<'a> {
    /// The owning ServiceEntry's port names, when checking one of its
    /// endpoints (endpoint ports must name one of them).
    pub service_ports: Option<&'a BTreeSet<String>>,
    /// The address may be a DNS name.
    pub allow_hostname: bool,
    /// The address may be a `unix://` socket.
    pub allow_unix: bool,
    /// The address is required even when `network` is set.
    pub require_address: bool,
    /// A `WorkloadGroup` template: address and labels are filled in per
    /// workload, so none is required.
    pub template: bool,
}

impl EntryRules<'_> {
    /// A `WorkloadEntry` resource: any address kind; address or network.
    pub fn standalone() -> Self {
        EntryRules {
            service_ports: None,
            allow_hostname: true,
            allow_unix: true,
            require_address: false,
            template: false,
        }
    }

    /// A `WorkloadGroup` template.
    pub fn template() -> Self {
        EntryRules {
            template: true,
            ..EntryRules::standalone()
        }
    }
}

/// Checks a workload entry at the current path (a resource's `spec`, a
/// ServiceEntry's `spec.endpoints[i]`, a WorkloadGroup's `spec.template`).
pub fn check_workload_entry(v: &mut Validator, we: &WorkloadEntry, rules: &EntryRules<'_>) {
    check_address(v, we, rules);
    v.field("ports", |v| {
        for (name, port) in &we.ports {
            v.key(name, |v| {
                if !is_name_label(name) {
                    v.error(format!(
                        "invalid port name {name:?}: port names are DNS labels (letters, digits and '-', up to 63)"
                    ));
                }
                check_port(v, *port);
                if let Some(known) = rules.service_ports
                    && !known.contains(name)
                {
                    let names: Vec<&str> = known.iter().map(String::as_str).collect();
                    v.error(format!(
                        "endpoint port {name:?} is not defined by the service entry"
                    ))
                    .hint(if names.is_empty() {
                        "declare the port in the ServiceEntry's ports".to_string()
                    } else {
                        format!("ports of the ServiceEntry: {}", names.join(", "))
                    });
                }
            });
        }
    });
    v.field("labels", |v| check_selector_labels(v, &we.labels));
    if rules.template && !we.labels.is_empty() {
        v.field("labels", |v| {
            v.warn("labels in a WorkloadGroup template are not used")
                .hint("set the workloads' labels in spec.metadata.labels");
        });
    }
    if !we.locality.is_empty() {
        v.field("locality", |v| check_locality(v, &we.locality));
    }
    if we.network.len() > 2048 {
        v.field("network", |v| {
            v.error("network name is longer than 2048 characters");
        });
    }
    if !we.service_account.is_empty() && !is_dns1123_subdomain(&we.service_account) {
        v.field("serviceAccount", |v| {
            v.error(format!(
                "service account {:?} is not a valid Kubernetes name (lower-case DNS subdomain)",
                we.service_account
            ));
        });
    }
}

fn check_address(v: &mut Validator, we: &WorkloadEntry, rules: &EntryRules<'_>) {
    let addr = we.address.as_str();
    if addr.is_empty() {
        if rules.template {
            return;
        }
        if rules.require_address || we.network.is_empty() {
            v.required("address")
                .hint("set the workload's IP address (or its network, for a workload reached through a network gateway)");
        } else {
            v.field("address", |v| {
                v.warn(format!(
                    "address is unset with network {:?}: traffic goes through that network's gateway",
                    we.network
                ));
            });
        }
        return;
    }
    v.field("address", |v| {
        if rules.template {
            v.warn("address in a WorkloadGroup template is not used")
                .hint("each WorkloadEntry of the group gets its own address");
        }
        if addr.len() > 256 {
            v.error("address is longer than 256 characters");
            return;
        }
        if let Some(path) = addr.strip_prefix("unix://") {
            if !rules.allow_unix {
                v.error(format!(
                    "unix domain socket endpoint {addr:?} is only valid with STATIC resolution"
                ));
                return;
            }
            check_unix_path(v, path);
            return;
        }
        if addr.parse::<IpAddr>().is_ok() {
            return;
        }
        if !rules.allow_hostname {
            v.error(format!(
                "endpoint address {addr:?} is not a valid IP address"
            ))
            .hint("STATIC resolution needs IP addresses; use resolution DNS for host names");
        } else if let Some(e) = fqdn_error(addr) {
            v.error(format!(
                "endpoint address {addr:?} is not a valid FQDN or an IP address: {e}"
            ));
        }
    });
    if addr.starts_with("unix://") {
        if !we.ports.is_empty() {
            v.field("ports", |v| {
                v.error(format!("unix endpoint {addr:?} must not include ports"));
            });
        }
        if let Some(known) = rules.service_ports
            && known.len() != 1
        {
            v.field("address", |v| {
                v.error(format!(
                    "exactly 1 service port required for unix endpoints, the service entry has {}",
                    known.len()
                ));
            });
        }
    }
}

/// Checks the path of a `unix://` address: absolute (or `@abstract`), not a
/// directory.
pub(crate) fn check_unix_path(v: &mut Validator, path: &str) {
    if path.is_empty() {
        v.error("unix address must not be empty");
    } else if path.starts_with('@') {
        // An abstract socket: any name.
    } else if !path.starts_with('/') || path.ends_with('/') {
        v.error(format!(
            "unix socket {path:?} is not an absolute path to a file"
        ))
        .hint("write unix:///absolute/path/to/socket or unix://@abstract-name");
    }
}

/// Checks a locality: `region`, `region/zone` or `region/zone/subzone`,
/// no empty parts, no wildcards.
fn check_locality(v: &mut Validator, locality: &str) {
    if locality.len() > 2048 {
        v.error("locality is longer than 2048 characters");
    } else if locality.split('/').any(str::is_empty) {
        v.error(format!(
            "locality {locality:?} must not contain empty region/zone/subzone parts"
        ))
        .hint("write region/zone/subzone, e.g. us-east1/us-east1-b/rack7");
    } else if locality.contains('*') {
        v.error(format!(
            "locality {locality:?} cannot contain '*': it names where one workload runs"
        ));
    }
}

/// Whether `s` is a DNS-1123 label in Istio's case-insensitive form (port
/// and subset names): letters, digits and `-`, not starting or ending with
/// `-`, up to 63 characters.
pub(crate) fn is_name_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Why `name` is not a fully qualified domain name as Istio's `ValidateFQDN`
/// reads it (DNS labels, a non-numeric top-level label, no wildcards), or
/// `None` if it is one.
pub(crate) fn fqdn_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty domain name".to_string());
    }
    if name.len() > 255 {
        return Some("domain name longer than 255 characters".to_string());
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let tld = trimmed.rsplit('.').next().unwrap_or(trimmed);
    if !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!("top level domain {tld:?} cannot be all-numeric"));
    }
    trimmed
        .split('.')
        .find(|l| !is_name_label(l))
        .map(|l| format!("label {l:?} is invalid"))
}

#[cfg(test)]
mod tests;
