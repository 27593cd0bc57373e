//! The tables of `weft proxy-config`, read from the xDS resources the way
//! `istioctl proxy-config` reads an Envoy's: Istio's cluster names
//! (`outbound|9080|v1|reviews.default.svc.cluster.local`), filter chain
//! matches, the filter a chain ends in, and `filter_metadata.istio.config`
//! for the DestinationRule / VirtualService a resource came from.

use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use weft_xds::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata, address};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint, lb_endpoint};
use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteConfiguration, RouteMatch, VirtualHost, header_matcher, route,
    route_action, route_match,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use weft_xds::pb::google::protobuf::value;
use weft_xds::unpack;

use super::Dump;

/// Lays out rows under a header in columns `padding` spaces apart (like
/// Go's tabwriter, which istioctl uses); the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>], padding: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}", width = w + padding));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `direction|port|subset|fqdn` parts of an Istio cluster name (other
/// names: the name as FQDN, the rest empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ClusterName {
    fqdn: String,
    subset: String,
    port: Option<u16>,
    direction: String,
}

impl ClusterName {
    fn parse(name: &str) -> ClusterName {
        let parts: Vec<&str> = name.split('|').collect();
        match parts.as_slice() {
            [direction, port, subset, fqdn] => ClusterName {
                fqdn: fqdn.to_string(),
                subset: subset.to_string(),
                port: port.parse().ok(),
                direction: direction.to_string(),
            },
            _ => ClusterName {
                fqdn: name.to_string(),
                subset: String::new(),
                port: None,
                direction: String::new(),
            },
        }
    }
}

/// `name.namespace` of the Istio resource of `kind` (`destination-rule`,
/// `virtual-service`) in `filter_metadata.istio.config`
/// (`/apis/networking.istio.io/<version>/namespaces/<ns>/<kind>/<name>`).
fn istio_config(metadata: Option<&Metadata>, kind: &str) -> String {
    let path = metadata
        .and_then(|m| m.filter_metadata.get("istio"))
        .and_then(|s| s.fields.get("config"))
        .and_then(|v| match &v.kind {
            Some(value::Kind::StringValue(s)) => Some(s.as_str()),
            _ => None,
        });
    let Some(path) = path else {
        return String::new();
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "apis", _group, _version, "namespaces", ns, k, name] if *k == kind => {
            format!("{name}.{ns}")
        }
        _ => "<unknown>".to_string(),
    }
}

/// `weft proxy-config clusters` filters (each narrows the list).
#[derive(Debug, Default, clap::Args)]
pub struct ClusterFilter {
    /// Only clusters whose service FQDN contains this.
    #[arg(long)]
    fqdn: Option<String>,
    /// Only clusters of this service port.
    #[arg(long)]
    port: Option<u16>,
    /// Only clusters of this subset.
    #[arg(long)]
    subset: Option<String>,
    /// Only inbound or outbound clusters.
    #[arg(long, value_parser = ["inbound", "outbound"])]
    direction: Option<String>,
}

impl ClusterFilter {
    /// The clusters that pass, sorted like istioctl's (FQDN, subset,
    /// port, direction).
    pub fn select<'a>(&self, clusters: &'a [Cluster]) -> Vec<&'a Cluster> {
        let mut out: Vec<(ClusterName, &Cluster)> = clusters
            .iter()
            .map(|c| (ClusterName::parse(&c.name), c))
            .filter(|(n, _)| {
                self.fqdn
                    .as_ref()
                    .is_none_or(|f| n.fqdn.contains(f.as_str()))
                    && self.port.is_none_or(|p| n.port == Some(p))
                    && self.subset.as_ref().is_none_or(|s| &n.subset == s)
                    && self.direction.as_ref().is_none_or(|d| &n.direction == d)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, c)| c).collect()
    }
}

fn discovery_type(c: &Cluster) -> String {
    match &c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => cluster::DiscoveryType::try_from(*t)
            .map_or_else(|_| t.to_string(), |t| t.as_str_name().to_string()),
        Some(cluster::ClusterDiscoveryType::ClusterType(custom)) => custom.name.clone(),
        // The proto's default.
        None => "STATIC".to_string(),
    }
}

/// SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
pub fn clusters(clusters: &[&Cluster]) -> String {
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let n = ClusterName::parse(&c.name);
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            vec![
                n.fqdn.clone(),
                n.port.map_or_else(|| "-".to_string(), |p| p.to_string()),
                dash(&n.subset),
                dash(&n.direction),
                discovery_type(c),
                istio_config(c.metadata.as_ref(), "destination-rule"),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
        5,
    )
}

fn socket(addr: Option<&Address>) -> Option<(String, Option<u32>)> {
    match addr?.address.as_ref()? {
        address::Address::SocketAddress(s) => {
            let port = match &s.port_specifier {
                Some(PortSpecifier::PortValue(p)) => Some(*p),
                _ => None,
            };
            Some((s.address.clone(), port))
        }
        address::Address::Pipe(p) => Some((format!("unix://{}", p.path), None)),
        address::Address::EnvoyInternalAddress(_) => Some(("envoy://internal".into(), None)),
    }
}

/// A listener's addresses (its own, then `additional_addresses`) and port;
/// an API listener (proxyless gRPC: no address) shows its `host:port` name.
fn listener_address(l: &Listener) -> (String, String) {
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

fn listener_port(l: &Listener) -> u32 {
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
const ALPN_SETS: &[(&str, &[&str])] = &[
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
fn describe_chain_match(chain: &FilterChain) -> String {
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

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

fn typed_config(f: &Filter) -> Option<&weft_xds::pb::google::protobuf::Any> {
    match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => Some(any),
        _ => None,
    }
}

/// `Cluster: NAME`, or just the name for Istio's own
/// (`PassthroughCluster`, `BlackHoleCluster`), as istioctl.
fn cluster_destination(name: &str) -> String {
    if name.contains("Cluster") {
        name.to_string()
    } else {
        format!("Cluster: {name}")
    }
}

fn describe_hcm(hcm: &HttpConnectionManager) -> String {
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
fn describe_inline_routes(rc: &RouteConfiguration) -> String {
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

fn describe_tcp(tcp: &TcpProxy) -> String {
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
fn describe_destination(filters: &[Filter]) -> String {
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

/// `weft proxy-config routes` filters.
#[derive(Debug, Default, clap::Args)]
pub struct RouteFilter {
    /// Only the route configuration of this name (e.g. `9080`).
    #[arg(long)]
    name: Option<String>,
}

impl RouteFilter {
    /// The route configurations that pass, in the order sent.
    pub fn select<'a>(&self, routes: &'a [RouteConfiguration]) -> Vec<&'a RouteConfiguration> {
        routes
            .iter()
            .filter(|r| self.name.as_ref().is_none_or(|n| &r.name == n))
            .collect()
    }
}

/// A virtual host's domains, shortened as istioctl does: names with a port
/// and the long forms of names also given short (`reviews.default` beside
/// `reviews.default.svc.cluster.local`) are left out, and past two the
/// rest are counted.
fn describe_domains(domains: &[String]) -> String {
    if let [one] = domains {
        return one.clone();
    }
    let without_port: Vec<&str> = domains
        .iter()
        .map(String::as_str)
        .filter(|d| !d.contains(':') || (d.matches(':').count() > 2 && d.ends_with(']')))
        .collect();
    let kept: Vec<&str> = without_port
        .iter()
        .copied()
        .filter(|d| {
            let shorter = |suffix: &str| {
                d.strip_suffix(suffix)
                    .is_some_and(|s| without_port.contains(&s))
            };
            !shorter(".svc.cluster.local") && !shorter(".svc")
        })
        .collect();
    const MAX: usize = 2;
    if kept.len() > MAX {
        format!("{} + {} more...", kept[..MAX].join(", "), kept.len() - MAX)
    } else {
        kept.join(", ")
    }
}

fn describe_header(h: &HeaderMatcher) -> String {
    use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let name = &h.name;
    let not = if h.invert_match { "!" } else { "" };
    let spec = match &h.header_match_specifier {
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)) => match &s.match_pattern {
            Some(MatchPattern::Exact(v)) => format!("{name}={v}"),
            Some(MatchPattern::Prefix(v)) => format!("{name}^={v}"),
            Some(MatchPattern::Suffix(v)) => format!("{name}$={v}"),
            Some(MatchPattern::Contains(v)) => format!("{name}*={v}"),
            Some(MatchPattern::SafeRegex(r)) => format!("{name}~={}", r.regex),
            Some(MatchPattern::Custom(_)) | None => name.clone(),
        },
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true)) => {
            format!("{name} present")
        }
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(false)) => {
            format!("{name} absent")
        }
        _ => name.clone(),
    };
    format!("{not}{spec}")
}

/// A route's match: its path (`/api*` for a prefix), then its header
/// conditions in brackets.
fn describe_match(m: Option<&RouteMatch>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    let mut out = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(route_match::PathSpecifier::Path(p)) => p.clone(),
        Some(route_match::PathSpecifier::SafeRegex(r)) => format!("regex {}", r.regex),
        Some(route_match::PathSpecifier::PathSeparatedPrefix(p)) => format!("{p}/*"),
        Some(route_match::PathSpecifier::ConnectMatcher(_)) => "CONNECT".into(),
        _ => String::new(),
    };
    if !m.headers.is_empty() {
        let headers: Vec<String> = m.headers.iter().map(describe_header).collect();
        out.push_str(&format!(" [{}]", headers.join(", ")));
    }
    out
}

fn is_passthrough(r: &weft_xds::pb::envoy::config::route::v3::Route) -> bool {
    matches!(
        &r.action,
        Some(route::Action::Route(a))
            if matches!(&a.cluster_specifier,
                Some(route_action::ClusterSpecifier::Cluster(c)) if c == "PassthroughCluster")
    )
}

/// NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE: one line per route
/// (routes to `PassthroughCluster` left out, as istioctl does; a virtual
/// host without routes shows `/*` and `404`).
pub fn routes(routes: &[&RouteConfiguration]) -> String {
    let mut rows = Vec::new();
    let row = |rc: &RouteConfiguration, vh: &VirtualHost, m: String, vs: String| {
        vec![
            rc.name.clone(),
            vh.name.clone(),
            describe_domains(&vh.domains),
            m,
            vs,
        ]
    };
    for rc in routes {
        for vh in &rc.virtual_hosts {
            for r in vh.routes.iter().filter(|r| !is_passthrough(r)) {
                rows.push(row(
                    rc,
                    vh,
                    describe_match(r.r#match.as_ref()),
                    istio_config(r.metadata.as_ref(), "virtual-service"),
                ));
            }
            if vh.routes.is_empty() {
                rows.push(row(rc, vh, "/*".into(), "404".into()));
            }
        }
    }
    table(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
        5,
    )
}

/// `weft proxy-config endpoints` filters.
#[derive(Debug, Default, clap::Args)]
pub struct EndpointFilter {
    /// Only endpoints of this cluster (its full name).
    #[arg(long)]
    cluster: Option<String>,
    /// Only endpoints at this address.
    #[arg(long)]
    address: Option<String>,
    /// Only endpoints on this port.
    #[arg(long)]
    port: Option<u32>,
    /// Only endpoints of this health status (HEALTHY, UNHEALTHY, DRAINING, ...).
    #[arg(long)]
    status: Option<String>,
}

fn endpoint_address(e: &LbEndpoint) -> (String, Option<u32>) {
    match &e.host_identifier {
        Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
            socket(ep.address.as_ref()).unwrap_or_default()
        }
        Some(lb_endpoint::HostIdentifier::EndpointName(n)) => (n.clone(), None),
        None => (String::new(), None),
    }
}

/// `UNKNOWN` is how EDS says "no health check has said otherwise", which
/// Envoy treats as healthy, as istioctl shows it.
fn endpoint_status(e: &LbEndpoint) -> &'static str {
    match HealthStatus::try_from(e.health_status) {
        Ok(HealthStatus::Unknown | HealthStatus::Healthy) | Err(_) => "HEALTHY",
        Ok(s) => s.as_str_name(),
    }
}

impl EndpointFilter {
    /// The load assignments (EDS, and the clusters' own for static and DNS
    /// clusters) with only the endpoints that pass, sorted like clusters;
    /// those left with none are dropped.
    pub fn select(&self, dump: &Dump) -> Vec<ClusterLoadAssignment> {
        let inline = dump.clusters.iter().filter_map(|c| {
            c.load_assignment.clone().map(|mut la| {
                la.cluster_name = c.name.clone();
                la
            })
        });
        let mut out: Vec<ClusterLoadAssignment> = dump
            .endpoints
            .iter()
            .cloned()
            .chain(inline)
            .filter(|la| self.cluster.as_ref().is_none_or(|c| &la.cluster_name == c))
            .filter_map(|mut la| {
                for group in &mut la.endpoints {
                    group.lb_endpoints.retain(|e| {
                        let (address, port) = endpoint_address(e);
                        self.address.as_ref().is_none_or(|a| &address == a)
                            && self.port.is_none_or(|p| port == Some(p))
                            && self
                                .status
                                .as_ref()
                                .is_none_or(|s| s.eq_ignore_ascii_case(endpoint_status(e)))
                    });
                }
                la.endpoints.retain(|g| !g.lb_endpoints.is_empty());
                (!la.endpoints.is_empty()).then_some(la)
            })
            .collect();
        out.sort_by_key(|la| ClusterName::parse(&la.cluster_name));
        out
    }
}

/// ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER. The control plane knows what
/// it sent, not what a proxy ejected: OUTLIER CHECK says whether the
/// endpoint's cluster has outlier detection (`ENABLED`) or not (`-`).
pub fn endpoints(assignments: &[ClusterLoadAssignment], clusters: &[Cluster]) -> String {
    let mut rows = Vec::new();
    for la in assignments {
        let outlier = clusters
            .iter()
            .find(|c| c.name == la.cluster_name)
            .and_then(|c| c.outlier_detection.as_ref())
            .map_or("-", |_| "ENABLED");
        for e in la.endpoints.iter().flat_map(|g| &g.lb_endpoints) {
            let endpoint = match endpoint_address(e) {
                (a, Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
                (a, Some(p)) => format!("{a}:{p}"),
                (a, None) => a,
            };
            rows.push(vec![
                endpoint,
                endpoint_status(e).to_string(),
                outlier.to_string(),
                la.cluster_name.clone(),
            ]);
        }
    }
    table(
        &["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
        &rows,
        5,
    )
}
#[cfg(test)]
mod tests;
