//! Where a sidecar's TCP proxy sends a connection to a non-HTTP service:
//! the first `tcp` rule (or, for TLS services, `tls` rule) of the
//! VirtualService routing the service that applies to this port and proxy,
//! else the whole service (`outbound|<port>||<host>`).

use weft_config::host;
use weft_registry::Service;

use super::actions::target;
use super::matches::source_applies;
use super::{Cx, VsRef, mesh_virtual_services, virtual_service_for};
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
                    source_applies(
                        cx,
                        m.port,
                        &m.gateways,
                        &m.source_labels,
                        &m.source_namespace,
                        resource.namespace(),
                    ) && m.sni_hosts.iter().any(|h| {
                        host::matches(&host::fqdn(h, resource.namespace()), svc.hostname.as_str())
                    })
                })
            })
            .map(|r| &r.route)?
    } else {
        vs.tcp
            .iter()
            .find(|r| {
                r.matches.is_empty()
                    || r.matches.iter().any(|m| {
                        source_applies(
                            cx,
                            m.port,
                            &m.gateways,
                            &m.source_labels,
                            &m.source_namespace,
                            resource.namespace(),
                        )
                    })
            })
            .map(|r| &r.route)?
    };
    let mut clusters: Vec<(String, u32)> = routes
        .iter()
        .filter(|d| routes.len() == 1 || d.weight > 0)
        .filter_map(|d| {
            let dest = d.destination.as_ref()?;
            let weight = u32::try_from(d.weight).unwrap_or(0).max(1);
            Some((target(cx, resource.namespace(), dest).cluster, weight))
        })
        .collect();
    match clusters.len() {
        0 => None,
        1 => clusters.pop().map(|(c, _)| TcpTarget::Cluster(c)),
        _ => Some(TcpTarget::Weighted(clusters)),
    }
}
