//! `weft proxy-config endpoints`: EDS's and the clusters' own.

use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::core::v3::HealthStatus;
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint, lb_endpoint};

use super::super::Dump;
use super::{ClusterName, socket, table};

/// `weft proxy-config endpoints` filters.
#[derive(Debug, Default, clap::Args)]
pub struct EndpointFilter {
    /// Only endpoints of this cluster (its full name).
    #[arg(long)]
    pub(super) cluster: Option<String>,
    /// Only endpoints at this address.
    #[arg(long)]
    pub(super) address: Option<String>,
    /// Only endpoints on this port.
    #[arg(long)]
    pub(super) port: Option<u32>,
    /// Only endpoints of this health status (HEALTHY, UNHEALTHY, DRAINING, ...).
    #[arg(long)]
    pub(super) status: Option<String>,
}

pub(super) fn endpoint_address(e: &LbEndpoint) -> (String, Option<u32>) {
    match &e.host_identifier {
        Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
            socket(ep.address.as_ref()).unwrap_or_default()
        }
        Some(lb_endpoint::HostIdentifier::EndpointName(n)) => (n.clone(), None),
        None => (String::new(), None),
    }
}

/// `UNKNOWN` is how EDS says "no health check has said otherwise", which
/// Envoy treats as healthy, as istioctl shows it.
pub(super) fn endpoint_status(e: &LbEndpoint) -> &'static str {
    match HealthStatus::try_from(e.health_status) {
        Ok(HealthStatus::Unknown | HealthStatus::Healthy) | Err(_) => "HEALTHY",
        Ok(s) => s.as_str_name(),
    }
}

impl EndpointFilter {
    /// The load assignments (EDS, and the clusters' own for static and DNS
    /// clusters) with only the endpoints that pass, sorted like clusters;
    /// those left with none are dropped.
    pub fn select(&self, dump: &Dump) -> Vec<ClusterLoadAssignment> {
        let inline = dump.clusters.iter().filter_map(|c| {
            c.load_assignment.clone().map(|mut la| {
                la.cluster_name = c.name.clone();
                la
            })
        });
        let mut out: Vec<ClusterLoadAssignment> = dump
            .endpoints
            .iter()
            .cloned()
            .chain(inline)
            .filter(|la| self.cluster.as_ref().is_none_or(|c| &la.cluster_name == c))
            .filter_map(|mut la| {
                for group in &mut la.endpoints {
                    group.lb_endpoints.retain(|e| {
                        let (address, port) = endpoint_address(e);
                        self.address.as_ref().is_none_or(|a| &address == a)
                            && self.port.is_none_or(|p| port == Some(p))
                            && self
                                .status
                                .as_ref()
                                .is_none_or(|s| s.eq_ignore_ascii_case(endpoint_status(e)))
                    });
                }
                la.endpoints.retain(|g| !g.lb_endpoints.is_empty());
                (!la.endpoints.is_empty()).then_some(la)
            })
            .collect();
        out.sort_by_key(|la| ClusterName::parse(&la.cluster_name));
        out
    }
}

/// ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER. The control plane knows what
/// it sent, not what a proxy ejected: OUTLIER CHECK says whether the
/// endpoint's cluster has outlier detection (`ENABLED`) or not (`-`).
pub fn endpoints(assignments: &[ClusterLoadAssignment], clusters: &[Cluster]) -> String {
    let mut rows = Vec::new();
    for la in assignments {
        let outlier = clusters
            .iter()
            .find(|c| c.name == la.cluster_name)
            .and_then(|c| c.outlier_detection.as_ref())
            .map_or("-", |_| "ENABLED");
        for e in la.endpoints.iter().flat_map(|g| &g.lb_endpoints) {
            let endpoint = match endpoint_address(e) {
                (a, Some(p)) if a.contains(':') => format!("[{a}]:{p}"),
                (a, Some(p)) => format!("{a}:{p}"),
                (a, None) => a,
            };
            rows.push(vec![
                endpoint,
                endpoint_status(e).to_string(),
                outlier.to_string(),
                la.cluster_name.clone(),
            ]);
        }
    }
    table(
        &["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
        &rows,
        5,
    )
}
