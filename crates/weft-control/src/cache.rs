//! Translations shared between proxies.
//!
//! Translation is a pure function of the generation and the *resolved*
//! proxy, and after resolution only a few facts about a proxy matter: its
//! kind, namespace, labels, interception mode, application addresses,
//! locality and workload. Thousands of proxies usually share a handful of
//! those, so each generation translates once per distinct [`Key`] and packs
//! the result once; every stream of that shape holds the same `Arc`s. The
//! cache keeps one generation: the first request for a newer one starts
//! a fresh map, and the old one lives only as long as streams still use it.
//! A type whose resources didn't change keeps the previous generation's
//! buffers, so streams tell "unchanged" by pointer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use prost::Message;
use weft_registry::Locality;
use weft_xds::TypeUrl;
use weft_xds::pb::google::protobuf::Any;

use crate::ads::Generation;
use crate::translate::instance::Instance;
use crate::translate::{self, AppAddresses, Interception, Proxy, ProxyKind};

/// What translation output depends on, once a proxy is resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    kind: ProxyKind,
    namespace: String,
    labels: BTreeMap<String, String>,
    interception: Interception,
    app: AppAddresses,
    locality: Locality,
    instance: Option<Instance>,
}

impl Key {
    /// The key of a proxy resolved by [`translate::resolve`].
    pub fn of(resolved: &Proxy) -> Key {
        Key {
            kind: resolved.kind,
            namespace: resolved.namespace.clone(),
            labels: resolved.labels.clone(),
            interception: resolved.interception,
            app: resolved.app.clone(),
            locality: resolved.locality.clone(),
            instance: resolved.instance.as_deref().cloned(),
        }
    }
}

/// The resources of one type, packed, sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Packed {
    /// Every resource, as it goes on the wire.
    pub all: Arc<[Any]>,
    /// Their names, index for index.
    pub names: Arc<[String]>,
}

impl Packed {
    fn new(items: Vec<(String, Any)>) -> Packed {
        let (names, all): (Vec<String>, Vec<Any>) = items.into_iter().unzip();
        Packed {
            all: all.into(),
            names: names.into(),
        }
    }
}

/// One proxy shape's resources for one generation.
#[derive(Debug)]
pub struct Translation {
    /// The generation they were made from.
    pub version: u64,
    clusters: Packed,
    endpoints: Packed,
    listeners: Packed,
    routes: Packed,
}

impl Translation {
    /// Translates and packs; types equal to `previous`'s keep its buffers.
    pub fn new(
        generation: &Generation,
        resolved: &Proxy,
        previous: Option<&Translation>,
    ) -> Translation {
        let r = translate::translate_resolved(generation.inputs(), resolved);
        fn pack<R: weft_xds::Resource + Message>(items: &[R]) -> Packed {
            Packed::new(
                items
                    .iter()
                    .map(|r| (r.resource_name().to_string(), weft_xds::pack(r)))
                    .collect(),
            )
        }
        let keep = |new: Packed, t: TypeUrl| match previous.map(|p| p.of(t)) {
            Some(old) if old.all[..] == new.all[..] && old.names[..] == new.names[..] => {
                old.clone()
            }
            _ => new,
        };
        Translation {
            version: generation.version,
            clusters: keep(pack(&r.clusters), TypeUrl::Cluster),
            endpoints: keep(pack(&r.endpoints), TypeUrl::ClusterLoadAssignment),
            listeners: keep(pack(&r.listeners), TypeUrl::Listener),
            routes: keep(pack(&r.routes), TypeUrl::RouteConfiguration),
        }
    }

    /// The resources of `type_url` (none for types not translated here).
    pub fn of(&self, type_url: TypeUrl) -> &Packed {
        static NONE: std::sync::LazyLock<Packed> = std::sync::LazyLock::new(Packed::default);
        match type_url {
            TypeUrl::Cluster => &self.clusters,
            TypeUrl::ClusterLoadAssignment => &self.endpoints,
            TypeUrl::Listener => &self.listeners,
            TypeUrl::RouteConfiguration => &self.routes,
            TypeUrl::Secret => &NONE,
        }
    }
}

type Cell = Arc<OnceLock<Arc<Translation>>>;

/// One generation's translations, by proxy shape.
#[derive(Debug, Default)]
struct Shapes {
    version: u64,
    cells: HashMap<Key, Cell>,
}

/// The cache: shared by every stream of a server.
#[derive(Debug, Default)]
pub struct Translations {
    /// The newest generation's, and the one before (whose unchanged
    /// buffers the newer reuses).
    current: Mutex<(Shapes, Shapes)>,
}

impl Translations {
    /// `proxy`'s resources for `generation`: translated by the first proxy
    /// of its shape to ask (others of the shape wait for it), shared with
    /// the rest.
    pub fn get(&self, generation: &Arc<Generation>, proxy: &Proxy) -> Arc<Translation> {
        let resolved = translate::resolve(generation.inputs(), proxy);
        let key = Key::of(&resolved);
        let (cell, previous) = {
            let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let (newest, before) = &mut *guard;
            if generation.version < newest.version {
                // A stream lagging behind: don't evict the newer one for it.
                drop(guard);
                return Arc::new(Translation::new(generation, &resolved, None));
            }
            if generation.version > newest.version {
                *before = std::mem::replace(
                    newest,
                    Shapes {
                        version: generation.version,
                        cells: HashMap::new(),
                    },
                );
            }
            let previous = before.cells.get(&key).and_then(|c| c.get().cloned());
            (newest.cells.entry(key).or_default().clone(), previous)
        };
        cell.get_or_init(|| Arc::new(Translation::new(generation, &resolved, previous.as_deref())))
            .clone()
    }

    /// Distinct proxy shapes translated for the newest generation.
    pub fn shapes(&self) -> usize {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .cells
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;

    fn generation(version: u64) -> Arc<Generation> {
        let mesh = TestMesh::examples();
        Arc::new(Generation::new(
            version,
            Arc::new(mesh.config),
            Arc::new(mesh.registry),
        ))
    }

    fn sidecar(id: &str, pod: &str) -> Proxy {
        Proxy {
            pod: pod.to_string(),
            ..Proxy::sidecar(id, "bookinfo", &[])
        }
    }

    #[test]
    fn proxies_of_one_shape_share_one_translation() {
        let cache = Translations::default();
        let g = generation(1);
        let a = cache.get(&g, &sidecar("a", "unknown-1"));
        let b = cache.get(&g, &sidecar("b", "unknown-2"));
        assert!(
            Arc::ptr_eq(&a, &b),
            "no workload, same namespace and labels"
        );
        assert!(Arc::ptr_eq(
            &a.of(TypeUrl::Cluster).all,
            &b.of(TypeUrl::Cluster).all
        ));
        // A proxy with a workload is its own shape, and gets what translate
        // would give it.
        let pp = sidecar("pp", "productpage-v1");
        let c = cache.get(&g, &pp);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.shapes(), 2);
        let direct = translate::translate(g.inputs(), &pp);
        let names: Vec<&str> = direct.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            c.of(TypeUrl::Listener)
                .names
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            names
        );
        assert_eq!(c.of(TypeUrl::Listener).all.len(), names.len());
        // A new generation starts afresh, keeping the buffers of the types
        // that didn't change (here: none did).
        let d = cache.get(&generation(2), &sidecar("a", "unknown-1"));
        assert_eq!(d.version, 2);
        assert_eq!(cache.shapes(), 1);
        for t in [
            TypeUrl::Cluster,
            TypeUrl::ClusterLoadAssignment,
            TypeUrl::Listener,
            TypeUrl::RouteConfiguration,
        ] {
            assert!(Arc::ptr_eq(&a.of(t).all, &d.of(t).all), "{t}");
        }
        // A lagging stream still gets its own generation's resources.
        assert_eq!(cache.get(&g, &pp).version, 1);
        assert_eq!(cache.shapes(), 1);
    }
}
