//! The registry model every source fills: services with typed ports, and
//! the endpoints behind them with labels, locality, weight, health and
//! identity. Immutable once built; shared as `Arc<RegistrySnapshot>`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use weft_config::ResourceKey;
use weft_config::networking::Protocol;

/// A service's fully qualified host name, lowercase
/// (`reviews.bookinfo.svc.cluster.local`, `*.example.com`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// A host name as given (lowercased).
    pub fn new(host: &str) -> Self {
        Hostname(host.to_ascii_lowercase())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a wildcard (`*.example.com`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with('*')
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a service's endpoints are found (ServiceEntry `resolution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// The endpoints listed: their IP addresses are dialled.
    Static,
    /// Endpoint (or host) names resolved by DNS; every address is used.
    Dns,
    /// Names resolved by DNS; the first address is used per connection.
    DnsRoundRobin,
    /// No endpoints: the original destination address is dialled.
    Passthrough,
    /// The name in each request (Host/SNI) is resolved (wildcard hosts).
    DynamicDns,
}

/// Whether a service is part of the mesh (its endpoints run sidecars and
/// speak mTLS) or outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// Inside the mesh.
    MeshInternal,
    /// Outside the mesh.
    MeshExternal,
}

/// A port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Port name (`http`, `grpc-api`); endpoints map names to their ports.
    pub name: String,
    /// The port clients dial.
    pub number: u16,
    /// The application protocol (from `protocol:`, else the port name);
    /// [`Protocol::Unsupported`] means "sniff".
    pub protocol: Protocol,
    /// Endpoint port when the endpoint names none (`targetPort`, else `number`).
    pub target_port: u16,
}

/// A service: one host of a ServiceEntry (or, later, a Kubernetes Service
/// or Consul service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The host name.
    pub hostname: Hostname,
    /// The namespace that declared it.
    pub namespace: String,
    /// Ports, in declaration order.
    pub ports: Vec<ServicePort>,
    /// Virtual IPs / CIDRs clients may dial (ServiceEntry `addresses`).
    pub addresses: Vec<String>,
    /// How endpoints are found.
    pub resolution: Resolution,
    /// Inside or outside the mesh.
    pub location: Location,
    /// Namespaces it is visible to (`exportTo`; empty: everywhere).
    pub export_to: Vec<String>,
    /// Identities the endpoints' certificates may carry.
    pub subject_alt_names: Vec<String>,
    /// The resource it came from.
    pub source: ResourceKey,
}

impl Service {
    /// The port with this number.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// Whether namespace `from` may see this service.
    pub fn visible_from(&self, from: &str) -> bool {
        weft_config::select::exported_to(&self.export_to, &self.namespace, from)
    }
}

/// Where an endpoint is reached.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointAddress {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name (DNS resolution).
    Hostname(String),
    /// A unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddress::Ip(ip) => write!(f, "{ip}"),
            EndpointAddress::Hostname(h) => f.write_str(h),
            EndpointAddress::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// A failure domain: `region/zone/subzone`, each part optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone within the region.
    pub zone: String,
    /// Sub-zone within the zone.
    pub subzone: String,
}

impl Locality {
    /// Parses `region/zone/subzone` (missing parts are empty).
    pub fn parse(s: &str) -> Self {
        let mut parts = s.splitn(3, '/').map(str::to_string);
        Locality {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            subzone: parts.next().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.subzone)
    }
}

/// Whether an endpoint may receive traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Ready.
    Healthy,
    /// Known not ready (failing health checks, draining).
    Unhealthy,
}

/// One endpoint of one service: a workload, with the port it serves each
/// service port on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Where it is reached.
    pub address: EndpointAddress,
    /// Service port number → the port on this endpoint.
    pub ports: BTreeMap<u16, u16>,
    /// The workload's labels (subsets select on these).
    pub labels: BTreeMap<String, String>,
    /// Failure domain.
    pub locality: Locality,
    /// Load-balancing weight (at least 1).
    pub weight: u32,
    /// Service account it runs as (its identity); empty if none.
    pub service_account: String,
    /// The workload's namespace.
    pub namespace: String,
    /// Network it is on (multi-network meshes); empty for the local one.
    pub network: String,
    /// Whether it may receive traffic.
    pub health: Health,
    /// The WorkloadEntry (or ServiceEntry, for inline endpoints) it came from.
    pub source: ResourceKey,
}

/// Everything a registry knows at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrySnapshot {
    /// Increases with every change.
    pub version: u64,
    /// Services by host name; several namespaces may declare one host.
    pub services: BTreeMap<Hostname, Vec<Arc<Service>>>,
    /// Endpoints by host name and declaring namespace.
    pub endpoints: BTreeMap<(Hostname, String), Arc<Vec<Endpoint>>>,
    /// The ports services serve on each endpoint source, built on first
    /// use (see [`RegistrySnapshot::ports_of_source`]).
    pub by_source: SourceIndex,
}

/// The endpoint ports services serve on one workload, with the service
/// port's protocol.
pub type SourcePorts = BTreeMap<u16, Protocol>;

/// [`SourcePorts`] of every endpoint source, made once per snapshot from
/// its services and endpoints. A cache: it takes no part in comparisons
/// (equal snapshots are equal whether it is built or not) and a clone
/// starts without it.
#[derive(Debug, Default)]
pub struct SourceIndex(OnceLock<HashMap<ResourceKey, SourcePorts>>);

impl Clone for SourceIndex {
    fn clone(&self) -> Self {
        SourceIndex::default()
    }
}

impl PartialEq for SourceIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SourceIndex {}

impl RegistrySnapshot {
    /// The endpoint ports the services serve on the workload `source`
    /// (a WorkloadEntry), each with its service port's protocol — the
    /// first service's, by host name, when two disagree; `None` when no
    /// service selects it. A lookup in an index built once per snapshot
    /// (every xDS stream resolves its proxy's inbound ports).
    pub fn ports_of_source(&self, source: &ResourceKey) -> Option<&SourcePorts> {
        self.by_source
            .0
            .get_or_init(|| {
                let mut index: HashMap<ResourceKey, SourcePorts> = HashMap::new();
                for ((host, namespace), endpoints) in &self.endpoints {
                    let Some(service) = self
                        .services
                        .get(host)
                        .and_then(|list| list.iter().find(|s| &s.namespace == namespace))
                    else {
                        continue;
                    };
                    for e in endpoints.iter() {
                        let ports = index.entry(e.source.clone()).or_default();
                        for (service_port, endpoint_port) in &e.ports {
                            if let Some(p) = service.port(*service_port) {
                                ports.entry(*endpoint_port).or_insert(p.protocol);
                            }
                        }
                    }
                }
                index
            })
            .get(source)
    }

    /// Every service.
    pub fn all_services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values().flatten()
    }

    /// The endpoints of `service`.
    pub fn endpoints_of(&self, service: &Service) -> &[Endpoint] {
        self.endpoints
            .get(&(service.hostname.clone(), service.namespace.clone()))
            .map_or(&[], |e| e.as_slice())
    }

    /// The services with this exact host name visible from `from`.
    pub fn lookup(&self, host: &Hostname, from: &str) -> impl Iterator<Item = &Arc<Service>> {
        self.services
            .get(host)
            .into_iter()
            .flatten()
            .filter(move |s| s.visible_from(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locality_parses_partial_forms() {
        assert_eq!(
            Locality::parse("us-east/zone-a/rack-1").to_string(),
            "us-east/zone-a/rack-1"
        );
        assert_eq!(Locality::parse("us-east").zone, "");
        assert_eq!(Locality::parse("").region, "");
    }

    #[test]
    fn hostnames_are_lowercase() {
        assert_eq!(
            Hostname::new("Reviews.Shop.svc.cluster.local").as_str(),
            "reviews.shop.svc.cluster.local"
        );
        assert!(Hostname::new("*.example.com").is_wildcard());
    }
}
