//! `Gateway`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `Gateway` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Gateway {}

impl Validate for Gateway {
    fn validate(&self, _v: &mut Validator) {}
}
