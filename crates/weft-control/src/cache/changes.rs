//! What changed between two generations the cache translated: which
//! config resources (by key, by kind and namespace), whether the mesh
//! config did, and the older registry when the registry did. Made once
//! per generation, by pointer: the store keeps an unchanged resource's
//! `Arc` (a resource that moved in its file counts as changed, which
//! only costs a translation).
//!
//! Two things read it: a stream's resolution is reused when nothing it
//! depends on changed ([`super::Resolved`]), and a change of nothing but
//! VirtualServices re-translates only listeners and routes
//! ([`Changes::routing_only`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use weft_config::store::Snapshot;
use weft_config::{Kind, ResourceKey};
use weft_registry::RegistrySnapshot;

use crate::ads::Generation;

/// The changes from generation `from` to the next one the cache made.
#[derive(Debug, Default)]
pub struct Changes {
    /// The version of the older generation; `None` when there was none
    /// (everything counts as changed).
    pub from: Option<u64>,
    /// Whether the mesh config changed.
    mesh: bool,
    /// Resources added, changed or removed.
    keys: HashSet<ResourceKey>,
    /// Their namespaces, by kind.
    kinds_in: HashMap<Kind, HashSet<String>>,
    /// Their kinds.
    kinds: HashSet<Kind>,
    /// The older generation's registry, when the registry changed.
    registry: Option<Arc<RegistrySnapshot>>,
}

impl Changes {
    /// What changed from `old` to `new`.
    pub fn between(old: &Generation, new: &Generation) -> Changes {
        let mut changes = Changes {
            from: Some(old.version),
            mesh: !Arc::ptr_eq(&old.config.mesh, &new.config.mesh)
                && *old.config.mesh != *new.config.mesh,
            registry: (!Arc::ptr_eq(&old.registry, &new.registry)
                && *old.registry != *new.registry)
                .then(|| old.registry.clone()),
            ..Changes::default()
        };
        if !Arc::ptr_eq(&old.config, &new.config) {
            for key in changed_keys(&old.config, &new.config) {
                changes.kinds.insert(key.kind);
                changes
                    .kinds_in
                    .entry(key.kind)
                    .or_default()
                    .insert(key.namespace.clone());
                changes.keys.insert(key.clone());
            }
        }
        changes
    }

    /// Whether the mesh config changed (or there was no older generation).
    pub fn mesh(&self) -> bool {
        self.from.is_none() || self.mesh
    }

    /// Whether the resource `key` was added, changed or removed.
    pub fn key(&self, key: &ResourceKey) -> bool {
        self.from.is_none() || self.keys.contains(key)
    }

    /// Whether a resource of `kind` in `namespace` was added, changed or
    /// removed.
    pub fn in_namespace(&self, kind: Kind, namespace: &str) -> bool {
        self.from.is_none()
            || self
                .kinds_in
                .get(&kind)
                .is_some_and(|namespaces| namespaces.contains(namespace))
    }

    /// Whether a resource of `kind` was added, changed or removed.
    pub fn kind(&self, kind: Kind) -> bool {
        self.from.is_none() || self.kinds.contains(&kind)
    }

    /// The older generation's registry, when the registry changed.
    pub fn older_registry(&self) -> Option<&RegistrySnapshot> {
        self.registry.as_deref()
    }

    /// Whether only VirtualServices changed: the mesh config, the
    /// registry and every other resource are as they were. Clusters and
    /// load assignments don't read VirtualServices, so they stay.
    pub fn routing_only(&self) -> bool {
        self.from.is_some()
            && !self.mesh
            && self.registry.is_none()
            && self.kinds.iter().all(|k| *k == Kind::VirtualService)
    }
}

/// The keys whose resource differs between `old` and `new` (added,
/// removed, or another `Arc`): one merge walk of the two sorted maps.
fn changed_keys<'a>(old: &'a Snapshot, new: &'a Snapshot) -> Vec<&'a ResourceKey> {
    let mut out = Vec::new();
    let mut a = old.resources.iter().peekable();
    let mut b = new.resources.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some((k, _)), None) => {
                out.push(*k);
                a.next();
            }
            (None, Some((k, _))) => {
                out.push(*k);
                b.next();
            }
            (Some((ka, ra)), Some((kb, rb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.push(*ka);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(*kb);
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(ra, rb) {
                        out.push(*ka);
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}
