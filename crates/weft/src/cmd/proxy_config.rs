//! `weft proxy-config (clusters|listeners|routes|endpoints|all) ID`: what
//! the control plane sent one proxy, like `istioctl proxy-config`. Reads
//! `/debug/config_dump?proxy=ID` (Envoy's admin config dump shape), prints
//! a table per section or, with `-o json`, the section's resources as
//! proto3 JSON.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::Value;
use weft_xds::json::{message_from_json, message_to_json};
use weft_xds::pb::envoy::admin::v3::{
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
};
use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;
use weft_xds::pb::google::protobuf::Any;
use weft_xds::unpack;

mod tables;

pub use tables::{ClusterFilter, EndpointFilter, ListenerFilter, RouteFilter};

/// `weft proxy-config` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    section: Section,
}

#[derive(Debug, clap::Subcommand)]
enum Section {
    /// Clusters (CDS): SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
    Clusters {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filter: ClusterFilter,
    },
    /// Listeners (LDS), one line per filter chain: ADDRESSES, PORT, MATCH, DESTINATION.
    Listeners {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filter: ListenerFilter,
    },
    /// Routes (RDS), one line per route: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE.
    Routes {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filter: RouteFilter,
    },
    /// Endpoints (EDS and clusters' own), one line each: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER.
    Endpoints {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        filter: EndpointFilter,
    },
    /// Every section (`-o json`: the whole config dump).
    All {
        #[command(flatten)]
        common: Common,
    },
}

/// What every section takes.
#[derive(Debug, clap::Args)]
struct Common {
    /// The proxy: its xDS node id, its `pod.namespace`, or any part of its
    /// id that names only it (see `weft proxy-status`).
    #[arg(value_name = "ID")]
    id: String,
    /// The control plane's debug address (`weft control --debug-addr`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    debug_addr: SocketAddr,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// Tables like istioctl's.
    Table,
    /// The resources as proto3 JSON (as Envoy's admin API prints them).
    Json,
}

/// The largest config dump read (a mesh of thousands of services).
const MAX_DUMP: u64 = 256 << 20;

/// Runs `weft proxy-config`.
pub fn run(args: Args) -> ExitCode {
    let common = match &args.section {
        Section::Clusters { common, .. }
        | Section::Listeners { common, .. }
        | Section::Routes { common, .. }
        | Section::Endpoints { common, .. }
        | Section::All { common } => common,
    };
    let (json, dump) = match fetch(common) {
        Ok(d) => d,
        Err(Failure { message, code }) => {
            eprintln!("weft proxy-config: {message}");
            return ExitCode::from(code);
        }
    };
    let rendered = match render(&args.section, common.output, &json, &dump) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("weft proxy-config: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(rendered.as_bytes()).is_err() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

struct Failure {
    message: String,
    code: u8,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// GETs the dump; a proxy the control plane can't find is exit status 1
/// (with the candidates), no control plane or a bad answer 2.
fn fetch(common: &Common) -> Result<(Value, Dump), Failure> {
    let url = format!(
        "http://{}/debug/config_dump?proxy={}",
        common.debug_addr,
        encode(&common.id)
    );
    let unreachable = |e: &dyn std::fmt::Display| Failure {
        message: format!(
            "cannot read {url}: {e}\n    hint: is `weft control` running with --debug-addr {}?",
            common.debug_addr
        ),
        code: 2,
    };
    let mut response = ureq::get(&url)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .call()
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_DUMP)
        .read_to_string()
        .map_err(|e| unreachable(&e))?;
    let json: Value = serde_json::from_str(&body).map_err(|e| Failure {
        message: format!("{url} answered {status} with no JSON: {e}"),
        code: 2,
    })?;
    if !status.is_success() {
        let error = json["error"].as_str().unwrap_or("(no error message)");
        let proxies: Vec<&str> = json["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut message = error.to_string();
        if status.is_client_error() {
            if proxies.is_empty() {
                message.push_str("\n    no proxies are connected");
            } else {
                // 404: none matches (all are listed); 400: several do.
                let heading = if status == 404 {
                    "connected proxies"
                } else {
                    "matching proxies"
                };
                let _ = write!(message, "\n    {heading}:");
                for p in &proxies {
                    let _ = write!(message, "\n      {p}");
                }
            }
        }
        return Err(Failure {
            message,
            code: if status.is_client_error() { 1 } else { 2 },
        });
    }
    let dump = Dump::read(&json).map_err(|message| Failure { message, code: 2 })?;
    Ok((json, dump))
}

/// The resources of a config dump, decoded.
#[derive(Debug, Default)]
pub struct Dump {
    /// CDS, as sent.
    pub clusters: Vec<Cluster>,
    /// LDS.
    pub listeners: Vec<Listener>,
    /// RDS.
    pub routes: Vec<RouteConfiguration>,
    /// EDS.
    pub endpoints: Vec<ClusterLoadAssignment>,
}

impl Dump {
    /// Reads Envoy's `ConfigDump` JSON (dynamic resources; static ones too,
    /// as a file from an Envoy's own admin API has them).
    pub fn read(json: &Value) -> Result<Dump, String> {
        let dump: ConfigDump =
            message_from_json(json).map_err(|e| format!("unreadable config dump: {e}"))?;
        let mut out = Dump::default();
        for config in &dump.configs {
            out.add(config)
                .map_err(|e| format!("unreadable config dump section: {e}"))?;
        }
        Ok(out)
    }

    fn add(&mut self, config: &Any) -> Result<(), weft_xds::UnpackError> {
        fn each<M: prost::Message + prost::Name + Default>(
            anys: impl Iterator<Item = Option<Any>>,
            out: &mut Vec<M>,
        ) -> Result<(), weft_xds::UnpackError> {
            for any in anys.flatten() {
                out.push(unpack(&any)?);
            }
            Ok(())
        }
        let name = config.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            "envoy.admin.v3.ClustersConfigDump" => {
                let d: ClustersConfigDump = unpack(config)?;
                each(
                    d.static_clusters.into_iter().map(|c| c.cluster),
                    &mut self.clusters,
                )?;
                each(
                    d.dynamic_active_clusters.into_iter().map(|c| c.cluster),
                    &mut self.clusters,
                )
            }
            "envoy.admin.v3.ListenersConfigDump" => {
                let d: ListenersConfigDump = unpack(config)?;
                each(
                    d.static_listeners.into_iter().map(|l| l.listener),
                    &mut self.listeners,
                )?;
                each(
                    d.dynamic_listeners
                        .into_iter()
                        .map(|l| l.active_state.and_then(|s| s.listener)),
                    &mut self.listeners,
                )
            }
            "envoy.admin.v3.RoutesConfigDump" => {
                let d: RoutesConfigDump = unpack(config)?;
                each(
                    d.static_route_configs.into_iter().map(|r| r.route_config),
                    &mut self.routes,
                )?;
                each(
                    d.dynamic_route_configs.into_iter().map(|r| r.route_config),
                    &mut self.routes,
                )
            }
            "envoy.admin.v3.EndpointsConfigDump" => {
                let d: EndpointsConfigDump = unpack(config)?;
                each(
                    d.static_endpoint_configs
                        .into_iter()
                        .map(|e| e.endpoint_config),
                    &mut self.endpoints,
                )?;
                each(
                    d.dynamic_endpoint_configs
                        .into_iter()
                        .map(|e| e.endpoint_config),
                    &mut self.endpoints,
                )
            }
            // Bootstrap, secrets, ...: not shown.
            _ => Ok(()),
        }
    }
}

/// A JSON array of messages, pretty, as `istioctl proxy-config -o json`.
fn json_list<M: prost::Message + prost::Name>(items: &[&M]) -> Result<String, String> {
    let values = items
        .iter()
        .map(|m| message_to_json(*m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&values)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

fn render(section: &Section, output: Output, json: &Value, dump: &Dump) -> Result<String, String> {
    let json_out = output == Output::Json;
    match section {
        Section::Clusters { filter, .. } => {
            let items = filter.select(&dump.clusters);
            if json_out {
                json_list(&items)
            } else {
                Ok(tables::clusters(&items))
            }
        }
        Section::Listeners { filter, .. } => {
            let items = filter.select(&dump.listeners);
            if json_out {
                json_list(&items)
            } else {
                Ok(tables::listeners(&items))
            }
        }
        Section::Routes { filter, .. } => {
            let items = filter.select(&dump.routes);
            if json_out {
                json_list(&items)
            } else {
                Ok(tables::routes(&items))
            }
        }
        Section::Endpoints { filter, .. } => {
            let items = filter.select(dump);
            if json_out {
                json_list(&items.iter().collect::<Vec<_>>())
            } else {
                Ok(tables::endpoints(&items, &dump.clusters))
            }
        }
        Section::All { .. } => {
            if json_out {
                return serde_json::to_string_pretty(json)
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string());
            }
            Ok([
                tables::clusters(&ClusterFilter::default().select(&dump.clusters)),
                tables::listeners(&ListenerFilter::default().select(&dump.listeners)),
                tables::routes(&RouteFilter::default().select(&dump.routes)),
                tables::endpoints(&EndpointFilter::default().select(dump), &dump.clusters),
            ]
            .join("\n"))
        }
    }
}

#[cfg(test)]
mod tests;
