//! `DestinationRule`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `DestinationRule` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DestinationRule {}

impl Validate for DestinationRule {
    fn validate(&self, _v: &mut Validator) {}
}
