//! A sidecar's outbound listeners: where its application's connections to
//! services go.
//!
//! Per port number of the services the proxy sees, `0.0.0.0_<port>`:
//! - HTTP ports (and sniffed ones): an HTTP connection manager on route
//!   configuration `"<port>"`; on a sniffed port only for traffic the HTTP
//!   inspector recognises, the rest to the TCP service of the port if there
//!   is exactly one (else where unknown traffic goes, see
//!   [`catch_all`]).
//! - TLS services (TLS, HTTPS): a TCP proxy chain per service matched by
//!   SNI (its host name).
//! - TCP services: a TCP proxy chain; when several share the port, one per
//!   service matched by server name as well — the SNI Envoy reads, and the
//!   host of an explicit-mode `CONNECT` in our proxy — the first by host
//!   name also taking everything else (Istio keeps one too).
//!
//! A TCP or TLS service with a single-IP address gets its own
//! `<address>_<port>` listener instead. Where a TCP service's port is also
//! an HTTP port of another service, HTTP wins, as in Istio.
//!
//! The proxy's Sidecar decides which services each port gets and how
//! ([`crate::translate::scope`]): a port an egress listener with that
//! `port` owns gets only the services it imports, proxied with the
//! listener's protocol; an egress listener's `bind` puts its listeners on
//! `<bind>_<port>` (no per-address listeners then).
//!
//! They don't bind (unless a Sidecar says so, see
//! [`crate::translate::scope::Placement`]): captured sidecars find them by
//! original destination from `virtualOutbound` (0.0.0.0:15001, bound,
//! everything else to `PassthroughCluster`, the Sidecar's egress proxy or,
//! under `REGISTRY_ONLY`, `BlackHoleCluster`); explicit-mode proxies by
//! the target of each proxy request.

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_config::networking::Protocol;
use weft_registry::Service;
use weft_xds::pb::envoy::config::core::v3::TrafficDirection;
use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch, Listener};
use weft_xds::pb::google::protobuf::BoolValue;

use super::{
    TcpSettings, chain, http_connection_manager, listener, listener_name, rds, tcp_proxy,
    tcp_proxy_with,
};
use crate::translate::envoy::socket_address;
use crate::translate::route::{TcpTarget, tcp_target};
use crate::translate::scope::{CatchAll, Placement, catch_all};
use crate::translate::{Inputs, Interception, Proxy};

/// The captured sidecar's outbound entry point.
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// Its port.
pub const VIRTUAL_OUTBOUND_PORT: u16 = 15001;

/// A sidecar's outbound listeners.
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    let mut by_port: BTreeMap<u16, PortServices<'_>> = BTreeMap::new();
    let mut out = Vec::new();
    for svc in inputs.registry.all_services() {
        for port in &svc.ports {
            let Some(placement) = proxy.placement(svc, port.number) else {
                continue;
            };
            let entry = by_port.entry(port.number).or_default();
            match placement.protocol.unwrap_or(port.protocol) {
                p if p.is_http() => entry.http = true,
                Protocol::Unsupported => entry.sniffed.push(svc),
                Protocol::Udp => {}
                p => match vip(svc).filter(|_| placement.bind.is_none()) {
                    Some(ip) => out.push(vip_listener(inputs, proxy, svc, ip, port.number, p)),
                    None if p.is_tls() => entry.tls.push(svc),
                    None => entry.tcp.push(svc),
                },
            }
            entry.placement = Some(placement);
        }
    }
    let catch_all = catch_all(inputs, proxy);
    for (port, services) in by_port {
        let address = services.address();
        if address.parse::<IpAddr>().is_err() {
            tracing::debug!(target: "weft::xds", port, bind = address, "egress listener bind is not an IP; no listener");
            continue;
        }
        let chains = services.chains(inputs, proxy, port, &catch_all);
        if !chains.is_empty() {
            out.push(listener(
                listener_name(address, port),
                address,
                port,
                TrafficDirection::Outbound,
                services.bind_to_port(),
                chains,
            ));
        }
    }
    if proxy.interception != Interception::None {
        out.push(virtual_outbound(&catch_all));
    }
    out
}

/// The services on one port number, by how they are proxied.
#[derive(Default)]
struct PortServices<'a> {
    http: bool,
    sniffed: Vec<&'a Service>,
    tls: Vec<&'a Service>,
    tcp: Vec<&'a Service>,
    /// Where the port's listener goes (one egress listener owns a port:
    /// the same for every service on it).
    placement: Option<Placement>,
}

impl PortServices<'_> {
    /// The listener's address: the egress listener's `bind`, else `0.0.0.0`.
    fn address(&self) -> &str {
        self.placement
            .as_ref()
            .and_then(|p| p.bind.as_deref())
            .unwrap_or("0.0.0.0")
    }

    fn bind_to_port(&self) -> bool {
        self.placement.as_ref().is_some_and(|p| p.bind_to_port)
    }

    fn chains(
        &self,
        inputs: Inputs<'_>,
        proxy: &Proxy,
        port: u16,
        catch_all: &CatchAll,
    ) -> Vec<FilterChain> {
        let address = self.address();
        let stat = |host: &str| format!("outbound|{port}||{host}");
        let mut chains = Vec::new();
        for svc in sorted(&self.tls) {
            let host = svc.hostname.as_str();
            chains.push(chain(
                stat(host),
                Some(FilterChainMatch {
                    server_names: vec![host.to_string()],
                    transport_protocol: "tls".to_string(),
                    ..FilterChainMatch::default()
                }),
                service_tcp_proxy(inputs, proxy, svc, port, stat(host)),
            ));
        }
        let http = self.http || !self.sniffed.is_empty();
        if http {
            let hcm = http_connection_manager(
                inputs,
                super::headers::Class::SidecarOutbound,
                format!("outbound_{address}_{port}"),
                rds(&port.to_string()),
            );
            let matches = (!self.sniffed.is_empty()).then(|| FilterChainMatch {
                application_protocols: super::SNIFFED_HTTP.map(str::to_string).to_vec(),
                ..FilterChainMatch::default()
            });
            chains.push(chain(listener_name(address, port), matches, hcm));
            if let [only] = self.sniffed.as_slice()
                && !self.http
            {
                let host = only.hostname.as_str();
                chains.push(chain(
                    stat(host),
                    None,
                    service_tcp_proxy(inputs, proxy, only, port, stat(host)),
                ));
            } else if !self.sniffed.is_empty() {
                // Istio's fallthrough chain: where unknown traffic goes.
                let cluster = catch_all.cluster().to_string();
                chains.push(chain(
                    cluster.clone(),
                    None,
                    tcp_proxy(cluster.clone(), TcpTarget::Cluster(cluster)),
                ));
            }
            if !self.tcp.is_empty() {
                tracing::debug!(
                    target: "weft::xds",
                    port,
                    "TCP services share an HTTP port without an address of their own; HTTP wins"
                );
            }
            return chains;
        }
        let tcp = sorted(&self.tcp);
        if tcp.len() > 1 {
            for svc in &tcp {
                let host = svc.hostname.as_str();
                chains.push(chain(
                    stat(host),
                    Some(FilterChainMatch {
                        server_names: vec![host.to_string()],
                        ..FilterChainMatch::default()
                    }),
                    service_tcp_proxy(inputs, proxy, svc, port, stat(host)),
                ));
            }
        }
        if let Some(first) = tcp.first() {
            let host = first.hostname.as_str();
            chains.push(chain(
                format!("{}/default", stat(host)),
                None,
                service_tcp_proxy(inputs, proxy, first, port, stat(host)),
            ));
        }
        chains
    }
}

/// The TCP proxy to `svc`'s port: its route's target, with its
/// DestinationRule's TCP settings.
fn service_tcp_proxy(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    svc: &Service,
    port: u16,
    stat: String,
) -> Filter {
    let target = tcp_target(inputs, proxy, svc, port);
    tcp_proxy_with(stat, target, TcpSettings::of(inputs, proxy, svc))
}

fn sorted<'a>(services: &[&'a Service]) -> Vec<&'a Service> {
    let mut v = services.to_vec();
    v.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    v.dedup_by(|a, b| a.hostname == b.hostname);
    v
}

/// The service's own IP, if it declares exactly one single-IP address.
fn vip(svc: &Service) -> Option<IpAddr> {
    match svc.addresses.as_slice() {
        [one] => {
            let (ip, len) = one.split_once('/').unwrap_or((one, ""));
            let ip: IpAddr = ip.parse().ok()?;
            let full = if ip.is_ipv4() { "32" } else { "128" };
            (len.is_empty() || len == full).then_some(ip)
        }
        _ => None,
    }
}

fn vip_listener(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    svc: &Service,
    ip: IpAddr,
    port: u16,
    protocol: Protocol,
) -> Listener {
    let host = svc.hostname.as_str();
    let stat = format!("outbound|{port}||{host}");
    let matches = protocol.is_tls().then(|| FilterChainMatch {
        server_names: vec![host.to_string()],
        transport_protocol: "tls".to_string(),
        ..FilterChainMatch::default()
    });
    let address = ip.to_string();
    listener(
        listener_name(&address, port),
        &address,
        port,
        TrafficDirection::Outbound,
        false,
        vec![chain(
            stat.clone(),
            matches,
            service_tcp_proxy(inputs, proxy, svc, port, stat),
        )],
    )
}

/// 0.0.0.0:15001, bound, handing each connection to the listener of its
/// original destination; what none claims goes where [`catch_all`] says:
/// `PassthroughCluster` or the Sidecar's egress proxy (`ALLOW_ANY`),
/// `BlackHoleCluster` (`REGISTRY_ONLY`).
fn virtual_outbound(catch_all: &CatchAll) -> Listener {
    let cluster = catch_all.cluster();
    let default = chain(
        cluster.to_string(),
        None,
        tcp_proxy(cluster.to_string(), TcpTarget::Cluster(cluster.to_string())),
    );
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        address: Some(socket_address("0.0.0.0", VIRTUAL_OUTBOUND_PORT)),
        use_original_dst: Some(BoolValue { value: true }),
        default_filter_chain: Some(default),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Listener::default()
    }
}
