//! CDS.

use weft_xds::pb::envoy::config::cluster::v3::Cluster;

use super::{Inputs, Proxy};

/// The clusters `proxy` is sent.
pub fn clusters(_inputs: Inputs<'_>, _proxy: &Proxy) -> Vec<Cluster> {
    Vec::new()
}
