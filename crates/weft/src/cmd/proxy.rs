//! `weft proxy`: the sidecar proxy for one workload.

use std::net::SocketAddr;
use std::process::ExitCode;

use weft_config::duration::Duration;

/// How traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The app uses the proxy as its HTTP proxy (`--outbound`); no root needed.
    Explicit,
    /// iptables (`weft iptables`) redirects the workload's traffic to `--outbound` and `--inbound`; needs Linux.
    Transparent,
}

/// What the proxy is (as istio-agent's `proxy sidecar` / `proxy router`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeType {
    /// A workload's sidecar.
    Sidecar,
    /// A gateway: serves the listeners of the Gateways selecting its WorkloadEntry.
    Router,
}

/// How inbound connections reach a transparent proxy (as `weft iptables --inbound-interception-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum InboundMode {
    /// nat REDIRECT: the original destination from SO_ORIGINAL_DST.
    Redirect,
    /// mangle TPROXY: the inbound listener is IP_TRANSPARENT (needs CAP_NET_ADMIN).
    Tproxy,
}

/// The xDS protocol the proxy speaks to the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdsProtocol {
    /// Incremental xDS (DeltaAggregatedResources): only what changed is sent; virtual hosts come by VHDS.
    Delta,
    /// State of the world (StreamAggregatedResources): every push of a type carries all of it.
    Sotw,
}

/// `weft proxy` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane's xDS (ADS, plaintext gRPC) address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds: String,
    /// The xDS protocol: delta (Istio's default since 1.22; with VHDS, so a route change sends only the virtual hosts that changed) or sotw (state of the world).
    #[arg(long, value_enum, value_name = "PROTOCOL", default_value_t = XdsProtocol::Delta)]
    xds_protocol: XdsProtocol,
    /// The WorkloadEntry this proxy serves: its labels, service account and ports come from it. With --auto-register-group: NAMESPACE alone (default: default), or NAMESPACE/NAME to choose the node's name.
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        required_unless_present = "auto_register_group"
    )]
    workload: Option<String>,
    /// Join without a WorkloadEntry file: the control plane makes this proxy's WorkloadEntry from the WorkloadGroup NAME of its namespace while it is connected (Istio's ISTIO_META_AUTO_REGISTER_GROUP).
    #[arg(long, value_name = "NAME")]
    auto_register_group: Option<String>,
    /// How traffic reaches the proxy.
    #[arg(long, value_enum, default_value_t = Mode::Explicit)]
    mode: Mode,
    /// Sidecar, or gateway (router): the node id's type.
    #[arg(long = "type", value_enum, value_name = "TYPE", default_value_t = NodeType::Sidecar)]
    node_type: NodeType,
    /// The outbound listener: explicit mode's HTTP proxy port the app points at (`curl -x`, HTTP_PROXY; default 127.0.0.1:15001), transparent mode's capture port (default 0.0.0.0:15001).
    #[arg(long, value_name = "ADDR")]
    outbound: Option<SocketAddr>,
    /// Transparent mode: the inbound capture port (default 0.0.0.0:15006; explicit mode binds the WorkloadEntry's address and ports instead).
    #[arg(long, value_name = "ADDR")]
    inbound: Option<SocketAddr>,
    /// Transparent mode: how inbound connections are captured, as given to `weft iptables`.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = InboundMode::Redirect)]
    inbound_interception_mode: InboundMode,
    /// How long protocol detection (SNI, sniffed HTTP on ports without a declared protocol) waits for a client's first bytes before treating the connection as plain TCP; 0s waits as long as it takes (Istio's protocolDetectionTimeout).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    protocol_detection_timeout: Duration,
    /// Where the app listens: `HOST:PORT`, or per inbound port `PORT=HOST:PORT,...` (default: 127.0.0.1 on each inbound port).
    #[arg(long, value_name = "ADDR")]
    app: Option<String>,
    /// The admin API: /ready, /healthz/ready, /config_dump, /clusters, /listeners, /stats, /quitquitquit.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Where readiness (`/healthz/ready`) is served on its own, for probes from outside the workload (istio-agent's 15021). Default: 0.0.0.0:15021 in transparent mode, none in explicit mode (readiness is on --admin there); `none` turns it off.
    #[arg(long, value_name = "ADDR|none")]
    readiness: Option<Readiness>,
    /// Worker threads carrying traffic (Istio's proxy `concurrency`).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// How long SIGTERM waits for open connections to finish.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    drain_timeout: Duration,
    /// How long an HTTP/1 client may take to send a request's headers before its connection is closed (slow clients, slowloris).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    request_headers_timeout: Duration,
    /// Largest request header block in KiB: HTTP/1 answers 431 past it, HTTP/2 refuses the stream (Envoy's max_request_headers_kb).
    #[arg(long, value_name = "KIB", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=8192))]
    max_request_headers_kb: u32,
    /// The workload's IP, reported to the control plane as Istio's INSTANCE_IPS (repeat or comma-separate for several; the first is the node id's). Default: $INSTANCE_IP if set, else in transparent mode the host's non-loopback addresses, in explicit mode the --outbound address's IP (127.0.0.1 if unspecified).
    #[arg(long = "ip", value_name = "IP", value_delimiter = ',')]
    ips: Vec<std::net::IpAddr>,
}

/// `--readiness`: an address, or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    At(SocketAddr),
    Off,
}

impl std::str::FromStr for Readiness {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Readiness::Off);
        }
        s.parse()
            .map(Readiness::At)
            .map_err(|_| format!("{s:?} is not HOST:PORT (an IP address and a port) or `none`"))
    }
}

/// Runs `weft proxy` until SIGTERM, Ctrl-C or `/quitquitquit`.
pub fn run(args: Args) -> ExitCode {
    match config(&args) {
        Ok(config) => serve(config, args.concurrency),
        Err(e) => {
            eprintln!("weft proxy: {e}");
            ExitCode::from(2)
        }
    }
}

/// The namespace and name `--workload` gives: `NAMESPACE/NAME`; with
/// `--auto-register-group`, also `NAMESPACE` alone or nothing (namespace
/// `default`), the name then left to [`node_name`].
fn workload(args: &Args) -> Result<(String, Option<String>), String> {
    let auto = args.auto_register_group.is_some();
    let Some(workload) = &args.workload else {
        return Ok(("default".to_string(), None));
    };
    if let Some((ns, n)) = workload.split_once('/') {
        if ns.is_empty() || n.is_empty() || n.contains('/') {
            return Err(format!("--workload {workload:?}: expected NAMESPACE/NAME"));
        }
        return Ok((ns.to_string(), Some(n.to_string())));
    }
    if auto && !workload.is_empty() {
        return Ok((workload.clone(), None));
    }
    Err(format!(
        "--workload {workload:?}: expected NAMESPACE/NAME (NAMESPACE alone with --auto-register-group)"
    ))
}

/// The node's name for an auto-registering proxy that names none: the
/// name the control plane gives its WorkloadEntry, `<group>-<ip>` (an
/// IPv6 address's `:` as `-`), so tools find the proxy by it.
fn node_name(group: &str, ip: &str) -> String {
    format!("{group}-{}", ip.replace(':', "-"))
}

fn config(args: &Args) -> Result<weft_proxy::Config, String> {
    let (namespace, name) = workload(args)?;
    if let Some(group) = &args.auto_register_group
        && (group.is_empty() || group.contains('/'))
    {
        return Err(format!(
            "--auto-register-group {group:?}: expected the name of a WorkloadGroup in the proxy's namespace"
        ));
    }
    let mode = match args.mode {
        Mode::Explicit => weft_proxy::Mode::Explicit,
        Mode::Transparent => weft_proxy::Mode::Transparent,
    };
    if args.inbound.is_some() && mode == weft_proxy::Mode::Explicit {
        return Err("--inbound applies to transparent mode; in explicit mode the inbound listeners bind the WorkloadEntry's address and ports".into());
    }
    if args.inbound_interception_mode == InboundMode::Tproxy && mode == weft_proxy::Mode::Explicit {
        return Err("--inbound-interception-mode applies to transparent mode".into());
    }
    let mut c = weft_proxy::Config::new(
        args.xds.clone(),
        namespace,
        name.clone().unwrap_or_default(),
    );
    c.auto_register_group = args.auto_register_group.clone();
    c.mode = mode;
    c.xds_protocol = match args.xds_protocol {
        XdsProtocol::Delta => weft_proxy::xds::Protocol::Delta,
        XdsProtocol::Sotw => weft_proxy::xds::Protocol::Sotw,
    };
    c.node_type = match args.node_type {
        NodeType::Sidecar => weft_proxy::NodeType::Sidecar,
        NodeType::Router => weft_proxy::NodeType::Router,
    };
    let transparent = mode == weft_proxy::Mode::Transparent;
    c.outbound = args.outbound.unwrap_or(if transparent {
        SocketAddr::from(([0, 0, 0, 0], weft_iptables::OUTBOUND_PORT))
    } else {
        SocketAddr::from(([127, 0, 0, 1], weft_iptables::OUTBOUND_PORT))
    });
    c.inbound = args.inbound.unwrap_or(SocketAddr::from((
        [0, 0, 0, 0],
        weft_iptables::INBOUND_PORT,
    )));
    c.tproxy = args.inbound_interception_mode == InboundMode::Tproxy;
    c.detect_timeout = Some(args.protocol_detection_timeout.get()).filter(|t| !t.is_zero());
    c.admin = args.admin;
    c.readiness = match args.readiness {
        Some(Readiness::At(addr)) => Some(addr),
        Some(Readiness::Off) => None,
        None if transparent => Some(SocketAddr::from((
            [0, 0, 0, 0],
            weft_iptables::READINESS_PORT,
        ))),
        None => None,
    };
    c.app = args.app.clone();
    c.drain_timeout = args.drain_timeout.get();
    if args.request_headers_timeout.get().is_zero() {
        return Err("--request-headers-timeout must be more than 0s".into());
    }
    c.http_limits.request_headers_timeout = args.request_headers_timeout.get();
    c.http_limits.max_request_headers_bytes = args.max_request_headers_kb * 1024;
    let ips = instance_ips(args, transparent, c.outbound)?;
    if let Some(first) = ips.first() {
        c.node_ip = first.to_string();
    }
    c.instance_ips = ips.iter().map(ToString::to_string).collect();
    if let (None, Some(group)) = (&name, &args.auto_register_group) {
        c.workload = node_name(group, &c.node_ip);
    }
    Ok(c)
}

/// `--ip`, else `$INSTANCE_IP` (istio-agent's), else the host's addresses
/// (transparent mode) or the outbound listener's IP (explicit mode); empty
/// leaves 127.0.0.1.
fn instance_ips(
    args: &Args,
    transparent: bool,
    outbound: SocketAddr,
) -> Result<Vec<std::net::IpAddr>, String> {
    if !args.ips.is_empty() {
        return Ok(args.ips.clone());
    }
    if let Ok(v) = std::env::var("INSTANCE_IP")
        && !v.trim().is_empty()
    {
        return v
            .split(',')
            .map(|ip| {
                ip.trim()
                    .parse()
                    .map_err(|_| format!("INSTANCE_IP {v:?}: {ip:?} is not an IP address"))
            })
            .collect();
    }
    if transparent {
        return Ok(weft_proxy::instance_ips::host_ips());
    }
    Ok(Some(outbound.ip())
        .filter(|ip| !ip.is_unspecified())
        .into_iter()
        .collect())
}

fn serve(config: weft_proxy::Config, concurrency: u16) -> ExitCode {
    let runtime = match weft_proxy::worker_runtime(usize::from(concurrency)) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::debug!(target: "weft::proxy", ?config, concurrency, "starting");
    match runtime.block_on(async {
        let shutdown = super::shutdown_signal("weft proxy");
        weft_proxy::run(config, shutdown).await
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
