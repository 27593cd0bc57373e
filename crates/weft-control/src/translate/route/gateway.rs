//! A gateway's routes: per HTTP port, route configuration `http.<port>`
//! with a virtual host per host a VirtualService bound to one of the
//! port's Gateways claims and one of its servers admits (the more specific
//! of the two names), routed by the HTTP rules whose matches name that
//! Gateway (or none) of every VirtualService claiming the host, in
//! VirtualService order, catch-alls last. Hosts nothing claims get no
//! virtual host: Envoy answers 404, as Istio's gateways do.
//!
//! As current Istio's `buildGatewayHTTPRouteConfig`: a virtual host is
//! named `host:port` and answers its host alone, and the configuration
//! sets `ignore_port_in_host_matching` (a `Host` carrying a load
//! balancer's or node port still matches) and the 1 MiB direct-response
//! body limit sidecar routes have.

use std::collections::BTreeMap;

use weft_config::networking::VirtualService;
use weft_config::{Kind, host};
use weft_xds::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::matches::{is_catch_all, qualified_gateway};
use super::{Cx, MAX_DIRECT_RESPONSE_BODY_BYTES, VsRef, http_routes};
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
            // By host: VirtualServices claiming one host share its virtual
            // host, their routes in VirtualService order (Istio merges
            // them on gateways).
            let mut by_host: BTreeMap<String, VirtualHost> = BTreeMap::new();
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
                        by_host
                            .entry(name.clone())
                            .or_insert_with(|| VirtualHost {
                                name: format!("{name}:{port}"),
                                domains: vec![name],
                                include_request_attempt_count: true,
                                ..Default::default()
                            })
                            .routes
                            .extend(routes.iter().cloned());
                    }
                }
            }
            let mut virtual_hosts: Vec<VirtualHost> = by_host
                .into_values()
                .map(|mut vh| {
                    catch_alls_last(&mut vh.routes);
                    vh
                })
                .collect();
            virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
            RouteConfiguration {
                name: route_name(port),
                virtual_hosts,
                validate_clusters: Some(BoolValue { value: false }),
                max_direct_response_body_size_bytes: Some(UInt32Value {
                    value: MAX_DIRECT_RESPONSE_BODY_BYTES,
                }),
                ignore_port_in_host_matching: true,
                ..Default::default()
            }
        })
        .collect()
}

/// Moves the catch-all routes of a merged virtual host after the others,
/// keeping each group's order (Istio's `SortVHostRoutes`): one
/// VirtualService's catch-all must not hide another's routes.
fn catch_alls_last(routes: &mut [Route]) {
    // A stable sort: `false` (not catch-all) first.
    routes.sort_by_key(is_catch_all);
}
