//! `AuthorizationPolicy`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `AuthorizationPolicy` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizationPolicy {}

impl Validate for AuthorizationPolicy {
    fn validate(&self, _v: &mut Validator) {}
}
