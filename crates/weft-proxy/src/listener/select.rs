//! Filter chain selection, Envoy's way (`FilterChainMatch`): the criteria
//! are tried in order — destination port, server name (SNI), transport
//! protocol, application protocols — and at each one the chains that name
//! a matching value win over the chains that don't name any; a chain that
//! names only non-matching values is out. Server names match exactly
//! first, then by the longest `*.suffix` wildcard. When nothing is left
//! the listener's default chain (if any) serves the connection.

use super::{FilterChain, Listener};
use crate::sniff::{Detected, Wanted};

/// What is known of a connection when its chain is chosen.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo<'a> {
    /// The (original) destination port.
    pub destination_port: u16,
    /// The TLS server name, if a ClientHello named one.
    pub server_name: Option<&'a str>,
    /// `tls` or `raw_buffer`.
    pub transport: &'a str,
    /// ALPN, or the sniffed HTTP protocol.
    pub application_protocols: &'a [String],
}

impl<'a> ConnectionInfo<'a> {
    /// The info of a connection to `port` that was inspected as `d`.
    pub fn new(destination_port: u16, d: &'a Detected) -> Self {
        ConnectionInfo {
            destination_port,
            server_name: d.server_name.as_deref(),
            transport: if d.transport.is_empty() {
                "raw_buffer"
            } else {
                d.transport
            },
            application_protocols: &d.application_protocols,
        }
    }
}

impl Listener {
    /// The chains that can serve a connection to `port`, before inspection.
    fn port_candidates(&self, port: u16) -> Vec<&FilterChain> {
        let all: Vec<&FilterChain> = self.chains.iter().collect();
        narrow(
            all,
            |c| c.destination_port.is_some(),
            |c| c.destination_port == Some(port),
        )
    }

    /// Which inspectors a connection to `port` needs: TLS if a candidate
    /// chain matches on server name or `tls`, HTTP if one matches on
    /// application protocols (Envoy runs `tls_inspector` and
    /// `http_inspector` for these).
    pub fn wanted(&self, port: u16) -> Wanted {
        let c = self.port_candidates(port);
        Wanted {
            tls: c
                .iter()
                .any(|c| !c.server_names.is_empty() || c.transport_protocol == "tls"),
            http: c.iter().any(|c| !c.application_protocols.is_empty()),
        }
    }

    /// The chain for a connection: the most specific match, else the default.
    pub fn select(&self, info: &ConnectionInfo<'_>) -> Option<&FilterChain> {
        let c = self.port_candidates(info.destination_port);
        let c = by_server_name(c, info.server_name);
        let c = narrow(
            c,
            |c| !c.transport_protocol.is_empty(),
            |c| c.transport_protocol == info.transport,
        );
        let c = narrow(
            c,
            |c| !c.application_protocols.is_empty(),
            |c| {
                c.application_protocols
                    .iter()
                    .any(|p| info.application_protocols.contains(p))
            },
        );
        c.into_iter().next().or(self.default_chain.as_ref())
    }
}

/// The chains naming a matching value if there are any, else those naming none.
fn narrow(
    chains: Vec<&FilterChain>,
    names_one: impl Fn(&FilterChain) -> bool,
    matches: impl Fn(&FilterChain) -> bool,
) -> Vec<&FilterChain> {
    let matching: Vec<&FilterChain> = chains
        .iter()
        .copied()
        .filter(|c| names_one(c) && matches(c))
        .collect();
    if matching.is_empty() {
        chains.into_iter().filter(|c| !names_one(c)).collect()
    } else {
        matching
    }
}

/// Exact server name, then the longest wildcard suffix, then no names.
fn by_server_name<'a>(chains: Vec<&'a FilterChain>, sni: Option<&str>) -> Vec<&'a FilterChain> {
    let names = |c: &FilterChain| !c.server_names.is_empty();
    if let Some(sni) = sni {
        let sni = sni.to_ascii_lowercase();
        let has = |c: &FilterChain, name: &str| {
            c.server_names.iter().any(|s| s.eq_ignore_ascii_case(name))
        };
        let exact: Vec<_> = chains.iter().copied().filter(|c| has(c, &sni)).collect();
        if !exact.is_empty() {
            return exact;
        }
        for (i, _) in sni.match_indices('.') {
            let wildcard = format!("*{}", &sni[i..]);
            let w: Vec<_> = chains
                .iter()
                .copied()
                .filter(|c| has(c, &wildcard))
                .collect();
            if !w.is_empty() {
                return w;
            }
        }
    }
    chains.into_iter().filter(|c| !names(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::{Direction, NetworkFilter, Routes};
    use crate::route::Target;

    fn chain(
        name: &str,
        port: Option<u16>,
        names: &[&str],
        transport: &str,
        alpn: &[&str],
    ) -> FilterChain {
        FilterChain {
            name: name.into(),
            destination_port: port,
            server_names: names.iter().map(|s| s.to_string()).collect(),
            transport_protocol: transport.into(),
            application_protocols: alpn.iter().map(|s| s.to_string()).collect(),
            filter: if alpn.is_empty() {
                NetworkFilter::Tcp(Target::Cluster(name.into()))
            } else {
                NetworkFilter::Http(Routes::Rds(name.into()))
            },
            tcp_idle_timeout: crate::tcp::DEFAULT_IDLE_TIMEOUT,
            tcp_max_duration: None,
            forwarded: Default::default(),
        }
    }

    fn listener(chains: Vec<FilterChain>, default: Option<FilterChain>) -> Listener {
        Listener {
            name: "l".into(),
            address: None,
            bind: false,
            direction: Direction::Outbound,
            chains,
            default_chain: default,
        }
    }

    fn pick(
        l: &Listener,
        port: u16,
        sni: Option<&str>,
        transport: &str,
        alpn: &[&str],
    ) -> Option<String> {
        let alpn: Vec<String> = alpn.iter().map(|s| s.to_string()).collect();
        l.select(&ConnectionInfo {
            destination_port: port,
            server_name: sni,
            transport,
            application_protocols: &alpn,
        })
        .map(|c| c.name.clone())
    }

    #[test]
    fn destination_port_then_default() {
        let l = listener(
            vec![
                chain("p80", Some(80), &[], "", &[]),
                chain("p81", Some(81), &[], "", &[]),
            ],
            Some(chain("passthrough", None, &[], "", &[])),
        );
        assert_eq!(
            pick(&l, 80, None, "raw_buffer", &[]).as_deref(),
            Some("p80")
        );
        assert_eq!(
            pick(&l, 81, None, "raw_buffer", &[]).as_deref(),
            Some("p81")
        );
        assert_eq!(
            pick(&l, 82, None, "raw_buffer", &[]).as_deref(),
            Some("passthrough")
        );
        assert_eq!(l.wanted(80), Wanted::default());
    }

    #[test]
    fn sni_exact_then_wildcard_then_none() {
        let l = listener(
            vec![
                chain("a", None, &["a.example.com"], "tls", &[]),
                chain("wild", None, &["*.example.com"], "tls", &[]),
                chain("deeper", None, &["*.b.example.com"], "tls", &[]),
                chain("plain", None, &[], "", &[]),
            ],
            None,
        );
        assert_eq!(
            pick(&l, 443, Some("A.example.com"), "tls", &[]).as_deref(),
            Some("a")
        );
        assert_eq!(
            pick(&l, 443, Some("c.example.com"), "tls", &[]).as_deref(),
            Some("wild")
        );
        assert_eq!(
            pick(&l, 443, Some("x.b.example.com"), "tls", &[]).as_deref(),
            Some("deeper")
        );
        assert_eq!(
            pick(&l, 443, Some("other.org"), "tls", &[]).as_deref(),
            Some("plain")
        );
        assert_eq!(
            pick(&l, 443, None, "raw_buffer", &[]).as_deref(),
            Some("plain")
        );
        assert!(l.wanted(443).tls && !l.wanted(443).http);
    }

    #[test]
    fn transport_and_application_protocols() {
        let l = listener(
            vec![
                chain("http", None, &[], "", &["http/1.1", "h2c"]),
                chain("tls", None, &[], "tls", &[]),
                chain("tcp", None, &[], "", &[]),
            ],
            None,
        );
        assert_eq!(
            pick(&l, 1, None, "raw_buffer", &["http/1.1"]).as_deref(),
            Some("http")
        );
        assert_eq!(
            pick(&l, 1, None, "raw_buffer", &["h2c"]).as_deref(),
            Some("http")
        );
        assert_eq!(pick(&l, 1, None, "raw_buffer", &[]).as_deref(), Some("tcp"));
        assert_eq!(
            pick(&l, 1, Some("x"), "tls", &["h2"]).as_deref(),
            Some("tls")
        );
        let w = l.wanted(1);
        assert!(w.tls && w.http);
        // A chain naming only values that don't match is never chosen.
        let only = listener(vec![chain("tls", None, &["a"], "tls", &[])], None);
        assert_eq!(pick(&only, 1, None, "raw_buffer", &[]), None);
        assert_eq!(pick(&only, 1, Some("b"), "tls", &[]), None);
    }
}
