//! `Telemetry`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `Telemetry` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Telemetry {}

impl Validate for Telemetry {
    fn validate(&self, _v: &mut Validator) {}
}
