//! `VirtualService`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `VirtualService` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualService {}

impl Validate for VirtualService {
    fn validate(&self, _v: &mut Validator) {}
}
