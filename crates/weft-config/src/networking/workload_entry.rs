//! `WorkloadEntry`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `WorkloadEntry` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadEntry {}

impl Validate for WorkloadEntry {
    fn validate(&self, _v: &mut Validator) {}
}
