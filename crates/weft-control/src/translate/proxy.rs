//! Who a proxy is, read from the xDS `Node` it sends, as Istio's proxies
//! and Istio's gRPC bootstrap describe themselves:
//! id `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`,
//! metadata `NAMESPACE`, `LABELS`, `GENERATOR` (`grpc` for proxyless gRPC),
//! `WORKLOAD_NAME`, `INTERCEPTION_MODE` (`REDIRECT`, `TPROXY`, `NONE`), and
//! Weft's `APP_ADDRESS` (where the application listens, for the inbound
//! clusters: `127.0.0.1:8080`, or per port `9080=127.0.0.1:8080,…`).

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_registry::{Locality, Service};

use weft_xds::pb::envoy::config::core::v3::Node;

use super::instance::Instance;
use super::policy::RuleIndex;
use super::scope::EgressScope;
use weft_xds::pb::google::protobuf::{Struct, value};

/// What kind of xDS client a proxy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// A sidecar next to a workload (ours or Envoy).
    Sidecar,
    /// An ingress or egress gateway (`router~...`).
    Gateway,
    /// A proxyless gRPC client (node metadata `GENERATOR: grpc`): gets
    /// `host:port` listeners with an `api_listener`.
    Grpc,
}

/// How traffic reaches a sidecar: Istio's `INTERCEPTION_MODE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Interception {
    /// iptables redirects outbound traffic to 15001 and inbound to 15006
    /// (Istio's default): those two listeners are bound, every other one
    /// is found by original destination.
    #[default]
    Redirect,
    /// Like `Redirect`, with TPROXY keeping the source address.
    Tproxy,
    /// Nothing is captured (Istio's `NONE`; Weft's explicit mode): the
    /// inbound listeners bind the workload's own address and ports, the
    /// outbound ones are looked up by the proxy's HTTP-proxy port.
    None,
}

impl Interception {
    fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "NONE" => Interception::None,
            "TPROXY" => Interception::Tproxy,
            _ => Interception::Redirect,
        }
    }
}

/// Where the application behind a sidecar listens (`APP_ADDRESS`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppAddresses {
    /// For every inbound port without its own entry.
    pub default: Option<String>,
    /// Per inbound (endpoint) port.
    pub by_port: BTreeMap<u16, String>,
}

impl AppAddresses {
    /// Reads `ADDR` or `PORT=ADDR,PORT=ADDR`; entries that don't parse
    /// are skipped.
    pub fn parse(s: &str) -> Self {
        let mut out = AppAddresses::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('=') {
                Some((port, addr)) => {
                    if let Ok(port) = port.trim().parse() {
                        out.by_port.insert(port, addr.trim().to_string());
                    }
                }
                None => out.default = Some(entry.to_string()),
            }
        }
        out
    }

    /// Where the app serves inbound `port`, if the proxy said.
    pub fn for_port(&self, port: u16) -> Option<&str> {
        self.by_port
            .get(&port)
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

/// The proxy resources are made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// The xDS node id.
    pub id: String,
    /// What it is.
    pub kind: ProxyKind,
    /// The namespace it runs in (decides which config and services it sees).
    pub namespace: String,
    /// Its workload's labels (Sidecar, policy and gateway selection).
    pub labels: BTreeMap<String, String>,
    /// Its IP addresses (`INSTANCE_IPS`, else the id's).
    pub ips: Vec<String>,
    /// Its workload's name (`WORKLOAD_NAME`, else the id's pod name).
    pub workload: String,
    /// The pod (or WorkloadEntry) name from the id.
    pub pod: String,
    /// How traffic reaches it.
    pub interception: Interception,
    /// Where its application listens.
    pub app: AppAddresses,
    /// Its failure domain: the node's `locality`, else (set by
    /// [`super::translate`]) its WorkloadEntry's. Decides endpoint
    /// priorities for locality failover.
    pub locality: Locality,
    /// The workload it serves, from the registry (set by
    /// [`super::translate`]).
    pub instance: Option<Arc<Instance>>,
    /// The services its Sidecar resource scopes it to (set by
    /// [`super::translate`]; `None`: every visible service).
    pub egress: Option<Arc<EgressScope>>,
    /// The DestinationRules in force, indexed (set by
    /// [`super::translate`]; `None`: each lookup indexes the config itself).
    pub rules: Option<Arc<RuleIndex>>,
}

/// Why a node can't be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The request carried no node (the first request of a stream must).
    #[error("the request has no node; the first request of a stream must identify the proxy")]
    Missing,
    /// The node id is empty.
    #[error("node id is empty")]
    EmptyId,
    /// Neither metadata nor the id says which namespace the proxy is in.
    #[error(
        "node {0:?} names no namespace: set metadata NAMESPACE or use an id like sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local"
    )]
    NoNamespace(String),
}

impl Proxy {
    /// A sidecar in `namespace` with `labels` (tests and tools).
    pub fn sidecar(id: &str, namespace: &str, labels: &[(&str, &str)]) -> Self {
        Proxy {
            id: id.to_string(),
            kind: ProxyKind::Sidecar,
            namespace: namespace.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ips: Vec::new(),
            workload: String::new(),
            pod: String::new(),
            interception: Interception::default(),
            app: AppAddresses::default(),
            locality: Locality::default(),
            instance: None,
            egress: None,
            rules: None,
        }
    }

    /// Whether this proxy is told about `service`: exported to its
    /// namespace, and within its Sidecar's egress scope.
    pub fn sees(&self, service: &Service) -> bool {
        service.visible_from(&self.namespace)
            && self
                .egress
                .as_ref()
                .is_none_or(|e| e.allows(service, &self.namespace))
    }

    /// Reads a proxy from the `Node` of its first discovery request.
    pub fn from_node(node: Option<&Node>) -> Result<Proxy, NodeError> {
        let node = node.ok_or(NodeError::Missing)?;
        if node.id.is_empty() {
            return Err(NodeError::EmptyId);
        }
        let meta = node.metadata.as_ref();
        // `type~ip~pod.namespace~domain`
        let parts: Vec<&str> = node.id.split('~').collect();
        let (id_type, id_ip, id_pod_ns) = match parts.as_slice() {
            [t, ip, pod, _domain] => (Some(*t), Some(*ip), Some(*pod)),
            _ => (None, None, None),
        };
        let namespace = string(meta, "NAMESPACE")
            .or_else(|| {
                id_pod_ns
                    .and_then(|p| p.split_once('.'))
                    .map(|(_, ns)| ns.to_string())
            })
            .filter(|ns| !ns.is_empty())
            .ok_or_else(|| NodeError::NoNamespace(node.id.clone()))?;
        let kind = if string(meta, "GENERATOR").as_deref() == Some("grpc") {
            ProxyKind::Grpc
        } else if id_type == Some("router") {
            ProxyKind::Gateway
        } else {
            ProxyKind::Sidecar
        };
        let labels = meta
            .and_then(|m| m.fields.get("LABELS"))
            .and_then(|v| match &v.kind {
                Some(value::Kind::StructValue(s)) => Some(s),
                _ => None,
            })
            .map(|s| {
                s.fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let ips = string(meta, "INSTANCE_IPS")
            .map(|s| {
                s.split(',')
                    .map(str::to_string)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .or_else(|| id_ip.map(|ip| vec![ip.to_string()]))
            .unwrap_or_default();
        let pod = id_pod_ns
            .and_then(|p| p.split_once('.'))
            .map(|(pod, _)| pod.to_string())
            .unwrap_or_default();
        let workload = string(meta, "WORKLOAD_NAME").unwrap_or_else(|| pod.clone());
        Ok(Proxy {
            id: node.id.clone(),
            kind,
            namespace,
            labels,
            ips,
            workload,
            pod,
            interception: string(meta, "INTERCEPTION_MODE")
                .map(|m| Interception::parse(&m))
                .unwrap_or_default(),
            app: string(meta, "APP_ADDRESS")
                .map(|a| AppAddresses::parse(&a))
                .unwrap_or_default(),
            locality: node
                .locality
                .as_ref()
                .map(|l| Locality {
                    region: l.region.clone(),
                    zone: l.zone.clone(),
                    subzone: l.sub_zone.clone(),
                })
                .unwrap_or_default(),
            instance: None,
            egress: None,
            rules: None,
        })
    }
}

/// The scalar node metadata field `key`, as a string.
pub(crate) fn string(meta: Option<&Struct>, key: &str) -> Option<String> {
    meta.and_then(|m| m.fields.get(key)).and_then(scalar)
}

fn scalar(v: &weft_xds::pb::google::protobuf::Value) -> Option<String> {
    match &v.kind {
        Some(value::Kind::StringValue(s)) => Some(s.clone()),
        Some(value::Kind::NumberValue(n)) => Some(n.to_string()),
        Some(value::Kind::BoolValue(b)) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use weft_xds::pb::google::protobuf::Value;

    use super::*;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(value::Kind::StringValue(v.to_string())),
        }
    }

    fn node(id: &str, meta: &[(&str, Value)]) -> Node {
        let fields: HashMap<String, Value> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Node {
            id: id.to_string(),
            metadata: Some(Struct { fields }),
            ..Node::default()
        }
    }

    #[test]
    fn istio_grpc_bootstrap_nodes() {
        // The node of Istio's own proxyless gRPC bootstrap (shared/istio-samples/grpc-bootstrap).
        let n = node(
            "sidecar~127.0.0.1~pod1.fake-namespace~fake-namespace.svc.cluster.local",
            &[("GENERATOR", s("grpc")), ("INSTANCE_IPS", s("127.0.0.1"))],
        );
        let p = Proxy::from_node(Some(&n)).expect("proxy");
        assert_eq!(p.kind, ProxyKind::Grpc);
        assert_eq!(p.namespace, "fake-namespace");
        assert_eq!(p.workload, "pod1");
        assert_eq!(p.ips, vec!["127.0.0.1".to_string()]);
        let n = node(
            "sidecar~127.0.1.1~echo.test~cluster.local",
            &[("GENERATOR", s("grpc")), ("NAMESPACE", s("test"))],
        );
        assert_eq!(
            Proxy::from_node(Some(&n)).map(|p| p.namespace).as_deref(),
            Ok("test")
        );
    }

    #[test]
    fn sidecars_gateways_and_labels() {
        let labels = Value {
            kind: Some(value::Kind::StructValue(Struct {
                fields: [
                    ("app".to_string(), s("reviews")),
                    ("version".to_string(), s("v1")),
                ]
                .into_iter()
                .collect(),
            })),
        };
        let n = node(
            "sidecar~10.0.0.1~reviews-v1.shop~shop.svc.cluster.local",
            &[("LABELS", labels)],
        );
        let p = Proxy::from_node(Some(&n)).expect("proxy");
        assert_eq!(p.kind, ProxyKind::Sidecar);
        assert_eq!(p.labels.get("version").map(String::as_str), Some("v1"));
        let gw = node(
            "router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local",
            &[],
        );
        assert_eq!(
            Proxy::from_node(Some(&gw)).map(|p| p.kind),
            Ok(ProxyKind::Gateway)
        );
    }

    #[test]
    fn interception_and_app_addresses() {
        let n = node(
            "sidecar~127.0.0.1~reviews-v1.shop~shop.svc.cluster.local",
            &[
                ("INTERCEPTION_MODE", s("NONE")),
                ("APP_ADDRESS", s("127.0.0.1:8080, 9090=127.0.0.1:9999")),
            ],
        );
        let p = Proxy::from_node(Some(&n)).expect("proxy");
        assert_eq!(p.interception, Interception::None);
        assert_eq!(p.pod, "reviews-v1");
        assert_eq!(p.app.for_port(9080), Some("127.0.0.1:8080"));
        assert_eq!(p.app.for_port(9090), Some("127.0.0.1:9999"));
        let plain = node("sidecar~10.0.0.1~a.shop~shop.svc.cluster.local", &[]);
        let p = Proxy::from_node(Some(&plain)).expect("proxy");
        assert_eq!(p.interception, Interception::Redirect);
        assert_eq!(p.app.for_port(80), None);
    }

    #[test]
    fn bad_nodes_are_errors() {
        assert_eq!(Proxy::from_node(None), Err(NodeError::Missing));
        assert_eq!(
            Proxy::from_node(Some(&Node::default())),
            Err(NodeError::EmptyId)
        );
        let e = Proxy::from_node(Some(&node("just-a-name", &[]))).expect_err("no namespace");
        assert!(e.to_string().contains("names no namespace"), "{e}");
    }
}
