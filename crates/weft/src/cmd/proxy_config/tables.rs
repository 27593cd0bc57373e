//! The tables of `weft proxy-config`, read from the xDS resources the way
//! `istioctl proxy-config` reads an Envoy's: Istio's cluster names
//! (`outbound|9080|v1|reviews.default.svc.cluster.local`), filter chain
//! matches, the filter a chain ends in, and `filter_metadata.istio.config`
//! for the DestinationRule / VirtualService a resource came from.

use weft_xds::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use weft_xds::pb::envoy::config::core::v3::{Address, Metadata, address};
use weft_xds::pb::google::protobuf::value;

mod clusters;
mod endpoints;
mod listeners;
mod routes;

pub use clusters::{ClusterFilter, clusters};
pub use endpoints::{EndpointFilter, endpoints};
pub use listeners::{ListenerFilter, listeners};
pub use routes::{RouteFilter, routes};

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

#[cfg(test)]
mod tests;
