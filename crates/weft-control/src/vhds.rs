//! VHDS (Envoy's Virtual Host Discovery Service): a route configuration
//! sent without its virtual hosts, which come as delta resources of their
//! own, so a change to one VirtualService sends that virtual host only,
//! not the whole per-port route configuration.
//!
//! Only delta clients that opt in with [`VHDS_FEATURE`] in
//! `Node.client_features` get it (everyone else gets the route
//! configurations whole). Their route configuration `R` carries
//! `vhds: { config_source: { ads: {}, resource_api_version: V3 } }` and no
//! `virtual_hosts`; each virtual host `v` of `R` is the resource
//! `R/v` of type `envoy.config.route.v3.VirtualHost`, its body the
//! `VirtualHost` message unchanged. A client subscribes with `R` (as
//! Envoy's `VhdsSubscription` does) for all of `R`'s virtual hosts.

use std::collections::BTreeMap;

use weft_xds::names::{vhost_resource, vhost_route};
use weft_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source,
};
use weft_xds::pb::envoy::config::route::v3::{RouteConfiguration, Vhds, VirtualHost};
use weft_xds::pb::google::protobuf::Any;

pub use weft_xds::names::VHDS_FEATURE;

/// Where a VHDS client's virtual hosts come from: the ADS stream.
pub fn vhds_source() -> Vhds {
    Vhds {
        config_source: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                AggregatedConfigSource {},
            )),
            ..Default::default()
        }),
    }
}

/// Resources by name, packed.
pub type Named = Vec<(String, Any)>;

/// `routes`, each split into its head (`vhds` set, no virtual hosts) and
/// its virtual hosts (named `R/v`), both sorted by resource name, packed.
/// Of two virtual hosts of one route configuration with the same name the
/// first is kept (Envoy rejects duplicates).
pub fn split(routes: &[RouteConfiguration]) -> (Named, Named) {
    let mut heads = Vec::with_capacity(routes.len());
    let mut vhosts = BTreeMap::new();
    for r in routes {
        for vh in &r.virtual_hosts {
            vhosts
                .entry(vhost_resource(&r.name, &vh.name))
                .or_insert_with(|| weft_xds::pack(vh));
        }
        // Everything else as the whole route configuration has it (its
        // virtual hosts, the bulk of it, not copied).
        let head = RouteConfiguration {
            virtual_hosts: Vec::new(),
            vhds: Some(vhds_source()),
            ..without_virtual_hosts(r)
        };
        heads.push((r.name.clone(), weft_xds::pack(&head)));
    }
    heads.sort_by(|a, b| a.0.cmp(&b.0));
    (heads, vhosts.into_iter().collect())
}

/// A copy of `r` without its virtual hosts (every other field listed:
/// a field envoy-types adds fails to compile here rather than go missing).
fn without_virtual_hosts(r: &RouteConfiguration) -> RouteConfiguration {
    let RouteConfiguration {
        name,
        virtual_hosts: _,
        vhds,
        internal_only_headers,
        response_headers_to_add,
        response_headers_to_remove,
        request_headers_to_add,
        request_headers_to_remove,
        most_specific_header_mutations_wins,
        validate_clusters,
        max_direct_response_body_size_bytes,
        cluster_specifier_plugins,
        request_mirror_policies,
        ignore_port_in_host_matching,
        vhost_header,
        ignore_path_parameters_in_path_matching,
        typed_per_filter_config,
        metadata,
        route_specifiers,
    } = r;
    RouteConfiguration {
        name: name.clone(),
        virtual_hosts: Vec::new(),
        vhds: vhds.clone(),
        internal_only_headers: internal_only_headers.clone(),
        response_headers_to_add: response_headers_to_add.clone(),
        response_headers_to_remove: response_headers_to_remove.clone(),
        request_headers_to_add: request_headers_to_add.clone(),
        request_headers_to_remove: request_headers_to_remove.clone(),
        most_specific_header_mutations_wins: *most_specific_header_mutations_wins,
        validate_clusters: *validate_clusters,
        max_direct_response_body_size_bytes: *max_direct_response_body_size_bytes,
        cluster_specifier_plugins: cluster_specifier_plugins.clone(),
        request_mirror_policies: request_mirror_policies.clone(),
        ignore_port_in_host_matching: *ignore_port_in_host_matching,
        vhost_header: vhost_header.clone(),
        ignore_path_parameters_in_path_matching: *ignore_path_parameters_in_path_matching,
        typed_per_filter_config: typed_per_filter_config.clone(),
        metadata: metadata.clone(),
        route_specifiers: route_specifiers.clone(),
    }
}

/// Route configurations as the proxy holds them: each head with the
/// virtual hosts of `vhosts` (`(resource name, VirtualHost)`) named after
/// it put back, in name order (the debug API's config dump).
pub fn reassemble(
    heads: Vec<RouteConfiguration>,
    vhosts: Vec<(String, VirtualHost)>,
) -> Vec<RouteConfiguration> {
    let mut by_route: BTreeMap<String, Vec<VirtualHost>> = BTreeMap::new();
    for (name, vh) in vhosts {
        by_route
            .entry(vhost_route(&name).to_string())
            .or_default()
            .push(vh);
    }
    heads
        .into_iter()
        .map(|mut r| {
            if r.vhds.is_some()
                && let Some(vhs) = by_route.remove(&r.name)
            {
                r.virtual_hosts.extend(vhs);
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::{TestMesh, productpage};

    #[test]
    fn heads_are_the_whole_configurations_without_virtual_hosts() {
        let mesh = TestMesh::examples();
        let routes = crate::translate::translate(mesh.inputs(), &productpage()).routes;
        assert!(!routes.is_empty());
        let (heads, vhosts) = split(&routes);
        for (r, (name, head)) in routes.iter().zip(&heads) {
            let want = RouteConfiguration {
                virtual_hosts: Vec::new(),
                vhds: Some(vhds_source()),
                ..r.clone()
            };
            assert_eq!(name, &r.name);
            assert_eq!(head, &weft_xds::pack(&want), "{name}");
        }
        let count: usize = routes.iter().map(|r| r.virtual_hosts.len()).sum();
        assert_eq!(vhosts.len(), count);
        // And back: the heads with their virtual hosts are the whole ones.
        let heads: Vec<RouteConfiguration> = heads
            .iter()
            .map(|(_, a)| weft_xds::unpack(a).expect("head"))
            .collect();
        let vhosts: Vec<(String, VirtualHost)> = vhosts
            .iter()
            .map(|(n, a)| (n.clone(), weft_xds::unpack(a).expect("vhost")))
            .collect();
        // (in resource-name order: the order the proxy holds them)
        let by_name = |mut rs: Vec<RouteConfiguration>| {
            for r in &mut rs {
                r.vhds = None;
                r.virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
            }
            rs
        };
        assert_eq!(by_name(reassemble(heads, vhosts)), by_name(routes));
    }
}
