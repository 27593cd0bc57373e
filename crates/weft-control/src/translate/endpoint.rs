//! EDS: the endpoints of every EDS cluster, grouped by locality.
//!
//! A subset cluster gets the endpoints whose labels carry all of the
//! subset's. Each locality carries the sum of its endpoints' weights (gRPC's
//! xDS client ignores localities without a weight); each endpoint its own
//! weight and health.

use std::collections::BTreeMap;

use weft_config::networking::Subset;
use weft_registry::{Endpoint, EndpointAddress, Health, Hostname, Locality};
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::core::v3::{self as core, HealthStatus, Metadata};
use weft_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use weft_xds::pb::google::protobuf::{Struct, Value, value};

use super::envoy::{pipe, socket_address, u32_value};
use super::names::parse_cluster;
use super::policy::destination_rule_for;
use super::{Inputs, Proxy};

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
    let subset: Option<Subset> = if name.subset.is_empty() {
        None
    } else {
        let (_, dr) = destination_rule_for(inputs, proxy, service)?;
        Some(dr.subsets.iter().find(|s| s.name == name.subset)?.clone())
    };
    let mut by_locality: BTreeMap<&Locality, Vec<&Endpoint>> = BTreeMap::new();
    for e in inputs.registry.endpoints_of(service) {
        let in_subset = subset
            .as_ref()
            .is_none_or(|s| weft_config::select::selects(&s.labels, &e.labels));
        if in_subset && e.ports.contains_key(&name.port) {
            by_locality.entry(&e.locality).or_default().push(e);
        }
    }
    let endpoints = by_locality
        .into_iter()
        .map(|(locality, eps)| LocalityLbEndpoints {
            locality: Some(core::Locality {
                region: locality.region.clone(),
                zone: locality.zone.clone(),
                sub_zone: locality.subzone.clone(),
            }),
            load_balancing_weight: Some(u32_value(
                eps.iter().map(|e| e.weight.max(1)).sum::<u32>().max(1),
            )),
            lb_endpoints: eps.iter().map(|e| lb_endpoint(e, name.port)).collect(),
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
    metadata
}

#[cfg(test)]
mod tests;
