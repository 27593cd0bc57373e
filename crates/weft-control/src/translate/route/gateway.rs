//! A gateway's routes: per HTTP port, route configuration `http.<port>`
//! with a virtual host per host a VirtualService bound to one of the
//! port's Gateways claims and one of its servers admits (the more specific
//! of the two names), routed by the VirtualService's HTTP rules whose
//! matches name that Gateway (or none). Hosts nothing claims get no
//! virtual host: Envoy answers 404, as Istio's gateways do.

use std::collections::BTreeSet;

use weft_config::networking::VirtualService;
use weft_config::{Kind, host};
use weft_xds::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use weft_xds::pb::google::protobuf::BoolValue;

use super::matches::qualified_gateway;
use super::{Cx, VsRef, http_routes};
use crate::translate::gateway::{GatewayPort, http_ports, route_name};
use crate::translate::{Inputs, Proxy};

/// The VirtualServices a gateway proxy sees (exported to its namespace).
pub(super) fn gateway_virtual_services<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> Vec<VsRef<'a>> {
    inputs
        .config
        .of_kind(Kind::VirtualService)
        .filter_map(|r| r.spec_as::<VirtualService>().map(|vs| (r.as_ref(), vs)))
        .filter(|(r, vs)| {
            weft_config::select::exported_to(&vs.export_to, r.namespace(), &proxy.namespace)
        })
        .collect()
}

/// Whether `vs` (in `namespace`) is bound to one of the port's Gateways.
pub(super) fn bound(vs: &VirtualService, namespace: &str, served: &GatewayPort<'_>) -> bool {
    vs.gateways
        .iter()
        .any(|g| served.gateways.contains(&qualified_gateway(g, namespace)))
}

/// The route configurations of a gateway proxy, sorted by name.
pub fn route_configurations(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<RouteConfiguration> {
    let virtual_services = gateway_virtual_services(inputs, proxy);
    http_ports(inputs, proxy)
        .into_iter()
        .map(|(port, served)| {
            let cx = Cx {
                inputs,
                proxy,
                port,
                gateways: Some(&served.gateways),
            };
            let mut seen = BTreeSet::new();
            let mut virtual_hosts = Vec::new();
            for &(resource, vs) in &virtual_services {
                if !bound(vs, resource.namespace(), &served) {
                    continue;
                }
                let routes = http_routes(&cx, (resource, vs));
                if routes.is_empty() {
                    continue;
                }
                for vs_host in &vs.hosts {
                    let vs_host = host::fqdn(vs_host, resource.namespace());
                    for name in served.admitted(resource.namespace(), &vs_host) {
                        if !seen.insert(name.clone()) {
                            continue; // the first VirtualService keeps a host
                        }
                        let domains = gateway_domains(&name, port);
                        virtual_hosts.push(VirtualHost {
                            name: format!("{name}:{port}"),
                            domains,
                            routes: routes.clone(),
                            include_request_attempt_count: true,
                            ..Default::default()
                        });
                    }
                }
            }
            virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
            RouteConfiguration {
                name: route_name(port),
                virtual_hosts,
                validate_clusters: Some(BoolValue { value: false }),
                ..Default::default()
            }
        })
        .collect()
}

/// A gateway virtual host's domains, as Istio's
/// `buildGatewayVirtualHostDomains`: the host, and the host with any port
/// (`host:*`: a gateway behind a load balancer or node port sees the
/// client's port in `Host`). Envoy allows one wildcard per domain, so a
/// wildcard host keeps the server's port instead; `*` alone needs neither.
fn gateway_domains(name: &str, port: u16) -> Vec<String> {
    if name == "*" {
        vec![name.to_string()]
    } else if name.starts_with('*') {
        vec![name.to_string(), format!("{name}:{port}")]
    } else {
        vec![name.to_string(), format!("{name}:*")]
    }
}

#[cfg(test)]
mod tests {
    use super::gateway_domains;

    #[test]
    fn domains_are_istios_gateway_domains() {
        assert_eq!(gateway_domains("*", 80), ["*"]);
        assert_eq!(
            gateway_domains("bookinfo.com", 8080),
            ["bookinfo.com", "bookinfo.com:*"]
        );
        assert_eq!(
            gateway_domains("*.example.com", 8080),
            ["*.example.com", "*.example.com:8080"]
        );
    }
}
