//! `Sidecar`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `Sidecar` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sidecar {}

impl Validate for Sidecar {
    fn validate(&self, _v: &mut Validator) {}
}
