//! LDS.
//!
//! **Sidecars** get Istio's listener layout, so Envoy reads it as Istio's
//! and our proxy finds every destination the same way:
//! - outbound, per service port: `0.0.0.0_<port>` (not bound; found by a
//!   connection's original destination, or by the target of an explicit
//!   proxy request), with an HTTP connection manager fetching route
//!   configuration `"<port>"` for HTTP ports, and TCP proxy filter chains
//!   for TCP and TLS services — by SNI for TLS, by the CONNECT host in
//!   explicit mode when several TCP services share the port. A TCP service
//!   with its own address gets `<address>_<port>`. See [`outbound`].
//! - inbound, per port of the proxy's own workload (see
//!   [`super::instance`]): a chain to `inbound|<port>||`. Captured
//!   sidecars (`INTERCEPTION_MODE` REDIRECT or TPROXY) get them as filter
//!   chains of `virtualInbound` (0.0.0.0:15006) and the catch-all
//!   `virtualOutbound` (0.0.0.0:15001), the only two bound listeners;
//!   uncaptured ones (`NONE`, explicit mode) get one bound listener per
//!   inbound port on the workload's address. See [`inbound`].
//!
//! **Proxyless gRPC clients** (node metadata `GENERATOR: grpc`): one
//! listener per service port, named `host:port` — the name gRPC's xDS
//! resolver asks for when dialling `xds:///host:port` — holding an
//! `api_listener` with an HTTP connection manager whose routes come over
//! RDS under the same name.
//!
//! **Gateways**: a bound listener per HTTP server port, routes `http.<port>`
//! (see [`gateway`]).

use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::{
    ApiListener, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter,
    listener_filter,
};
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::Cors;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use weft_xds::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use weft_xds::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use weft_xds::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use weft_xds::pb::google::protobuf::BoolValue;

use super::envoy::{ads, socket_address};
use super::route::TcpTarget;
use super::{Inputs, Proxy, ProxyKind};

pub mod gateway;
#[cfg(test)]
mod golden;
pub mod headers;
pub mod inbound;
pub mod outbound;

pub use weft_xds::names::{
    HCM_FILTER, HTTP_INSPECTOR, ORIGINAL_DST, ROUTER_FILTER, TCP_PROXY_FILTER, TLS_INSPECTOR,
};
/// ALPN values the HTTP inspector reports for plaintext HTTP.
pub const SNIFFED_HTTP: [&str; 3] = ["http/1.0", "http/1.1", "h2c"];

/// The listener name for a service port, as gRPC's xDS resolver asks for it.
pub fn grpc_listener_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// `<address>_<port>`, Istio's listener name.
pub fn listener_name(address: &str, port: u16) -> String {
    format!("{address}_{port}")
}

/// The listeners `proxy` is sent, sorted by name: [`shared_listeners`]
/// and [`own_listeners`].
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    let mut out = shared_listeners(inputs, proxy);
    out.extend(own_listeners(inputs, proxy));
    super::names::sort_dedup_by_name(out, |l| &l.name)
}

/// Every listener but a sidecar's inbound ones, sorted by name (see
/// [`super::translate_shared`]).
pub fn shared_listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    let out = match proxy.kind {
        ProxyKind::Grpc => grpc_listeners(inputs, proxy),
        ProxyKind::Sidecar => outbound::listeners(inputs, proxy),
        ProxyKind::Gateway => gateway::listeners(inputs, proxy),
    };
    super::names::sort_dedup_by_name(out, |l| &l.name)
}

/// A sidecar's inbound listeners (none for other kinds), unsorted: they
/// read only its workload instance and interception (see
/// [`super::translate_own`]).
pub fn own_listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    match proxy.kind {
        ProxyKind::Sidecar => inbound::listeners(inputs, proxy),
        ProxyKind::Grpc | ProxyKind::Gateway => Vec::new(),
    }
}

fn grpc_listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    inputs
        .registry
        .all_services()
        .flat_map(|s| {
            s.ports
                .iter()
                .filter(|p| proxy.sees_port(s, p.number))
                .map(move |p| grpc_listener_name(s.hostname.as_str(), p.number))
        })
        .map(|name| api_listener(&name))
        .collect()
}

/// A listener that is only an HTTP connection manager fetching route
/// configuration `name` over ADS.
fn api_listener(name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(rds(name)),
        http_filters: vec![http_filter(
            ROUTER_FILTER,
            weft_xds::pack(&Router::default()),
        )],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(weft_xds::pack(&hcm)),
        }),
        ..Listener::default()
    }
}

/// Routes fetched over ADS under `name`.
fn rds(name: &str) -> http_connection_manager::RouteSpecifier {
    http_connection_manager::RouteSpecifier::Rds(Rds {
        config_source: Some(ads()),
        route_config_name: name.to_string(),
    })
}

fn http_filter(name: &str, config: weft_xds::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..HttpFilter::default()
    }
}

/// An HTTP connection manager: fault injection and CORS (both
/// configured per route), then the router; the header settings of its
/// listener class (see [`headers`]).
fn http_connection_manager(
    inputs: Inputs<'_>,
    class: headers::Class,
    stat_prefix: String,
    routes: http_connection_manager::RouteSpecifier,
) -> Filter {
    let mut hcm = HttpConnectionManager {
        stat_prefix,
        route_specifier: Some(routes),
        http_filters: vec![
            http_filter(
                super::route::FAULT_FILTER,
                weft_xds::pack(&HttpFault::default()),
            ),
            http_filter(super::route::CORS_FILTER, weft_xds::pack(&Cors::default())),
            http_filter(ROUTER_FILTER, weft_xds::pack(&Router::default())),
        ],
        normalize_path: Some(BoolValue { value: true }),
        ..HttpConnectionManager::default()
    };
    headers::apply(inputs, class, &mut hcm);
    Filter {
        name: HCM_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(weft_xds::pack(&hcm))),
    }
}

/// What a service's DestinationRule sets on the TCP proxies to it, as
/// Istio's `buildOutboundNetworkFiltersWithSingleDestination`: the top
/// level connection pool's `tcp.idleTimeout` (`idle_timeout`; unset:
/// Envoy's 1 h) and `tcp.maxConnectionDuration`
/// (`max_downstream_connection_duration`).
#[derive(Clone, Copy, Debug, Default)]
struct TcpSettings {
    idle_timeout: Option<std::time::Duration>,
    max_connection_duration: Option<std::time::Duration>,
}

impl TcpSettings {
    /// The settings for proxies to `service`, as `proxy` sees its rule.
    fn of(inputs: Inputs<'_>, proxy: &Proxy, service: &weft_registry::Service) -> Self {
        let tcp = super::policy::destination_rule_for(inputs, proxy, service)
            .and_then(|(_, dr)| dr.traffic_policy.as_ref())
            .and_then(|p| p.connection_pool.as_ref())
            .and_then(|c| c.tcp.as_ref());
        TcpSettings {
            idle_timeout: tcp.and_then(|t| t.idle_timeout).map(|d| d.get()),
            max_connection_duration: tcp.and_then(|t| t.max_connection_duration).map(|d| d.get()),
        }
    }
}

/// A TCP proxy to `target`.
fn tcp_proxy(stat_prefix: String, target: TcpTarget) -> Filter {
    tcp_proxy_with(stat_prefix, target, TcpSettings::default())
}

/// A TCP proxy to `target` with a DestinationRule's settings.
fn tcp_proxy_with(stat_prefix: String, target: TcpTarget, settings: TcpSettings) -> Filter {
    let cluster_specifier = match target {
        TcpTarget::Cluster(c) => tcp_proxy::ClusterSpecifier::Cluster(c),
        TcpTarget::Weighted(clusters) => {
            tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
                clusters: clusters
                    .into_iter()
                    .map(
                        |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                            name,
                            weight,
                            ..Default::default()
                        },
                    )
                    .collect(),
            })
        }
    };
    let proxy = TcpProxy {
        stat_prefix,
        cluster_specifier: Some(cluster_specifier),
        idle_timeout: settings.idle_timeout.map(super::envoy::duration),
        max_downstream_connection_duration: settings
            .max_connection_duration
            .map(super::envoy::duration),
        ..TcpProxy::default()
    };
    Filter {
        name: TCP_PROXY_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(weft_xds::pack(&proxy))),
    }
}

/// A filter chain of one filter.
fn chain(name: String, matches: Option<FilterChainMatch>, filter: Filter) -> FilterChain {
    FilterChain {
        name,
        filter_chain_match: matches,
        filters: vec![filter],
        ..FilterChain::default()
    }
}

/// The listener filters the chains need: TLS inspection for SNI/ALPN
/// matches, HTTP inspection for sniffed ports.
fn listener_filters(chains: &[FilterChain], original_dst: bool) -> Vec<ListenerFilter> {
    let matches = || chains.iter().filter_map(|c| c.filter_chain_match.as_ref());
    let mut out = Vec::new();
    if original_dst {
        out.push(listener_filter(
            ORIGINAL_DST,
            weft_xds::pack(&OriginalDst::default()),
        ));
    }
    if matches().any(|m| !m.server_names.is_empty() || m.transport_protocol == "tls") {
        out.push(listener_filter(
            TLS_INSPECTOR,
            weft_xds::pack(&TlsInspector::default()),
        ));
    }
    if matches().any(|m| !m.application_protocols.is_empty()) {
        out.push(listener_filter(
            HTTP_INSPECTOR,
            weft_xds::pack(&HttpInspector::default()),
        ));
    }
    out
}

fn listener_filter(name: &str, config: weft_xds::pb::google::protobuf::Any) -> ListenerFilter {
    ListenerFilter {
        name: name.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(config)),
        ..ListenerFilter::default()
    }
}

/// A listener on `address:port`; `bind` says whether it binds the port
/// itself or only receives connections handed to it.
fn listener(
    name: String,
    address: &str,
    port: u16,
    direction: TrafficDirection,
    bind: bool,
    chains: Vec<FilterChain>,
) -> Listener {
    Listener {
        listener_filters: listener_filters(&chains, false),
        name,
        address: Some(socket_address(address, port)),
        filter_chains: chains,
        traffic_direction: direction as i32,
        bind_to_port: Some(BoolValue { value: bind }),
        ..Listener::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;

    fn grpc_proxy() -> Proxy {
        Proxy {
            kind: ProxyKind::Grpc,
            ..Proxy::sidecar(
                "sidecar~127.0.0.1~client.shop~shop.svc.cluster.local",
                "shop",
                &[],
            )
        }
    }

    #[test]
    fn a_rules_tcp_idle_timeout_goes_on_the_tcp_proxies_to_its_service() {
        let mesh = TestMesh::new(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db, namespace: shop}\nspec:\n  hosts: [db.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  endpoints: [{address: 127.0.0.1}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: cache, namespace: shop}\nspec:\n  hosts: [cache.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 6379, name: tcp, protocol: TCP}]\n  endpoints: [{address: 127.0.0.1}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: shop}\nspec:\n  host: db\n  trafficPolicy:\n    connectionPool:\n      tcp: {idleTimeout: 90s, maxConnectionDuration: 1h}\n",
        );
        let proxy = Proxy::sidecar("p", "shop", &[]);
        let ls = listeners(mesh.inputs(), &proxy);
        let tcp_proxy_of = |name: &str| -> TcpProxy {
            let l = ls.iter().find(|l| l.name == name).expect("listener");
            let f = &l.filter_chains[0].filters[0];
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("typed config")
            };
            weft_xds::unpack(any).expect("tcp proxy")
        };
        let db = tcp_proxy_of("0.0.0.0_5432");
        assert_eq!(db.idle_timeout.map(|d| d.seconds), Some(90));
        assert_eq!(
            db.max_downstream_connection_duration.map(|d| d.seconds),
            Some(3600)
        );
        // No rule: Envoy's default (1 h), nothing set.
        let cache = tcp_proxy_of("0.0.0.0_6379");
        assert_eq!(cache.idle_timeout, None);
        assert_eq!(cache.max_downstream_connection_duration, None);
    }

    #[test]
    fn grpc_clients_get_one_api_listener_per_service_port() {
        let mesh = TestMesh::new(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: greeter, namespace: shop}\nspec:\n  hosts: [greeter.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 50051, name: grpc, protocol: GRPC}]\n  endpoints: [{address: 127.0.0.1}]\n",
        );
        let ls = listeners(mesh.inputs(), &grpc_proxy());
        assert_eq!(ls.len(), 1);
        assert_eq!(ls[0].name, "greeter.shop.svc.cluster.local:50051");
        let any = ls[0]
            .api_listener
            .as_ref()
            .and_then(|a| a.api_listener.as_ref())
            .expect("api listener");
        let hcm: HttpConnectionManager = weft_xds::unpack(any).expect("hcm");
        let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
            panic!("rds")
        };
        assert_eq!(
            rds.route_config_name,
            "greeter.shop.svc.cluster.local:50051"
        );
        assert_eq!(
            hcm.http_filters.last().map(|f| f.name.as_str()),
            Some(ROUTER_FILTER)
        );
    }

    #[test]
    fn every_grpc_listener_has_its_route_configuration() {
        let mesh = TestMesh::examples();
        let proxy = Proxy {
            namespace: "bookinfo".into(),
            ..grpc_proxy()
        };
        let resources = crate::translate::translate(mesh.inputs(), &proxy);
        let routes: Vec<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();
        for l in &resources.listeners {
            assert!(
                routes.contains(&l.name.as_str()),
                "{} has no route configuration in {routes:?}",
                l.name
            );
        }
        let reviews = resources
            .routes
            .iter()
            .find(|r| r.name == "reviews.bookinfo.svc.cluster.local:9080")
            .expect("reviews");
        let vh = &reviews.virtual_hosts[0];
        assert!(
            vh.domains
                .iter()
                .any(|d| d == "reviews.bookinfo.svc.cluster.local:9080"),
            "{:?}",
            vh.domains
        );
        assert_eq!(
            vh.routes.first().map(|r| r.name.as_str()),
            Some("jason"),
            "the VirtualService applies"
        );
    }

    #[test]
    fn sidecars_get_no_api_listeners() {
        let mesh = TestMesh::examples();
        assert!(
            listeners(mesh.inputs(), &Proxy::sidecar("p", "bookinfo", &[]))
                .iter()
                .all(|l| l.api_listener.is_none())
        );
        assert_eq!(
            listeners(
                mesh.inputs(),
                &Proxy {
                    namespace: "bookinfo".into(),
                    ..grpc_proxy()
                }
            )
            .len(),
            5
        );
    }

    /// The examples' productpage sidecar, captured or not.
    fn productpage(interception: crate::translate::Interception) -> Proxy {
        Proxy {
            pod: "productpage-v1".into(),
            interception,
            ..Proxy::sidecar(
                "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
                "bookinfo",
                &[],
            )
        }
    }

    fn named<'a>(ls: &'a [Listener], name: &str) -> &'a Listener {
        ls.iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", names(ls)))
    }

    fn names(ls: &[Listener]) -> Vec<&str> {
        ls.iter().map(|l| l.name.as_str()).collect()
    }

    fn hcm(c: &FilterChain) -> HttpConnectionManager {
        let f = c.filters.first().expect("a filter");
        assert_eq!(f.name, HCM_FILTER);
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("typed config")
        };
        weft_xds::unpack(any).expect("hcm")
    }

    /// The TCP proxy a chain ends in (its first filter).
    pub(super) fn tcp(c: &FilterChain) -> TcpProxy {
        let f = c.filters.first().expect("a filter");
        assert_eq!(f.name, TCP_PROXY_FILTER);
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("typed config")
        };
        weft_xds::unpack(any).expect("tcp proxy")
    }

    /// Each chain's server names and its TCP proxy's cluster specifier.
    pub(super) fn by_server_name(
        l: &Listener,
    ) -> Vec<(Vec<String>, Option<tcp_proxy::ClusterSpecifier>)> {
        l.filter_chains
            .iter()
            .map(|c| {
                (
                    c.filter_chain_match
                        .as_ref()
                        .map(|m| m.server_names.clone())
                        .unwrap_or_default(),
                    tcp(c).cluster_specifier,
                )
            })
            .collect()
    }

    fn rds_name(h: &HttpConnectionManager) -> &str {
        match &h.route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(r)) => &r.route_config_name,
            other => panic!("not RDS: {other:?}"),
        }
    }

    #[test]
    fn captured_sidecars_get_istios_listener_layout() {
        use crate::translate::Interception;
        let mesh = TestMesh::examples();
        let resources =
            crate::translate::translate(mesh.inputs(), &productpage(Interception::Redirect));
        let ls = &resources.listeners;
        assert_eq!(
            names(ls),
            vec![
                "0.0.0.0_8000",
                "0.0.0.0_9080",
                "virtualInbound",
                "virtualOutbound"
            ]
        );
        let http = named(ls, "0.0.0.0_9080");
        assert_eq!(http.bind_to_port, Some(BoolValue { value: false }));
        assert_eq!(http.traffic_direction, TrafficDirection::Outbound as i32);
        let h = hcm(&http.filter_chains[0]);
        assert_eq!(rds_name(&h), "9080");
        let filters: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            filters,
            vec![
                crate::translate::route::FAULT_FILTER,
                crate::translate::route::CORS_FILTER,
                ROUTER_FILTER
            ]
        );

        let vo = named(ls, "virtualOutbound");
        assert_eq!(vo.use_original_dst, Some(BoolValue { value: true }));
        let default = vo.default_filter_chain.as_ref().expect("default chain");
        assert_eq!(
            tcp(default).cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster(
                crate::translate::cluster::BLACKHOLE.into()
            )),
            "examples/mesh.yaml allows only registered services"
        );
        assert_eq!(
            tcp(named(
                &listeners(
                    TestMesh::new(TCP_MESH).inputs(),
                    &Proxy::sidecar("p", "shop", &[])
                ),
                "virtualOutbound"
            )
            .default_filter_chain
            .as_ref()
            .expect("default"))
            .cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster(
                crate::translate::cluster::PASSTHROUGH.into()
            ))
        );

        let vi = named(ls, "virtualInbound");
        assert_eq!(vi.bind_to_port, Some(BoolValue { value: true }));
        assert_eq!(
            vi.address,
            Some(super::socket_address(
                "0.0.0.0",
                inbound::VIRTUAL_INBOUND_PORT
            ))
        );
        let chain = &vi.filter_chains[0];
        assert_eq!(
            chain
                .filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port.as_ref())
                .map(|p| p.value),
            Some(19080)
        );
        let Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) =
            hcm(chain).route_specifier
        else {
            panic!("inline routes")
        };
        let Some(weft_xds::pb::envoy::config::route::v3::route::Action::Route(action)) =
            &rc.virtual_hosts[0].routes[0].action
        else {
            panic!("route action")
        };
        assert_eq!(
            action.cluster_specifier,
            Some(
                weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                    "inbound|19080||".into()
                )
            )
        );
        assert_references_resolve(&resources);
    }

    #[test]
    fn explicit_mode_sidecars_bind_their_workload_address() {
        use crate::translate::Interception;
        let mesh = TestMesh::examples();
        let resources =
            crate::translate::translate(mesh.inputs(), &productpage(Interception::None));
        let ls = &resources.listeners;
        assert_eq!(
            names(ls),
            vec!["0.0.0.0_8000", "0.0.0.0_9080", "127.0.0.1_19080"]
        );
        let inbound = named(ls, "127.0.0.1_19080");
        assert_eq!(inbound.bind_to_port, Some(BoolValue { value: true }));
        assert_eq!(inbound.traffic_direction, TrafficDirection::Inbound as i32);
        assert_eq!(
            inbound.address,
            Some(super::socket_address("127.0.0.1", 19080))
        );
        assert!(
            !resources
                .clusters
                .iter()
                .any(|c| c.name == crate::translate::cluster::INBOUND_PASSTHROUGH),
            "nothing is passed through without capture"
        );
        let app = resources
            .clusters
            .iter()
            .find(|c| c.name == "inbound|19080||")
            .expect("inbound cluster");
        let endpoint = &app.load_assignment.as_ref().expect("static").endpoints[0].lb_endpoints[0];
        let Some(weft_xds::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(
            e,
        )) = &endpoint.host_identifier
        else {
            panic!("endpoint")
        };
        assert_eq!(e.address, Some(super::socket_address("127.0.0.1", 19080)));
        assert_references_resolve(&resources);
    }

    const TCP_MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec: {hosts: [db.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 5432, name: tcp, protocol: TCP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cache, namespace: shop}
spec: {hosts: [cache.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 5432, name: tcp, protocol: TCP}], endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip, namespace: shop}
spec: {hosts: [vip.shop.svc.cluster.local], addresses: [240.0.0.7], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 6379, name: redis, protocol: REDIS}], endpoints: [{address: 10.0.0.3}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: shop}
spec: {hosts: [secure.example.com], location: MESH_EXTERNAL, resolution: STATIC, ports: [{number: 443, name: tls, protocol: TLS}], endpoints: [{address: 10.0.0.4}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec: {hosts: [web.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: web}], endpoints: [{address: 10.0.0.5, labels: {version: v1}}, {address: 10.0.0.6, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec: {host: db.shop.svc.cluster.local, subsets: [{name: a, labels: {x: a}}, {name: b, labels: {x: b}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5432}]
    route:
    - {destination: {host: db, subset: a}, weight: 90}
    - {destination: {host: db, subset: b}, weight: 10}
"#;

    #[test]
    fn tcp_tls_and_sniffed_services() {
        let mesh = TestMesh::new(TCP_MESH);
        let proxy = Proxy::sidecar("p", "shop", &[]);
        let resources = crate::translate::translate(mesh.inputs(), &proxy);
        let ls = &resources.listeners;
        assert_eq!(
            names(ls),
            vec![
                "0.0.0.0_443",
                "0.0.0.0_5432",
                "0.0.0.0_8080",
                "240.0.0.7_6379",
                "virtualOutbound"
            ]
        );
        // Two TCP services on one port: by server name, the first by name
        // also by default; the VirtualService splits db 90/10.
        let db = named(ls, "0.0.0.0_5432");
        let chains = by_server_name(db);
        let cache = Some(tcp_proxy::ClusterSpecifier::Cluster(
            "outbound|5432||cache.shop.svc.cluster.local".into(),
        ));
        let split = Some(tcp_proxy::ClusterSpecifier::WeightedClusters(
            tcp_proxy::WeightedCluster {
                clusters: vec![
                    tcp_proxy::weighted_cluster::ClusterWeight {
                        name: "outbound|5432|a|db.shop.svc.cluster.local".into(),
                        weight: 90,
                        ..Default::default()
                    },
                    tcp_proxy::weighted_cluster::ClusterWeight {
                        name: "outbound|5432|b|db.shop.svc.cluster.local".into(),
                        weight: 10,
                        ..Default::default()
                    },
                ],
            },
        ));
        assert_eq!(
            chains,
            vec![
                (vec!["cache.shop.svc.cluster.local".into()], cache.clone()),
                (vec!["db.shop.svc.cluster.local".into()], split),
                (vec![], cache),
            ]
        );
        assert!(
            db.listener_filters.iter().any(|f| f.name == TLS_INSPECTOR),
            "server names need the TLS inspector"
        );
        // TLS: by SNI.
        let tls = named(ls, "0.0.0.0_443");
        let m = tls.filter_chains[0]
            .filter_chain_match
            .as_ref()
            .expect("match");
        assert_eq!(
            (m.server_names.clone(), m.transport_protocol.as_str()),
            (vec!["secure.example.com".to_string()], "tls")
        );
        // A service with its own address gets its own listener.
        let vip = named(ls, "240.0.0.7_6379");
        assert_eq!(
            tcp(&vip.filter_chains[0]).cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster(
                "outbound|6379||vip.shop.svc.cluster.local".into()
            ))
        );
        // A port without protocol is sniffed: HTTP if it looks like it,
        // else the service over TCP.
        let web = named(ls, "0.0.0.0_8080");
        assert!(
            web.listener_filters
                .iter()
                .any(|f| f.name == HTTP_INSPECTOR)
        );
        assert_eq!(
            web.filter_chains[0]
                .filter_chain_match
                .as_ref()
                .map(|m| m.application_protocols.clone()),
            Some(SNIFFED_HTTP.map(str::to_string).to_vec())
        );
        assert_eq!(rds_name(&hcm(&web.filter_chains[0])), "8080");
        assert_eq!(
            tcp(&web.filter_chains[1]).cluster_specifier,
            Some(tcp_proxy::ClusterSpecifier::Cluster(
                "outbound|8080||web.shop.svc.cluster.local".into()
            ))
        );
        assert_references_resolve(&resources);
    }

    #[test]
    fn registry_only_mesh_blackholes_unknown_destinations() {
        let mesh = TestMesh::new(&format!(
            "{TCP_MESH}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n"
        ));
        let ls = listeners(mesh.inputs(), &Proxy::sidecar("p", "shop", &[]));
        let vo = named(&ls, "virtualOutbound");
        assert_eq!(
            vo.default_filter_chain
                .as_ref()
                .map(|c| tcp(c).cluster_specifier),
            Some(Some(tcp_proxy::ClusterSpecifier::Cluster(
                crate::translate::cluster::BLACKHOLE.into()
            )))
        );
    }

    use crate::translate::test_inputs::ingress_gateway;

    #[test]
    fn gateways_serve_their_http_servers_with_the_bound_virtual_services() {
        use weft_xds::pb::envoy::config::route::v3::route::Action;
        use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
        let mesh = TestMesh::examples();
        let resources = crate::translate::translate(mesh.inputs(), &ingress_gateway());
        // The Gateway's server port 8080 is named `http`; the gateway's
        // WorkloadEntry serves `http` on 127.0.0.1:18080.
        assert_eq!(names(&resources.listeners), vec!["127.0.0.1_18080"]);
        let l = &resources.listeners[0];
        assert_eq!(l.bind_to_port, Some(BoolValue { value: true }));
        assert_eq!(rds_name(&hcm(&l.filter_chains[0])), "http.8080");
        let routes: Vec<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(routes, vec!["http.8080"]);
        let vh = &resources.routes[0].virtual_hosts;
        assert_eq!(vh.len(), 1);
        assert_eq!(vh[0].domains, vec!["*".to_string()]);
        assert_eq!(
            vh[0].routes.len(),
            5,
            "one route per match of the bookinfo VirtualService"
        );
        for r in &vh[0].routes {
            let Some(Action::Route(a)) = &r.action else {
                panic!("route")
            };
            assert_eq!(
                a.cluster_specifier,
                Some(ClusterSpecifier::Cluster(
                    "outbound|9080||productpage.bookinfo.svc.cluster.local".into()
                ))
            );
        }
        assert!(
            !resources
                .clusters
                .iter()
                .any(|c| c.name.starts_with("inbound|")),
            "gateways have no inbound clusters"
        );
        assert_references_resolve(&resources);
    }

    #[test]
    fn gateway_routes_follow_server_hosts_and_match_gateways() {
        let mesh = TestMesh::new(
            r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec: {hosts: [web.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec:
  selector: {app: edge}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["shop/*.example.com"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [www.example.com, other.org]
  gateways: [edge/public, mesh]
  http:
  - match: [{uri: {prefix: /admin}, gateways: [mesh]}]
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: elsewhere, namespace: other}
spec:
  hosts: [api.example.com]
  gateways: [edge/public]
  http:
  - route: [{destination: {host: web.shop.svc.cluster.local}}]
"#,
        );
        let proxy = Proxy {
            kind: ProxyKind::Gateway,
            ..Proxy::sidecar(
                "router~10.0.0.9~edge-1.edge~edge",
                "edge",
                &[("app", "edge")],
            )
        };
        let resources = crate::translate::translate(mesh.inputs(), &proxy);
        // HTTPS needs certificates: not served yet.
        assert_eq!(names(&resources.listeners), vec!["0.0.0.0_80"]);
        let vhosts: Vec<(&str, Vec<String>, usize)> = resources.routes[0]
            .virtual_hosts
            .iter()
            .map(|v| (v.name.as_str(), v.domains.clone(), v.routes.len()))
            .collect();
        // other.org isn't admitted; the `other` namespace's VirtualService
        // isn't either; the mesh-only match doesn't apply.
        assert_eq!(
            vhosts,
            vec![("www.example.com:80", vec!["www.example.com".to_string()], 1)]
        );
        // A gateway no Gateway selects gets nothing.
        let stranger = Proxy {
            kind: ProxyKind::Gateway,
            ..Proxy::sidecar("router~10.0.0.9~x.edge~edge", "edge", &[("app", "x")])
        };
        let r = crate::translate::translate(mesh.inputs(), &stranger);
        assert!(r.listeners.is_empty() && r.routes.is_empty());
    }

    /// Every cluster a listener or route sends to is in CDS, and every
    /// route configuration a listener fetches is in RDS: what Envoy checks
    /// before accepting them.
    fn assert_references_resolve(r: &crate::translate::Resources) {
        use weft_xds::pb::envoy::config::route::v3::route::Action;
        use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
        let clusters: Vec<&str> = r.clusters.iter().map(|c| c.name.as_str()).collect();
        let routes: Vec<&str> = r.routes.iter().map(|c| c.name.as_str()).collect();
        let mut referenced: Vec<String> = Vec::new();
        let mut inline = Vec::new();
        for l in &r.listeners {
            for c in l.filter_chains.iter().chain(&l.default_filter_chain) {
                match c.filters[0].name.as_str() {
                    HCM_FILTER => match hcm(c).route_specifier {
                        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => assert!(
                            routes.contains(&rds.route_config_name.as_str()),
                            "{} fetches missing routes {}",
                            l.name,
                            rds.route_config_name
                        ),
                        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
                            inline.push(rc)
                        }
                        other => panic!("{other:?}"),
                    },
                    _ => match tcp(c).cluster_specifier {
                        Some(tcp_proxy::ClusterSpecifier::Cluster(name)) => referenced.push(name),
                        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                            referenced.extend(w.clusters.into_iter().map(|c| c.name))
                        }
                        None => panic!("no cluster"),
                    },
                }
            }
        }
        for rc in r.routes.iter().chain(&inline) {
            for route in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
                if let Some(Action::Route(a)) = &route.action {
                    match &a.cluster_specifier {
                        Some(ClusterSpecifier::Cluster(c)) => referenced.push(c.clone()),
                        Some(ClusterSpecifier::WeightedClusters(w)) => {
                            referenced.extend(w.clusters.iter().map(|c| c.name.clone()))
                        }
                        _ => {}
                    }
                }
            }
        }
        for name in referenced {
            assert!(
                clusters.contains(&name.as_str()),
                "{name} is referenced but not in CDS"
            );
        }
    }
}
