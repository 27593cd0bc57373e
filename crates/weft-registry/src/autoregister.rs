//! WorkloadEntry auto-registration, as istiod does it with
//! `PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION`: a proxy whose node
//! metadata says `AUTO_REGISTER_GROUP: <group>` (istio-agent's
//! `ISTIO_META_AUTO_REGISTER_GROUP`) becomes a WorkloadEntry made from the
//! WorkloadGroup `<group>` of its namespace while it is connected.
//!
//! ```text
//! files ─► Store ─► watch<Arc<Snapshot>> ─┐
//! xDS streams ─► AutoRegistry::connect ───┴► merged watch<Arc<Snapshot>>
//!                  (Registration, dropped        ─► FileRegistry (endpoints)
//!                   on disconnect)               └► generations (translation)
//! ```
//!
//! The entries live in memory, never in the config directory: the
//! registry publishes the files' snapshot with them added (a resource no
//! file holds, [`weft_config::resource::Source::auto_registered_from`]
//! naming its group), so ServiceEntry `workloadSelector`s select them and
//! a proxy's workload lookup finds them like any other WorkloadEntry. A
//! WorkloadEntry of the same name in the files wins: an auto-registered
//! one only fills a name no file uses (Istio never overwrites an entry it
//! did not create).
//!
//! Lifecycle, as Istio's `autoregistration.Controller`: connections of the
//! same namespace, group, IP and network share one entry (a proxy with
//! several streams, a quick reconnect); when the last of them closes the
//! entry is kept for the grace period (`PILOT_WORKLOAD_ENTRY_GRACE_PERIOD`,
//! 10 s by default) with `istio.io/disconnectedAt`, and removed then
//! unless a connection came back meanwhile.
//!
//! A proxy naming a group its namespace doesn't have is not registered
//! (a warning says why); its stream keeps being served, and its entry
//! appears if the group does while it is connected. The entry follows its
//! group: edited with it, and gone with it (as Kubernetes' garbage
//! collector removes entries owned by a deleted group).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use weft_config::store::Snapshot;
use weft_config::{Kind, Resource, ResourceKey};

mod entry;

use entry::Connection;
pub use entry::{
    CONNECTED_AT_ANNOTATION, CONTROLLER_ANNOTATION, DISCONNECTED_AT_ANNOTATION, GROUP_ANNOTATION,
    entry_name, is_auto_registered,
};

/// Istio's default `PILOT_WORKLOAD_ENTRY_GRACE_PERIOD`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// What a connecting proxy says about itself, as auto-registration
/// reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// The proxy's xDS node id (for logs).
    pub proxy: String,
    /// Its namespace: the WorkloadGroup's, and the entry's.
    pub namespace: String,
    /// The WorkloadGroup its `AUTO_REGISTER_GROUP` names.
    pub group: String,
    /// Its first IP (`INSTANCE_IPS`, else the node id's): the entry's
    /// address.
    pub address: String,
    /// Its network (node metadata `NETWORK`); empty if none.
    pub network: String,
    /// Its node's locality, `region/zone/subzone`; empty if none.
    pub locality: String,
    /// Its node's `LABELS` (they override the group's).
    pub labels: BTreeMap<String, String>,
}

/// How auto-registration runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long an entry outlives its workload's last connection
    /// (Istio's `PILOT_WORKLOAD_ENTRY_GRACE_PERIOD`; default 10 s).
    pub grace_period: Duration,
    /// The control plane's name, written to `istio.io/workloadController`.
    pub controller: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            grace_period: DEFAULT_GRACE_PERIOD,
            controller: "weft-control".to_string(),
        }
    }
}

/// Why a proxy can't be registered at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The node has no IP to give the entry.
    #[error(
        "proxy {0} asks to be auto-registered but reports no IP (set INSTANCE_IPS or the node id's IP)"
    )]
    NoAddress(String),
    /// The node names no namespace or group.
    #[error("proxy {0} asks to be auto-registered without a namespace or group")]
    NoGroup(String),
}

/// What a connection's registration amounts to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its entry is in force.
    Registered,
    /// A WorkloadEntry of the same name in the files is in force instead.
    FileEntry,
    /// Its namespace has no such WorkloadGroup: no entry (until the group
    /// appears).
    NoGroup,
}

/// The auto-registered WorkloadEntries, and the config snapshots with
/// them. Clones share one registry.
#[derive(Clone, Debug)]
pub struct AutoRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    files: watch::Receiver<Arc<Snapshot>>,
    merged: watch::Sender<Arc<Snapshot>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<ResourceKey, Registered>,
    /// Counts every (dis)connection, to tell grace timers apart.
    epochs: u64,
    /// What the last merged snapshot was made of: the files' snapshot
    /// and the entries added.
    published: Option<(Arc<Snapshot>, Vec<Arc<Resource>>)>,
}

/// One entry's workload and connections.
#[derive(Debug)]
struct Registered {
    /// From its first connection.
    workload: Workload,
    connections: usize,
    connection: Connection,
    /// Set by every first connect and last disconnect: a grace timer that
    /// finds another value does nothing.
    epoch: u64,
    /// The entry made, and the group it was made from (made again when
    /// the group or the connection state changes).
    made: Option<(Arc<Resource>, Arc<Resource>)>,
}

impl AutoRegistry {
    /// Auto-registration over the config snapshots `files` publishes
    /// (the store's). Call within a tokio runtime: a task follows
    /// `files`, and grace periods are timers on it.
    pub fn new(files: watch::Receiver<Arc<Snapshot>>, config: Config) -> AutoRegistry {
        let first = files.borrow().clone();
        let (merged, _) = watch::channel(first);
        let inner = Arc::new(Inner {
            config,
            files: files.clone(),
            merged,
            state: Mutex::default(),
        });
        tokio::spawn(follow(files, Arc::downgrade(&inner)));
        AutoRegistry { inner }
    }

    /// The config snapshots in force: the files' with the auto-registered
    /// entries added.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.merged.subscribe()
    }

    /// The config snapshot in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.merged.borrow().clone()
    }

    /// Registers a connection of `workload`: its entry is in force (see
    /// [`Outcome`]) until the returned [`Registration`] is dropped and the
    /// grace period has passed with no other connection of it.
    pub fn connect(&self, workload: Workload) -> Result<Registration, RegisterError> {
        if workload.address.is_empty() {
            return Err(RegisterError::NoAddress(workload.proxy));
        }
        if workload.namespace.is_empty() || workload.group.is_empty() {
            return Err(RegisterError::NoGroup(workload.proxy));
        }
        let key = ResourceKey {
            kind: Kind::WorkloadEntry,
            namespace: workload.namespace.clone(),
            name: entry_name(&workload.group, &workload.address, &workload.network),
        };
        let files = self.inner.files.borrow().clone();
        let outcome = outcome(&files, &key, &workload.group);
        let mut state = self.inner.lock();
        state.epochs += 1;
        let epoch = state.epochs;
        let now = Connection::Connected(SystemTime::now());
        let registered = state
            .entries
            .entry(key.clone())
            .or_insert_with(|| Registered {
                workload: workload.clone(),
                connections: 0,
                connection: now,
                epoch,
                made: None,
            });
        registered.connections += 1;
        if registered.connections == 1 {
            registered.epoch = epoch;
        }
        registered.connection = now;
        registered.made = None;
        let connections = registered.connections;
        let group = format!("{}/{}", key.namespace, workload.group);
        match outcome {
            Outcome::Registered => tracing::info!(
                target: "weft::registry",
                proxy = %workload.proxy, entry = %key.name, %group, connections,
                "auto-registered WorkloadEntry"
            ),
            Outcome::FileEntry => tracing::info!(
                target: "weft::registry",
                proxy = %workload.proxy, entry = %key.name, %group,
                "a WorkloadEntry of the auto-registered name is in the config files; that one is in force"
            ),
            Outcome::NoGroup => tracing::warn!(
                target: "weft::registry",
                proxy = %workload.proxy, %group,
                "cannot auto-register: WorkloadGroup {group} not found; the proxy is served without a WorkloadEntry (it gets one if the group appears while it is connected)"
            ),
        }
        self.inner.publish(&mut state);
        Ok(Registration {
            inner: self.inner.clone(),
            key,
            outcome,
        })
    }

    /// The auto-registered entries' keys and whether a connection of each
    /// is open now (closed ones are within their grace period).
    pub fn entries(&self) -> Vec<(ResourceKey, bool)> {
        let state = self.inner.lock();
        state
            .entries
            .iter()
            .map(|(k, r)| (k.clone(), r.connections > 0))
            .collect()
    }
}

/// Whether the entry `key` of `group` would be in force in `files`.
fn outcome(files: &Snapshot, key: &ResourceKey, group: &str) -> Outcome {
    if files.resources.contains_key(key) {
        Outcome::FileEntry
    } else if files
        .get(Kind::WorkloadGroup, &key.namespace, group)
        .is_none()
    {
        Outcome::NoGroup
    } else {
        Outcome::Registered
    }
}

/// Republishes whenever the files change, while the registry lives.
async fn follow(mut files: watch::Receiver<Arc<Snapshot>>, inner: Weak<Inner>) {
    while files.changed().await.is_ok() {
        let Some(inner) = inner.upgrade() else { return };
        let mut state = inner.lock();
        inner.publish(&mut state);
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere leaves the map consistent: each change is one
        // insert or remove.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection closed.
    fn disconnect(self: &Arc<Self>, key: &ResourceKey) {
        let mut state = self.lock();
        state.epochs += 1;
        let epoch = state.epochs;
        let Some(registered) = state.entries.get_mut(key) else {
            return;
        };
        registered.connections = registered.connections.saturating_sub(1);
        if registered.connections > 0 {
            return;
        }
        registered.epoch = epoch;
        registered.connection = Connection::Disconnected(SystemTime::now());
        registered.made = None;
        let grace = self.config.grace_period;
        tracing::info!(
            target: "weft::registry",
            proxy = %registered.workload.proxy, entry = %key.name,
            grace_period = ?grace,
            "auto-registered workload disconnected; its WorkloadEntry goes unless it reconnects within the grace period"
        );
        let handle = tokio::runtime::Handle::try_current();
        match handle {
            Ok(handle) if !grace.is_zero() => {
                let inner = Arc::downgrade(self);
                let key = key.clone();
                handle.spawn(async move {
                    tokio::time::sleep(grace).await;
                    if let Some(inner) = inner.upgrade() {
                        inner.expire(&key, epoch);
                    }
                });
                self.publish(&mut state);
            }
            // No grace, or no runtime to time it on: now.
            _ => {
                drop(state);
                self.expire(key, epoch);
            }
        }
    }

    /// The grace period of the disconnect `epoch` of `key` is over.
    fn expire(&self, key: &ResourceKey, epoch: u64) {
        let mut state = self.lock();
        let gone = state
            .entries
            .get(key)
            .is_some_and(|r| r.connections == 0 && r.epoch == epoch);
        if gone {
            state.entries.remove(key);
            tracing::info!(target: "weft::registry", entry = %key.name, namespace = %key.namespace, "cleaned up auto-registered WorkloadEntry");
            self.publish(&mut state);
        }
    }

    /// Publishes the files' snapshot with the entries in force added, if
    /// that differs from the last one published. Called with the state
    /// locked, so snapshots go out in the order the state changed.
    fn publish(&self, state: &mut State) {
        let files = self.files.borrow().clone();
        let mut added: Vec<Arc<Resource>> = Vec::new();
        for (key, registered) in &mut state.entries {
            if files.resources.contains_key(key) {
                continue; // the file's entry wins
            }
            let Some(group) = files.get(
                Kind::WorkloadGroup,
                &key.namespace,
                &registered.workload.group,
            ) else {
                registered.made = None;
                continue;
            };
            let made = match &registered.made {
                Some((from, made)) if Arc::ptr_eq(from, group) => made.clone(),
                _ => {
                    let made = Arc::new(entry::make(
                        &key.name,
                        group,
                        &registered.workload,
                        &self.config.controller,
                        registered.connection,
                    ));
                    registered.made = Some((group.clone(), made.clone()));
                    made
                }
            };
            added.push(made);
        }
        let same = state.published.as_ref().is_some_and(|(f, a)| {
            Arc::ptr_eq(f, &files)
                && a.len() == added.len()
                && a.iter().zip(&added).all(|(x, y)| Arc::ptr_eq(x, y))
        });
        if same {
            return;
        }
        let snapshot = merge(&files, &added);
        state.published = Some((files, added));
        self.merged.send_replace(snapshot);
    }
}

/// `files` with `added` put in: the same `Arc` when nothing is added;
/// else a snapshot with the files' resources (the same `Arc`s, so the
/// cache sees what changed by pointer), version, mesh config and
/// diagnostics.
fn merge(files: &Arc<Snapshot>, added: &[Arc<Resource>]) -> Arc<Snapshot> {
    if added.is_empty() {
        return files.clone();
    }
    let mut resources = files.resources.clone();
    for r in added {
        resources.insert(r.key(), r.clone());
    }
    Arc::new(Snapshot {
        version: files.version,
        resources,
        mesh: files.mesh.clone(),
        diagnostics: files.diagnostics.clone(),
        stale: files.stale.clone(),
        workloads_by_address: OnceLock::new(),
    })
}

/// One connection's registration; dropping it is the disconnect.
#[derive(Debug)]
pub struct Registration {
    inner: Arc<Inner>,
    key: ResourceKey,
    outcome: Outcome,
}

impl Registration {
    /// The entry's name (`<group>-<ip>[-<network>]`).
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The entry's key.
    pub fn key(&self) -> &ResourceKey {
        &self.key
    }

    /// What the registration amounted to when it was made.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner.disconnect(&self.key);
    }
}

#[cfg(test)]
mod tests;
