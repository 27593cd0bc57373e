//! Types shared by the security kinds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator, check_selector_labels};

/// `istio.type.v1beta1.WorkloadSelector`: `matchLabels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    /// Labels a workload must carry, all of them.
    pub match_labels: BTreeMap<String, String>,
}

impl Validate for LabelSelector {
    fn validate(&self, v: &mut Validator) {
        v.field("matchLabels", |v| {
            check_selector_labels(v, &self.match_labels)
        });
    }
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Gateway API target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyTargetReference {
    /// API group of the target.
    pub group: String,
    /// Kind of the target (`Gateway`, `Service`, `ServiceEntry`).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace (must be the policy's own when set).
    pub namespace: String,
}
