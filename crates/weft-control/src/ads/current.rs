//! What a stream keeps of a translation: per type, the shared segment of
//! its shape and its own segment, encoded — the cache's own buffers,
//! which what the proxy holds ([`Held`]) and the debug API share (the
//! typed resources are several times larger, and are dropped once
//! encoded) — reused across generations while a type doesn't change.

use std::sync::Arc;

use weft_xds::TypeUrl;
use weft_xds::pb::google::protobuf::Any;

use super::held::Held;
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
}

impl Packed {
    fn new(shared: &cache::Packed, own: &cache::Packed, previous: Option<&Packed>) -> Packed {
        // Unchanged: keep the old Arcs, which what the proxy holds (and
        // the debug API) may share. The cache keeps unchanged buffers
        // between generations, so this is mostly a pointer test.
        let shared = match previous {
            Some(p) if p.shared.same(shared) => p.shared.clone(),
            _ => shared.clone(),
        };
        if let Some(p) = previous
            && Arc::ptr_eq(&p.shared.all, &shared.all)
            && p.own_source.same(own)
        {
            return Packed {
                shared,
                own_source: p.own_source.clone(),
                own: p.own.clone(),
                at: p.at.clone(),
            };
        }
        let position = |name: &String| shared.names.binary_search(name);
        let own_filtered = if own.names.iter().any(|n| position(n).is_ok()) {
            let kept: Vec<usize> = (0..own.names.len())
                .filter(|i| position(&own.names[*i]).is_err())
                .collect();
            cache::Packed {
                all: kept.iter().map(|i| own.all[*i].clone()).collect(),
                names: kept.iter().map(|i| own.names[*i].clone()).collect(),
                versions: kept.iter().map(|i| own.versions[*i]).collect(),
            }
        } else {
            own.clone()
        };
        let at = own_filtered
            .names
            .iter()
            .map(|n| position(n).unwrap_or_else(|i| i))
            .collect();
        Packed {
            shared,
            own_source: own.clone(),
            own: own_filtered,
            at,
        }
    }

    /// Name, encoding and delta version of each resource, in name order.
    fn items(&self) -> impl Iterator<Item = Item<'_>> + '_ {
        fn item(p: &cache::Packed, i: usize) -> Item<'_> {
            Item {
                name: p.names[i].as_str(),
                any: &p.all[i],
                version: p.versions[i],
            }
        }
        let shared = &self.shared;
        let own = &self.own;
        let mut i = 0;
        let mut j = 0;
        std::iter::from_fn(move || {
            if j < own.names.len() && (self.at[j] <= i || i >= shared.names.len()) {
                j += 1;
                return Some(item(own, j - 1));
            }
            (i < shared.names.len()).then(|| {
                i += 1;
                item(shared, i - 1)
            })
        })
    }

    fn len(&self) -> usize {
        self.shared.names.len() + self.own.names.len()
    }

    /// The resources `in_scope` admits.
    pub(crate) fn select(&self, in_scope: impl Fn(&str) -> bool) -> Selected<'_> {
        let items: Vec<Item<'_>> = self.items().filter(|it| in_scope(it.name)).collect();
        let holds = if items.len() == self.len() {
            Held::new(
                self.shared.all.clone(),
                self.own.all.clone(),
                self.at.clone(),
            )
        } else {
            Held::from(items.iter().map(|it| it.any.clone()).collect::<Vec<Any>>())
        };
        Selected { items, holds }
    }
}

/// A stream's current resources, every type, encoded.
#[derive(Debug, Default)]
pub(crate) struct Current {
    by_type: [Packed; 5],
}

impl Current {
    /// A translation's resources, reusing `previous`'s buffers for the
    /// types that did not change.
    pub(crate) fn new(translation: &Translation, previous: Option<&Current>) -> Current {
        let mut by_type: [Packed; 5] = Default::default();
        for t in TypeUrl::ALL {
            let (shared, own) = translation.of(t);
            by_type[type_index(t)] = Packed::new(shared, own, previous.map(|p| p.get(t)));
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
    pub any: &'a Any,
    /// Its delta version (see [`super::delta::resource_version`]).
    pub version: u64,
}

/// The resources of one type in a proxy's scope.
pub(crate) struct Selected<'a> {
    /// Each, in name order.
    pub items: Vec<Item<'a>>,
    /// The same, as the proxy holds them once sent (the translation's own
    /// segments when every resource is in scope).
    pub holds: Held,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::{Generation, resource_version};
    use crate::translate::test_inputs::TestMesh;
    use crate::translate::{Proxy, resolve, translate};

    fn productpage() -> Proxy {
        Proxy {
            pod: "productpage-v1".into(),
            ..Proxy::sidecar(
                "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
                "bookinfo",
                &[],
            )
        }
    }

    fn packed<R: weft_xds::Resource>(items: &[R]) -> Vec<Any> {
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
        assert!(!translation.of(TypeUrl::Cluster).1.names.is_empty());
        assert!(!translation.of(TypeUrl::Listener).1.names.is_empty());
        let current = Current::new(&translation, None);
        for (t, expected) in [
            (TypeUrl::Cluster, packed(&direct.clusters)),
            (TypeUrl::ClusterLoadAssignment, packed(&direct.endpoints)),
            (TypeUrl::Listener, packed(&direct.listeners)),
            (TypeUrl::RouteConfiguration, packed(&direct.routes)),
        ] {
            let all = current.get(t).select(|_| true);
            assert_eq!(
                all.holds.to_vec(),
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
        let first = Current::new(&Translation::new(&generation, &resolved), None);
        let again = Current::new(&Translation::new(&generation, &resolved), Some(&first));
        for t in TypeUrl::ALL {
            let (a, b) = (first.get(t), again.get(t));
            assert!(Arc::ptr_eq(&a.shared.all, &b.shared.all), "{t}");
            assert!(Arc::ptr_eq(&a.own.all, &b.own.all), "{t}");
            assert!(a.select(|_| true).holds.same(&b.select(|_| true).holds));
        }
        let clusters = again.get(TypeUrl::Cluster);
        let all = clusters.select(|_| true);
        assert_eq!(all.items.len(), resources.clusters.len());
        assert_eq!(all.holds.len(), resources.clusters.len());
        let name = resources.clusters[0].name.clone();
        let one = clusters.select(|n| n == name);
        assert_eq!(one.items.len(), 1);
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
        let changed = Current::new(&Translation::new(&fewer, &resolved), Some(&again));
        let (c, a) = (changed.get(TypeUrl::Cluster), again.get(TypeUrl::Cluster));
        assert!(!Arc::ptr_eq(&c.shared.all, &a.shared.all));
        assert!(!c.select(|_| true).holds.same(&a.select(|_| true).holds));
        let (c, a) = (changed.get(TypeUrl::Listener), again.get(TypeUrl::Listener));
        assert!(Arc::ptr_eq(&c.shared.all, &a.shared.all));
        assert!(Arc::ptr_eq(&c.at, &a.at));
    }
}
