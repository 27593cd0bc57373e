//! What to intercept: the typed form of istio-iptables' flags.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use crate::Error;

/// The proxy's outbound listener (Istio's `ProxyPort`, `-p`).
pub const OUTBOUND_PORT: u16 = 15001;
/// The proxy's inbound listener (Istio's `InboundCapturePort`, `-z`).
pub const INBOUND_PORT: u16 = 15006;
/// The uid (and gid) Istio's sidecar runs as.
pub const PROXY_UID: u32 = 1337;
/// The proxy's own readiness port (istio-agent's `/healthz/ready`).
pub const READINESS_PORT: u16 = 15021;
/// Inbound ports never captured: the admin API (15000), the agent (15020),
/// readiness (15021) and Prometheus stats (15090) — the ports Istio's
/// injector always adds to `excludeInboundPorts`, plus Weft's admin port.
pub const EXCLUDED_INBOUND_PORTS: [u16; 4] = [15000, 15020, READINESS_PORT, 15090];

/// The mark TPROXY puts on inbound packets (Istio's `InboundTProxyMark`).
pub const TPROXY_MARK: u32 = 1337;
/// The mark on the proxy's own connections to the app over `lo` in TPROXY
/// mode (Istio's `OutboundMark`): they are not captured again.
pub const OUTBOUND_MARK: u32 = 1338;
/// The routing table that delivers TPROXY-marked packets locally (Istio's
/// `InboundTProxyRouteTable`).
pub const TPROXY_ROUTE_TABLE: u32 = 133;

/// How inbound connections reach the proxy (Istio's
/// `--inbound-interception-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InboundMode {
    /// nat `REDIRECT`: the proxy sees the client's address as the source;
    /// the app sees the proxy's.
    #[default]
    Redirect,
    /// mangle `TPROXY` with policy routing: the destination is kept on the
    /// socket, and a proxy that binds the client's address upstream (as
    /// Envoy's `original_src` does) shows the app the real client. The
    /// proxy's inbound listener must set `IP_TRANSPARENT`.
    Tproxy,
}

impl FromStr for InboundMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "REDIRECT" => Ok(InboundMode::Redirect),
            "TPROXY" => Ok(InboundMode::Tproxy),
            _ => Err(Error::InvalidConfig(format!(
                "`{s}` is not an interception mode (REDIRECT or TPROXY)"
            ))),
        }
    }
}

/// The interception rules to install, for IPv4 and (when `ipv6`) IPv6.
///
/// `Config::default()` is what Istio's injector asks of istio-iptables:
/// capture every inbound port but the proxy's own, every outbound
/// destination, and exempt uid and gid 1337.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Uids whose traffic is the proxy's own and never redirected
    /// (`--proxy-uid`). Default `[1337]`.
    pub proxy_uids: Vec<u32>,
    /// Gids whose traffic is the proxy's own (`--proxy-gid`). Default `[1337]`.
    pub proxy_gids: Vec<u32>,
    /// Where outbound TCP is redirected (`--outbound-port`). Default 15001.
    pub outbound_port: u16,
    /// Where inbound TCP is redirected (`--inbound-port`). Default 15006.
    pub inbound_port: u16,
    /// Inbound destination ports to capture (`--inbound-ports`). Default all.
    pub inbound_ports: Ports,
    /// Inbound ports left alone when `inbound_ports` is all
    /// (`--exclude-inbound-ports`). Default [`EXCLUDED_INBOUND_PORTS`].
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports left alone (`--exclude-outbound-ports`).
    /// Default none.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations to capture (`--include-outbound-cidrs`).
    /// Default all.
    pub include_outbound_cidrs: Cidrs,
    /// Outbound destinations left alone (`--exclude-outbound-cidrs`);
    /// checked before the inclusions. Default none.
    pub exclude_outbound_cidrs: Vec<IpNet>,
    /// Also install the IPv6 rules with ip6tables (`--ipv6`). Default off.
    pub ipv6: bool,
    /// How inbound connections are captured
    /// (`--inbound-interception-mode`). Default REDIRECT.
    pub inbound_mode: InboundMode,
    /// TPROXY mode: the packet mark (`--inbound-tproxy-mark`). Default 1337.
    pub tproxy_mark: u32,
    /// TPROXY mode: the routing table for marked packets
    /// (`--inbound-tproxy-route-table`). Default 133.
    pub tproxy_route_table: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            proxy_uids: vec![PROXY_UID],
            proxy_gids: vec![PROXY_UID],
            outbound_port: OUTBOUND_PORT,
            inbound_port: INBOUND_PORT,
            inbound_ports: Ports::All,
            exclude_inbound_ports: EXCLUDED_INBOUND_PORTS.to_vec(),
            exclude_outbound_ports: Vec::new(),
            include_outbound_cidrs: Cidrs::All,
            exclude_outbound_cidrs: Vec::new(),
            ipv6: false,
            inbound_mode: InboundMode::Redirect,
            tproxy_mark: TPROXY_MARK,
            tproxy_route_table: TPROXY_ROUTE_TABLE,
        }
    }
}

impl Config {
    /// Checks what the rules can't express or would make loop.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidConfig(msg));
        if self.proxy_uids.is_empty() && self.proxy_gids.is_empty() {
            return invalid(
                "no proxy uid or gid: the proxy's own connections would be redirected back to it"
                    .into(),
            );
        }
        for (what, port) in [
            ("outbound port", self.outbound_port),
            ("inbound port", self.inbound_port),
        ] {
            if port == 0 {
                return invalid(format!("{what} 0"));
            }
        }
        let lists = [
            ("inbound ports", self.inbound_ports.list()),
            ("excluded inbound ports", &self.exclude_inbound_ports[..]),
            ("excluded outbound ports", &self.exclude_outbound_ports[..]),
        ];
        for (what, ports) in lists {
            if ports.contains(&0) {
                return invalid(format!("{what}: port 0"));
            }
        }
        if self.inbound_mode == InboundMode::Tproxy {
            if self.tproxy_mark == 0 || self.tproxy_mark == OUTBOUND_MARK {
                return invalid(format!(
                    "TPROXY mark {}: must be non-zero and not {OUTBOUND_MARK} (the proxy's own mark)",
                    self.tproxy_mark
                ));
            }
            if matches!(self.tproxy_route_table, 0 | 253..=255) {
                return invalid(format!(
                    "TPROXY route table {}: 0, 253 (default), 254 (main) and 255 (local) are the kernel's",
                    self.tproxy_route_table
                ));
            }
        }
        Ok(())
    }
}

/// A set of ports: all of them (`*`) or a list (`80,443`; empty for none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Every port.
    All,
    /// These ports (none when empty).
    List(Vec<u16>),
}

impl Ports {
    fn list(&self) -> &[u16] {
        match self {
            Ports::All => &[],
            Ports::List(p) => p,
        }
    }
}

impl FromStr for Ports {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.trim() == "*" {
            Ok(Ports::All)
        } else {
            parse_ports(s).map(Ports::List)
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::All => f.write_str("*"),
            Ports::List(p) => f.write_str(&join(p)),
        }
    }
}

/// A set of destinations: all of them (`*`) or a list of CIDRs
/// (`10.0.0.0/8,fd00::/8`; empty for none). A bare address is a /32 or /128.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cidrs {
    /// Every address.
    All,
    /// These ranges (none when empty).
    List(Vec<IpNet>),
}

impl FromStr for Cidrs {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.trim() == "*" {
            Ok(Cidrs::All)
        } else {
            parse_cidrs(s).map(Cidrs::List)
        }
    }
}

/// Parses a comma-separated port list (`15020, 15021`); empty is none.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, Error> {
    split(s)
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n != 0 => Ok(n),
            _ => Err(Error::InvalidConfig(format!(
                "`{p}` is not a port (1-65535)"
            ))),
        })
        .collect()
}

/// Parses a comma-separated CIDR list (`10.0.0.0/8,fd00::/8`, bare
/// addresses allowed); empty is none. `*` is refused: it only makes sense
/// where [`Cidrs`] is expected.
pub fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, Error> {
    split(s)
        .map(|c| {
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    Error::InvalidConfig(format!(
                        "`{c}` is not a CIDR (like 10.0.0.0/8 or fd00::/8)"
                    ))
                })
        })
        .collect()
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

pub(crate) fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
