//! `weft proxy-config listeners`: a line per filter chain.

use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weft_xds::pb::envoy::config::route::v3::{
    RouteConfiguration, route, route_action, route_match,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use weft_xds::unpack;

use super::routes::describe_match;
use super::{socket, table};

/// A listener's addresses (its own, then `additional_addresses`) and port;
/// an API listener (proxyless gRPC: no address) shows its `host:port` name.
pub(super) fn listener_address(l: &Listener) -> (String, String) {
    match socket(l.address.as_ref()) {
        Some((address, port)) => {
            let mut all = vec![address];
            all.extend(
                l.additional_addresses
                    .iter()
                    .filter_map(|a| socket(a.address.as_ref()))
                    .map(|(a, _)| a),
            );
            (
                all.join(","),
                port.map_or_else(|| "-".to_string(), |p| p.to_string()),
            )
        }
        None => match l.name.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                (host.to_string(), port.to_string())
            }
            _ => (l.name.clone(), "-".to_string()),
        },
    }
}

pub(super) fn listener_port(l: &Listener) -> u32 {
    socket(l.address.as_ref()).and_then(|(_, p)| p).unwrap_or(0)
}

/// `weft proxy-config listeners` filters.
#[derive(Debug, Default, clap::Args)]
pub struct ListenerFilter {
    /// Only listeners on this address.
    #[arg(long)]
    address: Option<String>,
    /// Only listeners on this port.
    #[arg(long)]
    port: Option<u32>,
}

impl ListenerFilter {
    /// The listeners that pass, by port then address (as istioctl).
    pub fn select<'a>(&self, listeners: &'a [Listener]) -> Vec<&'a Listener> {
        let mut out: Vec<&Listener> = listeners
            .iter()
            .filter(|l| {
                let (addresses, _) = listener_address(l);
                self.address
                    .as_ref()
                    .is_none_or(|a| addresses.split(',').any(|x| x.eq_ignore_ascii_case(a)))
                    && self.port.is_none_or(|p| listener_port(l) == p)
            })
            .collect();
        out.sort_by_key(|l| (listener_port(l), listener_address(l).0));
        out
    }
}

/// The ALPN sets Istio's listeners match on, by the name istioctl gives them.
pub(super) const ALPN_SETS: &[(&str, &[&str])] = &[
    ("App: HTTP", &["http/1.0", "http/1.1", "h2c"]),
    (
        "App: Istio HTTP Plain",
        &["istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"],
    ),
    (
        "App: HTTP TLS",
        &[
            "http/1.0",
            "http/1.1",
            "h2c",
            "istio-http/1.0",
            "istio-http/1.1",
            "istio-h2",
        ],
    ),
    ("App: TCP TLS", &["istio-peer-exchange", "istio"]),
];

/// What a filter chain matches, as istioctl words it (`ALL` for anything).
pub(super) fn describe_chain_match(chain: &FilterChain) -> String {
    let Some(m) = chain.filter_chain_match.as_ref() else {
        return "ALL".into();
    };
    let mut parts = Vec::new();
    if !m.server_names.is_empty() {
        parts.push(format!("SNI: {}", m.server_names.join(",")));
    }
    if !m.transport_protocol.is_empty() {
        parts.push(format!("Trans: {}", m.transport_protocol));
    }
    if !m.application_protocols.is_empty() {
        let named = ALPN_SETS
            .iter()
            .find(|(_, set)| m.application_protocols.iter().eq(set.iter()))
            .map(|(name, _)| name.to_string());
        parts.push(named.unwrap_or_else(|| format!("App: {}", m.application_protocols.join(","))));
    }
    let port = m
        .destination_port
        .as_ref()
        .map(|p| format!(":{}", p.value))
        .unwrap_or_default();
    if !m.prefix_ranges.is_empty() {
        let ranges: Vec<String> = m
            .prefix_ranges
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.address_prefix,
                    r.prefix_len.as_ref().map_or(0, |l| l.value)
                )
            })
            .collect();
        parts.push(format!("Addr: {}{port}", ranges.join(",")));
    } else if !port.is_empty() {
        parts.push(format!("Addr: *{port}"));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

pub(super) use weft_xds::names::{HCM_FILTER as HCM, TCP_PROXY_FILTER as TCP_PROXY};

pub(super) fn typed_config(f: &Filter) -> Option<&weft_xds::pb::google::protobuf::Any> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => Some(any),
        _ => None,
    }
}

/// `Cluster: NAME`, or just the name for Istio's own
/// (`PassthroughCluster`, `BlackHoleCluster`), as istioctl.
pub(super) fn cluster_destination(name: &str) -> String {
    if name.contains("Cluster") {
        name.to_string()
    } else {
        format!("Cluster: {name}")
    }
}

pub(super) fn describe_hcm(hcm: &HttpConnectionManager) -> String {
    match &hcm.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
            format!("Route: {}", rds.route_config_name)
        }
        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
            describe_inline_routes(rc)
        }
        _ => "HTTP".into(),
    }
}

/// An inline route configuration: the cluster if it sends everything to
/// one, else `Inline Route: DOMAINS MATCHES; ...`.
pub(super) fn describe_inline_routes(rc: &RouteConfiguration) -> String {
    if let [vh] = rc.virtual_hosts.as_slice()
        && vh.domains == ["*"]
        && let [r] = vh.routes.as_slice()
        && matches!(
            r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()),
            Some(route_match::PathSpecifier::Prefix(p)) if p == "/"
        )
        && let Some(route::Action::Route(action)) = &r.action
        && let Some(route_action::ClusterSpecifier::Cluster(c)) = &action.cluster_specifier
    {
        return cluster_destination(c);
    }
    let vhosts: Vec<String> = rc
        .virtual_hosts
        .iter()
        .map(|vh| {
            let routes: Vec<String> = vh
                .routes
                .iter()
                .map(|r| describe_match(r.r#match.as_ref()))
                .collect();
            let routes = routes.join(", ");
            if vh.domains == ["*"] {
                routes
            } else {
                format!("{} {routes}", vh.domains.join("/"))
            }
        })
        .collect();
    format!("Inline Route: {}", vhosts.join("; "))
}

pub(super) fn describe_tcp(tcp: &TcpProxy) -> String {
    match &tcp.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => cluster_destination(c),
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
            let parts: Vec<String> = w
                .clusters
                .iter()
                .map(|c| format!("{}({})", c.name, c.weight))
                .collect();
            format!("WeightedClusters: {}", parts.join(","))
        }
        None => "TCP".into(),
    }
}

/// Where a chain's traffic goes: its HTTP connection manager's routes or
/// its TCP proxy's cluster.
pub(super) fn describe_destination(filters: &[Filter]) -> String {
    for f in filters {
        let config = typed_config(f);
        if f.name == HCM {
            return match config.map(unpack::<HttpConnectionManager>) {
                Some(Ok(hcm)) => describe_hcm(&hcm),
                Some(Err(e)) => e.to_string(),
                None => "HTTP".into(),
            };
        }
        if f.name == TCP_PROXY {
            return match config.map(unpack::<TcpProxy>) {
                Some(Ok(tcp)) => describe_tcp(&tcp),
                Some(Err(e)) => e.to_string(),
                None => "TCP".into(),
            };
        }
    }
    "Non-HTTP/Non-TCP".into()
}

/// ADDRESSES, PORT, MATCH, DESTINATION: one line per filter chain (the
/// default chain too), destinations in descending order within a
/// listener, as istioctl.
pub fn listeners(listeners: &[&Listener]) -> String {
    let mut rows = Vec::new();
    for l in listeners {
        let (addresses, port) = listener_address(l);
        let mut chains: Vec<(String, String)> = l
            .filter_chains
            .iter()
            .chain(l.default_filter_chain.as_ref())
            .map(|c| (describe_chain_match(c), describe_destination(&c.filters)))
            .collect();
        if let Some(api) = l
            .api_listener
            .as_ref()
            .and_then(|a| a.api_listener.as_ref())
        {
            let destination = match unpack::<HttpConnectionManager>(api) {
                Ok(hcm) => describe_hcm(&hcm),
                Err(e) => e.to_string(),
            };
            chains.push(("ALL".into(), destination));
        }
        chains.sort_by(|a, b| b.1.cmp(&a.1));
        for (m, d) in chains {
            rows.push(vec![addresses.clone(), port.clone(), m, d]);
        }
    }
    table(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], &rows, 1)
}
