//! `EnvoyFilter`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `EnvoyFilter` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvoyFilter {}

impl Validate for EnvoyFilter {
    fn validate(&self, _v: &mut Validator) {}
}
