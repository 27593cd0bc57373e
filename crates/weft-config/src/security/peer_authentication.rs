//! `PeerAuthentication`: which mutual TLS a workload accepts, for the whole
//! workload and per port.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::security::LabelSelector;
use crate::validate::{Validate, Validator, check_port};

/// `PeerAuthentication` spec (`security.istio.io`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PeerAuthentication {
    /// Workloads the policy applies to; unset means every workload of the
    /// namespace (or the mesh, in the root namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Mutual TLS mode for the workload as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<PeerAuthenticationMtls>,
    /// Per-port overrides, keyed by the workload's (target) port number
    /// written as a string (`8080:` or `"8080":`). Needs a `selector`.
    /// `None` when the field is absent, so `{}` can be told apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_level_mtls: Option<BTreeMap<String, PeerAuthenticationMtls>>,
}

/// `PeerAuthentication.MutualTLS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PeerAuthenticationMtls {
    /// How mutual TLS is used (default `UNSET`: inherit from the parent).
    pub mode: MtlsMode,
}

/// `PeerAuthentication.MutualTLS.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent policy (mesh or namespace); `PERMISSIVE` at the top.
    #[default]
    Unset,
    /// Plain text only; mutual TLS is not used.
    Disable,
    /// Both plain text and mutual TLS are accepted.
    Permissive,
    /// Only mutual TLS connections are accepted.
    Strict,
}

impl PeerAuthentication {
    /// The mode that applies to `port` (the port-level one when set, else
    /// the workload-level one; `UNSET` when neither says).
    pub fn mode_for_port(&self, port: u32) -> MtlsMode {
        let port_mode = self
            .port_level_mtls
            .as_ref()
            .and_then(|m| m.get(&port.to_string()))
            .map(|m| m.mode)
            .filter(|m| *m != MtlsMode::Unset);
        port_mode.unwrap_or_else(|| self.mtls.as_ref().map_or(MtlsMode::Unset, |m| m.mode))
    }
}

impl Validate for PeerAuthentication {
    fn validate(&self, v: &mut Validator) {
        v.nested("selector", &self.selector);
        let Some(ports) = &self.port_level_mtls else {
            return;
        };
        let has_selector = self
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        v.field("portLevelMtls", |v| {
            if !has_selector {
                v.error("portLevelMtls requires selector: a mesh- or namespace-wide PeerAuthentication cannot have port-level mTLS")
                    .hint("add `selector: {matchLabels: {...}}` naming the workloads whose ports these are");
            }
            if ports.is_empty() {
                v.error("spec.portLevelMtls should have at least 1 properties")
                    .hint("remove `portLevelMtls: {}` or add entries like `8080: {mode: STRICT}`");
            }
            for key in ports.keys() {
                v.key(key, |v| check_port_key(v, key));
            }
        });
    }
}

/// A `portLevelMtls` key must be a port number.
fn check_port_key(v: &mut Validator, key: &str) {
    let digits = !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit());
    match key.parse::<u64>() {
        Ok(port) if digits => match u32::try_from(port) {
            Ok(port) => check_port(v, port),
            Err(_) => {
                v.error(format!(
                    "port number {port} is invalid: port must be between 1-65535"
                ));
            }
        },
        _ => {
            v.error(format!(
                "type conversion error from key {key:?} to a port number: portLevelMtls keys must be port numbers"
            ))
            .hint("write the workload port, e.g. `8080: {mode: STRICT}`");
        }
    }
}

#[cfg(test)]
mod tests;
