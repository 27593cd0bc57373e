//! Which Gateway servers a gateway proxy serves: the servers of every
//! Gateway whose `selector` its labels satisfy (an empty selector selects
//! every gateway), grouped by port.
//!
//! - HTTP-family servers (HTTP, HTTP2, GRPC, GRPC-Web) become one listener
//!   per port (see [`super::listener`]) with routes `http.<port>` (see
//!   [`super::route`]);
//! - TCP servers (TCP, MONGO, REDIS, MYSQL) get a TCP proxy to the first
//!   `tcp` rule of a VirtualService bound to the Gateway;
//! - TLS and HTTPS servers in `PASSTHROUGH` mode get a filter chain per SNI
//!   host of the bound VirtualServices' `tls` rules, the connection passed
//!   on still encrypted.
//!
//! Servers that terminate TLS (`SIMPLE`, `MUTUAL`, `ISTIO_MUTUAL`,
//! `OPTIONAL_MUTUAL`) and `AUTO_PASSTHROUGH` ones are not served yet: they
//! need the certificates (SDS) the security work brings. They are skipped
//! with a warning, as is a server whose port another kind of server took.

use std::collections::{BTreeMap, BTreeSet};

use weft_config::Kind;
use weft_config::networking::{Gateway, Protocol, Server, ServerTlsMode};

use super::{Inputs, Proxy, ProxyKind};

/// How a gateway serves the connections of a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Serving {
    /// HTTP routes (`http.<port>`).
    #[default]
    Http,
    /// A TCP proxy (VirtualService `tcp` rules).
    Tcp,
    /// TLS passed through by SNI (VirtualService `tls` rules).
    Passthrough,
}

impl Serving {
    /// How `server` is served, or why it is not.
    fn of(server: &Server, protocol: Protocol) -> Result<Serving, &'static str> {
        let mode = server.tls.as_ref().map(|t| t.mode);
        if protocol.is_http() {
            // A plaintext HTTP server may carry `tls` only for httpsRedirect.
            return if mode.is_none() || protocol == Protocol::Http {
                Ok(Serving::Http)
            } else {
                Err("terminating TLS needs the workload certificates (not yet)")
            };
        }
        match (protocol.is_tls(), mode) {
            (true, Some(ServerTlsMode::Passthrough)) => Ok(Serving::Passthrough),
            (true, Some(ServerTlsMode::AutoPassthrough)) => {
                Err("AUTO_PASSTHROUGH (multi-network) is not supported yet")
            }
            (true, _) => Err("terminating TLS needs the workload certificates (not yet)"),
            (false, None) if protocol.is_tcp() => Ok(Serving::Tcp),
            (false, Some(_)) if protocol.is_tcp() => {
                Err("terminating TLS needs the workload certificates (not yet)")
            }
            (false, _) => Err("unsupported protocol"),
        }
    }
}

/// The servers on one port of a gateway proxy.
#[derive(Clone, Debug, Default)]
pub struct GatewayPort<'a> {
    /// How the port is served (the first server's kind; servers of
    /// another kind on the same port are skipped).
    pub serving: Serving,
    /// The Gateways (`namespace/name`) with servers on the port.
    pub gateways: BTreeSet<String>,
    /// The servers, each with its Gateway's namespace.
    pub servers: Vec<(&'a str, &'a Server)>,
    /// The port name the first server gives (to find the workload's port).
    pub name: String,
}

impl GatewayPort<'_> {
    /// The more specific of `host` and a host of one of the port's servers
    /// admitting a VirtualService in `vs_namespace` (see [`admitted`]),
    /// for each server that admits it.
    pub fn admitted(&self, vs_namespace: &str, host: &str) -> BTreeSet<String> {
        self.servers
            .iter()
            .flat_map(|(gw_ns, server)| {
                server
                    .hosts
                    .iter()
                    .filter_map(|h| admitted(h, gw_ns, vs_namespace, host))
            })
            .collect()
    }
}

/// The route configuration name for a gateway's HTTP port (Istio's).
pub fn route_name(port: u16) -> String {
    format!("http.{port}")
}

/// The HTTP servers `proxy` serves, by port number.
pub fn http_ports<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> BTreeMap<u16, GatewayPort<'a>> {
    let mut out = ports(inputs, proxy);
    out.retain(|_, p| p.serving == Serving::Http);
    out
}

/// Every server `proxy` serves, by port number.
pub fn ports<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> BTreeMap<u16, GatewayPort<'a>> {
    let mut out: BTreeMap<u16, GatewayPort<'a>> = BTreeMap::new();
    if proxy.kind != ProxyKind::Gateway {
        return out;
    }
    for resource in inputs.config.of_kind(Kind::Gateway) {
        let Some(gateway) = resource.spec_as::<Gateway>() else {
            continue;
        };
        if !weft_config::select::selects(&gateway.selector, &proxy.labels) {
            continue;
        }
        let name = format!("{}/{}", resource.namespace(), resource.name());
        for server in &gateway.servers {
            let Some(port) = &server.port else { continue };
            let Ok(number) = u16::try_from(port.number) else {
                continue;
            };
            let protocol = port.protocol();
            let serving = match Serving::of(server, protocol) {
                Ok(s) => s,
                Err(why) => {
                    tracing::warn!(
                        target: "weft::xds",
                        gateway = %name,
                        port = number,
                        protocol = protocol.as_str(),
                        "gateway server not served: {why}"
                    );
                    continue;
                }
            };
            let entry = out.entry(number).or_insert_with(|| GatewayPort {
                serving,
                ..GatewayPort::default()
            });
            if entry.serving != serving {
                tracing::warn!(
                    target: "weft::xds",
                    gateway = %name,
                    port = number,
                    protocol = protocol.as_str(),
                    "gateway server not served: another server on the port takes {:?} traffic",
                    entry.serving
                );
                continue;
            }
            entry.gateways.insert(name.clone());
            entry.servers.push((resource.namespace(), server));
            if entry.name.is_empty() {
                entry.name = port.name.clone();
            }
        }
    }
    out
}

/// Whether a server host entry (`host`, `namespace/host`, with `*` and
/// `.` for the Gateway's own namespace) admits a VirtualService in
/// `vs_namespace` for `host`; the more specific host name if so.
pub fn admitted(
    server_host: &str,
    gateway_namespace: &str,
    vs_namespace: &str,
    host: &str,
) -> Option<String> {
    let (ns, pattern) = server_host.split_once('/').unwrap_or(("*", server_host));
    let ns_ok = match ns {
        "*" => true,
        "." => vs_namespace == gateway_namespace,
        ns => vs_namespace == ns,
    };
    if !ns_ok {
        return None;
    }
    let pattern = pattern.to_ascii_lowercase();
    if weft_config::host::matches(&pattern, host) {
        Some(host.to_string())
    } else if weft_config::host::matches(host, &pattern) {
        Some(pattern)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts_admit_virtual_service_hosts() {
        assert_eq!(admitted("*", "gw", "shop", "a.com"), Some("a.com".into()));
        assert_eq!(admitted("a.com", "gw", "shop", "*"), Some("a.com".into()));
        assert_eq!(
            admitted("shop/*.a.com", "gw", "shop", "x.a.com"),
            Some("x.a.com".into())
        );
        assert_eq!(admitted("other/*", "gw", "shop", "a.com"), None);
        assert_eq!(admitted("./*", "gw", "shop", "a.com"), None);
        assert_eq!(
            admitted("./*", "shop", "shop", "a.com"),
            Some("a.com".into())
        );
        assert_eq!(admitted("b.com", "gw", "shop", "a.com"), None);
    }
}
