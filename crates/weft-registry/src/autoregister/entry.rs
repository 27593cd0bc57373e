//! The WorkloadEntry a connecting workload gets from its WorkloadGroup,
//! made as istiod's `workloadEntryFromGroup` makes it: a pure function of
//! the group, what the proxy says about itself and when it (dis)connected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use weft_config::networking::WorkloadGroup;
use weft_config::resource::{ObjectMeta, Source, Spec};
use weft_config::yaml::{Node, Value};
use weft_config::{Kind, Resource};

use super::Workload;

/// On an auto-registered WorkloadEntry: the WorkloadGroup it was made
/// from (Istio's `AutoRegistrationGroupAnnotation`).
pub const GROUP_ANNOTATION: &str = "istio.io/autoRegistrationGroup";
/// On an auto-registered WorkloadEntry: the control plane the workload is
/// connected to (Istio's `WorkloadControllerAnnotation`).
pub const CONTROLLER_ANNOTATION: &str = "istio.io/workloadController";
/// When the workload connected, RFC 3339 with nanoseconds (Istio's
/// `ConnectedAtAnnotation`); absent while it is disconnected.
pub const CONNECTED_AT_ANNOTATION: &str = "istio.io/connectedAt";
/// When the last connection of the workload closed (Istio's
/// `DisconnectedAtAnnotation`); set during the grace period only.
pub const DISCONNECTED_AT_ANNOTATION: &str = "istio.io/disconnectedAt";

/// The longest name Kubernetes allows (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// The name Istio gives the entry of a workload of `group` at `address`:
/// `<group>-<address>` (an IPv6 address's `:` become `-`), then
/// `-<network>` when the proxy names its network; at most 253 characters,
/// cut from the front as Istio cuts it.
pub fn entry_name(group: &str, address: &str, network: &str) -> String {
    let mut name = format!("{group}-{}", address.replace(':', "-"));
    if !network.is_empty() {
        name.push('-');
        name.push_str(network);
    }
    if name.len() > MAX_NAME {
        let mut cut = name.len() - MAX_NAME;
        while !name.is_char_boundary(cut) {
            cut += 1;
        }
        name.drain(..cut);
    }
    name
}

/// When the workload's connection state last changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connection {
    /// Connected since then.
    Connected(SystemTime),
    /// Its last connection closed then.
    Disconnected(SystemTime),
}

/// The WorkloadEntry `name` for `workload`, from `group` (a WorkloadGroup
/// resource): the group's template with the workload's address; labels
/// of the template, overridden by the group's `metadata.labels`, then by
/// the node's own labels (Istio's order); the node's network and locality
/// when it names them, else the template's; annotations of the group's
/// `metadata.annotations` plus Istio's auto-registration ones.
pub(crate) fn make(
    name: &str,
    group: &Resource,
    workload: &Workload,
    controller: &str,
    connection: Connection,
) -> Resource {
    let default = WorkloadGroup::default();
    let spec = group.spec_as::<WorkloadGroup>().unwrap_or(&default);
    let mut entry = spec.template.clone().unwrap_or_default();
    entry.address = workload.address.clone();
    let mut annotations =
        BTreeMap::from([(GROUP_ANNOTATION.to_string(), group.name().to_string())]);
    if let Some(meta) = &spec.metadata {
        entry.labels.extend(meta.labels.clone());
        annotations.extend(meta.annotations.clone());
    }
    entry.labels.extend(workload.labels.clone());
    if !workload.network.is_empty() {
        entry.network = workload.network.clone();
    }
    if !workload.locality.is_empty() {
        entry.locality = workload.locality.clone();
    }
    annotations.insert(CONTROLLER_ANNOTATION.to_string(), controller.to_string());
    match connection {
        Connection::Connected(at) => {
            annotations.insert(CONNECTED_AT_ANNOTATION.to_string(), rfc3339(at));
        }
        Connection::Disconnected(at) => {
            annotations.insert(DISCONNECTED_AT_ANNOTATION.to_string(), rfc3339(at));
        }
    }
    Resource {
        api_version: "networking.istio.io/v1".to_string(),
        meta: ObjectMeta {
            name: name.to_string(),
            namespace: group.namespace().to_string(),
            labels: entry.labels.clone(),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Spec::WorkloadEntry(Box::new(entry)),
        source: Source {
            file: PathBuf::new(),
            line: 0,
            auto_registered_from: Some(group.key()),
        },
        node: Arc::new(Node {
            value: Value::Null,
            pos: Default::default(),
        }),
    }
}

/// Whether `r` is a WorkloadEntry this module made.
pub fn is_auto_registered(r: &Resource) -> bool {
    r.kind() == Kind::WorkloadEntry && r.source.auto_registered_from.is_some()
}

/// The spec of an entry [`make`] made.
#[cfg(test)]
pub(crate) fn spec(r: &Resource) -> &weft_config::networking::WorkloadEntry {
    r.spec_as::<weft_config::networking::WorkloadEntry>()
        .expect("a WorkloadEntry")
}

/// `t` as RFC 3339 in UTC with nanoseconds (Go's `time.RFC3339Nano`, which
/// Istio writes its annotations in: trailing zeros of the fraction
/// dropped).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
