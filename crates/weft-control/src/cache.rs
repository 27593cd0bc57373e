//! Translations shared between proxies.
//!
//! Translation is a pure function of the generation and the *resolved*
//! proxy, and after resolution only a few facts about a proxy matter.
//! A proxy's resources come in two parts ([`crate::translate`]): the
//! shared part — outbound clusters, load assignments, outbound listeners,
//! route configurations — depends on its kind, namespace, interception,
//! locality, Sidecar scope and what its labels select ([`Key`]), so
//! thousands of proxies share a handful; the own part — a sidecar's
//! inbound clusters and listeners — depends on its workload instance
//! ([`OwnKey`]) and is small. Each generation translates and packs once
//! per distinct key of each part; every stream of that shape holds the
//! same `Arc`s.
//!
//! The cache keeps two generations: the first request for a newer one
//! starts a fresh map, and the old one lives only as long as streams
//! still use it. A shared type whose resources didn't change keeps the
//! previous generation's buffers, and an own part whose key didn't change
//! is not translated again (its key holds everything it reads), so
//! streams tell "unchanged" by pointer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prost::Message;
use weft_config::Kind;
use weft_xds::TypeUrl;
use weft_xds::pb::google::protobuf::Any;

use crate::ads::{Generation, Segment, resource_version};
use crate::translate::policy::RuleIndex;
use crate::translate::{self, Proxy, Resources};

mod changes;
mod key;
mod resolved;

pub use changes::Changes;
pub use key::{Key, LabelUses, OwnKey};
pub use resolved::Resolved;

/// The resources of one type, packed, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Packed {
    /// Every resource, encoded once as it goes on the wire.
    pub all: Segment,
    /// Their names, index for index.
    pub names: Arc<[String]>,
    /// Their delta versions (a hash of the encoding), index for index.
    pub versions: Arc<[u64]>,
}

impl Packed {
    pub(crate) fn new(items: Vec<(String, Any)>) -> Packed {
        let versions: Vec<u64> = items
            .iter()
            .map(|(_, a)| resource_version(&a.value))
            .collect();
        let all = Segment::encode(items.iter().map(|(_, a)| a));
        let names: Vec<String> = items.into_iter().map(|(n, _)| n).collect();
        Packed {
            all,
            names: names.into(),
            versions: versions.into(),
        }
    }

    /// Whether both are the same buffers, or hold the same resources.
    pub fn same(&self, other: &Packed) -> bool {
        self.all.same_buffer(&other.all)
            || (self.all == other.all && self.names[..] == other.names[..])
    }
}

/// One part of a proxy's resources, every type packed.
#[derive(Debug, Default)]
pub struct Part {
    clusters: Packed,
    endpoints: Packed,
    listeners: Packed,
    routes: Packed,
    /// The route configurations as a VHDS client gets them: `vhds` set,
    /// no virtual hosts ([`crate::vhds`]).
    route_heads: Packed,
    /// Their virtual hosts, named `<route configuration>/<virtual host>`.
    vhosts: Packed,
}

impl Part {
    /// Packs `r`; types equal to `previous`'s keep its buffers (and a
    /// changed type keeps its names when they are the same).
    fn new(r: &Resources, previous: Option<&Part>) -> Part {
        fn pack<R: weft_xds::Resource + Message>(items: &[R]) -> Packed {
            Packed::new(
                items
                    .iter()
                    .map(|r| (r.resource_name().to_string(), weft_xds::pack(r)))
                    .collect(),
            )
        }
        let keep = |new: Packed, old: Option<&Packed>| match old {
            Some(old) if old.same(&new) => old.clone(),
            Some(old) if old.names[..] == new.names[..] => Packed {
                names: old.names.clone(),
                ..new
            },
            _ => new,
        };
        let (heads, vhosts) = crate::vhds::split(&r.routes);
        Part {
            clusters: keep(pack(&r.clusters), previous.map(|p| &p.clusters)),
            endpoints: keep(pack(&r.endpoints), previous.map(|p| &p.endpoints)),
            listeners: keep(pack(&r.listeners), previous.map(|p| &p.listeners)),
            routes: keep(pack(&r.routes), previous.map(|p| &p.routes)),
            route_heads: keep(Packed::new(heads), previous.map(|p| &p.route_heads)),
            vhosts: keep(Packed::new(vhosts), previous.map(|p| &p.vhosts)),
        }
    }

    /// Packs the listeners and routes of `r` (as [`Part::new`] does),
    /// keeping `previous`'s clusters and load assignments as they are.
    fn with_routing(r: &Resources, previous: &Part) -> Part {
        let fresh = Part::new(r, Some(previous));
        Part {
            clusters: previous.clusters.clone(),
            endpoints: previous.endpoints.clone(),
            ..fresh
        }
    }

    /// The resources of `type_url` (none for types not translated here)
    /// as a client without VHDS gets them: virtual hosts inside their
    /// route configurations.
    pub fn of(&self, type_url: TypeUrl) -> &Packed {
        static NONE: std::sync::LazyLock<Packed> = std::sync::LazyLock::new(Packed::default);
        match type_url {
            TypeUrl::Cluster => &self.clusters,
            TypeUrl::ClusterLoadAssignment => &self.endpoints,
            TypeUrl::Listener => &self.listeners,
            TypeUrl::RouteConfiguration => &self.routes,
            TypeUrl::Secret | TypeUrl::VirtualHost => &NONE,
        }
    }

    /// The resources of `type_url` as a VHDS client gets them: route
    /// configurations without their virtual hosts, which are resources
    /// of their own.
    pub fn of_vhds(&self, type_url: TypeUrl) -> &Packed {
        match type_url {
            TypeUrl::RouteConfiguration => &self.route_heads,
            TypeUrl::VirtualHost => &self.vhosts,
            t => self.of(t),
        }
    }
}

/// One proxy's resources for one generation: the part its shape shares
/// and its own.
#[derive(Clone, Debug)]
pub struct Translation {
    /// The generation they were made from.
    pub version: u64,
    /// What every proxy of its [`Key`] holds.
    pub shared: Arc<Part>,
    /// What only proxies of its workload ([`OwnKey`]) hold; empty if none.
    pub own: Arc<Part>,
}

impl Translation {
    /// Translates both parts for a resolved proxy, without the cache (a
    /// stream lagging behind, tests).
    pub fn new(generation: &Generation, resolved: &Proxy) -> Translation {
        let inputs = generation.inputs();
        Translation {
            version: generation.version,
            shared: Arc::new(Part::new(
                &translate::translate_shared(inputs, resolved),
                None,
            )),
            own: Arc::new(Part::new(&translate::translate_own(inputs, resolved), None)),
        }
    }

    /// The shared and the own resources of `type_url`, as a client with
    /// VHDS (`vhds`) or without gets them.
    pub fn of(&self, type_url: TypeUrl, vhds: bool) -> (&Packed, &Packed) {
        if vhds {
            (self.shared.of_vhds(type_url), self.own.of_vhds(type_url))
        } else {
            (self.shared.of(type_url), self.own.of(type_url))
        }
    }
}

type Cell = Arc<OnceLock<Arc<Part>>>;

/// One generation's translations, by key of each part, and what it made
/// once for all of them.
#[derive(Debug, Default)]
struct Shapes {
    /// The generation (`None` in a default, empty `Shapes`).
    generation: Option<Arc<Generation>>,
    /// What changed since the generation before it.
    changes: Arc<Changes>,
    /// The generation's DestinationRule index (every proxy's `rules`).
    rules: Arc<RuleIndex>,
    /// How the generation's config reads labels (for [`Key`]).
    uses: Arc<LabelUses>,
    shared: HashMap<Key, Cell>,
    own: HashMap<OwnKey, Cell>,
}

impl Shapes {
    fn version(&self) -> Option<u64> {
        self.generation.as_ref().map(|g| g.version)
    }
}

/// Translations of both parts made, for tests and the benchmark's
/// counting.
#[derive(Debug, Default)]
pub struct Counts {
    /// Shared parts translated.
    pub shared: std::sync::atomic::AtomicU64,
    /// Shared parts of which only listeners and routes were translated
    /// (the rest kept from the generation before).
    pub routing: std::sync::atomic::AtomicU64,
    /// Own parts translated.
    pub own: std::sync::atomic::AtomicU64,
    /// Proxies resolved (not reused from the generation before).
    pub resolved: std::sync::atomic::AtomicU64,
}

/// The cache: shared by every stream of a server.
#[derive(Debug, Default)]
pub struct Translations {
    /// The newest generation's, and the one before (whose unchanged
    /// buffers the newer reuses).
    current: Mutex<(Shapes, Shapes)>,
    /// How many parts were translated.
    pub made: Counts,
}

/// What a stream needs from the cache for one generation.
struct Lookup {
    changes: Arc<Changes>,
    rules: Arc<RuleIndex>,
    uses: Arc<LabelUses>,
}

fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl Translations {
    /// `proxy`'s resources for `generation`: each part translated by the
    /// first proxy of its key to ask (others of the key wait for it),
    /// shared with the rest.
    pub fn get(&self, generation: &Arc<Generation>, proxy: &Proxy) -> Translation {
        self.get_for(generation, proxy, &mut Resolved::default())
    }

    /// [`Translations::get`] for a stream that keeps its resolution in
    /// `resolved` from one generation to the next: reused when nothing
    /// it depends on changed ([`Resolved`]).
    pub fn get_for(
        &self,
        generation: &Arc<Generation>,
        proxy: &Proxy,
        resolved: &mut Resolved,
    ) -> Translation {
        let inputs = generation.inputs();
        let Some(lookup) = self.prepare(generation) else {
            // A stream lagging behind: don't evict the newer one for it.
            resolved.clear();
            return Translation::new(generation, &translate::resolve(inputs, proxy));
        };
        if resolved.update(
            generation,
            proxy,
            &lookup.changes,
            &lookup.rules,
            &lookup.uses,
        ) {
            count(&self.made.resolved);
        }
        let Some((resolved, key, own_key)) = resolved.get() else {
            return Translation::new(generation, &translate::resolve(inputs, proxy));
        };
        let (shared, shared_before, own, own_before) = {
            let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let (newest, before) = &mut *guard;
            if newest.version() != Some(generation.version) {
                // A newer generation came meanwhile.
                drop(guard);
                return Translation::new(generation, resolved);
            }
            let shared_before = before.shared.get(key).and_then(|c| c.get().cloned());
            let shared = match newest.shared.get(key) {
                Some(cell) => cell.clone(),
                None => newest.shared.entry(key.clone()).or_default().clone(),
            };
            match own_key {
                Some(k) => {
                    let own_before = before.own.get(k).and_then(|c| c.get().cloned());
                    let own = match newest.own.get(k) {
                        Some(cell) => cell.clone(),
                        None => newest.own.entry(k.clone()).or_default().clone(),
                    };
                    (shared, shared_before, Some(own), own_before)
                }
                None => (shared, shared_before, None, None),
            }
        };
        let shared = shared
            .get_or_init(|| {
                count(&self.made.shared);
                match shared_before {
                    Some(before) if lookup.changes.routing_only() => {
                        // Only VirtualServices changed: clusters and
                        // load assignments stay as they were.
                        count(&self.made.routing);
                        let r = translate::translate_routing(inputs, resolved);
                        Arc::new(Part::with_routing(&r, &before))
                    }
                    before => {
                        let r = translate::translate_shared(inputs, resolved);
                        Arc::new(Part::new(&r, before.as_deref()))
                    }
                }
            })
            .clone();
        let own = match own {
            None => Arc::default(),
            Some(cell) => cell
                .get_or_init(|| {
                    // The key holds everything the own part reads.
                    own_before.unwrap_or_else(|| {
                        count(&self.made.own);
                        let r = translate::translate_own(inputs, resolved);
                        Arc::new(Part::new(&r, None))
                    })
                })
                .clone(),
        };
        Translation {
            version: generation.version,
            shared,
            own,
        }
    }

    /// The newest generation's per-generation state, starting it if
    /// `generation` is newer; `None` when `generation` is older.
    fn prepare(&self, generation: &Arc<Generation>) -> Option<Lookup> {
        let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let (newest, before) = &mut *guard;
        match newest.version() {
            Some(v) if generation.version < v => return None,
            Some(v) if generation.version == v => {}
            _ => {
                if newest.generation.is_some() {
                    *before = std::mem::take(newest);
                }
                let inputs = generation.inputs();
                let changes = match &before.generation {
                    Some(old) => Changes::between(old, generation),
                    None => Changes::default(),
                };
                // The rule index holds keys and host patterns of the
                // DestinationRules only; LabelUses reads VirtualServices,
                // DestinationRules and the mesh config.
                let rules = match &before.generation {
                    Some(_) if !changes.kind(Kind::DestinationRule) => before.rules.clone(),
                    _ => Arc::new(RuleIndex::build(inputs)),
                };
                let uses = LabelUses::of(inputs);
                let uses = match &before.generation {
                    Some(_) if *before.uses == uses => before.uses.clone(),
                    _ => Arc::new(uses),
                };
                *newest = Shapes {
                    generation: Some(generation.clone()),
                    changes: Arc::new(changes),
                    rules,
                    uses,
                    ..Shapes::default()
                };
            }
        }
        Some(Lookup {
            changes: newest.changes.clone(),
            rules: newest.rules.clone(),
            uses: newest.uses.clone(),
        })
    }
    /// Distinct shared and own keys translated for the newest generation.
    pub fn shapes(&self) -> (usize, usize) {
        let guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (guard.0.shared.len(), guard.0.own.len())
    }
}

#[cfg(test)]
mod tests;
