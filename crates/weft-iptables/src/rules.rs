//! The rule set, as `iptables-restore` input for the nat table: a pure
//! function of the [`Config`] and the address family.
//!
//! The chains and their order are istio-iptables' (REDIRECT mode), so
//! anyone who has read `iptables-save` in an Istio pod reads ours:
//!
//! - `PREROUTING -p tcp -j ISTIO_INBOUND`: inbound ports to capture
//!   (`-j ISTIO_IN_REDIRECT`) or leave alone (`-j RETURN`);
//! - `OUTPUT -p tcp -j ISTIO_OUTPUT`, in this order: excluded ports; the
//!   proxy's inbound passthrough (source 127.0.0.6 / ::6) left alone; per
//!   proxy uid/gid: the proxy calling its own pod's address over `lo` goes
//!   to the inbound listener (the app called itself through a Service VIP),
//!   the app calling itself over `lo` is left alone, everything else the
//!   proxy sends is left alone; `localhost` left alone; excluded CIDRs;
//!   included CIDRs (or everything) `-j ISTIO_REDIRECT`;
//! - `ISTIO_REDIRECT` / `ISTIO_IN_REDIRECT`: `REDIRECT --to-ports`
//!   15001 / 15006.

use std::fmt::Write as _;

use ipnet::IpNet;

use crate::config::{Cidrs, Config, Ports, join};

/// The user chains we own, in creation order. Cleanup removes exactly
/// these and the jumps into them.
pub const CHAINS: [&str; 4] = [
    "ISTIO_INBOUND",
    "ISTIO_REDIRECT",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
];

/// The most ports one `-m multiport` match takes.
const MULTIPORT_MAX: usize = 15;

/// An address family: which tool and which loopback addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: `iptables`.
    V4,
    /// IPv6: `ip6tables`.
    V6,
}

impl Family {
    /// `iptables` or `ip6tables`: the prefix of `-save` and `-restore`.
    pub fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// `IPv4` or `IPv6`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The address apps use to reach the proxy itself (Istio's
    /// `HostIPv4LoopbackCidr`).
    fn localhost(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1/32",
            Family::V6 => "::1/128",
        }
    }

    /// The source address of the proxy's inbound passthrough connections to
    /// the app (Istio binds 127.0.0.6 / ::6 so they are not captured again).
    fn passthrough_source(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.6/32",
            Family::V6 => "::6/128",
        }
    }

    fn has(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
        )
    }
}

/// The rules of one family, as `iptables-restore --noflush` input: chain
/// declarations (which create our chains, or empty them if they exist) and
/// `-A` lines, in one `*nat` … `COMMIT` transaction.
///
/// On its own this is what `--dry-run` prints; [`crate::apply`] also
/// deletes the jumps a previous run left in `PREROUTING`/`OUTPUT`, in the
/// same transaction, so applying twice leaves one copy.
pub fn render(config: &Config, family: Family) -> String {
    restore_input(&[], &rules(config, family))
}

/// Wraps `-D` lines (first) and rule lines in a nat-table transaction that
/// declares our chains.
pub(crate) fn restore_input(deletes: &[String], rules: &[String]) -> String {
    let mut out = String::from("*nat\n");
    for line in deletes {
        let _ = writeln!(out, "{line}");
    }
    for chain in CHAINS {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for line in rules {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("COMMIT\n");
    out
}

/// The `-A` lines of one family, in Istio's order.
pub(crate) fn rules(config: &Config, family: Family) -> Vec<String> {
    let mut r = Rules::default();
    let lo = family.localhost();

    r.add(
        "ISTIO_REDIRECT",
        format!("-p tcp -j REDIRECT --to-ports {}", config.outbound_port),
    );
    r.add(
        "ISTIO_IN_REDIRECT",
        format!("-p tcp -j REDIRECT --to-ports {}", config.inbound_port),
    );

    // Inbound.
    match &config.inbound_ports {
        Ports::List(ports) if ports.is_empty() => {}
        Ports::List(ports) => {
            r.add("PREROUTING", "-p tcp -j ISTIO_INBOUND");
            for m in port_matches(ports) {
                r.add("ISTIO_INBOUND", format!("-p tcp {m} -j ISTIO_IN_REDIRECT"));
            }
        }
        Ports::All => {
            r.add("PREROUTING", "-p tcp -j ISTIO_INBOUND");
            for m in port_matches(&config.exclude_inbound_ports) {
                r.add("ISTIO_INBOUND", format!("-p tcp {m} -j RETURN"));
            }
            r.add("ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT");
        }
    }

    // Outbound.
    r.add("OUTPUT", "-p tcp -j ISTIO_OUTPUT");
    for m in port_matches(&config.exclude_outbound_ports) {
        r.add("ISTIO_OUTPUT", format!("-p tcp {m} -j RETURN"));
    }
    r.add(
        "ISTIO_OUTPUT",
        format!("-o lo -s {} -j RETURN", family.passthrough_source()),
    );
    // If the user asked to capture loopback ranges, the app's own calls
    // over lo are captured too.
    let loopback_included = match &config.include_outbound_cidrs {
        Cidrs::All => false,
        Cidrs::List(nets) => nets.iter().any(|n| family.has(n) && n.addr().is_loopback()),
    };
    let owners = (config.proxy_uids.iter().map(|u| ("--uid-owner", u)))
        .chain(config.proxy_gids.iter().map(|g| ("--gid-owner", g)));
    for (owner, id) in owners {
        r.add(
            "ISTIO_OUTPUT",
            format!("-o lo ! -d {lo} -p tcp -m owner {owner} {id} -j ISTIO_IN_REDIRECT"),
        );
        if !loopback_included {
            r.add(
                "ISTIO_OUTPUT",
                format!("-o lo -m owner ! {owner} {id} -j RETURN"),
            );
        }
        r.add("ISTIO_OUTPUT", format!("-m owner {owner} {id} -j RETURN"));
    }
    r.add("ISTIO_OUTPUT", format!("-d {lo} -j RETURN"));
    for net in config
        .exclude_outbound_cidrs
        .iter()
        .filter(|n| family.has(n))
    {
        r.add("ISTIO_OUTPUT", format!("-d {net} -j RETURN"));
    }
    match &config.include_outbound_cidrs {
        Cidrs::All => r.add("ISTIO_OUTPUT", "-j ISTIO_REDIRECT"),
        Cidrs::List(nets) => {
            for net in nets.iter().filter(|n| family.has(n)) {
                r.add("ISTIO_OUTPUT", format!("-d {net} -j ISTIO_REDIRECT"));
            }
        }
    }
    r.0
}

#[derive(Default)]
struct Rules(Vec<String>);

impl Rules {
    fn add(&mut self, chain: &str, spec: impl AsRef<str>) {
        self.0.push(format!("-A {chain} {}", spec.as_ref()));
    }
}

/// `--dport P` for one port, `-m multiport --dports A,B,…` for more (in
/// groups of 15, multiport's limit); nothing for none.
fn port_matches(ports: &[u16]) -> Vec<String> {
    match ports {
        [] => Vec::new(),
        [p] => vec![format!("--dport {p}")],
        _ => ports
            .chunks(MULTIPORT_MAX)
            .map(|c| format!("-m multiport --dports {}", join(c)))
            .collect(),
    }
}
