//! Translation: `(config snapshot, registry snapshot, proxy) -> xDS`.
//!
//! One module per resource type: [`cluster`] (CDS), [`endpoint`] (EDS),
//! [`route`] (RDS). Names follow Istio's, so tools and habits carry over:
//! clusters are `outbound|<port>|<subset>|<host>`, route configurations are
//! named by port.

use std::collections::BTreeMap;

use weft_config::store::Snapshot;
use weft_registry::RegistrySnapshot;
use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;

pub mod cluster;
pub mod endpoint;
pub mod envoy;
pub mod listener;
pub mod names;
pub mod policy;
pub mod route;

/// What translation reads: the config in force and the registry.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The config store's snapshot.
    pub config: &'a Snapshot,
    /// The service registry's snapshot.
    pub registry: &'a RegistrySnapshot,
}

/// What kind of xDS client a proxy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// A sidecar next to a workload (ours or Envoy).
    Sidecar,
    /// An ingress or egress gateway.
    Gateway,
    /// A proxyless gRPC client (node metadata `GENERATOR: grpc`): gets
    /// `host:port` listeners with an `api_listener`.
    Grpc,
}

/// The proxy resources are made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// The xDS node id.
    pub id: String,
    /// What it is.
    pub kind: ProxyKind,
    /// The namespace it runs in (decides which config and services it sees).
    pub namespace: String,
    /// Its workload's labels (Sidecar, policy and gateway selection).
    pub labels: BTreeMap<String, String>,
}

impl Proxy {
    /// A sidecar in `namespace` with `labels`.
    pub fn sidecar(id: &str, namespace: &str, labels: &[(&str, &str)]) -> Self {
        Proxy {
            id: id.to_string(),
            kind: ProxyKind::Sidecar,
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
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
    let clusters = cluster::clusters(inputs, proxy);
    let endpoints = endpoint::load_assignments(inputs, proxy, &clusters);
    let routes = route::route_configurations(inputs, proxy);
    Resources {
        clusters,
        endpoints,
        listeners: Vec::new(),
        routes,
    }
}

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
