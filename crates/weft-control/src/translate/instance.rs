//! The workload a sidecar serves, and the inbound ports it gets.
//!
//! A sidecar names its workload by its node id (`sidecar~IP~NAME.NS~…`):
//! the WorkloadEntry `NAME` in `NS` (else the one WorkloadEntry of `NS`
//! whose address is one of the proxy's IPs). Its labels and service account
//! come from there; its inbound ports are the ports the services selecting
//! it serve on it (the endpoint port, which a WorkloadEntry's `ports` may
//! remap), with the service port's protocol — or, when the proxy's Sidecar
//! resource lists `ingress` listeners, exactly those, as in Istio.
//!
//! Where the application itself listens, per inbound port: the Sidecar
//! ingress listener's `defaultEndpoint`, else the proxy's `APP_ADDRESS`,
//! else `127.0.0.1:<port>` (Istio's default). Its connection pool: the
//! ingress listener's `connectionPool`, else the Sidecar's
//! `inboundConnectionPool` (Istio's `InboundConnectionPoolForPort`).

use std::collections::BTreeMap;

use weft_config::networking::{ConnectionPoolSettings, Protocol, WorkloadEntry};
use weft_config::{Kind, Resource, ResourceKey};

use super::scope::sidecar_for;
use super::{Inputs, Proxy};

/// The workload behind a sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    /// The WorkloadEntry it is.
    pub source: ResourceKey,
    /// Where peers reach it (its WorkloadEntry's `address`).
    pub address: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its service account.
    pub service_account: String,
    /// Its WorkloadEntry's locality.
    pub locality: weft_registry::Locality,
    /// Its inbound ports, by port number.
    pub ports: Vec<InboundPort>,
    /// Its WorkloadEntry's named ports (a gateway's listeners bind these).
    pub named_ports: BTreeMap<String, u16>,
}

/// One port the workload receives traffic on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InboundPort {
    /// The port peers connect to.
    pub port: u16,
    /// Its protocol (from the service port, or the Sidecar ingress port).
    pub protocol: Protocol,
    /// Where the application serves it: `host:port` or `unix://path`.
    pub app: String,
    /// Where the listener binds, from a Sidecar ingress `bind` (else the
    /// workload's address).
    pub bind: Option<String>,
    /// The Sidecar's connection pool for the port (its `inbound|<port>||`
    /// cluster's limits), if it sets one.
    pub pool: Option<ConnectionPoolSettings>,
}

/// Finds the workload `proxy` serves, if the config has it.
pub fn find(inputs: Inputs<'_>, proxy: &Proxy) -> Option<Instance> {
    // By name: one map lookup (every stream resolves its proxy on every
    // push, so no scan of the namespace's entries here).
    let by_name = (!proxy.pod.is_empty())
        .then(|| {
            inputs
                .config
                .get(Kind::WorkloadEntry, &proxy.namespace, &proxy.pod)
        })
        .flatten()
        .and_then(|r| r.spec_as::<WorkloadEntry>().map(|we| (r.as_ref(), we)));
    let by_ip = || {
        let mut ips: Vec<&String> = proxy.ips.iter().collect();
        ips.sort();
        ips.dedup();
        let mut matching = ips
            .into_iter()
            .flat_map(|ip| inputs.config.workload_entries_at(&proxy.namespace, ip))
            .filter_map(|r| r.spec_as::<WorkloadEntry>().map(|we| (r.as_ref(), we)));
        let first = matching.next();
        // Several workloads on one address (explicit mode on one host):
        // the IP says nothing; the name must.
        first.filter(|_| matching.next().is_none())
    };
    let (resource, entry): (&Resource, &WorkloadEntry) = by_name.or_else(by_ip)?;
    let key = resource.key();
    let labels = if proxy.labels.is_empty() {
        entry.labels.clone()
    } else {
        proxy.labels.clone()
    };
    let labelled = Proxy {
        labels: labels.clone(),
        ..proxy.clone()
    };
    let sidecar = sidecar_for(inputs, &labelled).map(|(_, s)| s);
    let default_pool = sidecar.and_then(|s| s.inbound_connection_pool.as_ref());
    let ports = match sidecar {
        Some(sidecar) if !sidecar.ingress.is_empty() => sidecar
            .ingress
            .iter()
            .filter_map(|l| {
                let port = l.port.as_ref()?;
                let number = u16::try_from(port.number).ok().filter(|n| *n != 0)?;
                let protocol = if port.protocol.is_empty() {
                    Protocol::from_port_name(&port.name)
                } else {
                    port.protocol()
                };
                let app = if l.default_endpoint.is_empty() {
                    app_address(proxy, number)
                } else {
                    l.default_endpoint.clone()
                };
                Some(InboundPort {
                    port: number,
                    protocol,
                    app,
                    bind: (!l.bind.is_empty()).then(|| l.bind.clone()),
                    pool: l.connection_pool.as_ref().or(default_pool).cloned(),
                })
            })
            .collect(),
        _ => service_ports(inputs, &key)
            .into_iter()
            .map(|(port, protocol)| InboundPort {
                port,
                protocol,
                app: app_address(proxy, port),
                bind: None,
                pool: default_pool.cloned(),
            })
            .collect(),
    };
    let mut ports: Vec<InboundPort> = ports;
    ports.sort_by_key(|p| p.port);
    ports.dedup_by_key(|p| p.port);
    Some(Instance {
        source: key,
        address: entry.address.clone(),
        labels,
        service_account: entry.service_account.clone(),
        locality: weft_registry::Locality::parse(&entry.locality),
        ports,
        named_ports: entry
            .ports
            .iter()
            .filter_map(|(name, port)| Some((name.clone(), u16::try_from(*port).ok()?)))
            .collect(),
    })
}

/// The endpoint ports services serve on the workload `source`, with the
/// service port's protocol (the first service's, by host name, when two
/// disagree): a lookup in the registry snapshot's index.
fn service_ports(inputs: Inputs<'_>, source: &ResourceKey) -> BTreeMap<u16, Protocol> {
    inputs
        .registry
        .ports_of_source(source)
        .cloned()
        .unwrap_or_default()
}

fn app_address(proxy: &Proxy, port: u16) -> String {
    proxy
        .app
        .for_port(port)
        .map_or_else(|| format!("127.0.0.1:{port}"), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::proxy::AppAddresses;
    use crate::translate::test_inputs::{TestMesh, productpage};

    #[test]
    fn the_workload_entry_named_by_the_node_gives_labels_and_ports() {
        let mesh = TestMesh::examples();
        let i = find(mesh.inputs(), &productpage()).expect("instance");
        assert_eq!(i.source.name, "productpage-v1");
        assert_eq!(i.address, "127.0.0.1");
        assert_eq!(i.labels.get("app").map(String::as_str), Some("productpage"));
        assert_eq!(i.service_account, "bookinfo-productpage");
        assert_eq!(
            i.ports,
            vec![InboundPort {
                port: 19080,
                protocol: Protocol::Http,
                app: "127.0.0.1:19080".into(),
                bind: None,
                pool: None,
            }]
        );
    }

    #[test]
    fn app_address_from_the_node() {
        let mesh = TestMesh::examples();
        let proxy = Proxy {
            app: AppAddresses::parse("127.0.0.1:29080"),
            ..productpage()
        };
        let i = find(mesh.inputs(), &proxy).expect("instance");
        assert_eq!(i.ports[0].app, "127.0.0.1:29080");
    }

    #[test]
    fn an_ambiguous_address_finds_nothing_and_an_unknown_name_neither() {
        let mesh = TestMesh::examples();
        let proxy = Proxy {
            pod: "nobody".into(),
            ips: vec!["127.0.0.1".into()],
            ..productpage()
        };
        assert_eq!(find(mesh.inputs(), &proxy), None);
    }

    #[test]
    fn sidecar_ingress_listeners_replace_service_ports() {
        let mesh = TestMesh::new(
            r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 10.0.0.7, labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 5432, name: tcp-db, protocol: TCP}]
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: shop}
spec:
  workloadSelector: {labels: {app: api}}
  ingress:
  - port: {number: 9000, protocol: GRPC, name: grpc}
    defaultEndpoint: 127.0.0.1:9001
"#,
        );
        let proxy = Proxy {
            pod: "api-1".into(),
            ..Proxy::sidecar("sidecar~10.0.0.7~api-1.shop~shop", "shop", &[])
        };
        let i = find(mesh.inputs(), &proxy).expect("instance");
        // A pod name the config doesn't have: the one WorkloadEntry at
        // the proxy's address (listed twice, or beside others), through
        // the snapshot's address index.
        let by_ip = Proxy {
            pod: "api-7f9c".into(),
            ips: vec!["10.0.0.7".into(), "10.9.9.9".into(), "10.0.0.7".into()],
            ..proxy.clone()
        };
        assert_eq!(find(mesh.inputs(), &by_ip), Some(i.clone()));
        let elsewhere = Proxy {
            ips: vec!["10.9.9.9".into()],
            ..by_ip.clone()
        };
        assert_eq!(find(mesh.inputs(), &elsewhere), None);
        assert_eq!(
            i.ports,
            vec![InboundPort {
                port: 9000,
                protocol: Protocol::Grpc,
                app: "127.0.0.1:9001".into(),
                bind: None,
                pool: None,
            }]
        );
        // Without the Sidecar: the service ports, at their target ports.
        let mesh = TestMesh::new(&mesh_without_sidecar());
        let i = find(mesh.inputs(), &proxy).expect("instance");
        let ports: Vec<(u16, Protocol)> = i.ports.iter().map(|p| (p.port, p.protocol)).collect();
        assert_eq!(ports, vec![(5432, Protocol::Tcp), (8080, Protocol::Http)]);
    }

    fn mesh_without_sidecar() -> String {
        r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 10.0.0.7, labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 5432, name: tcp-db, protocol: TCP}]
  workloadSelector: {labels: {app: api}}
"#
        .to_string()
    }
}
