//! What a stream keeps of a translation: each type's resources encoded,
//! in one `Arc<[Any]>` that what the proxy holds and the debug API share
//! (the typed resources are several times larger, and are dropped once
//! encoded), reused across generations while a type doesn't change.

use std::sync::Arc;

use weft_xds::TypeUrl;
use weft_xds::pb::google::protobuf::Any;

use super::stats::type_index;
use crate::translate::Resources;

/// One type's resources of the current translation, encoded, sorted by
/// name. All a stream keeps of a translation (the typed resources are
/// several times larger).
#[derive(Debug, Default)]
pub(crate) struct Packed {
    names: Vec<String>,
    anys: Arc<[Any]>,
}

impl Packed {
    fn new<R: weft_xds::Resource>(items: &[R], previous: Option<&Packed>) -> Packed {
        let anys: Vec<Any> = items.iter().map(weft_xds::pack).collect();
        // Unchanged: keep the old Arc, which what the proxy holds (and the
        // debug API) may share.
        if let Some(p) = previous.filter(|p| p.anys[..] == anys[..]) {
            return Packed {
                names: p.names.clone(),
                anys: p.anys.clone(),
            };
        }
        Packed {
            names: items
                .iter()
                .map(|r| r.resource_name().to_string())
                .collect(),
            anys: anys.into(),
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
    /// Encodes a translation, reusing `previous`'s buffers for the types
    /// that did not change.
    pub(crate) fn new(resources: &Resources, previous: Option<&Current>) -> Current {
        let prev = |t: TypeUrl| previous.map(|p| p.get(t));
        let mut by_type: [Packed; 5] = Default::default();
        by_type[type_index(TypeUrl::Cluster)] =
            Packed::new(&resources.clusters, prev(TypeUrl::Cluster));
        by_type[type_index(TypeUrl::ClusterLoadAssignment)] =
            Packed::new(&resources.endpoints, prev(TypeUrl::ClusterLoadAssignment));
        by_type[type_index(TypeUrl::Listener)] =
            Packed::new(&resources.listeners, prev(TypeUrl::Listener));
        by_type[type_index(TypeUrl::RouteConfiguration)] =
            Packed::new(&resources.routes, prev(TypeUrl::RouteConfiguration));
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
        let first = Current::new(&resources, None);
        let again = Current::new(&resources, Some(&first));
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

        let mut fewer = resources.clone();
        fewer.clusters.pop();
        let changed = Current::new(&fewer, Some(&again));
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
