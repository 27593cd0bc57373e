//! RDS.

use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;

use super::{Inputs, Proxy};

/// The route configurations `proxy` is sent.
pub fn route_configurations(_inputs: Inputs<'_>, _proxy: &Proxy) -> Vec<RouteConfiguration> {
    Vec::new()
}
