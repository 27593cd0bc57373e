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
//!
//! In TPROXY mode inbound moves to the mangle table (`ISTIO_INBOUND`,
//! `ISTIO_DIVERT`, `ISTIO_TPROXY`, marks and CONNMARK, as Istio), and
//! [`crate::apply`] adds the policy route that delivers marked packets
//! locally.

use std::fmt::Write as _;

use ipnet::IpNet;

use crate::config::{Cidrs, Config, InboundMode, OUTBOUND_MARK, Ports, join};

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

/// A netfilter table we write to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// `nat`: REDIRECT of outbound (and, in REDIRECT mode, inbound) TCP.
    Nat,
    /// `mangle`: TPROXY of inbound TCP (TPROXY mode only).
    Mangle,
}

impl Table {
    /// Every table, in the order a transaction writes them.
    pub const ALL: [Table; 2] = [Table::Mangle, Table::Nat];

    /// The table's name for `-t` and `*name`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Mangle => "mangle",
        }
    }

    /// The user chains we own in this table.
    pub fn chains(self) -> &'static [&'static str] {
        match self {
            Table::Nat => &CHAINS,
            Table::Mangle => &MANGLE_CHAINS,
        }
    }
}

/// Our user chains in the mangle table (TPROXY mode).
pub const MANGLE_CHAINS: [&str; 3] = ["ISTIO_DIVERT", "ISTIO_TPROXY", "ISTIO_INBOUND"];

/// The comment on our rules in built-in mangle chains that jump nowhere
/// of ours (marks and CONNMARK), so cleanup finds exactly them.
pub(crate) const COMMENT: &str = "weft-iptables";

/// The rules of one family, as `iptables-restore --noflush` input: per
/// table, chain declarations (which create our chains, or empty them if
/// they exist) and `-A` lines, in one `*table` … `COMMIT` transaction.
///
/// On its own this is what `--dry-run` prints; [`crate::apply`] also
/// deletes the rules a previous run left in built-in chains, in the same
/// transaction, so applying twice leaves one copy.
pub fn render(config: &Config, family: Family) -> String {
    tables(config, family)
        .iter()
        .map(|(table, rules)| restore_input(*table, &[], rules))
        .collect()
}

/// The tables this config writes, each with its `-A` lines: mangle (TPROXY
/// mode with inbound capture) then nat.
pub(crate) fn tables(config: &Config, family: Family) -> Vec<(Table, Vec<String>)> {
    let mut tables = Vec::new();
    if let Some(mangle) = mangle_rules(config, family) {
        tables.push((Table::Mangle, mangle));
    }
    tables.push((Table::Nat, nat_rules(config, family)));
    tables
}

/// Wraps `-D` lines (first) and rule lines in one table's transaction
/// that declares our chains.
pub(crate) fn restore_input(table: Table, deletes: &[String], rules: &[String]) -> String {
    let mut out = format!("*{}\n", table.name());
    for line in deletes {
        let _ = writeln!(out, "{line}");
    }
    for chain in table.chains() {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for line in rules {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("COMMIT\n");
    out
}

/// TPROXY mode's mangle rules, in Istio's order: new inbound connections
/// are TPROXY'd to the inbound port with the mark, packets of established
/// ones are marked and accepted (policy routing delivers marked packets
/// locally); the proxy's own connections to the app over `lo` carry
/// [`OUTBOUND_MARK`] and are not captured again.
fn mangle_rules(config: &Config, family: Family) -> Option<Vec<String>> {
    if config.inbound_mode != InboundMode::Tproxy || config.inbound_ports == Ports::List(vec![]) {
        return None;
    }
    let mut r = Rules::default();
    let (lo, mark) = (family.localhost(), config.tproxy_mark);
    r.add("ISTIO_DIVERT", format!("-j MARK --set-mark {mark}"));
    r.add("ISTIO_DIVERT", "-j ACCEPT");
    r.add(
        "ISTIO_TPROXY",
        format!(
            "! -d {lo} -p tcp -j TPROXY --tproxy-mark {mark}/0xffffffff --on-port {}",
            config.inbound_port
        ),
    );
    r.add("PREROUTING", "-p tcp -j ISTIO_INBOUND");
    r.add(
        "ISTIO_INBOUND",
        format!("-p tcp -m mark --mark {mark} -j RETURN"),
    );
    let passthrough = family.passthrough_source();
    r.add(
        "ISTIO_INBOUND",
        format!("-p tcp -s {passthrough} -i lo -j RETURN"),
    );
    r.add(
        "ISTIO_INBOUND",
        format!("-p tcp -i lo -m mark ! --mark {OUTBOUND_MARK} -j RETURN"),
    );
    let established = "-m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT";
    match &config.inbound_ports {
        Ports::All => {
            for m in port_matches(&config.exclude_inbound_ports) {
                r.add("ISTIO_INBOUND", format!("-p tcp {m} -j RETURN"));
            }
            r.add("ISTIO_INBOUND", format!("-p tcp {established}"));
            r.add("ISTIO_INBOUND", "-p tcp -j ISTIO_TPROXY");
        }
        Ports::List(ports) => {
            for m in port_matches(ports) {
                r.add("ISTIO_INBOUND", format!("-p tcp {m} {established}"));
                r.add("ISTIO_INBOUND", format!("-p tcp {m} -j ISTIO_TPROXY"));
            }
        }
    }
    let ours = format!("-m comment --comment {COMMENT}");
    r.add(
        "PREROUTING",
        format!("-p tcp -m mark --mark {mark} {ours} -j CONNMARK --save-mark"),
    );
    r.add(
        "OUTPUT",
        format!("-p tcp -o lo -m mark --mark {mark} {ours} -j RETURN"),
    );
    for (owner, id) in owners(config) {
        r.add(
            "OUTPUT",
            format!(
                "! -d {lo} -p tcp -o lo -m owner {owner} {id} {ours} -j MARK --set-mark {OUTBOUND_MARK}"
            ),
        );
    }
    r.add(
        "OUTPUT",
        format!("-p tcp -m connmark --mark {mark} {ours} -j CONNMARK --restore-mark"),
    );
    Some(r.0)
}

fn owners(config: &Config) -> impl Iterator<Item = (&'static str, u32)> + '_ {
    (config.proxy_uids.iter().map(|u| ("--uid-owner", *u)))
        .chain(config.proxy_gids.iter().map(|g| ("--gid-owner", *g)))
}

/// The nat table's `-A` lines of one family, in Istio's order.
pub(crate) fn nat_rules(config: &Config, family: Family) -> Vec<String> {
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

    // Inbound (in TPROXY mode, the mangle table's).
    match &config.inbound_ports {
        _ if config.inbound_mode == InboundMode::Tproxy => {}
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
    for (owner, id) in owners(config) {
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
