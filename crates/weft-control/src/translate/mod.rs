//! Translation: `(config snapshot, registry snapshot, proxy) -> xDS`.
//!
//! One module per resource type: [`cluster`] (CDS), [`endpoint`] (EDS),
//! [`route`] (RDS). Names follow Istio's, so tools and habits carry over:
//! clusters are `outbound|<port>|<subset>|<host>`, route configurations are
//! named by port.

use weft_config::store::Snapshot;

pub use proxy::{AppAddresses, Interception, NodeError, Proxy, ProxyKind};
use weft_registry::RegistrySnapshot;
use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;

pub mod cluster;
pub mod endpoint;
pub mod envoy;
pub mod gateway;
pub mod instance;
pub mod listener;
pub mod locality;
pub mod names;
pub mod policy;
pub mod proxy;
pub mod route;
pub mod scope;
pub mod tls;

/// What translation reads: the config in force and the registry.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config store's snapshot.
    pub config: &'a Snapshot,
    /// The service registry's snapshot.
    pub registry: &'a RegistrySnapshot,
}

/// Everything a proxy is sent, each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    /// CDS.
    pub clusters: Vec<Cluster>,
    /// EDS, one per EDS cluster.
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// LDS.
    pub listeners: Vec<Listener>,
    /// RDS.
    pub routes: Vec<RouteConfiguration>,
}

/// Translates the inputs into the resources `proxy` is sent.
pub fn translate(inputs: Inputs<'_>, proxy: &Proxy) -> Resources {
    translate_resolved(inputs, &resolve(inputs, proxy))
}

/// [`translate`] for a proxy [`resolve`]d already: [`translate_shared`]
/// and [`translate_own`], merged by name.
pub fn translate_resolved(inputs: Inputs<'_>, proxy: &Proxy) -> Resources {
    let shared = translate_shared(inputs, proxy);
    let own = translate_own(inputs, proxy);
    fn merge<T>(mut a: Vec<T>, b: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        a.extend(b);
        names::sort_dedup_by_name(a, name)
    }
    Resources {
        clusters: merge(shared.clusters, own.clusters, |c| &c.name),
        endpoints: shared.endpoints,
        listeners: merge(shared.listeners, own.listeners, |l| &l.name),
        routes: shared.routes,
    }
}

/// The part of a resolved proxy's resources that every proxy of its
/// shape shares (see [`crate::cache::Key`]): outbound clusters, every
/// load assignment, every listener but a sidecar's inbound ones, every
/// route configuration. Reads the proxy's kind, namespace, labels (for
/// Sidecar, `sourceLabels` and `failoverPriority` selection),
/// interception, locality and egress scope — and, for gateways only,
/// its workload instance (the listeners bind its address and ports).
/// Each list sorted by name.
pub fn translate_shared(inputs: Inputs<'_>, proxy: &Proxy) -> Resources {
    let clusters = cluster::outbound_clusters(inputs, proxy);
    let endpoints = endpoint::load_assignments(inputs, proxy, &clusters);
    let listeners = listener::shared_listeners(inputs, proxy);
    let routes = route::route_configurations(inputs, proxy);
    Resources {
        clusters,
        endpoints,
        listeners,
        routes,
    }
}

/// The listeners and route configurations of [`translate_shared`] only
/// (clusters and load assignments left empty): what a change of
/// VirtualServices alone can change of the shared part — the route
/// configurations, and the listeners, whose TCP and TLS routes come from
/// VirtualServices too. Clusters and load assignments read services,
/// endpoints, DestinationRules, Sidecars and the mesh config, never a
/// VirtualService.
pub fn translate_routing(inputs: Inputs<'_>, proxy: &Proxy) -> Resources {
    Resources {
        clusters: Vec::new(),
        endpoints: Vec::new(),
        listeners: listener::shared_listeners(inputs, proxy),
        routes: route::route_configurations(inputs, proxy),
    }
}

/// The part of a resolved sidecar's resources that only its own workload
/// has: the `inbound|<port>||` clusters (and `InboundPassthroughCluster`)
/// and the inbound listeners. Reads only the proxy's kind, workload
/// instance (address, inbound ports, where the app serves them and their
/// Sidecar connection pools) and
/// interception, and the mesh's connect timeout (see
/// [`crate::cache::OwnKey`]). Empty for gateways, gRPC clients and
/// sidecars without a known workload. Each list sorted by name.
pub fn translate_own(inputs: Inputs<'_>, proxy: &Proxy) -> Resources {
    let clusters = cluster::inbound_clusters(inputs, proxy);
    let listeners = listener::own_listeners(inputs, proxy);
    Resources {
        clusters: names::sort_dedup_by_name(clusters, |c| &c.name),
        endpoints: Vec::new(),
        listeners: names::sort_dedup_by_name(listeners, |l| &l.name),
        routes: Vec::new(),
    }
}

/// `proxy` with what the config says about it: its workload (and, if the
/// node sent none, the workload's labels), its Sidecar egress scope, and
/// the index of the DestinationRules it looks services' rules up in.
pub fn resolve(inputs: Inputs<'_>, proxy: &Proxy) -> Proxy {
    resolve_with(
        inputs,
        proxy,
        std::sync::Arc::new(policy::RuleIndex::build(inputs)),
    )
}

/// [`resolve`] with the DestinationRule index of `inputs` built already
/// (once per generation, not per proxy).
pub fn resolve_with(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    rules: std::sync::Arc<policy::RuleIndex>,
) -> Proxy {
    let instance = match proxy.kind {
        ProxyKind::Sidecar | ProxyKind::Gateway => {
            instance::find(inputs, proxy).map(std::sync::Arc::new)
        }
        ProxyKind::Grpc => None,
    };
    let labels = match &instance {
        Some(i) if proxy.labels.is_empty() => i.labels.clone(),
        _ => proxy.labels.clone(),
    };
    let locality = match &instance {
        Some(i) if proxy.locality == weft_registry::Locality::default() => i.locality.clone(),
        _ => proxy.locality.clone(),
    };
    let labelled = Proxy {
        labels,
        locality,
        instance,
        ..proxy.clone()
    };
    Proxy {
        egress: scope::egress_scope(inputs, &labelled).map(std::sync::Arc::new),
        rules: Some(rules),
        ..labelled
    }
}

#[cfg(test)]
mod golden;
#[cfg(test)]
pub(crate) mod test_inputs;

#[cfg(test)]
mod tests {
    use super::test_inputs::TestMesh;
    use super::*;

    #[test]
    fn translation_is_deterministic() {
        let mesh = TestMesh::examples();
        let proxy = Proxy::sidecar(
            "productpage-v1.bookinfo",
            "bookinfo",
            &[("app", "productpage")],
        );
        assert_eq!(
            translate(mesh.inputs(), &proxy),
            translate(mesh.inputs(), &proxy)
        );
    }
}
