//! `DestinationRule`: what happens to traffic for a host after routing —
//! load balancing, connection pools, outlier detection, client TLS — and
//! the named subsets routes can send to.
//!
//! Checks follow Istio's `ValidateDestinationRule` (and `agent.ValidateTLS`,
//! `agent.ValidateLocalityLbSetting`) plus its CRD rules for `warmup`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::workload_entry::is_name_label;
use crate::duration::Duration;
use crate::security::LabelSelector;
use crate::validate::{Validate, Validator, check_export_to, check_host, check_selector_labels};

/// `DestinationRule` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DestinationRule {
    /// The service the rule applies to (short names are completed with the
    /// rule's namespace); required.
    pub host: String,
    /// Policies for all traffic to the host.
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named subsets of the host's endpoints, selected by labels.
    pub subsets: Vec<Subset>,
    /// Namespaces that see the rule (`.`, `*` or names; default all).
    pub export_to: Vec<String>,
    /// Applies the rule only to the selected client workloads (`matchLabels`).
    pub workload_selector: Option<LabelSelector>,
}

/// A named subset of a service's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subset {
    /// Subset name (a DNS label, unique in the rule); required.
    pub name: String,
    /// Labels an endpoint must carry to be in the subset.
    pub labels: BTreeMap<String, String>,
    /// Policies overriding the rule's for this subset.
    pub traffic_policy: Option<TrafficPolicy>,
}

impl Validate for DestinationRule {
    fn validate(&self, v: &mut Validator) {
        if self.host.is_empty() {
            v.required("host")
                .hint("name the service, e.g. reviews.default.svc.cluster.local");
        } else {
            v.field("host", |v| check_host(v, &self.host, true));
        }
        v.nested("trafficPolicy", &self.traffic_policy);
        v.field("subsets", |v| {
            for (i, s) in self.subsets.iter().enumerate() {
                v.index(i, |v| {
                    s.validate(v);
                    if !s.name.is_empty()
                        && let Some(j) = self.subsets[..i].iter().position(|t| t.name == s.name)
                    {
                        v.field("name", |v| {
                            v.error(format!(
                                "duplicate subset names: {:?} is also subsets[{j}]",
                                s.name
                            ));
                        });
                    }
                });
            }
        });
        check_export_to(v, &self.export_to, false);
        if self.workload_selector.is_some() {
            check_selector_export_to(v, &self.export_to);
        }
        if let Some(sel) = &self.workload_selector {
            v.field("workloadSelector", |v| {
                sel.validate(v);
                if sel.match_labels.is_empty() {
                    v.warn("workload selector specified without labels: it selects every workload in the namespace");
                }
            });
        }
    }
}

impl Validate for Subset {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.required("name").hint("name the subset, e.g. v1");
        } else if !is_name_label(&self.name) {
            v.field("name", |v| {
                v.error(format!(
                    "subset name is invalid: {:?} (a DNS label: letters, digits and '-', up to 63)",
                    self.name
                ));
            });
        }
        v.field("labels", |v| check_selector_labels(v, &self.labels));
        v.nested("trafficPolicy", &self.traffic_policy);
    }
}

/// A DestinationRule with a workload selector may only be exported to its
/// own namespace (Istio's `validateExportTo` for such rules).
fn check_selector_export_to(v: &mut Validator, export_to: &[String]) {
    if export_to.is_empty() {
        return;
    }
    let ns = v.namespace().to_string();
    let set: BTreeSet<String> = export_to
        .iter()
        .map(|e| if e == "." { ns.clone() } else { e.clone() })
        .collect();
    v.field("exportTo", |v| {
        if !set.contains(&ns) {
            v.error("destination rule with workload selector cannot have exportTo beyond current namespace")
                .hint("use exportTo: [\".\"]");
        } else if set.len() > 1 {
            v.error("destination rule with workload selector cannot have multiple entries in exportTo")
                .hint("use exportTo: [\".\"]");
        }
    });
}

/// Checks an optional duration field `name` (Istio's `ValidateDuration`).
pub(crate) fn check_duration(v: &mut Validator, name: &str, d: &Option<Duration>) {
    crate::validate::check_duration_field(v, name, *d);
}

/// Checks a field `name` that Istio declares as a non-negative int32.
fn check_non_negative(v: &mut Validator, name: &str, n: i32) {
    if n < 0 {
        v.field(name, |v| {
            v.error(format!("{name} {n} must be non-negative"));
        });
    }
}

mod load_balancer;
mod traffic_policy;

pub use load_balancer::*;
pub use traffic_policy::*;

#[cfg(test)]
mod tests;
