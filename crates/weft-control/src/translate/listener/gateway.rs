//! A gateway's listeners: one bound listener per server port (see
//! [`crate::translate::gateway`]): an HTTP connection manager on routes
//! `http.<port>` for HTTP servers, a TCP proxy for TCP servers, filter
//! chains by SNI (`server_names`, with the TLS inspector) to TCP proxies
//! for TLS-passthrough servers. It binds the gateway workload's address
//! and, when its WorkloadEntry names a port like the server's port name,
//! that port (on one host, many gateways and sidecars can't all bind
//! 8080); else 0.0.0.0 and the server port, as Istio's gateways do. A port
//! nothing routes gets no listener.

use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};

use super::{chain, http_connection_manager, listener, listener_name, rds, tcp_proxy};
use crate::translate::gateway::{GatewayPort, Serving, ports, route_name};
use crate::translate::route::{TcpTarget, gateway_tcp_target, gateway_tls_targets};
use crate::translate::{Inputs, Proxy};

/// A gateway proxy's listeners.
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    ports(inputs, proxy)
        .into_iter()
        .filter_map(|(port, served)| {
            let instance = proxy.instance.as_deref();
            let address = instance
                .map(|i| i.address.as_str())
                .filter(|a| !a.is_empty())
                .unwrap_or("0.0.0.0");
            let bind_port = instance
                .and_then(|i| i.named_ports.get(&served.name))
                .copied()
                .unwrap_or(port);
            let name = listener_name(address, bind_port);
            let chains = chains(inputs, proxy, port, &served, &name, address, bind_port);
            if chains.is_empty() {
                return None;
            }
            Some(listener(
                name,
                address,
                bind_port,
                TrafficDirection::Outbound,
                true,
                chains,
            ))
        })
        .collect()
}

fn chains(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    port: u16,
    served: &GatewayPort<'_>,
    name: &str,
    address: &str,
    bind_port: u16,
) -> Vec<FilterChain> {
    match served.serving {
        Serving::Http => {
            let hcm = http_connection_manager(
                inputs,
                super::headers::Class::Gateway,
                format!("outbound_{address}_{bind_port}"),
                rds(&route_name(port)),
            );
            vec![chain(name.to_string(), None, hcm)]
        }
        Serving::Tcp => gateway_tcp_target(inputs, proxy, port, served)
            .map(|target| {
                let stat = stat_prefix(&target);
                chain(name.to_string(), None, tcp_proxy(stat, target))
            })
            .into_iter()
            .collect(),
        Serving::Passthrough => gateway_tls_targets(inputs, proxy, port, served)
            .into_iter()
            .map(|(server_names, target)| {
                let stat = stat_prefix(&target);
                chain(
                    format!("{name}/{}", server_names.join(",")),
                    Some(FilterChainMatch {
                        server_names,
                        ..FilterChainMatch::default()
                    }),
                    tcp_proxy(stat, target),
                )
            })
            .collect(),
    }
}

/// A TCP proxy's stats prefix: its cluster, as Istio names it (the first
/// of weighted ones).
fn stat_prefix(target: &TcpTarget) -> String {
    match target {
        TcpTarget::Cluster(c) => c.clone(),
        TcpTarget::Weighted(clusters) => {
            clusters.first().map(|(c, _)| c.clone()).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier;

    use super::*;
    use crate::translate::ProxyKind;
    use crate::translate::listener::TLS_INSPECTOR;
    use crate::translate::listener::tests::{by_server_name, tcp};
    use crate::translate::test_inputs::TestMesh;

    const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec: {hosts: [db.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 5432, name: tcp, protocol: TCP}], endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec: {hosts: [web.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 443, name: https, protocol: HTTPS}], endpoints: [{address: 10.0.0.3, labels: {version: v1}}, {address: 10.0.0.4, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: edge}
spec:
  selector: {app: edge}
  servers:
  - port: {number: 5432, name: tcp-db, protocol: TCP}
    hosts: ["*"]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
  - port: {number: 9999, name: tcp-unrouted, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [edge/edge]
  tcp:
  - match: [{port: 5432}]
    route: [{destination: {host: db, port: {number: 5432}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [www.example.com, api.example.com, other.org]
  gateways: [edge/edge]
  tls:
  - match: [{sniHosts: [www.example.com, other.org], port: 443}]
    route:
    - {destination: {host: web, port: {number: 443}, subset: v1}, weight: 90}
    - {destination: {host: web, port: {number: 443}, subset: v2}, weight: 10}
  - match: [{sniHosts: [api.example.com, www.example.com]}]
    route: [{destination: {host: web, port: {number: 443}}}]
"#;

    fn gateway() -> Proxy {
        Proxy {
            kind: ProxyKind::Gateway,
            ..Proxy::sidecar(
                "router~10.0.0.9~edge-1.edge~edge",
                "edge",
                &[("app", "edge")],
            )
        }
    }

    #[test]
    fn tcp_and_passthrough_servers_get_tcp_proxies() {
        let mesh = TestMesh::new(MESH);
        let ls = listeners(mesh.inputs(), &gateway());
        let names: Vec<&str> = ls.iter().map(|l| l.name.as_str()).collect();
        // 8443 terminates TLS (not yet), nothing routes 9999.
        assert_eq!(names, vec!["0.0.0.0_443", "0.0.0.0_5432"]);

        let db = &ls[1];
        assert_eq!(db.filter_chains.len(), 1);
        assert_eq!(
            tcp(&db.filter_chains[0]).cluster_specifier,
            Some(ClusterSpecifier::Cluster(
                "outbound|5432||db.shop.svc.cluster.local".into()
            ))
        );
        assert!(db.listener_filters.is_empty());

        let tls = &ls[0];
        assert_eq!(
            tls.listener_filters
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            vec![TLS_INSPECTOR]
        );
        let by_sni = by_server_name(tls);
        // other.org isn't admitted by *.example.com; www keeps the first
        // rule; api falls to the second.
        assert_eq!(by_sni.len(), 2, "{by_sni:?}");
        assert_eq!(by_sni[0].0, vec!["www.example.com".to_string()]);
        let Some(ClusterSpecifier::WeightedClusters(w)) = &by_sni[0].1 else {
            panic!("weighted: {by_sni:?}")
        };
        let weights: Vec<(&str, u32)> = w
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight))
            .collect();
        assert_eq!(
            weights,
            vec![
                ("outbound|443|v1|web.shop.svc.cluster.local", 90),
                ("outbound|443|v2|web.shop.svc.cluster.local", 10)
            ]
        );
        assert_eq!(
            by_sni[1],
            (
                vec!["api.example.com".to_string()],
                Some(ClusterSpecifier::Cluster(
                    "outbound|443||web.shop.svc.cluster.local".into()
                ))
            )
        );
    }

    #[test]
    fn every_tcp_target_is_a_cluster_the_gateway_gets() {
        let mesh = TestMesh::new(MESH);
        let r = crate::translate::translate(mesh.inputs(), &gateway());
        let clusters: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        for l in &r.listeners {
            for c in &l.filter_chains {
                let targets: Vec<String> = match tcp(c).cluster_specifier {
                    Some(ClusterSpecifier::Cluster(c)) => vec![c],
                    Some(ClusterSpecifier::WeightedClusters(w)) => {
                        w.clusters.into_iter().map(|c| c.name).collect()
                    }
                    None => panic!("no cluster"),
                };
                for t in targets {
                    assert!(clusters.contains(&t.as_str()), "{t} not in {clusters:?}");
                }
            }
        }
        // TCP and TLS gateways have no HTTP routes.
        assert!(r.routes.is_empty(), "{:?}", r.routes);
    }
}
