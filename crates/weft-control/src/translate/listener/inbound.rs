//! A sidecar's inbound listeners: where the mesh's connections to its own
//! workload arrive, one filter chain per inbound port (see
//! [`crate::translate::instance`]) to `inbound|<port>||`.
//!
//! HTTP ports get an HTTP connection manager with an inline route
//! configuration `inbound|<port>||` (everything to the app); TCP and TLS
//! ports a TCP proxy; sniffed ports both, HTTP for what the HTTP inspector
//! recognises.
//!
//! Captured sidecars get the chains in `virtualInbound` (0.0.0.0:15006,
//! bound), matched by destination port, with everything else passed to
//! its original destination (`InboundPassthroughCluster`). Uncaptured
//! ones (explicit mode) get a bound listener per port, on the Sidecar
//! ingress `bind` or the workload's address: `<address>_<port>`.

use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{chain, http_connection_manager, listener, listener_filters, listener_name, tcp_proxy};
use crate::translate::cluster::INBOUND_PASSTHROUGH;
use crate::translate::envoy::{duration, socket_address};
use crate::translate::instance::InboundPort;
use crate::translate::names::inbound_cluster;
use crate::translate::route::TcpTarget;
use crate::translate::{Inputs, Interception, Proxy};

/// The captured sidecar's inbound entry point.
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
/// Its port.
pub const VIRTUAL_INBOUND_PORT: u16 = 15006;

/// A sidecar's inbound listeners; none if its workload is unknown.
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    let Some(instance) = &proxy.instance else {
        return Vec::new();
    };
    match proxy.interception {
        Interception::Redirect | Interception::Tproxy => {
            let mut chains: Vec<FilterChain> = instance
                .ports
                .iter()
                .flat_map(|p| {
                    port_chains(inputs, p).into_iter().map(|mut c| {
                        let m = c.filter_chain_match.get_or_insert_with(Default::default);
                        m.destination_port = Some(UInt32Value {
                            value: u32::from(p.port),
                        });
                        c
                    })
                })
                .collect();
            let passthrough = chain(
                INBOUND_PASSTHROUGH.to_string(),
                None,
                tcp_proxy(
                    INBOUND_PASSTHROUGH.to_string(),
                    TcpTarget::Cluster(INBOUND_PASSTHROUGH.to_string()),
                ),
            );
            let filters = listener_filters(&chains, true);
            chains.sort_by(|a, b| a.name.cmp(&b.name));
            vec![Listener {
                name: VIRTUAL_INBOUND.to_string(),
                address: Some(socket_address("0.0.0.0", VIRTUAL_INBOUND_PORT)),
                listener_filters: filters,
                filter_chains: chains,
                default_filter_chain: Some(passthrough),
                traffic_direction: TrafficDirection::Inbound as i32,
                bind_to_port: Some(BoolValue { value: true }),
                ..Listener::default()
            }]
        }
        Interception::None => instance
            .ports
            .iter()
            .map(|p| {
                let address = p
                    .bind
                    .clone()
                    .filter(|b| !b.is_empty())
                    .or_else(|| Some(instance.address.clone()).filter(|a| !a.is_empty()))
                    .unwrap_or_else(|| "0.0.0.0".to_string());
                listener(
                    listener_name(&address, p.port),
                    &address,
                    p.port,
                    TrafficDirection::Inbound,
                    true,
                    port_chains(inputs, p),
                )
            })
            .collect(),
    }
}

/// The chains for one inbound port.
fn port_chains(inputs: Inputs<'_>, p: &InboundPort) -> Vec<FilterChain> {
    let cluster = inbound_cluster(p.port);
    let http = || {
        http_connection_manager(
            inputs,
            super::headers::Class::SidecarInbound,
            format!("inbound_0.0.0.0_{}", p.port),
            RouteSpecifier::RouteConfig(inbound_routes(&cluster, p.port)),
        )
    };
    let tcp = || tcp_proxy(cluster.clone(), TcpTarget::Cluster(cluster.clone()));
    if p.protocol.is_http() {
        vec![chain(format!("{cluster}/http"), None, http())]
    } else if p.protocol.is_unsupported() {
        vec![
            chain(
                format!("{cluster}/http"),
                Some(FilterChainMatch {
                    application_protocols: super::SNIFFED_HTTP.map(str::to_string).to_vec(),
                    ..FilterChainMatch::default()
                }),
                http(),
            ),
            chain(format!("{cluster}/tcp"), None, tcp()),
        ]
    } else {
        vec![chain(format!("{cluster}/tcp"), None, tcp())]
    }
}

/// Everything to the app, no timeout (the caller's sidecar applies the
/// route's), as Istio's inbound `default` route.
fn inbound_routes(cluster: &str, port: u16) -> RouteConfiguration {
    RouteConfiguration {
        name: cluster.to_string(),
        validate_clusters: Some(BoolValue { value: false }),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                name: "default".to_string(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                    ..RouteMatch::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.to_string())),
                    timeout: Some(duration(std::time::Duration::ZERO)),
                    ..RouteAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}
