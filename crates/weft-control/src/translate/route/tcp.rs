//! Where a sidecar's TCP proxy sends a connection to a non-HTTP service:
//! the first `tcp` rule (or, for TLS services, `tls` rule) of the
//! VirtualService routing the service that applies to this port and proxy,
//! else the whole service (`outbound|<port>||<host>`); and where a
//! gateway's TCP and TLS-passthrough servers send connections.

use weft_config::host;
use weft_config::networking::{RouteDestination, TcpRoute, TlsMatchAttributes, VirtualService};
use weft_registry::Service;

use super::actions::target;
use super::gateway::{bound, gateway_virtual_services};
use super::matches::source_applies;
use super::{Cx, VsRef, mesh_virtual_services, virtual_service_for};
use crate::translate::gateway::GatewayPort;
use crate::translate::{Inputs, Proxy, names};

/// A TCP proxy's upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpTarget {
    /// One cluster.
    Cluster(String),
    /// Clusters by weight.
    Weighted(Vec<(String, u32)>),
}

/// Where connections to `svc` on `port` go, for `proxy`.
pub fn tcp_target(inputs: Inputs<'_>, proxy: &Proxy, svc: &Service, port: u16) -> TcpTarget {
    let cx = Cx {
        inputs,
        proxy,
        port,
        gateways: None,
    };
    let virtual_services = mesh_virtual_services(inputs, proxy);
    virtual_service_for(&cx, svc, &virtual_services)
        .and_then(|vs| routed(&cx, svc, vs))
        .unwrap_or_else(|| {
            TcpTarget::Cluster(names::outbound_cluster(port, "", svc.hostname.as_str()))
        })
}

fn routed(cx: &Cx<'_>, svc: &Service, (resource, vs): VsRef<'_>) -> Option<TcpTarget> {
    let tls = svc.port(cx.port).is_some_and(|p| p.protocol.is_tls());
    let routes = if tls {
        vs.tls
            .iter()
            .find(|r| {
                r.matches.iter().any(|m| {
                    tls_applies(cx, m, resource.namespace())
                        && m.sni_hosts.iter().any(|h| {
                            host::matches(
                                &host::fqdn(h, resource.namespace()),
                                svc.hostname.as_str(),
                            )
                        })
                })
            })
            .map(|r| &r.route)?
    } else {
        &first_tcp_rule(cx, vs, resource.namespace())?.route
    };
    destinations(cx, resource.namespace(), routes)
}

/// The first `tcp` rule of `vs` (in `vs_namespace`) that applies here: no
/// match, or a match for this port, gateway and source.
fn first_tcp_rule<'a>(
    cx: &Cx<'_>,
    vs: &'a VirtualService,
    vs_namespace: &str,
) -> Option<&'a TcpRoute> {
    vs.tcp.iter().find(|rule| {
        rule.matches.is_empty()
            || rule.matches.iter().any(|m| {
                source_applies(
                    cx,
                    m.port,
                    &m.gateways,
                    &m.source_labels,
                    &m.source_namespace,
                    vs_namespace,
                )
            })
    })
}

/// Whether a `tls` match's port, gateway and source conditions hold here
/// (its SNI hosts are the caller's).
fn tls_applies(cx: &Cx<'_>, m: &TlsMatchAttributes, vs_namespace: &str) -> bool {
    source_applies(
        cx,
        m.port,
        &m.gateways,
        &m.source_labels,
        &m.source_namespace,
        vs_namespace,
    )
}

/// The TCP proxy target for a rule's destinations (weights of 0 dropped
/// unless there is only one).
fn destinations(cx: &Cx<'_>, vs_namespace: &str, routes: &[RouteDestination]) -> Option<TcpTarget> {
    let mut clusters: Vec<(String, u32)> = routes
        .iter()
        .filter(|d| routes.len() == 1 || d.weight > 0)
        .filter_map(|d| {
            let dest = d.destination.as_ref()?;
            let weight = u32::try_from(d.weight).unwrap_or(0).max(1);
            Some((target(cx, vs_namespace, dest).cluster, weight))
        })
        .collect();
    match clusters.len() {
        0 => None,
        1 => clusters.pop().map(|(c, _)| TcpTarget::Cluster(c)),
        _ => Some(TcpTarget::Weighted(clusters)),
    }
}

/// Where a gateway's TCP server `port` sends connections: the first `tcp`
/// rule applying to the port and its Gateways of the first VirtualService
/// bound to them whose host one of the servers admits. None: the port gets
/// no listener (Istio's gateways don't open a port nothing routes).
pub fn gateway_tcp_target(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    port: u16,
    served: &GatewayPort<'_>,
) -> Option<TcpTarget> {
    let cx = Cx {
        inputs,
        proxy,
        port,
        gateways: Some(&served.gateways),
    };
    gateway_virtual_services(inputs, proxy)
        .into_iter()
        .filter(|(r, vs)| bound(vs, r.namespace(), served))
        .filter(|(r, vs)| {
            vs.hosts.iter().any(|h| {
                !served
                    .admitted(r.namespace(), &host::fqdn(h, r.namespace()))
                    .is_empty()
            })
        })
        .find_map(|(r, vs)| {
            let rule = first_tcp_rule(&cx, vs, r.namespace())?;
            destinations(&cx, r.namespace(), &rule.route)
        })
}

/// Where a gateway's TLS-passthrough server `port` sends connections, by
/// SNI: per `tls` rule match applying to the port and its Gateways, the
/// SNI hosts the servers admit (the more specific name of the two) and the
/// rule's destinations. An SNI host keeps the first rule that claims it,
/// in VirtualService order.
pub fn gateway_tls_targets(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    port: u16,
    served: &GatewayPort<'_>,
) -> Vec<(Vec<String>, TcpTarget)> {
    let cx = Cx {
        inputs,
        proxy,
        port,
        gateways: Some(&served.gateways),
    };
    let mut claimed = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (r, vs) in gateway_virtual_services(inputs, proxy) {
        if !bound(vs, r.namespace(), served) {
            continue;
        }
        for rule in &vs.tls {
            let mut names: Vec<String> = rule
                .matches
                .iter()
                .filter(|m| tls_applies(&cx, m, r.namespace()))
                .flat_map(|m| &m.sni_hosts)
                .flat_map(|sni| served.admitted(r.namespace(), &sni.to_ascii_lowercase()))
                .filter(|sni| !claimed.contains(sni))
                .collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                continue;
            }
            let Some(target) = destinations(&cx, r.namespace(), &rule.route) else {
                continue;
            };
            claimed.extend(names.iter().cloned());
            out.push((names, target));
        }
    }
    out
}
