//! A stream's resolved proxy and keys, kept across generations while
//! nothing resolution reads changed.
//!
//! [`crate::translate::resolve_with`] reads, besides the proxy's node:
//! its WorkloadEntry (by name `namespace/pod`, else every WorkloadEntry
//! of its namespace at its addresses), the Sidecars of its namespace and
//! of the root namespace (which the mesh config names), and the ports the
//! registry's services serve on its WorkloadEntry. The DestinationRule
//! index it attaches is the generation's, swapped in on reuse. The
//! [`Key`] also reads the generation's [`LabelUses`] (reused while the
//! cache keeps the same one), the [`OwnKey`] the mesh config.

use std::sync::Arc;

use weft_config::{Kind, ResourceKey};

use super::changes::Changes;
use super::{Key, LabelUses, OwnKey};
use crate::ads::Generation;
use crate::translate::policy::{RuleIndex, root_namespace};
use crate::translate::{self, Proxy};

/// One stream's resolution (start with `Resolved::default()`; the cache
/// fills it in [`super::Translations::get_for`]).
#[derive(Debug, Default)]
pub struct Resolved {
    /// The generation it was made (or last confirmed) for.
    at: Option<u64>,
    state: Option<State>,
}

#[derive(Debug)]
struct State {
    proxy: Proxy,
    key: Key,
    own_key: Option<OwnKey>,
    /// The `LabelUses` the key was made with.
    uses: Arc<LabelUses>,
    /// The WorkloadEntry the proxy's pod name names (`namespace/pod`).
    by_name: ResourceKey,
    /// The mesh's root namespace (a mesh config change resolves again).
    root: String,
}

impl Resolved {
    /// The resolved proxy, its shared key and its own key for
    /// `generation`: the ones kept when nothing they depend on changed
    /// since the generation they were made for (`changes` runs from
    /// there), else made again. Returns whether they were made again.
    pub(super) fn update(
        &mut self,
        generation: &Generation,
        proxy: &Proxy,
        changes: &Changes,
        rules: &Arc<RuleIndex>,
        uses: &Arc<LabelUses>,
    ) -> bool {
        let inputs = generation.inputs();
        let kept = self.at.is_some() && self.at == changes.from;
        let state = self
            .state
            .take()
            .filter(|_| kept)
            .filter(|s| still_holds(s, generation, changes));
        let made = state.is_none();
        let state = match state {
            Some(mut s) => {
                s.proxy.rules = Some(rules.clone());
                if !Arc::ptr_eq(&s.uses, uses) {
                    s.key = Key::of(&s.proxy, uses);
                    s.uses = uses.clone();
                }
                s
            }
            None => {
                let resolved = translate::resolve_with(inputs, proxy, rules.clone());
                State {
                    key: Key::of(&resolved, uses),
                    own_key: OwnKey::of(inputs, &resolved),
                    uses: uses.clone(),
                    by_name: ResourceKey {
                        kind: Kind::WorkloadEntry,
                        namespace: resolved.namespace.clone(),
                        name: resolved.pod.clone(),
                    },
                    root: root_namespace(inputs),
                    proxy: resolved,
                }
            }
        };
        self.state = Some(state);
        self.at = Some(generation.version);
        made
    }

    /// Forgets it (a lagging stream resolves on its own).
    pub(super) fn clear(&mut self) {
        *self = Resolved::default();
    }

    /// The resolved proxy and its keys, once [`Resolved::update`]d.
    pub(super) fn get(&self) -> Option<(&Proxy, &Key, Option<&OwnKey>)> {
        self.state
            .as_ref()
            .map(|s| (&s.proxy, &s.key, s.own_key.as_ref()))
    }
}

/// Whether resolution made from the older generation of `changes` still
/// gives the same for `generation`.
fn still_holds(state: &State, generation: &Generation, changes: &Changes) -> bool {
    if changes.mesh() {
        // The root namespace, the inbound clusters' connect timeout.
        return false;
    }
    let proxy = &state.proxy;
    let namespace = proxy.namespace.as_str();
    let instance = proxy.instance.as_deref();
    let workload = if instance.is_some_and(|i| i.source == state.by_name) {
        // Found by name: the address fallback wasn't consulted.
        !changes.key(&state.by_name)
    } else {
        !changes.in_namespace(Kind::WorkloadEntry, namespace)
    };
    let sidecars = !changes.in_namespace(Kind::Sidecar, namespace)
        && !changes.in_namespace(Kind::Sidecar, &state.root);
    let ports = match (instance, changes.older_registry()) {
        (Some(i), Some(older)) => {
            older.ports_of_source(&i.source) == generation.registry.ports_of_source(&i.source)
        }
        _ => true,
    };
    workload && sidecars && ports
}
