//! WorkloadEntry auto-registration from a stream's side: a proxy whose
//! node metadata carries `AUTO_REGISTER_GROUP` (istio-agent's
//! `ISTIO_META_AUTO_REGISTER_GROUP`) is registered with the server's
//! [`AutoRegistry`] when its stream opens, and stays registered while the
//! stream lives (the [`Registration`] is dropped with it). The registry
//! does the rest (see [`weft_registry::autoregister`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weft_config::Kind;
use weft_registry::autoregister::{Outcome, Workload};
use weft_registry::{AutoRegistry, Locality, Registration};
use weft_xds::pb::envoy::config::core::v3::Node;

use super::Generation;
use crate::translate::Proxy;
use crate::translate::proxy::string;

/// The node metadata naming the WorkloadGroup to register from.
pub const AUTO_REGISTER_GROUP: &str = "AUTO_REGISTER_GROUP";

/// How long a stream waits for a generation holding its new entry before
/// it answers from the one it has (the entry then comes with a push).
const FIRST_GENERATION_WAIT: Duration = Duration::from_secs(2);

/// What `proxy` (read from `node`) says for auto-registration, if it asks
/// for it.
pub(crate) fn workload(node: Option<&Node>, proxy: &Proxy) -> Option<Workload> {
    let meta = node.and_then(|n| n.metadata.as_ref());
    let group = string(meta, AUTO_REGISTER_GROUP).filter(|g| !g.is_empty())?;
    Some(Workload {
        proxy: proxy.id.clone(),
        namespace: proxy.namespace.clone(),
        group,
        address: proxy.ips.first().cloned().unwrap_or_default(),
        network: string(meta, "NETWORK").unwrap_or_default(),
        locality: locality(&proxy.locality),
        labels: proxy.labels.clone(),
    })
}

/// Istio's `LocalityToString`: `region[/zone[/subzone]]`, empty parts at
/// the end left out.
fn locality(l: &Locality) -> String {
    let mut out = l.region.clone();
    if l.zone.is_empty() {
        return out;
    }
    out.push('/');
    out.push_str(&l.zone);
    if !l.subzone.is_empty() {
        out.push('/');
        out.push_str(&l.subzone);
    }
    out
}

/// Registers the stream's proxy if it asks to be and the server
/// auto-registers. The proxy then names its entry (`proxy.pod`, which the
/// workload lookup reads first); when the entry is new, waits (a moment
/// at most) until `generations` has a generation with it, so the proxy's
/// first responses already carry its inbound listeners.
pub(crate) async fn register(
    registry: Option<&AutoRegistry>,
    node: Option<&Node>,
    proxy: &mut Proxy,
    generations: &mut watch::Receiver<Arc<Generation>>,
) -> Option<Registration> {
    let workload = workload(node, proxy)?;
    let Some(registry) = registry else {
        tracing::warn!(
            target: "weft::xds",
            proxy = %proxy.id,
            group = %workload.group,
            "the proxy asks to be auto-registered ({AUTO_REGISTER_GROUP}), but this server does not auto-register"
        );
        return None;
    };
    let registration = match registry.connect(workload) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(target: "weft::xds", "cannot auto-register: {e}");
            return None;
        }
    };
    proxy.pod = registration.name().to_string();
    if registration.outcome() == Outcome::Registered {
        let key = registration.key();
        let wait = generations.wait_for(|g| {
            g.config
                .get(Kind::WorkloadEntry, &key.namespace, &key.name)
                .is_some()
        });
        if tokio::time::timeout(FIRST_GENERATION_WAIT, wait)
            .await
            .is_err()
        {
            tracing::debug!(
                target: "weft::xds",
                proxy = %proxy.id,
                entry = %key.name,
                "no generation with the auto-registered entry yet; it follows in a push"
            );
        }
    }
    Some(registration)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use weft_xds::pb::google::protobuf::{Struct, Value, value};

    use super::*;

    fn node(meta: &[(&str, &str)]) -> Node {
        let fields: HashMap<String, Value> = meta
            .iter()
            .map(|(k, v)| {
                let v = Value {
                    kind: Some(value::Kind::StringValue(v.to_string())),
                };
                (k.to_string(), v)
            })
            .collect();
        Node {
            id: "sidecar~10.0.0.5~vm-host.shop~shop.svc.cluster.local".into(),
            metadata: Some(Struct { fields }),
            locality: Some(weft_xds::pb::envoy::config::core::v3::Locality {
                region: "eu".into(),
                zone: "eu-1".into(),
                sub_zone: String::new(),
            }),
            ..Node::default()
        }
    }

    #[test]
    fn the_node_says_group_address_network_and_locality() {
        let n = node(&[
            (AUTO_REGISTER_GROUP, "vm"),
            ("NETWORK", "vpc-1"),
            ("INSTANCE_IPS", "10.0.0.7,10.0.0.5"),
        ]);
        let proxy = Proxy::from_node(Some(&n)).expect("proxy");
        let w = workload(Some(&n), &proxy).expect("asks to register");
        assert_eq!(w.group, "vm");
        assert_eq!(w.namespace, "shop");
        assert_eq!(w.address, "10.0.0.7", "the first INSTANCE_IP");
        assert_eq!(w.network, "vpc-1");
        assert_eq!(w.locality, "eu/eu-1");
        // Without INSTANCE_IPS: the node id's IP.
        let n = node(&[(AUTO_REGISTER_GROUP, "vm")]);
        let proxy = Proxy::from_node(Some(&n)).expect("proxy");
        let w = workload(Some(&n), &proxy).expect("asks to register");
        assert_eq!(w.address, "10.0.0.5");
        // Without the metadata: nothing to register.
        let n = node(&[]);
        let proxy = Proxy::from_node(Some(&n)).expect("proxy");
        assert_eq!(workload(Some(&n), &proxy), None);
    }
}
