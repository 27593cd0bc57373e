//! What a stream keeps of a translation: per type, the shared segment of
//! its shape and its own segment, encoded — the cache's own buffers,
//! which what the proxy holds ([`Held`]) and the debug API share (the
//! typed resources are several times larger, and are dropped once
//! encoded) — reused across generations while a type doesn't change.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use weft_xds::TypeUrl;
use weft_xds::names::vhost_route;

use super::held::{Held, Run, Segment, push_entry};
use super::stats::type_index;
use crate::cache::{self, Translation};

/// One type's resources of the current translation, encoded, in two
/// segments sorted by name (see [`crate::cache`]).
#[derive(Debug, Default)]
pub(crate) struct Packed {
    shared: cache::Packed,
    /// The own segment as the cache made it (to tell "unchanged").
    own_source: cache::Packed,
    /// The same without names the shared segment has (the shared one
    /// wins, as in [`crate::translate::translate_resolved`]); usually the
    /// same buffers as `own_source`.
    own: cache::Packed,
    /// For each of `own`, how many of `shared` sort before it.
    at: Arc<[usize]>,
    /// Everything, as a proxy holding all of it holds it (shared by every
    /// such proxy).
    all: Held,
    /// Resources are named `<subscription>/…` (VHDS: a client subscribes
    /// with a route configuration's name for all its virtual hosts).
    under: bool,
}

impl Packed {
    fn new(
        shared: &cache::Packed,
        own: &cache::Packed,
        previous: Option<&Packed>,
        under: bool,
    ) -> Packed {
        // Unchanged: keep the old buffers, which what the proxy holds (and
        // the debug API) may share. The cache keeps unchanged buffers
        // between generations, so this is mostly a pointer test.
        let shared = match previous {
            Some(p) if p.shared.same(shared) => p.shared.clone(),
            _ => shared.clone(),
        };
        if let Some(p) = previous
            && p.shared.all.same_buffer(&shared.all)
            && p.own_source.same(own)
        {
            return Packed {
                shared,
                own_source: p.own_source.clone(),
                own: p.own.clone(),
                at: p.at.clone(),
                all: p.all.clone(),
                under,
            };
        }
        let position = |name: &String| shared.names.binary_search(name);
        let own_filtered = if own.names.iter().any(|n| position(n).is_ok()) {
            let kept: Vec<usize> = (0..own.names.len())
                .filter(|i| position(&own.names[*i]).is_err())
                .collect();
            cache::Packed {
                all: own.all.pick(&kept),
                names: kept.iter().map(|i| own.names[*i].clone()).collect(),
                versions: kept.iter().map(|i| own.versions[*i]).collect(),
            }
        } else {
            own.clone()
        };
        let at: Arc<[usize]> = own_filtered
            .names
            .iter()
            .map(|n| position(n).unwrap_or_else(|i| i))
            .collect();
        let all = Held::merged(shared.all.clone(), own_filtered.all.clone(), &at);
        Packed {
            shared,
            own_source: own.clone(),
            own: own_filtered,
            at,
            all,
            under,
        }
    }

    /// Whether this is `previous` kept as it was (the same buffers): a
    /// proxy that holds what it was sent of it needs nothing new.
    pub(crate) fn unchanged(&self, previous: &Packed) -> bool {
        self.shared.all.same_buffer(&previous.shared.all)
            && self.own.all.same_buffer(&previous.own.all)
            && Arc::ptr_eq(&self.at, &previous.at)
    }

    /// Name, encoding and delta version of each resource, in name order.
    fn items(&self) -> impl Iterator<Item = Item<'_>> + '_ {
        fn item(p: &cache::Packed, own: bool, i: usize) -> Item<'_> {
            Item {
                name: p.names[i].as_str(),
                version: p.versions[i],
                segment: &p.all,
                own,
                index: i,
            }
        }
        let shared = &self.shared;
        let own = &self.own;
        let mut i = 0;
        let mut j = 0;
        std::iter::from_fn(move || {
            if j < own.names.len() && (self.at[j] <= i || i >= shared.names.len()) {
                j += 1;
                return Some(item(own, true, j - 1));
            }
            (i < shared.names.len()).then(|| {
                i += 1;
                item(shared, false, i - 1)
            })
        })
    }

    fn len(&self) -> usize {
        self.shared.names.len() + self.own.names.len()
    }

    /// The arrays its resources come from.
    pub(crate) fn source(&self) -> Source {
        Source::of(&self.shared, &self.own)
    }

    /// The resources in a subscription: all of them for a wildcard,
    /// else those named in `names` (a merge of the two sorted lists, not
    /// a lookup per resource) — for VHDS those named `<name>/…`.
    pub(crate) fn select(&self, wildcard: bool, names: &BTreeSet<String>) -> Selected<'_> {
        let items: Vec<Item<'_>> = if wildcard {
            self.items().collect()
        } else if self.under {
            self.items()
                .filter(|it| names.contains(vhost_route(it.name)))
                .collect()
        } else {
            let mut wanted = names.iter().map(String::as_str).peekable();
            self.items()
                .filter(|it| {
                    while wanted.next_if(|n| *n < it.name).is_some() {}
                    wanted.peek() == Some(&it.name)
                })
                .collect()
        };
        let holds = if items.len() == self.len() {
            self.all.clone()
        } else {
            let mut runs: Vec<Run> = Vec::new();
            for it in &items {
                push_entry(&mut runs, it.own, it.index);
            }
            Held::new(self.shared.all.clone(), self.own.all.clone(), runs.into())
        };
        let listing = Listing {
            shared: self.shared.clone(),
            own: self.own.clone(),
            runs: holds.runs().clone(),
        };
        Selected {
            items,
            holds,
            listing,
        }
    }
}

/// The names and delta versions of what a proxy holds of one type, as
/// [`Held`] has their encodings: the cache's own arrays and the runs of
/// them (so the usual holding, all of a shape's resources, is a few
/// pointers per stream).
#[derive(Clone, Debug, Default)]
pub(crate) struct Listing {
    shared: cache::Packed,
    own: cache::Packed,
    runs: Arc<[Run]>,
}

impl Listing {
    /// Each name and version, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.runs.iter().flat_map(move |r| {
            let p = if r.own { &self.own } else { &self.shared };
            (r.start..r.end).map(move |i| (p.names[i].as_str(), p.versions[i]))
        })
    }

    /// Whether both list the same names from the same arrays in the same
    /// runs (versions may differ), so they can be compared index by index.
    pub(crate) fn same_names(&self, other: &Listing) -> bool {
        Arc::ptr_eq(&self.shared.names, &other.shared.names)
            && Arc::ptr_eq(&self.own.names, &other.own.names)
            && self.runs[..] == other.runs[..]
    }

    /// Whether both are the same names and versions from the same arrays.
    pub(crate) fn same(&self, other: &Listing) -> bool {
        self.same_names(other)
            && Arc::ptr_eq(&self.shared.versions, &other.shared.versions)
            && Arc::ptr_eq(&self.own.versions, &other.own.versions)
    }

    /// The arrays its names and versions come from, and its runs of them.
    pub(crate) fn source(&self) -> (Source, Arc<[Run]>) {
        (Source::of(&self.shared, &self.own), self.runs.clone())
    }

    /// Each version, in name order (for [`Listing::same_names`] pairs).
    pub(crate) fn versions(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(move |r| {
            let p = if r.own { &self.own } else { &self.shared };
            p.versions[r.start..r.end].iter().copied()
        })
    }
}

/// The cache's arrays a type's resources (or a listing of them) come
/// from — names and delta versions, which the cache makes together with
/// the encodings — compared and hashed by pointer, holding them so no
/// address is reused while compared (but not the encodings); empty
/// arrays are all alike.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    shared: Arrays,
    own: Arrays,
}

#[derive(Clone, Debug)]
struct Arrays {
    names: Arc<[String]>,
    versions: Arc<[u64]>,
}

impl Arrays {
    fn of(p: &cache::Packed) -> Arrays {
        Arrays {
            names: p.names.clone(),
            versions: p.versions.clone(),
        }
    }
}

impl Source {
    fn of(shared: &cache::Packed, own: &cache::Packed) -> Source {
        Source {
            shared: Arrays::of(shared),
            own: Arrays::of(own),
        }
    }
}

impl PartialEq for Arrays {
    fn eq(&self, other: &Arrays) -> bool {
        if self.names.is_empty() || other.names.is_empty() {
            return self.names.is_empty() && other.names.is_empty();
        }
        Arc::ptr_eq(&self.names, &other.names) && Arc::ptr_eq(&self.versions, &other.versions)
    }
}

impl std::hash::Hash for Arrays {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.names.is_empty() {
            0usize.hash(state);
        } else {
            (self.names.as_ptr() as usize).hash(state);
            (self.versions.as_ptr() as usize).hash(state);
        }
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.shared == other.shared && self.own == other.own
    }
}

impl Eq for Source {}

impl std::hash::Hash for Source {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shared.hash(state);
        self.own.hash(state);
    }
}

/// A stream's current resources, every type, encoded.
#[derive(Debug, Default)]
pub(crate) struct Current {
    by_type: [Packed; TypeUrl::ALL.len()],
}

impl Current {
    /// A translation's resources as a client with VHDS (`vhds`) or
    /// without gets them, reusing `previous`'s buffers for the types that
    /// did not change.
    pub(crate) fn new(
        translation: &Translation,
        previous: Option<&Current>,
        vhds: bool,
    ) -> Current {
        let mut by_type: [Packed; TypeUrl::ALL.len()] = Default::default();
        for t in TypeUrl::ALL {
            let (shared, own) = translation.of(t, vhds);
            by_type[type_index(t)] = Packed::new(
                shared,
                own,
                previous.map(|p| p.get(t)),
                t == TypeUrl::VirtualHost,
            );
        }
        Current { by_type }
    }

    pub(crate) fn get(&self, t: TypeUrl) -> &Packed {
        &self.by_type[type_index(t)]
    }
}

/// One resource of a stream's current translation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Item<'a> {
    pub name: &'a str,
    /// Its delta version (see [`super::delta::resource_version`]).
    pub version: u64,
    segment: &'a Segment,
    /// In the own segment, else the shared one.
    own: bool,
    index: usize,
}

impl Item<'_> {
    /// Its encoded `Any`, sharing the segment's buffer.
    pub fn any(&self) -> Bytes {
        self.segment.any(self.index)
    }

    /// The length of its encoded `Any`.
    pub fn any_len(&self) -> usize {
        self.any().len()
    }
}

/// The resources of one type in a proxy's scope.
pub(crate) struct Selected<'a> {
    /// Each, in name order.
    pub items: Vec<Item<'a>>,
    /// The same, as the proxy holds them once sent (the translation's own
    /// segments when every resource is in scope).
    pub holds: Held,
    /// Their names and versions, sharing the cache's arrays.
    pub listing: Listing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::{Generation, resource_version};
    use crate::translate::test_inputs::{TestMesh, productpage};
    use crate::translate::{resolve, translate};

    fn packed<R: weft_xds::Resource>(items: &[R]) -> Vec<weft_xds::pb::google::protobuf::Any> {
        items.iter().map(weft_xds::pack).collect()
    }

    #[test]
    fn the_two_segments_merge_into_what_translate_gives() {
        let mesh = TestMesh::examples();
        let proxy = productpage();
        let direct = translate(mesh.inputs(), &proxy);
        let generation = Generation::new(1, Arc::new(mesh.config), Arc::new(mesh.registry));
        let resolved = resolve(generation.inputs(), &proxy);
        let translation = Translation::new(&generation, &resolved);
        assert!(!translation.of(TypeUrl::Cluster, false).1.names.is_empty());
        assert!(!translation.of(TypeUrl::Listener, false).1.names.is_empty());
        let current = Current::new(&translation, None, false);
        for (t, expected) in [
            (TypeUrl::Cluster, packed(&direct.clusters)),
            (TypeUrl::ClusterLoadAssignment, packed(&direct.endpoints)),
            (TypeUrl::Listener, packed(&direct.listeners)),
            (TypeUrl::RouteConfiguration, packed(&direct.routes)),
        ] {
            let all = current.get(t).select(true, &BTreeSet::new());
            assert_eq!(
                all.holds.to_vec().expect("decode"),
                expected,
                "{t}: same resources, same order"
            );
            let versions: Vec<u64> = all.items.iter().map(|i| i.version).collect();
            let hashed: Vec<u64> = expected
                .iter()
                .map(|a| resource_version(&a.value))
                .collect();
            assert_eq!(versions, hashed, "{t}: delta versions");
        }
    }

    #[test]
    fn unchanged_types_keep_their_buffers_and_full_scope_shares_them() {
        let mesh = TestMesh::examples();
        let proxy = productpage();
        let resources = translate(mesh.inputs(), &proxy);
        let generation = Generation::new(1, Arc::new(mesh.config), Arc::new(mesh.registry));
        let resolved = resolve(generation.inputs(), &proxy);
        let none = BTreeSet::new();
        let first = Current::new(&Translation::new(&generation, &resolved), None, false);
        let again = Current::new(
            &Translation::new(&generation, &resolved),
            Some(&first),
            false,
        );
        for t in TypeUrl::ALL {
            let (a, b) = (first.get(t), again.get(t));
            assert!(a.shared.all.same_buffer(&b.shared.all), "{t}");
            assert!(a.own.all.same_buffer(&b.own.all), "{t}");
            assert!(
                a.select(true, &none)
                    .holds
                    .same(&b.select(true, &none).holds)
            );
        }
        let clusters = again.get(TypeUrl::Cluster);
        let all = clusters.select(true, &none);
        assert_eq!(all.items.len(), resources.clusters.len());
        assert_eq!(all.holds.len(), resources.clusters.len());
        let name = resources.clusters[0].name.clone();
        let one = clusters.select(false, &[name.clone()].into());
        assert_eq!(one.items.len(), 1);
        // Named: those of the names that exist, in the resources' order.
        let every_other: BTreeSet<String> = resources
            .clusters
            .iter()
            .step_by(2)
            .map(|c| c.name.clone())
            .chain(["", "zzz", "outbound|1||none", "\u{10ffff}"].map(String::from))
            .collect();
        let named = clusters.select(false, &every_other);
        let expected: Vec<&str> = all
            .items
            .iter()
            .map(|i| i.name)
            .filter(|n| every_other.contains(*n))
            .collect();
        assert_eq!(
            named.items.iter().map(|i| i.name).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(named.holds.len(), expected.len());
        assert!(clusters.select(false, &none).items.is_empty());
        assert_eq!(one.items[0].name, name);
        assert_eq!(one.holds.len(), 1);

        // Without the reviews DestinationRule: fewer clusters, the same
        // listeners.
        let mut fewer_mesh = TestMesh::examples();
        fewer_mesh
            .config
            .resources
            .retain(|k, _| !(k.kind == weft_config::Kind::DestinationRule && k.name == "reviews"));
        let fewer = Generation::new(
            2,
            Arc::new(fewer_mesh.config),
            Arc::new(fewer_mesh.registry),
        );
        let resolved = resolve(fewer.inputs(), &proxy);
        let changed = Current::new(&Translation::new(&fewer, &resolved), Some(&again), false);
        let (c, a) = (changed.get(TypeUrl::Cluster), again.get(TypeUrl::Cluster));
        assert!(!c.shared.all.same_buffer(&a.shared.all));
        assert!(
            !c.select(true, &none)
                .holds
                .same(&a.select(true, &none).holds)
        );
        let (c, a) = (changed.get(TypeUrl::Listener), again.get(TypeUrl::Listener));
        assert!(c.shared.all.same_buffer(&a.shared.all));
        assert!(Arc::ptr_eq(&c.at, &a.at));
    }
}
