//! `weft proxy-config clusters`.

use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};

use super::{ClusterName, istio_config, table};

/// `weft proxy-config clusters` filters (each narrows the list).
#[derive(Debug, Default, clap::Args)]
pub struct ClusterFilter {
    /// Only clusters whose service FQDN contains this.
    #[arg(long)]
    fqdn: Option<String>,
    /// Only clusters of this service port.
    #[arg(long)]
    port: Option<u16>,
    /// Only clusters of this subset.
    #[arg(long)]
    subset: Option<String>,
    /// Only inbound or outbound clusters.
    #[arg(long, value_parser = ["inbound", "outbound"])]
    direction: Option<String>,
}

impl ClusterFilter {
    /// The clusters that pass, sorted like istioctl's (FQDN, subset,
    /// port, direction).
    pub fn select<'a>(&self, clusters: &'a [Cluster]) -> Vec<&'a Cluster> {
        let mut out: Vec<(ClusterName, &Cluster)> = clusters
            .iter()
            .map(|c| (ClusterName::parse(&c.name), c))
            .filter(|(n, _)| {
                self.fqdn
                    .as_ref()
                    .is_none_or(|f| n.fqdn.contains(f.as_str()))
                    && self.port.is_none_or(|p| n.port == Some(p))
                    && self.subset.as_ref().is_none_or(|s| &n.subset == s)
                    && self.direction.as_ref().is_none_or(|d| &n.direction == d)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, c)| c).collect()
    }
}

pub(super) fn discovery_type(c: &Cluster) -> String {
    match &c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => cluster::DiscoveryType::try_from(*t)
            .map_or_else(|_| t.to_string(), |t| t.as_str_name().to_string()),
        Some(cluster::ClusterDiscoveryType::ClusterType(custom)) => custom.name.clone(),
        // The proto's default.
        None => "STATIC".to_string(),
    }
}

/// SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
pub fn clusters(clusters: &[&Cluster]) -> String {
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let n = ClusterName::parse(&c.name);
            let dash = |s: &str| {
                if s.is_empty() {
                    "-".to_string()
                } else {
                    s.to_string()
                }
            };
            vec![
                n.fqdn.clone(),
                n.port.map_or_else(|| "-".to_string(), |p| p.to_string()),
                dash(&n.subset),
                dash(&n.direction),
                discovery_type(c),
                istio_config(c.metadata.as_ref(), "destination-rule"),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION RULE",
        ],
        &rows,
        5,
    )
}
