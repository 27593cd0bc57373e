//! `MeshConfig`: placeholder until its types land.

use serde::{Deserialize, Serialize};

use crate::validate::{Validate, Validator};

/// `MeshConfig` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfig {}

impl Validate for MeshConfig {
    fn validate(&self, _v: &mut Validator) {}
}

/// Parses MeshConfig YAML (the `mesh` key of Istio's `istio` ConfigMap, or
/// a `--mesh` file). Diagnostics carry lines relative to `text`.
pub fn parse_mesh(
    text: &str,
) -> Result<(MeshConfig, Vec<crate::diag::Diagnostic>), crate::diag::Diagnostic> {
    crate::load::parse_fragment(text, "mesh config")
}
