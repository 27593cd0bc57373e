//! `RequestAuthentication`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `RequestAuthentication` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestAuthentication {}

impl Validate for RequestAuthentication {
    fn validate(&self, _v: &mut Validator) {}
}
