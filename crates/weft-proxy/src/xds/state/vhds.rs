//! VHDS (virtual host discovery, delta only): a route configuration `R`
//! with `vhds` set comes without its virtual hosts; they come as
//! `envoy.config.route.v3.VirtualHost` resources named `R/<vhost>`, to
//! which the proxy subscribes with the name `R` (as Envoy's
//! `VhdsSubscription` does), and `removed_resources` names the ones that
//! went. The proxy opts in with the client feature [`CLIENT_FEATURE`].
//!
//! Each virtual host is converted once, when it arrives (with `R`'s own
//! header changes), and kept as an `Arc`; `R`'s route table is its inline
//! part plus the current virtual hosts, re-indexed by domain when either
//! changes ([`Assembled`]): one virtual host's change converts that one and
//! re-indexes only `R`. When `R` itself is updated the server sends all of
//! its virtual hosts again after it, and the first VHDS response naming
//! `R` replaces its set; until then the old set stays in force.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use weft_xds::pb::envoy::config::route::v3::VirtualHost as XdsVhost;
use weft_xds::pb::envoy::service::discovery::v3::Resource;

use crate::route::{RouteError, RouteTable, VirtualHost};

/// VHDS's resource type.
pub const TYPE_URL: &str = weft_xds::TypeUrl::VirtualHost.as_str();

/// What the proxy puts in `Node.client_features` to be sent route
/// configurations with `vhds` (on a delta stream): the control plane's
/// opt-in, from weft-xds so both sides spell it alike.
pub const CLIENT_FEATURE: &str = weft_xds::names::VHDS_FEATURE;

/// The virtual hosts VHDS gave one route configuration, by virtual host
/// name.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(super) hosts: BTreeMap<String, Arc<VirtualHost>>,
}

/// `R/vhost` split at the `/` after a route configuration subscribed to.
pub(super) fn split<'a>(name: &'a str, configs: &BTreeSet<String>) -> Option<(&'a str, &'a str)> {
    name.match_indices('/')
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(r, _)| configs.contains(*r))
}

/// What a VHDS response made of the groups held.
#[derive(Debug)]
pub(super) struct Update {
    /// Every route configuration's virtual hosts, after the response.
    pub(super) groups: BTreeMap<String, Arc<Group>>,
    /// Each virtual host's version (`R/vhost` → version).
    pub(super) versions: BTreeMap<String, String>,
    /// The route configurations the response named (their sets are now
    /// what the server sent since their last update).
    pub(super) named: BTreeSet<String>,
}

/// What the response holds for the route configurations it names.
pub(super) struct Response<'a> {
    pub(super) resources: &'a [Resource],
    pub(super) removed: &'a [String],
}

/// Applies a VHDS response onto `groups` (what is held): for each route
/// configuration it names, the set starts empty if `R` was updated since
/// its last VHDS response (`refresh`), else from what is held; then
/// removals, then the virtual hosts sent, converted with `R` as it is now
/// (`routes`: RDS, newest first). Virtual hosts of a configuration no
/// longer subscribed to (`subscribed`) are dropped unread.
pub(super) fn apply(
    response: Response<'_>,
    subscribed: &BTreeSet<String>,
    routes: &BTreeMap<String, Arc<RouteTable>>,
    mut groups: BTreeMap<String, Arc<Group>>,
    mut versions: BTreeMap<String, String>,
    refresh: &BTreeSet<String>,
) -> Result<Update, String> {
    let mut named = BTreeSet::new();
    for name in response.removed {
        if let Some((r, _)) = split(name, subscribed) {
            named.insert(r.to_string());
        } else if subscribed.contains(name) {
            // The server's "R has nothing": an empty set.
            named.insert(name.clone());
        }
    }
    for res in response.resources {
        match split(&res.name, subscribed) {
            Some((r, _)) => {
                named.insert(r.to_string());
            }
            None => {
                tracing::debug!(target: "weft::xds", name = %res.name, "virtual host of a route configuration not subscribed to; dropped");
            }
        }
    }
    let mut edits: BTreeMap<String, BTreeMap<String, Arc<VirtualHost>>> = BTreeMap::new();
    for r in &named {
        let held = if refresh.contains(r) {
            let prefix = format!("{r}/");
            versions.retain(|n, _| !n.starts_with(&prefix));
            BTreeMap::new()
        } else {
            groups.get(r).map(|g| g.hosts.clone()).unwrap_or_default()
        };
        edits.insert(r.clone(), held);
    }
    for name in response.removed {
        if let Some((r, vh)) = split(name, subscribed)
            && let Some(hosts) = edits.get_mut(r)
        {
            hosts.remove(vh);
            versions.remove(name);
        }
    }
    let mut seen = BTreeSet::new();
    for res in response.resources {
        let Some((r, vh)) = split(&res.name, subscribed) else {
            continue;
        };
        if !seen.insert(res.name.as_str()) {
            return Err(format!("virtual host {:?} is sent twice", res.name));
        }
        let Some(table) = routes.get(r) else {
            tracing::debug!(target: "weft::xds", name = %res.name, "virtual host of a route configuration not held; dropped");
            continue;
        };
        let any = res
            .resource
            .as_ref()
            .ok_or_else(|| format!("virtual host {:?} carries no resource", res.name))?;
        let x: XdsVhost = weft_xds::unpack(any).map_err(|e| format!("{:?}: {e}", res.name))?;
        if x.name != vh {
            return Err(format!(
                "resource {:?} is virtual host {:?} (expected {vh:?})",
                res.name, x.name
            ));
        }
        let converted = table.convert_virtual_host(&x).map_err(|e| e.to_string())?;
        if let Some(hosts) = edits.get_mut(r) {
            hosts.insert(vh.to_string(), Arc::new(converted));
        }
        versions.insert(res.name.clone(), res.version.clone());
    }
    for (r, hosts) in edits {
        groups.insert(r, Arc::new(Group { hosts }));
    }
    Ok(Update {
        groups,
        versions,
        named,
    })
}

/// Route tables made from a configuration and its VHDS group, kept while
/// both are the same (compared by pointer), so an unchanged `R` is not
/// re-indexed when something else changes.
#[derive(Debug, Default)]
pub(super) struct Assembled(HashMap<String, Made>);

#[derive(Debug)]
struct Made {
    raw: Arc<RouteTable>,
    group: Option<Arc<Group>>,
    table: Arc<RouteTable>,
}

impl Assembled {
    /// `raw` with `group`'s virtual hosts (`raw` itself without `vhds`).
    pub(super) fn table(
        &mut self,
        raw: &Arc<RouteTable>,
        group: Option<&Arc<Group>>,
    ) -> Result<Arc<RouteTable>, RouteError> {
        if !raw.vhds() {
            return Ok(raw.clone());
        }
        let made = self.0.get(&raw.name);
        if let Some(m) = made
            && Arc::ptr_eq(&m.raw, raw)
            && match (&m.group, group) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        {
            return Ok(m.table.clone());
        }
        let hosts = group.into_iter().flat_map(|g| g.hosts.values().cloned());
        let previous = made.map(|m| &*m.table);
        let table = Arc::new(raw.with_virtual_hosts(hosts, previous)?);
        self.0.insert(
            raw.name.clone(),
            Made {
                raw: raw.clone(),
                group: group.cloned(),
                table: table.clone(),
            },
        );
        Ok(table)
    }

    /// Forgets the configurations `keep` refuses.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.0.retain(|n, _| keep(n));
    }
}
