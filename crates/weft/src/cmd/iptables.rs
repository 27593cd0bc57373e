//! `weft iptables`: install (or print, or remove) the nat rules that send a
//! workload's TCP through its sidecar — outbound to 15001, inbound to
//! 15006 — like Istio's `istio-iptables`. Flags follow istio-iptables'
//! meaning with long names; the rules are `weft_iptables`'.

use std::process::ExitCode;

use weft_iptables::{Cidrs, Config, EXCLUDED_INBOUND_PORTS, Family, InboundMode, Ports};

/// `weft iptables` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  weft iptables --dry-run                      print the rules for the defaults
  weft iptables --proxy-uid 1337               install them (as root, in the workload's netns)
  weft iptables --exclude-outbound-cidrs 169.254.169.254/32 --exclude-inbound-ports 22
  weft iptables --cleanup                      remove them again")]
pub struct Args {
    /// Uids of the proxy, whose own traffic is never redirected (comma-separated).
    #[arg(
        long,
        value_name = "UID,...",
        value_delimiter = ',',
        default_value = "1337"
    )]
    proxy_uid: Vec<u32>,
    /// Gids of the proxy, whose traffic is never redirected [default: the proxy uids].
    #[arg(long, value_name = "GID,...", value_delimiter = ',')]
    proxy_gid: Option<Vec<u32>>,
    /// Port of the proxy's outbound listener: outbound TCP goes there.
    #[arg(long, value_name = "PORT", default_value_t = weft_iptables::OUTBOUND_PORT)]
    outbound_port: u16,
    /// Port of the proxy's inbound listener: inbound TCP goes there.
    #[arg(long, value_name = "PORT", default_value_t = weft_iptables::INBOUND_PORT)]
    inbound_port: u16,
    /// Inbound destination ports to capture: `*` for all, a comma-separated
    /// list, or empty for none.
    #[arg(long, value_name = "PORTS", default_value = "*", value_parser = parse_ports_or_all)]
    inbound_ports: Ports,
    /// Inbound ports never captured when capturing all, in addition to the
    /// proxy's own 15000 (admin), 15020, 15021 (readiness) and 15090 (stats).
    #[arg(long, value_name = "PORTS", default_value = "", value_parser = parse_ports)]
    exclude_inbound_ports: PortList,
    /// Outbound destination ports never redirected.
    #[arg(long, value_name = "PORTS", default_value = "", value_parser = parse_ports)]
    exclude_outbound_ports: PortList,
    /// Outbound destinations to redirect: `*` for all, or comma-separated
    /// CIDRs (IPv4 and IPv6 mixed), or empty for none.
    #[arg(long, value_name = "CIDRS", default_value = "*", value_parser = parse_cidrs_or_all)]
    include_outbound_cidrs: Cidrs,
    /// Outbound destinations never redirected (comma-separated CIDRs),
    /// checked before the inclusions.
    #[arg(long, value_name = "CIDRS", default_value = "", value_parser = parse_cidrs)]
    exclude_outbound_cidrs: CidrList,
    /// Also install the IPv6 rules (ip6tables).
    #[arg(long)]
    ipv6: bool,
    /// How inbound TCP reaches the proxy: REDIRECT (nat), or TPROXY (mangle
    /// and a policy route; the destination stays on the socket and the
    /// proxy's inbound listener must be IP_TRANSPARENT).
    #[arg(long, value_name = "MODE", default_value = "REDIRECT", value_parser = parse_mode)]
    inbound_interception_mode: InboundMode,
    /// TPROXY: the mark on captured inbound packets (give --cleanup the
    /// same mark and table to remove the policy route).
    #[arg(long, value_name = "MARK", default_value_t = weft_iptables::TPROXY_MARK)]
    inbound_tproxy_mark: u32,
    /// TPROXY: the routing table that delivers marked packets locally.
    #[arg(long, value_name = "TABLE", default_value_t = weft_iptables::TPROXY_ROUTE_TABLE)]
    inbound_tproxy_route_table: u32,
    /// Print the rules (iptables-restore input) instead of installing them;
    /// with --cleanup, print what cleanup would run.
    #[arg(long)]
    dry_run: bool,
    /// Remove our chains and the jumps into them, for IPv4 and IPv6 (and
    /// TPROXY's policy route for the given mark and table, if it was used).
    #[arg(long)]
    cleanup: bool,
}

/// A comma-separated port list (a newtype so clap takes it as one value).
#[derive(Clone, Debug)]
struct PortList(Vec<u16>);

/// A comma-separated CIDR list.
#[derive(Clone, Debug)]
struct CidrList(Vec<weft_iptables::IpNet>);

fn parse_mode(s: &str) -> Result<InboundMode, weft_iptables::Error> {
    s.parse()
}

fn parse_ports(s: &str) -> Result<PortList, weft_iptables::Error> {
    weft_iptables::parse_ports(s).map(PortList)
}

fn parse_ports_or_all(s: &str) -> Result<Ports, weft_iptables::Error> {
    s.parse()
}

fn parse_cidrs(s: &str) -> Result<CidrList, weft_iptables::Error> {
    weft_iptables::parse_cidrs(s).map(CidrList)
}

fn parse_cidrs_or_all(s: &str) -> Result<Cidrs, weft_iptables::Error> {
    s.parse()
}

impl Args {
    fn config(&self) -> Config {
        let mut exclude_inbound_ports = EXCLUDED_INBOUND_PORTS.to_vec();
        for p in &self.exclude_inbound_ports.0 {
            if !exclude_inbound_ports.contains(p) {
                exclude_inbound_ports.push(*p);
            }
        }
        Config {
            proxy_uids: self.proxy_uid.clone(),
            proxy_gids: self
                .proxy_gid
                .clone()
                .unwrap_or_else(|| self.proxy_uid.clone()),
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            inbound_ports: self.inbound_ports.clone(),
            exclude_inbound_ports,
            exclude_outbound_ports: self.exclude_outbound_ports.0.clone(),
            include_outbound_cidrs: self.include_outbound_cidrs.clone(),
            exclude_outbound_cidrs: self.exclude_outbound_cidrs.0.clone(),
            ipv6: self.ipv6,
            inbound_mode: self.inbound_interception_mode,
            tproxy_mark: self.inbound_tproxy_mark,
            tproxy_route_table: self.inbound_tproxy_route_table,
        }
    }
}

/// Runs `weft iptables`.
pub fn run(args: Args) -> ExitCode {
    let config = args.config();
    let result = match (args.cleanup, args.dry_run) {
        (false, true) => dry_run(&config),
        (false, false) => apply(&config),
        (true, true) => cleanup_plan(&config),
        (true, false) => cleanup(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft iptables: {e}");
            ExitCode::from(1)
        }
    }
}

fn families(ipv6: bool) -> &'static [Family] {
    if ipv6 {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    }
}

fn dry_run(config: &Config) -> Result<(), weft_iptables::Error> {
    config.validate()?;
    for family in families(config.ipv6) {
        println!("# {}-restore --noflush ({})", family.tool(), family.name());
        print!("{}", weft_iptables::render(config, *family));
    }
    Ok(())
}

fn apply(config: &Config) -> Result<(), weft_iptables::Error> {
    for done in weft_iptables::apply(config)? {
        let replaced = if done.chains_found > 0 {
            format!(
                " (replaced an earlier copy: {} chains, {} jumps)",
                done.chains_found, done.jumps_removed
            )
        } else {
            String::new()
        };
        let mode = match config.inbound_mode {
            InboundMode::Redirect => "",
            InboundMode::Tproxy => " (TPROXY)",
        };
        eprintln!(
            "weft iptables: {}: {} rules installed{replaced}: outbound TCP -> {}, inbound TCP -> {}{mode}",
            done.family.name(),
            done.rules,
            config.outbound_port,
            config.inbound_port,
        );
    }
    Ok(())
}

fn cleanup_plan(config: &Config) -> Result<(), weft_iptables::Error> {
    for (family, script) in weft_iptables::cleanup_plan(config)? {
        match script {
            Some(script) => {
                println!("# {}-restore --noflush ({})", family.tool(), family.name());
                print!("{script}");
            }
            None => println!("# {}: nothing to remove", family.name()),
        }
    }
    Ok(())
}

fn cleanup(config: &Config) -> Result<(), weft_iptables::Error> {
    for done in weft_iptables::cleanup(config)? {
        if done.chains_found == 0 && done.jumps_removed == 0 {
            eprintln!(
                "weft iptables: {}: nothing of ours to remove",
                done.family.name()
            );
        } else {
            eprintln!(
                "weft iptables: {}: removed {} chains and {} rules of built-in chains",
                done.family.name(),
                done.chains_found,
                done.jumps_removed
            );
        }
    }
    Ok(())
}
