//! Which Gateway servers a gateway proxy serves: the servers of every
//! Gateway whose `selector` its labels satisfy (an empty selector selects
//! every gateway), grouped by port.
//!
//! HTTP-family servers (HTTP, HTTP2, GRPC, GRPC-Web) become one listener
//! per port (see [`super::listener`]) with routes `http.<port>` (see
//! [`super::route`]). Servers that terminate or pass through TLS, and TCP
//! servers, are not served yet: terminating TLS needs the workload
//! certificates the security work brings; they are skipped with a debug
//! log.

use std::collections::{BTreeMap, BTreeSet};

use weft_config::Kind;
use weft_config::networking::{Gateway, Protocol, Server};

use super::{Inputs, Proxy, ProxyKind};

/// The HTTP servers on one port of a gateway proxy.
#[derive(Clone, Debug, Default)]
pub struct GatewayPort<'a> {
    /// The Gateways (`namespace/name`) with servers on the port.
    pub gateways: BTreeSet<String>,
    /// The servers, each with its Gateway's namespace.
    pub servers: Vec<(&'a str, &'a Server)>,
    /// The port name the first server gives (to find the workload's port).
    pub name: String,
}

/// The route configuration name for a gateway's HTTP port (Istio's).
pub fn route_name(port: u16) -> String {
    format!("http.{port}")
}

/// The HTTP servers `proxy` serves, by port number.
pub fn http_ports<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> BTreeMap<u16, GatewayPort<'a>> {
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
            let terminates_tls = server.tls.is_some() && protocol != Protocol::Http;
            if !protocol.is_http() || terminates_tls {
                tracing::debug!(
                    target: "weft::xds",
                    gateway = %name,
                    port = number,
                    protocol = protocol.as_str(),
                    "gateway server not served yet (only plaintext HTTP servers are)"
                );
                continue;
            }
            let entry = out.entry(number).or_default();
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
