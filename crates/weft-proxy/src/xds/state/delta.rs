//! The delta half of the state machine: a response's `resources` and
//! `removed_resources` applied onto the set held of its type (the pending
//! one, else the applied one), and requests that say what changed in the
//! subscription (`resource_names_subscribe` / `_unsubscribe`) and, first
//! on a stream, the versions held (`initial_resource_versions`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::time::Instant;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use weft_xds::pb::google::rpc::Status;

use super::convert::{self, Converted, Item};
use super::{Kind, Outcome, Received, State, vhds};

impl State {
    /// Handles one delta response.
    pub fn on_delta_response(&mut self, r: DeltaDiscoveryResponse, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        let Some(k) = Kind::parse(&r.type_url) else {
            tracing::warn!(target: "weft::xds", type_url = %r.type_url, "response of a type never asked for; ignored");
            return out;
        };
        self.state(k).nonce = r.nonce.clone();
        let applied = if k == Kind::VirtualHosts {
            self.delta_vhosts(&r)
        } else {
            self.delta_resources(k, &r)
        };
        match applied {
            Ok((converted, versions)) => {
                tracing::debug!(target: "weft::xds", r#type = k.short_name(), version = %r.system_version_info, resources = r.resources.len(), removed = r.removed_resources.len(), "received");
                let received = Received {
                    converted,
                    version: r.system_version_info,
                    nonce: r.nonce,
                    versions,
                };
                self.received(k, received, now, &mut out);
            }
            // What was pending stays pending: the NACKed response changes nothing.
            Err(error) => self.reject(k, r.system_version_info, error, &mut out),
        }
        out
    }

    /// What is held of `k` (pending, else applied) and its versions; of a
    /// type subscribed by name, only the names subscribed to.
    fn newest(&self, k: Kind) -> (Converted, BTreeMap<String, String>) {
        let s = &self.types[&k];
        let (mut held, mut versions) = match &s.pending {
            Some(p) => (p.converted.clone(), p.versions.clone()),
            None => {
                let held = match k {
                    Kind::Cluster => Converted::Clusters(self.applied.clusters.clone()),
                    Kind::Endpoints => Converted::Assignments(self.applied.assignments.clone()),
                    Kind::Listener => Converted::Listeners(self.applied.listeners.clone()),
                    Kind::Routes => Converted::Routes(self.rds.clone()),
                    Kind::VirtualHosts => Converted::VirtualHosts(self.vhosts.clone()),
                };
                (held, s.versions.clone())
            }
        };
        if k.by_name() {
            held.retain(|n| s.names.contains(n));
            versions.retain(|n, _| subscribed(k, n, &s.names));
        }
        (held, versions)
    }

    /// CDS, EDS, LDS, RDS: removals, then the resources sent, each
    /// converted; on success the route configurations with `vhds` among
    /// them wait for their virtual hosts again.
    fn delta_resources(
        &mut self,
        k: Kind,
        r: &DeltaDiscoveryResponse,
    ) -> Result<(Converted, BTreeMap<String, String>), String> {
        let (mut held, mut versions) = self.newest(k);
        for name in &r.removed_resources {
            held.remove(name);
            versions.remove(name);
        }
        let mut seen = BTreeSet::new();
        let mut vhds_updated = Vec::new();
        for res in &r.resources {
            if !seen.insert(res.name.as_str()) {
                return Err(format!(
                    "{} {:?} is sent twice",
                    k.resource_name(),
                    res.name
                ));
            }
            let any = res.resource.as_ref().ok_or_else(|| {
                format!("{} {:?} carries no resource", k.resource_name(), res.name)
            })?;
            let (name, item) = convert::convert_one(k, any)?;
            if name != res.name {
                return Err(format!(
                    "resource {:?} is {} {name:?}",
                    res.name,
                    k.resource_name()
                ));
            }
            if let Item::Route(t) = &item
                && t.vhds()
            {
                // Inline virtual hosts beside VHDS's must not clash with them.
                if !t.virtual_hosts.is_empty()
                    && let Some(group) = self.newest_vhosts().get(&name)
                {
                    t.with_virtual_hosts(group.hosts.values().cloned(), None)
                        .map_err(|e| e.to_string())?;
                }
                vhds_updated.push(name.clone());
            }
            held.insert(name.clone(), item);
            versions.insert(name, res.version.clone());
        }
        if !r.resources.is_empty() {
            convert::warn_plaintext(&held);
        }
        let s = self.state(k);
        for name in &r.removed_resources {
            if s.names.contains(name) {
                s.absent.insert(name.clone());
            }
        }
        for res in &r.resources {
            s.absent.remove(&res.name);
        }
        self.refresh.extend(vhds_updated);
        Ok((held, versions))
    }

    /// VHDS: the virtual hosts applied onto their route configurations'
    /// groups ([`vhds::apply`]); each configuration named is re-indexed
    /// now, so a domain two virtual hosts claim NACKs this response.
    fn delta_vhosts(
        &mut self,
        r: &DeltaDiscoveryResponse,
    ) -> Result<(Converted, BTreeMap<String, String>), String> {
        let (held, versions) = self.newest(Kind::VirtualHosts);
        let Converted::VirtualHosts(groups) = held else {
            return Err("internal: VHDS holds no virtual hosts".into());
        };
        let mut assembled = std::mem::take(&mut self.assembled);
        let subscribed = &self.types[&Kind::VirtualHosts].names;
        let routes = self.newest_rds();
        let update = vhds::apply(
            vhds::Response {
                resources: &r.resources,
                removed: &r.removed_resources,
            },
            subscribed,
            routes,
            groups,
            versions,
            &self.refresh,
        )
        .and_then(|update| {
            for name in &update.named {
                if let (Some(raw), Some(group)) = (routes.get(name), update.groups.get(name)) {
                    assembled
                        .table(raw, Some(group))
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(update)
        });
        self.assembled = assembled;
        let update = update?;
        for name in &update.named {
            self.refresh.remove(name);
        }
        Ok((Converted::VirtualHosts(update.groups), update.versions))
    }

    /// A delta request for `k`: the subscription's changes since the last
    /// request on this stream and, the first time, the versions held.
    pub(super) fn delta_request(
        &mut self,
        k: Kind,
        node: Option<Node>,
        error_detail: Option<Status>,
    ) -> DeltaDiscoveryRequest {
        let s = self.state(k);
        let first = !s.requested;
        s.requested = true;
        let subscribe = s.names.difference(&s.sent).cloned().collect();
        let unsubscribe = s.sent.difference(&s.names).cloned().collect();
        s.sent = s.names.clone();
        let initial: HashMap<String, String> = if first {
            s.versions
                .iter()
                .filter(|(n, _)| !k.by_name() || subscribed(k, n, &s.names))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect()
        } else {
            HashMap::new()
        };
        DeltaDiscoveryRequest {
            node,
            type_url: k.type_url().to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            initial_resource_versions: initial,
            response_nonce: s.nonce.clone(),
            error_detail,
            ..DeltaDiscoveryRequest::default()
        }
    }
}

/// Whether the resource `name` of `k` is under the subscription `names`
/// (a virtual host `R/vhost` is under `R`).
fn subscribed(k: Kind, name: &str, names: &BTreeSet<String>) -> bool {
    if k == Kind::VirtualHosts {
        vhds::split(name, names).is_some()
    } else {
        names.contains(name)
    }
}
