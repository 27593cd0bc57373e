//! EDS: the endpoints of every EDS cluster, grouped by locality.
//!
//! A subset cluster gets the endpoints whose labels carry all of the
//! subset's. Each locality carries the sum of its endpoints' weights (gRPC's
//! xDS client ignores localities without a weight); each endpoint its own
//! weight and health. Priorities and locality weights follow the proxy's
//! own locality (see [`super::locality`]).

use weft_config::networking::Subset;
use weft_registry::{Endpoint, EndpointAddress, Health, Hostname};
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::core::v3::{self as core, HealthStatus, Metadata};
use weft_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use weft_xds::pb::google::protobuf::{Struct, Value, value};

use super::envoy::{pipe, socket_address, u32_value};
use super::names::parse_cluster;
use super::policy::{destination_rule_for, effective_policy};
use super::{Inputs, Proxy, locality, tls};

/// The load assignments of the EDS clusters among `clusters`, in the same order.
pub fn load_assignments(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    clusters: &[Cluster],
) -> Vec<ClusterLoadAssignment> {
    clusters
        .iter()
        .filter(|c| {
            matches!(c.cluster_discovery_type, Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32)
        })
        .filter_map(|c| load_assignment(inputs, proxy, &c.name))
        .collect()
}

/// The load assignment of one cluster named `outbound|port|subset|host`.
pub fn load_assignment(
    inputs: Inputs<'_>,
    proxy: &Proxy,
    cluster_name: &str,
) -> Option<ClusterLoadAssignment> {
    let name = parse_cluster(cluster_name)?;
    let service = inputs
        .registry
        .lookup(&Hostname::new(name.host), &proxy.namespace)
        .next()?;
    let rule = destination_rule_for(inputs, proxy, service).map(|(_, dr)| dr);
    let subset: Option<&Subset> = if name.subset.is_empty() {
        None
    } else {
        Some(rule?.subsets.iter().find(|s| s.name == name.subset)?)
    };
    let policy = rule.map(|dr| effective_policy(dr, subset, name.port));
    let members: Vec<&Endpoint> = inputs
        .registry
        .endpoints_of(service)
        .iter()
        .filter(|e| {
            e.ports.contains_key(&name.port)
                && subset.is_none_or(|s| weft_config::select::selects(&s.labels, &e.labels))
        })
        .collect();
    let setting = locality::setting(inputs, policy.as_ref());
    let outlier_detection = policy
        .as_ref()
        .is_some_and(|p| p.outlier_detection.is_some());
    let endpoints = locality::groups(members, proxy, setting, outlier_detection)
        .into_iter()
        .map(|g| LocalityLbEndpoints {
            locality: Some(core::Locality {
                region: g.locality.region.clone(),
                zone: g.locality.zone.clone(),
                sub_zone: g.locality.subzone.clone(),
            }),
            load_balancing_weight: Some(u32_value(g.weight)),
            lb_endpoints: g
                .endpoints
                .iter()
                .map(|e| lb_endpoint(e, name.port))
                .collect(),
            priority: g.priority,
            ..LocalityLbEndpoints::default()
        })
        .collect();
    Some(ClusterLoadAssignment {
        cluster_name: cluster_name.to_string(),
        endpoints,
        ..ClusterLoadAssignment::default()
    })
}

fn lb_endpoint(e: &Endpoint, port: u16) -> LbEndpoint {
    let target = e.ports.get(&port).copied().unwrap_or(port);
    let address = match &e.address {
        EndpointAddress::Ip(ip) => socket_address(&ip.to_string(), target),
        EndpointAddress::Hostname(h) => socket_address(h, target),
        EndpointAddress::Unix(path) => pipe(&path.to_string_lossy()),
    };
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(address),
            ..EnvoyEndpoint::default()
        })),
        health_status: match e.health {
            Health::Healthy => HealthStatus::Healthy,
            Health::Unhealthy => HealthStatus::Unhealthy,
        } as i32,
        load_balancing_weight: Some(u32_value(e.weight.max(1))),
        metadata: Some(istio_metadata(e)),
    }
}

/// `filter_metadata.istio.workload`: which workload an endpoint is
/// (`name;namespace;service-account`), for telemetry and debugging. One
/// field only: protobuf maps encode in no fixed order, and resources must
/// encode the same every time.
fn istio_metadata(e: &Endpoint) -> Metadata {
    let workload = format!("{};{};{}", e.source.name, e.namespace, e.service_account);
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "workload".to_string(),
        Value {
            kind: Some(value::Kind::StringValue(workload)),
        },
    );
    let mut metadata = Metadata::default();
    metadata
        .filter_metadata
        .insert("istio".to_string(), Struct { fields });
    if tls::accepts_mtls(e) {
        metadata.filter_metadata.insert(
            tls::TRANSPORT_SOCKET_MATCH.to_string(),
            tls::tls_mode_struct("istio"),
        );
    }
    metadata
}

#[cfg(test)]
mod tests;
