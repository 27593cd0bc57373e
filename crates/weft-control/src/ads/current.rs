//! What a stream keeps of a translation: each type's resources encoded,
//! in one `Arc<[Any]>` that what the proxy holds and the debug API share
//! (the typed resources are several times larger, and are dropped once
//! encoded), reused across generations while a type doesn't change.

use std::sync::Arc;

use weft_xds::TypeUrl;
use weft_xds::pb::google::protobuf::Any;

use super::stats::type_index;
use crate::cache::{self, Translation};

/// One type's resources of the current translation, encoded, sorted by
/// name: the shared translation's own buffers (see [`crate::cache`]).
#[derive(Debug, Default)]
pub(crate) struct Packed {
    names: Arc<[String]>,
    anys: Arc<[Any]>,
}

impl Packed {
    fn new(shared: &cache::Packed, previous: Option<&Packed>) -> Packed {
        // Unchanged: keep the old Arc, which what the proxy holds (and the
        // debug API) may share. The cache keeps unchanged buffers between
        // generations, so this is mostly a pointer test.
        if let Some(p) =
            previous.filter(|p| Arc::ptr_eq(&p.anys, &shared.all) || p.anys[..] == shared.all[..])
        {
            return Packed {
                names: p.names.clone(),
                anys: p.anys.clone(),
            };
        }
        Packed {
            names: shared.names.clone(),
            anys: shared.all.clone(),
        }
    }

    /// The resources `in_scope` admits.
    pub(crate) fn select(&self, in_scope: impl Fn(&str) -> bool) -> Selected<'_> {
        let items: Vec<(&str, &Any)> = self
            .names
            .iter()
            .zip(self.anys.iter())
            .filter(|(n, _)| in_scope(n))
            .map(|(n, a)| (n.as_str(), a))
            .collect();
        let holds = if items.len() == self.anys.len() {
            self.anys.clone()
        } else {
            items.iter().map(|(_, a)| (*a).clone()).collect()
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
            by_type[type_index(t)] = Packed::new(translation.of(t), previous.map(|p| p.get(t)));
        }
        Current { by_type }
    }

    pub(crate) fn get(&self, t: TypeUrl) -> &Packed {
        &self.by_type[type_index(t)]
    }
}

/// The resources of one type in a proxy's scope.
pub(crate) struct Selected<'a> {
    /// Name and encoding of each, by name.
    pub items: Vec<(&'a str, &'a Any)>,
    /// The same, as the proxy holds them once sent (the translation's own
    /// Arc when every resource is in scope).
    pub holds: Arc<[Any]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::Generation;
    use crate::translate::test_inputs::TestMesh;
    use crate::translate::{Proxy, translate};

    #[test]
    fn unchanged_types_keep_their_buffers_and_full_scope_shares_them() {
        let mesh = TestMesh::examples();
        let proxy = Proxy::sidecar(
            "productpage-v1.bookinfo",
            "bookinfo",
            &[("app", "productpage")],
        );
        let resources = translate(mesh.inputs(), &proxy);
        let generation = Generation::new(1, Arc::new(mesh.config), Arc::new(mesh.registry));
        let translation = Translation::new(&generation, &proxy, None);
        let first = Current::new(&translation, None);
        let again = Current::new(&Translation::new(&generation, &proxy, None), Some(&first));
        for t in TypeUrl::ALL {
            assert!(Arc::ptr_eq(&first.get(t).anys, &again.get(t).anys), "{t}");
        }
        let clusters = again.get(TypeUrl::Cluster);
        let all = clusters.select(|_| true);
        assert!(Arc::ptr_eq(&all.holds, &clusters.anys));
        assert_eq!(all.items.len(), resources.clusters.len());
        let name = resources.clusters[0].name.clone();
        let one = clusters.select(|n| n == name);
        assert_eq!(one.items.len(), 1);
        assert_eq!(one.items[0].0, name);
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
        let changed = Current::new(&Translation::new(&fewer, &proxy, None), Some(&again));
        assert!(!Arc::ptr_eq(
            &changed.get(TypeUrl::Cluster).anys,
            &again.get(TypeUrl::Cluster).anys
        ));
        assert!(Arc::ptr_eq(
            &changed.get(TypeUrl::Listener).anys,
            &again.get(TypeUrl::Listener).anys
        ));
    }
}
