//! The file source, Weft's embedded default: services from ServiceEntries
//! and their endpoints from WorkloadEntries (selected by the ServiceEntry's
//! `workloadSelector`) or the ServiceEntry's own `endpoints`, all read from
//! the config store and followed as the files change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use weft_config::networking::{
    Protocol, ServiceEntry, ServiceLocation, ServiceResolution, WorkloadEntry,
};
use weft_config::store::{Snapshot, Store};
use weft_config::{Kind, Resource, ResourceKey};

use crate::Registry;
use crate::model::{
    Endpoint, EndpointAddress, Health, Hostname, Locality, Location, RegistrySnapshot, Resolution,
    Service, ServicePort,
};

/// Builds the registry model from config resources. A pure function: the
/// same resources always give the same snapshot (version aside).
pub fn build<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> RegistrySnapshot {
    let resources: Vec<&Resource> = resources.into_iter().collect();
    // By namespace: a ServiceEntry selects only its own namespace's.
    let mut workload_entries: HashMap<&str, Vec<(&Resource, &WorkloadEntry)>> = HashMap::new();
    for r in resources.iter().filter(|r| r.kind() == Kind::WorkloadEntry) {
        if let Some(we) = r.spec_as::<WorkloadEntry>() {
            workload_entries
                .entry(r.namespace())
                .or_default()
                .push((*r, we));
        }
    }
    let mut snap = RegistrySnapshot::default();
    for res in resources.iter().filter(|r| r.kind() == Kind::ServiceEntry) {
        let Some(se) = res.spec_as::<ServiceEntry>() else {
            continue;
        };
        let ports: Vec<ServicePort> = se.ports.iter().filter_map(service_port).collect();
        let selected: Vec<(ResourceKey, &WorkloadEntry, Health)> = match &se.workload_selector {
            Some(sel) => workload_entries
                .get(res.namespace())
                .into_iter()
                .flatten()
                .filter(|(_, we)| weft_config::select::selects(&sel.labels, &we.labels))
                .map(|(r, we)| (r.key(), *we, health(r)))
                .collect(),
            None => se
                .endpoints
                .iter()
                .map(|we| (res.key(), we, Health::Healthy))
                .collect(),
        };
        let endpoints: Arc<Vec<Endpoint>> = Arc::new(
            selected
                .iter()
                .filter_map(|(key, we, health)| {
                    let mut e = endpoint(we, key, res.namespace(), &ports)?;
                    e.health = *health;
                    Some(e)
                })
                .collect(),
        );
        for host in &se.hosts {
            let hostname = Hostname::new(&weft_config::host::fqdn(host, res.namespace()));
            let service = Service {
                hostname: hostname.clone(),
                namespace: res.namespace().to_string(),
                ports: ports.clone(),
                addresses: se.addresses.clone(),
                resolution: match se.resolution {
                    ServiceResolution::None => Resolution::Passthrough,
                    ServiceResolution::Static => Resolution::Static,
                    ServiceResolution::Dns => Resolution::Dns,
                    ServiceResolution::DnsRoundRobin => Resolution::DnsRoundRobin,
                    ServiceResolution::DynamicDns => Resolution::DynamicDns,
                },
                location: match se.location {
                    ServiceLocation::MeshInternal => Location::MeshInternal,
                    ServiceLocation::MeshExternal => Location::MeshExternal,
                },
                export_to: se.export_to.clone(),
                subject_alt_names: se.subject_alt_names.clone(),
                source: res.key(),
            };
            snap.services
                .entry(hostname.clone())
                .or_default()
                .push(Arc::new(service));
            snap.endpoints
                .insert((hostname, res.namespace().to_string()), endpoints.clone());
        }
    }
    snap
}

fn service_port(p: &weft_config::networking::Port) -> Option<ServicePort> {
    let number = u16::try_from(p.number).ok().filter(|n| *n != 0)?;
    let protocol = if p.protocol.is_empty() {
        Protocol::from_port_name(&p.name)
    } else {
        p.protocol()
    };
    let target_port = u16::try_from(p.target_port)
        .ok()
        .filter(|n| *n != 0)
        .unwrap_or(number);
    Some(ServicePort {
        name: p.name.clone(),
        number,
        protocol,
        target_port,
    })
}

/// A WorkloadEntry's health as Istio reads it: a `status.conditions`
/// entry `{type: Healthy, status: "False"}` (what Istio's health checks
/// of auto-registered workloads write) makes it unhealthy; no such
/// condition, healthy.
fn health(r: &Resource) -> Health {
    use weft_config::yaml::Value;
    let conditions = r.node.get("status").and_then(|s| s.get("conditions"));
    let unhealthy = conditions.is_some_and(|c| match &c.value {
        Value::Seq(items) => items.iter().any(|i| {
            i.get_str("type") == Some("Healthy")
                && i.get_str("status")
                    .is_some_and(|s| s.eq_ignore_ascii_case("false"))
        }),
        _ => false,
    });
    if unhealthy {
        Health::Unhealthy
    } else {
        Health::Healthy
    }
}

/// The endpoint a workload is for a service with `ports`; `None` for one
/// that cannot be dialled (no address: another network's gateway would be
/// needed).
fn endpoint(
    we: &WorkloadEntry,
    source: &ResourceKey,
    namespace: &str,
    ports: &[ServicePort],
) -> Option<Endpoint> {
    let address = if let Some(path) = we.address.strip_prefix("unix://") {
        EndpointAddress::Unix(PathBuf::from(path))
    } else if let Ok(ip) = we.address.parse::<IpAddr>() {
        EndpointAddress::Ip(ip)
    } else if !we.address.is_empty() {
        EndpointAddress::Hostname(we.address.to_ascii_lowercase())
    } else {
        return None;
    };
    let ports = ports
        .iter()
        .map(|p| {
            let on_endpoint = we
                .ports
                .get(&p.name)
                .and_then(|n| u16::try_from(*n).ok())
                .unwrap_or(p.target_port);
            (p.number, on_endpoint)
        })
        .collect();
    Some(Endpoint {
        address,
        ports,
        labels: we.labels.clone(),
        locality: Locality::parse(&we.locality),
        weight: we.weight.max(1),
        service_account: we.service_account.clone(),
        namespace: namespace.to_string(),
        network: we.network.clone(),
        health: Health::Healthy,
        source: source.clone(),
    })
}

/// A registry that follows a config [`Store`]: rebuilt whenever the store
/// publishes a new snapshot, on a thread of its own (no runtime needed).
#[derive(Clone, Debug)]
pub struct FileRegistry {
    snapshots: watch::Receiver<Arc<RegistrySnapshot>>,
}

impl FileRegistry {
    /// Starts following `store`. The registry lives as long as the store
    /// publishes; dropping every clone of the registry stops the thread at
    /// the store's next change.
    pub fn follow(store: &Store) -> std::io::Result<FileRegistry> {
        Self::follow_snapshots(store.snapshots())
    }

    /// Starts following the config snapshots `config` publishes (the
    /// store's, or [`crate::AutoRegistry::snapshots`]: the store's with
    /// the auto-registered WorkloadEntries added). Stops when the sender
    /// is gone or every clone of the registry is dropped.
    pub fn follow_snapshots(
        mut config: watch::Receiver<Arc<Snapshot>>,
    ) -> std::io::Result<FileRegistry> {
        let mut read = config.borrow_and_update().clone();
        let first = Self::from_config(&read, 1);
        let (tx, rx) = watch::channel(Arc::new(first));
        std::thread::Builder::new().name("weft-registry-file".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build();
            let Ok(rt) = rt else { return };
            rt.block_on(async move {
                let mut version = 1;
                while config.changed().await.is_ok() {
                    let now = config.borrow_and_update().clone();
                    // A change to anything but the registry's inputs (a
                    // VirtualService edit) doesn't rebuild it.
                    let same_inputs = same_inputs(&read, &now);
                    read = now;
                    if same_inputs {
                        continue;
                    }
                    let next = Self::from_config(&read, version + 1);
                    let unchanged = {
                        let cur = tx.borrow();
                        cur.services == next.services && cur.endpoints == next.endpoints
                    };
                    if unchanged {
                        continue;
                    }
                    version += 1;
                    tracing::debug!(target: "weft::registry", version, services = next.services.len(), "registry changed");
                    if tx.send(Arc::new(next)).is_err() {
                        return; // nobody follows the registry any more
                    }
                }
            });
        })?;
        Ok(FileRegistry { snapshots: rx })
    }

    fn from_config(config: &Snapshot, version: u64) -> RegistrySnapshot {
        let mut snap = build(config.resources.values().map(|r| r.as_ref()));
        snap.version = version;
        snap
    }
}

/// Whether two config snapshots hold the same ServiceEntries and
/// WorkloadEntries (the same `Arc`s: the store keeps unchanged resources'),
/// so [`build`] would give the same registry.
fn same_inputs(a: &Snapshot, b: &Snapshot) -> bool {
    [Kind::ServiceEntry, Kind::WorkloadEntry]
        .into_iter()
        .all(|kind| {
            let mut a = a.of_kind(kind);
            let mut b = b.of_kind(kind);
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return true,
                    (Some(x), Some(y)) if Arc::ptr_eq(x, y) => {}
                    _ => return false,
                }
            }
        })
}

impl Registry for FileRegistry {
    fn name(&self) -> &'static str {
        "file"
    }

    fn snapshot(&self) -> Arc<RegistrySnapshot> {
        self.snapshots.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<RegistrySnapshot>> {
        self.snapshots.clone()
    }
}

#[cfg(test)]
mod tests;
