//! `ServiceEntry`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `ServiceEntry` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEntry {}

impl Validate for ServiceEntry {
    fn validate(&self, _v: &mut Validator) {}
}
