//! RDS: the outbound route configurations of a sidecar, as Istio builds
//! them.
//!
//! One [`RouteConfiguration`] per HTTP service port number, named by the
//! port (`"9080"`). It holds one [`VirtualHost`] per visible service with
//! an HTTP port of that number (`reviews.bookinfo.svc.cluster.local:9080`),
//! answering to every name a client may use for it, and a catch-all
//! virtual host for unknown hosts (`allow_any` or `block_all`, after the
//! outbound traffic policy of the proxy's Sidecar, else the mesh's). A
//! Sidecar egress listener with a `port` decides that port's virtual
//! hosts: only the services it imports (see [`super::scope`]). A service's routes come from the
//! VirtualService bound to the mesh for its host ([`matches`] turns its
//! conditions into Envoy matches, [`actions`] its actions into Envoy
//! actions); without one, a single default route sends everything to
//! `outbound|<port>||<host>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use weft_config::host;
use weft_config::networking::VirtualService;
use weft_config::{Kind, Resource};
use weft_registry::{Hostname, Service};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch,
    VirtualHost,
};
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::scope::CatchAll;
use super::{Inputs, Proxy, ProxyKind, names};

mod actions;
mod gateway;
mod matches;
mod policies;
mod tcp;

pub use actions::{CORS_FILTER, FAULT_FILTER};
pub use tcp::{TcpTarget, gateway_tcp_target, gateway_tls_targets, tcp_target};

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

/// Name of the route a service gets when no VirtualService routes it.
pub const DEFAULT_ROUTE_NAME: &str = "default";

/// The cluster unknown destinations are passed to (mesh `ALLOW_ANY`).
pub use super::cluster::PASSTHROUGH as PASSTHROUGH_CLUSTER;

/// Largest direct-response body Envoy is told to accept: 1 MiB, the limit
/// VirtualService validation enforces (Envoy's own default is 4 KiB).
const MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = 1024 * 1024;

/// The route configurations `proxy` is sent, sorted by name.
///
/// Sidecars get one per port; proxyless gRPC clients one per service port,
/// named like their listener (`host:port`); gateways none yet.
pub fn route_configurations(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<RouteConfiguration> {
    match proxy.kind {
        ProxyKind::Sidecar => {}
        ProxyKind::Grpc => return grpc_route_configurations(inputs, proxy),
        ProxyKind::Gateway => return gateway::route_configurations(inputs, proxy),
    }
    let services: Vec<&Service> = visible_services(inputs, &proxy.namespace);
    let mut by_port: BTreeMap<u16, Vec<&Service>> = BTreeMap::new();
    for svc in &services {
        // The ports whose listener the Sidecar gives this service, with
        // HTTP on them (an egress listener's protocol over the port's).
        let http_ports = svc.ports.iter().filter(|p| {
            proxy
                .placement(svc, p.number)
                .is_some_and(|at| carries_http(at.protocol.unwrap_or(p.protocol)))
        });
        for port in http_ports {
            let list = by_port.entry(port.number).or_default();
            // `services` are by host name: a repeat can only be the last
            // one (two ports of a service with one number).
            if list.last().is_none_or(|s| s.hostname != svc.hostname) {
                list.push(svc);
            }
        }
    }
    let virtual_services = mesh_virtual_services(inputs, proxy);
    let mut configs: Vec<RouteConfiguration> = by_port
        .into_iter()
        .map(|(port, services)| {
            let cx = Cx {
                inputs,
                proxy,
                port,
                gateways: None,
            };
            route_configuration(&cx, &services, &virtual_services)
        })
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

/// Whether a port gets HTTP routes: HTTP-family ports, and ports whose
/// protocol is sniffed from the traffic (HTTP when it turns out to be).
pub fn carries_http(protocol: weft_config::networking::Protocol) -> bool {
    protocol.is_http() || protocol.is_unsupported()
}

/// For a proxyless gRPC client: per service port, a route configuration
/// named as its API listener, holding that service's virtual host only.
fn grpc_route_configurations(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<RouteConfiguration> {
    let virtual_services = mesh_virtual_services(inputs, proxy);
    let configs: Vec<RouteConfiguration> = visible_services(inputs, &proxy.namespace)
        .into_iter()
        .flat_map(|svc| svc.ports.iter().map(move |p| (svc, p.number)))
        .filter(|(svc, port)| proxy.sees_port(svc, *port))
        .map(|(svc, port)| {
            let cx = Cx {
                inputs,
                proxy,
                port,
                gateways: None,
            };
            RouteConfiguration {
                name: super::listener::grpc_listener_name(svc.hostname.as_str(), port),
                virtual_hosts: vec![virtual_host(&cx, svc, &virtual_services, PortForms::With)],
                validate_clusters: Some(BoolValue { value: false }),
                ..Default::default()
            }
        })
        .collect();
    names::sort_dedup_by_name(configs, |c| &c.name)
}

/// What every step of one port's translation reads.
#[derive(Clone, Copy, Debug)]
struct Cx<'a> {
    inputs: Inputs<'a>,
    proxy: &'a Proxy,
    /// The service port the route configuration is for (a gateway's:
    /// the server port).
    port: u16,
    /// For a gateway, the gateways (`namespace/name`) whose servers on
    /// this port the routes are for; `None` for sidecars (`mesh`).
    gateways: Option<&'a BTreeSet<String>>,
}

impl<'a> Cx<'a> {
    /// The service `host` (an FQDN) refers to, as this proxy sees it.
    fn service(&self, host: &str) -> Option<&'a Service> {
        pick_service(self.inputs, &Hostname::new(host), &self.proxy.namespace)
    }
}

/// A VirtualService and the resource holding it.
type VsRef<'a> = (&'a Resource, &'a VirtualService);

fn route_configuration(
    cx: &Cx<'_>,
    services: &[&Service],
    virtual_services: &MeshVirtualServices<'_>,
) -> RouteConfiguration {
    let mut seen = BTreeSet::new();
    let virtual_hosts: Vec<VirtualHost> = services
        .iter()
        .map(|svc| virtual_host(cx, svc, virtual_services, PortForms::Without))
        .map(|mut vh| {
            // Envoy rejects a domain claimed by two virtual hosts; the first
            // (by host name) keeps it, as Istio's dedupeDomains does.
            vh.domains.retain(|d| seen.insert(d.clone()));
            vh
        })
        .filter(|vh| !vh.domains.is_empty())
        .collect();
    let mut virtual_hosts = names::sort_by_name(virtual_hosts, |vh| &vh.name);
    virtual_hosts.push(catch_all_virtual_host(cx.inputs, cx.proxy));
    RouteConfiguration {
        name: cx.port.to_string(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY_BYTES,
        }),
        // As Istio's sidecar outbound routes: the listener already fixed
        // the port, so `Host: name:9080` matches the domain `name`.
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

/// Whether a virtual host's domains also come with `:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortForms {
    /// Sidecar routes (`ignore_port_in_host_matching`): names only.
    Without,
    /// Proxyless gRPC, which matches its target `host:port`: each name
    /// with and without the port.
    With,
}

fn virtual_host(
    cx: &Cx<'_>,
    svc: &Service,
    virtual_services: &MeshVirtualServices<'_>,
    forms: PortForms,
) -> VirtualHost {
    let routes = virtual_service_for(cx, svc, virtual_services)
        .map(|vs| http_routes(cx, vs))
        .filter(|routes| !routes.is_empty())
        .unwrap_or_else(|| vec![default_route(cx, svc)]);
    VirtualHost {
        name: format!("{}:{}", svc.hostname, cx.port),
        domains: domains(svc, cx.port, &cx.proxy.namespace, forms),
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// Every `Host` a client in namespace `proxy_namespace` may send for `svc`
/// on `port` (Istio's `generateVirtualHostDomains`), sorted: the FQDN;
/// for Kubernetes-style hosts (`name.ns.svc.cluster.local`) `name.ns` and
/// `name.ns.svc`, and the bare `name` from the service's own namespace
/// only; the service's single-IP addresses (IPv6 in brackets); with
/// [`PortForms::With`] each also with `:port`. Sidecars get the names
/// only, as Istio sends them since it sets `ignore_port_in_host_matching`.
pub fn domains(svc: &Service, port: u16, proxy_namespace: &str, forms: PortForms) -> Vec<String> {
    let fqdn = svc.hostname.as_str();
    let mut names = vec![fqdn.to_string()];
    let kube_suffix = format!(".svc.{}", host::DEFAULT_DOMAIN);
    if let Some(short) = fqdn.strip_suffix(&kube_suffix)
        && let Some((name, namespace)) = short.split_once('.')
        && !name.is_empty()
        && !namespace.is_empty()
        && !namespace.contains('.')
    {
        names.push(short.to_string());
        names.push(format!("{short}.svc"));
        if namespace == proxy_namespace {
            names.push(name.to_string());
        }
    }
    for addr in svc.addresses.iter().filter_map(|a| single_ip(a)) {
        names.push(match addr {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let mut out: BTreeSet<String> = BTreeSet::new();
    for name in names {
        if forms == PortForms::With {
            out.insert(format!("{name}:{port}"));
        }
        out.insert(name);
    }
    out.into_iter().collect()
}

/// The address if it names one IP (`10.0.0.1`, `10.0.0.1/32`), not a range.
fn single_ip(addr: &str) -> Option<IpAddr> {
    let (ip, len) = match addr.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (addr, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let full = if ip.is_ipv4() { "32" } else { "128" };
    (len.is_none() || len == Some(full)).then_some(ip)
}

/// The route for a service no VirtualService routes: every path to the
/// whole service, Istio's default retries, no timeout.
fn default_route(cx: &Cx<'_>, svc: &Service) -> Route {
    let host = svc.hostname.as_str();
    let cluster = names::outbound_cluster(cx.port, "", host);
    let hash = actions::service_hash_policy(cx, svc, "");
    let mesh_retries = cx.inputs.config.mesh.default_http_retry_policy.as_ref();
    let mut action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        retry_policy: policies::retry_policy(mesh_retries, hash.is_some()),
        hash_policy: hash.into_iter().collect(),
        ..Default::default()
    };
    policies::set_timeout(&mut action, std::time::Duration::ZERO, cx.proxy.kind);
    Route {
        name: DEFAULT_ROUTE_NAME.to_string(),
        r#match: Some(catch_all_match()),
        decorator: Some(Decorator {
            operation: format!("{host}:{}/*", cx.port),
            ..Default::default()
        }),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

/// `prefix: /`, with nothing else to match.
fn catch_all_match() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
        ..Default::default()
    }
}

/// The virtual host for hosts no service claims, after the proxy's
/// outbound traffic policy ([`super::scope::catch_all`]: its Sidecar's,
/// else the mesh's): passed on — to their original destination, or the
/// Sidecar's egress proxy — when it allows any outbound traffic (Istio's
/// default), answered with 502 when it allows only the registry.
fn catch_all_virtual_host(inputs: Inputs<'_>, proxy: &Proxy) -> VirtualHost {
    let (name, action) = match super::scope::catch_all(inputs, proxy) {
        CatchAll::Passthrough(cluster) => {
            let mut action = RouteAction {
                cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
                ..Default::default()
            };
            policies::set_timeout(&mut action, std::time::Duration::ZERO, proxy.kind);
            ("allow_any", Action::Route(action))
        }
        CatchAll::Blackhole => (
            "block_all",
            Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        ),
    };
    VirtualHost {
        name: name.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: name.to_string(),
            r#match: Some(catch_all_match()),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// The Envoy routes of a VirtualService, in order: one per `match` entry
/// of each HTTP route (one for a route without matches) that applies to
/// this port and proxy. Stops after the first catch-all, as nothing after
/// it can match.
fn http_routes(cx: &Cx<'_>, (resource, vs): VsRef<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.http {
        if http.matches.is_empty() {
            out.extend(actions::translate_route(cx, resource, http, None));
            break;
        }
        let mut catch_all = false;
        for m in http
            .matches
            .iter()
            .filter(|m| matches::applies(cx, m, resource.namespace()))
        {
            if let Some(route) = actions::translate_route(cx, resource, http, Some(m)) {
                catch_all = matches::is_catch_all(&route);
                out.push(route);
                if catch_all {
                    break;
                }
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

/// Services visible from `namespace`, one per host name, by host name.
fn visible_services<'a>(inputs: Inputs<'a>, namespace: &str) -> Vec<&'a Service> {
    inputs
        .registry
        .services
        .keys()
        .filter_map(|host| pick_service(inputs, host, namespace))
        .collect()
}

/// Of the services declaring `host` that `namespace` may see, the one in
/// `namespace` itself, else the first declared.
fn pick_service<'a>(inputs: Inputs<'a>, host: &Hostname, namespace: &str) -> Option<&'a Service> {
    let declared = inputs.registry.services.get(host)?;
    let mut visible = declared.iter().filter(|s| s.visible_from(namespace));
    let first = visible.clone().next();
    visible
        .find(|s| s.namespace == namespace)
        .or(first)
        .map(|s| s.as_ref())
}

/// The VirtualServices that apply to sidecars (no `gateways`, or `mesh`
/// among them) and are exported to a proxy's namespace, in key order, with
/// their hosts completed to FQDN patterns once and the concrete ones
/// indexed, so that finding a service's VirtualService doesn't scan them all.
#[derive(Debug, Default)]
struct MeshVirtualServices<'a> {
    /// Each VirtualService and its hosts as FQDN patterns.
    list: Vec<(VsRef<'a>, Vec<String>)>,
    /// Positions in `list` by concrete host.
    exact: HashMap<String, Vec<usize>>,
    /// Positions in `list` of those with a wildcard host.
    wildcard: Vec<usize>,
}

fn mesh_virtual_services<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> MeshVirtualServices<'a> {
    let mut out = MeshVirtualServices::default();
    let applying = inputs
        .config
        .of_kind(Kind::VirtualService)
        .filter_map(|r| r.spec_as::<VirtualService>().map(|vs| (r.as_ref(), vs)))
        .filter(|(_, vs)| vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh"))
        .filter(|(r, vs)| {
            weft_config::select::exported_to(&vs.export_to, r.namespace(), &proxy.namespace)
        });
    for (r, vs) in applying {
        let at = out.list.len();
        let patterns: Vec<String> = vs
            .hosts
            .iter()
            .map(|h| host::fqdn(h, r.namespace()))
            .collect();
        for p in &patterns {
            if p.starts_with('*') {
                out.wildcard.push(at);
            } else {
                out.exact.entry(p.clone()).or_default().push(at);
            }
        }
        out.list.push(((r, vs), patterns));
    }
    out
}

/// The VirtualService routing `svc`: the one whose host matches it most
/// specifically (exact beats wildcard, longer wildcard beats shorter);
/// among equals, one in the proxy's namespace, then the service's, then
/// the first by namespace and name.
fn virtual_service_for<'a>(
    cx: &Cx<'_>,
    svc: &Service,
    virtual_services: &MeshVirtualServices<'a>,
) -> Option<VsRef<'a>> {
    let host = svc.hostname.as_str();
    let namespace_rank = |ns: &str| {
        if ns == cx.proxy.namespace {
            0
        } else if ns == svc.namespace {
            1
        } else {
            2
        }
    };
    let mut positions: Vec<usize> = virtual_services
        .exact
        .get(host)
        .cloned()
        .unwrap_or_default();
    positions.extend(virtual_services.wildcard.iter().copied());
    positions.sort_unstable();
    positions.dedup();
    positions
        .into_iter()
        .filter_map(|i| {
            let (vs, patterns) = &virtual_services.list[i];
            patterns
                .iter()
                .filter(|pattern| host::matches(pattern, host))
                .map(|pattern| (pattern == host, pattern.len()))
                .max()
                .map(|specificity| (specificity, *vs))
        })
        // Most specific first, then by namespace rank; `min_by` keeps the
        // first of equals, and the list is in key order.
        .min_by(|(sa, (ra, _)), (sb, (rb, _))| {
            sb.cmp(sa)
                .then_with(|| namespace_rank(ra.namespace()).cmp(&namespace_rank(rb.namespace())))
        })
        .map(|(_, vs)| vs)
}
