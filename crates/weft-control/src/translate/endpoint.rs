//! EDS.

use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use super::{Inputs, Proxy};

/// The load assignments of `clusters`' EDS clusters.
pub fn load_assignments(
    _inputs: Inputs<'_>,
    _proxy: &Proxy,
    _clusters: &[Cluster],
) -> Vec<ClusterLoadAssignment> {
    Vec::new()
}
