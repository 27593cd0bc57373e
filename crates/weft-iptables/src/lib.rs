//! Interception rules for Weft's sidecar: what istio-iptables does.
//!
//! [`Config`] says what to capture; [`render`] turns it into
//! `iptables-restore` input for the nat table, with Istio's chains
//! (`ISTIO_INBOUND`, `ISTIO_REDIRECT`, `ISTIO_IN_REDIRECT`, `ISTIO_OUTPUT`)
//! and rule order: outbound TCP is redirected to the proxy's 15001,
//! inbound TCP to 15006 (nat REDIRECT, or mangle TPROXY with a policy
//! route), the proxy's own uid/gid and the chosen ports and CIDRs are left
//! alone. [`apply`] installs the rules (IPv4, and IPv6 with
//! ip6tables), [`cleanup`] removes exactly our chains and the jumps into
//! them. [`original_dst`] reads where a redirected connection was going.

use std::io;

mod config;
mod orig_dst;
mod rules;
mod run;

pub use config::{
    Cidrs, Config, EXCLUDED_INBOUND_PORTS, INBOUND_PORT, InboundMode, OUTBOUND_MARK, OUTBOUND_PORT,
    PROXY_UID, Ports, READINESS_PORT, TPROXY_MARK, TPROXY_ROUTE_TABLE, parse_cidrs, parse_ports,
};
pub use ipnet::IpNet;
pub use orig_dst::original_dst;
pub use rules::{CHAINS, Family, MANGLE_CHAINS, Table, render};
pub use run::{Outcome, apply, cleanup, cleanup_plan};

#[cfg(test)]
mod tests;

/// Why the rules could not be built, applied or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration can't be turned into rules.
    #[error("invalid interception config: {0}")]
    InvalidConfig(String),
    /// A tool is not installed.
    #[error(
        "`{program}` not found: install the {package} package (Debian/Ubuntu: `apt-get install {package}`) so it is on PATH"
    )]
    Missing {
        /// The tool, e.g. `iptables-restore`.
        program: String,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// The kernel refused: changing netfilter rules and addresses needs root.
    #[error(
        "`{program}` was refused: {stderr}\n    hint: run as root (or with CAP_NET_ADMIN), e.g. `sudo weft iptables` or in the pod's init container"
    )]
    NotRoot {
        /// The tool.
        program: String,
        /// What it said.
        stderr: String,
    },
    /// The tool ran and failed.
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        /// The tool.
        program: String,
        /// Its exit status.
        status: String,
        /// What it said (iptables-restore names the failing line).
        stderr: String,
    },
    /// The tool could not be started or talked to.
    #[error("cannot run `{program}`: {source}")]
    Io {
        /// The tool.
        program: String,
        /// The OS error.
        source: io::Error,
    },
}
