//! The clusters to a sidecar's own application: `inbound|<port>||`, and
//! `InboundPassthroughCluster` for captured sidecars.
//!
//! A Sidecar's connection pool for the port (its ingress listener's
//! `connectionPool`, else the Sidecar's `inboundConnectionPool`; see
//! [`crate::translate::instance`]) is mapped as Istio's
//! `buildInboundClusters` maps it — by the same code as a
//! DestinationRule's connection pool ([`circuit_breakers`],
//! [`sidecar_protocol_options`]): circuit-breaker thresholds, the TCP
//! connect timeout, idle timeout, requests per connection, connection
//! duration. Only the connection pool: Istio applies no HTTP/2 upgrade,
//! load balancer, outlier detection or TLS to inbound clusters. Without a
//! pool the cluster stays as before (no circuit breakers).

use weft_config::networking::{ConnectionPoolSettings, H2UpgradePolicy, TrafficPolicy};
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};

use super::{
    DEFAULT_CONNECT_TIMEOUT, HTTP_PROTOCOL_OPTIONS, INBOUND_PASSTHROUGH, app_address,
    circuit_breakers, dns_endpoint, passthrough, sidecar_protocol_options,
};
use crate::translate::envoy::duration;
use crate::translate::instance::InboundPort;
use crate::translate::names::inbound_cluster;
use crate::translate::{Inputs, Interception, Proxy, ProxyKind};

/// The clusters to the proxy's own application, `inbound|<port>||`: one
/// static endpoint, where the app serves that port (see
/// [`crate::translate::instance`]), with the port's connection pool;
/// plus, for captured sidecars, [`INBOUND_PASSTHROUGH`]. Unsorted. They
/// read only the proxy's kind, workload instance and interception, and
/// the mesh's connect timeout.
pub fn inbound_clusters(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Cluster> {
    let Some(instance) = proxy
        .instance
        .as_ref()
        .filter(|_| proxy.kind == ProxyKind::Sidecar)
    else {
        return Vec::new();
    };
    let mut out: Vec<Cluster> = instance
        .ports
        .iter()
        .filter_map(|p| inbound_port_cluster(inputs, p))
        .collect();
    if proxy.interception != Interception::None {
        out.push(Cluster {
            name: INBOUND_PASSTHROUGH.to_string(),
            ..passthrough()
        });
    }
    out
}

/// `inbound|<port>||` for one port; `None` when its app address doesn't parse.
fn inbound_port_cluster(inputs: Inputs<'_>, p: &InboundPort) -> Option<Cluster> {
    let address = app_address(&p.app)?;
    let name = inbound_cluster(p.port);
    let policy = TrafficPolicy {
        connection_pool: p.pool.as_ref().map(without_upgrade),
        ..TrafficPolicy::default()
    };
    let connect_timeout = policy
        .connection_pool
        .as_ref()
        .and_then(|c| c.tcp.as_ref())
        .and_then(|t| t.connect_timeout)
        .or(inputs.config.mesh.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(duration(connect_timeout.get())),
        circuit_breakers: p.pool.as_ref().map(|_| circuit_breakers(&policy)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![dns_endpoint(address, 1)],
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        }),
        ..Cluster::default()
    };
    if let Some(options) = sidecar_protocol_options(p.protocol, &policy) {
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.to_string(), weft_xds::pack(&options));
    }
    Some(c)
}

/// The pool without its `h2UpgradePolicy`: Istio upgrades outbound
/// clusters only (`applyH2Upgrade` is skipped for inbound ones).
fn without_upgrade(pool: &ConnectionPoolSettings) -> ConnectionPoolSettings {
    let mut pool = pool.clone();
    if let Some(http) = pool.http.as_mut() {
        http.h2_upgrade_policy = H2UpgradePolicy::Default;
    }
    pool
}

#[cfg(test)]
mod tests;
