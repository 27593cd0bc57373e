//! Analysis across resources, like `istioctl analyze`.

use crate::diag::Diagnostic;
use crate::load::Loaded;

/// Checks the loaded resources against each other.
pub fn analyze(_loaded: &Loaded) -> Vec<Diagnostic> {
    Vec::new()
}
