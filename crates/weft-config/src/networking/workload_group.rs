//! `WorkloadGroup`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `WorkloadGroup` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadGroup {}

impl Validate for WorkloadGroup {
    fn validate(&self, _v: &mut Validator) {}
}
