//! `PeerAuthentication`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `PeerAuthentication` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PeerAuthentication {}

impl Validate for PeerAuthentication {
    fn validate(&self, _v: &mut Validator) {}
}
