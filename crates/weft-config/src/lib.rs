//! Weft's configuration API: Istio's resources read exactly as users write
//! them.
//!
//! - [`yaml`] parses multi-document YAML/JSON into a tree that remembers
//!   lines; [`de`] deserializes typed resources from it, collecting unknown
//!   fields with suggestions.
//! - [`networking`], [`security`], [`telemetry`], [`mesh`]: the resource
//!   types, each with its [`validate::Validate`] rules.
//! - [`load`] reads files and directories into [`resource::Resource`]s and
//!   [`diag::Diagnostic`]s; [`analyze`] checks resources against each other;
//!   [`store`] keeps the last good config of a watched directory.
//!
//! No networking here, and no I/O beyond reading (and watching) files.

pub mod analyze;
pub mod de;
pub mod diag;
pub mod duration;
pub mod host;
pub mod load;
pub mod mesh;
pub mod networking;
pub mod path;
pub mod resource;
pub mod security;
pub mod select;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_util;
pub mod validate;
pub mod yaml;

pub use diag::{Code, Diagnostic, Severity};
pub use load::{LoadOptions, Loaded, load_paths};
pub use resource::{Kind, Resource, ResourceKey, Spec};
