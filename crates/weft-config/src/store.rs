//! The config store: a directory of YAML, loaded, watched, and served as
//! immutable snapshots.
//!
//! One bad file never takes the mesh down. When a document turns invalid
//! (or its file stops parsing), the store keeps that resource's last good
//! version and reports the error; when the document is fixed, the new
//! version applies. Resources whose documents are removed go away.
//!
//! Readers take the current [`Snapshot`] (an `Arc`, never locked while in
//! use); subscribers get a [`ChangeEvent`] naming the resources that
//! changed with each new snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::diag::{Code, Diagnostic};
use crate::load::{FileCache, LoadOptions, load_paths_cached};
use crate::mesh::MeshConfig;
use crate::resource::{Resource, ResourceKey};

/// The config at one moment: every resource in force, and the problems
/// found in the files as they are now.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one with every change.
    pub version: u64,
    /// Resources in force (valid ones, and last good versions of invalid ones).
    pub resources: BTreeMap<ResourceKey, Arc<Resource>>,
    /// Mesh-wide config (the last good one; default when none was given).
    pub mesh: Arc<MeshConfig>,
    /// Problems in the files as they are now.
    pub diagnostics: Vec<Diagnostic>,
    /// Resources whose current document is invalid, so an older version is in force.
    pub stale: BTreeSet<ResourceKey>,
    /// WorkloadEntries by namespace and address, built on first use
    /// (see [`Snapshot::workload_entries_at`]).
    pub workloads_by_address: OnceLock<WorkloadsByAddress>,
}

/// WorkloadEntries by namespace, then address, in key order.
pub type WorkloadsByAddress = HashMap<String, HashMap<String, Vec<Arc<Resource>>>>;

impl Snapshot {
    /// Resources of one kind, in key order: a range of the map (keys
    /// order by kind first), not a scan.
    pub fn of_kind(&self, kind: crate::resource::Kind) -> impl Iterator<Item = &Arc<Resource>> {
        let start = ResourceKey {
            kind,
            namespace: String::new(),
            name: String::new(),
        };
        self.resources
            .range(start..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(_, r)| r)
    }

    /// The resource of one kind, namespace and name, if in force: a map
    /// lookup.
    pub fn get(
        &self,
        kind: crate::resource::Kind,
        namespace: &str,
        name: &str,
    ) -> Option<&Arc<Resource>> {
        self.resources.get(&ResourceKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// The WorkloadEntries of `namespace` whose address is `address`, in
    /// key order: a lookup in an index built once per snapshot (every
    /// xDS stream resolves its proxy by address on every push).
    pub fn workload_entries_at(&self, namespace: &str, address: &str) -> &[Arc<Resource>] {
        let index = self.workloads_by_address.get_or_init(|| {
            let mut index = WorkloadsByAddress::new();
            for r in self.of_kind(crate::resource::Kind::WorkloadEntry) {
                if let Some(we) = r.spec_as::<crate::networking::WorkloadEntry>() {
                    index
                        .entry(r.namespace().to_string())
                        .or_default()
                        .entry(we.address.clone())
                        .or_default()
                        .push(Arc::clone(r));
                }
            }
            index
        });
        index
            .get(namespace)
            .and_then(|by_address| by_address.get(address))
            .map_or(&[], Vec::as_slice)
    }

    /// Resources of one kind in one namespace, in key order (a range).
    pub fn of_kind_in(
        &self,
        kind: crate::resource::Kind,
        namespace: &str,
    ) -> impl Iterator<Item = &Arc<Resource>> {
        let namespace = namespace.to_string();
        let start = ResourceKey {
            kind,
            namespace: namespace.clone(),
            name: String::new(),
        };
        self.resources
            .range(start..)
            .take_while(move |(k, _)| k.kind == kind && k.namespace == namespace)
            .map(|(_, r)| r)
    }
}

/// What changed between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The new snapshot's version.
    pub version: u64,
    /// Resources added or whose config changed.
    pub updated: Vec<ResourceKey>,
    /// Resources removed.
    pub removed: Vec<ResourceKey>,
    /// Whether the mesh config changed.
    pub mesh_changed: bool,
}

impl ChangeEvent {
    /// Whether nothing in force changed.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.removed.is_empty() && !self.mesh_changed
    }
}

/// What one reload leaves for the next.
#[derive(Debug, Default)]
struct State {
    /// Which keys each file supplied last time (to keep them when the file
    /// breaks).
    by_file: HashMap<PathBuf, Vec<ResourceKey>>,
    /// Each file's parsed documents: only files whose bytes changed are
    /// parsed again.
    files: FileCache,
}

/// A watched config directory (or files).
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    paths: Vec<PathBuf>,
    opts: LoadOptions,
    /// What reloads carry over. Its lock also serializes reloads.
    state: Mutex<State>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<ChangeEvent>,
}

impl Store {
    /// Loads `paths` (files or directories) once. Problems in the files are
    /// in the snapshot's diagnostics, never an `Err`.
    pub fn open(paths: Vec<PathBuf>, opts: LoadOptions) -> Store {
        let (snapshot, _) = watch::channel(Arc::new(Snapshot::default()));
        let (events, _) = broadcast::channel(64);
        let store = Store {
            inner: Arc::new(Inner {
                paths,
                opts,
                state: Mutex::new(State::default()),
                snapshot,
                events,
            }),
        };
        store.reload();
        store
    }

    /// The config in force now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// Change events from now on. A receiver that lags gets
    /// `RecvError::Lagged` and should re-read [`Store::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.inner.events.subscribe()
    }

    /// The latest snapshot, as a `watch` channel (for async readers).
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.snapshot.subscribe()
    }

    /// Re-reads the files, re-parses those whose bytes changed (the others
    /// give what they gave last time, errors included) and applies what
    /// changed. Returns the change
    /// (empty when nothing in force changed; the diagnostics may still have).
    pub fn reload(&self) -> ChangeEvent {
        let inner = &self.inner;
        // Held for the whole reload: two reloads (the watcher's and a
        // caller's) run one after the other, so versions stay in order.
        let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { by_file, files } = &mut *state;
        let loaded = load_paths_cached(&inner.paths, &inner.opts, files);
        let prev = self.snapshot();

        let mut resources: BTreeMap<ResourceKey, Arc<Resource>> = BTreeMap::new();
        let mut new_by_file: HashMap<PathBuf, Vec<ResourceKey>> = HashMap::new();
        for r in loaded.resources {
            let key = r.key();
            new_by_file
                .entry(r.source.file.clone())
                .or_default()
                .push(key.clone());
            // Unchanged config keeps its Arc, so readers can compare pointers.
            let r = match prev.resources.get(&key) {
                Some(old) if same_config(old, &r) && old.source == r.source => old.clone(),
                _ => Arc::new(r),
            };
            resources.insert(key, r);
        }
        let mut diagnostics = loaded.diagnostics;
        let mut stale = BTreeSet::new();
        let mut keep = |key: &ResourceKey,
                        why: &str,
                        (file, line): (&Path, Option<usize>),
                        diagnostics: &mut Vec<Diagnostic>| {
            if resources.contains_key(key) {
                return;
            }
            if let Some(old) = prev.resources.get(key) {
                resources.insert(key.clone(), old.clone());
                new_by_file
                    .entry(file.to_path_buf())
                    .or_default()
                    .push(key.clone());
                stale.insert(key.clone());
                let mut d = Diagnostic::new(
                    Code::KeptLastGood,
                    format!(
                        "{why}; the last good version (from line {}) stays in force",
                        old.source.line
                    ),
                );
                d.resource = Some(key.to_ref());
                d.file = Some(file.to_path_buf());
                d.line = line;
                diagnostics.push(d);
            }
        };
        // A rejected document: keep what it used to be.
        for rej in &loaded.rejected {
            keep(
                &rej.key,
                "this document has errors",
                (&rej.source.file, Some(rej.source.line).filter(|l| *l > 0)),
                &mut diagnostics,
            );
        }
        // A file with documents we could not even identify (syntax errors):
        // keep everything it used to supply that it no longer does.
        let broken_files: BTreeSet<PathBuf> = diagnostics
            .iter()
            .filter(|d| d.resource.is_none() && d.is_error())
            .filter_map(|d| d.file.clone())
            .collect();
        for file in &broken_files {
            for key in by_file.get(file).cloned().unwrap_or_default() {
                keep(
                    &key,
                    "this file has documents that cannot be read",
                    (file, None),
                    &mut diagnostics,
                );
            }
        }

        let mesh = match &loaded.mesh {
            Some((m, _)) => Arc::new(m.clone()),
            None if loaded.mesh_rejected => prev.mesh.clone(),
            None => Arc::new(MeshConfig::default()),
        };
        let mesh_changed = *mesh != *prev.mesh;

        let mut event = ChangeEvent {
            version: prev.version,
            mesh_changed,
            ..ChangeEvent::default()
        };
        for (key, r) in &resources {
            match prev.resources.get(key) {
                // The same `Arc` (kept above, or kept last good): unchanged.
                Some(old) if Arc::ptr_eq(old, r) || same_config(old, r) => {}
                _ => event.updated.push(key.clone()),
            }
        }
        event.removed = prev
            .resources
            .keys()
            .filter(|k| !resources.contains_key(*k))
            .cloned()
            .collect();
        *by_file = new_by_file;

        diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let changed = !event.is_empty();
        let diagnostics_changed = diagnostics != prev.diagnostics;
        if changed || diagnostics_changed || prev.version == 0 {
            let version = if changed || prev.version == 0 {
                prev.version + 1
            } else {
                prev.version
            };
            event.version = version;
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                tracing::warn!(target: "weft::config", "{d}");
            }
            inner.snapshot.send_replace(Arc::new(Snapshot {
                version,
                resources,
                mesh,
                diagnostics,
                stale,
                workloads_by_address: OnceLock::new(),
            }));
            if changed {
                tracing::info!(
                    target: "weft::config",
                    version,
                    updated = event.updated.len(),
                    removed = event.removed.len(),
                    "config changed"
                );
                // No subscribers is fine.
                let _ = inner.events.send(event.clone());
            }
        }
        event
    }

    /// Watches the paths and reloads after each burst of file changes has
    /// been quiet for `debounce`. Watching stops when the handle is dropped.
    pub fn watch(&self, debounce: Duration) -> Result<WatchHandle, notify::Error> {
        use notify::{RecursiveMode, Watcher};
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && !ev.kind.is_access()
                {
                    let _ = tx.send(());
                }
            })?;
        for path in &self.inner.paths {
            // Watch a file's directory: editors replace files by renaming.
            let (target, mode) = if path.is_dir() {
                (path.as_path(), RecursiveMode::Recursive)
            } else {
                (
                    path.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                    RecursiveMode::NonRecursive,
                )
            };
            watcher.watch(target, mode)?;
        }
        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("weft-config-watch".into())
            .spawn(move || {
                // Ends when the watcher (and with it the sender) is dropped.
                while rx.recv().is_ok() {
                    while rx.recv_timeout(debounce).is_ok() {}
                    store.reload();
                }
            });
        if let Err(e) = thread {
            return Err(notify::Error::io(e));
        }
        Ok(WatchHandle { _watcher: watcher })
    }
}

/// Keeps a [`Store::watch`] running; drop it to stop watching.
#[derive(Debug)]
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
}

/// Whether two versions of a resource configure the same thing (source
/// positions don't count). `status` counts: a WorkloadEntry's health
/// conditions are there.
fn same_config(a: &Resource, b: &Resource) -> bool {
    a.api_version == b.api_version
        && a.meta == b.meta
        && a.spec == b.spec
        && a.node.get("status") == b.node.get("status")
}

#[cfg(test)]
mod tests;
