//! The border: each xDS resource a response carries becomes Weft's own
//! model through `TryFrom`, once; what can't be converted is refused with
//! the resource named. State of the world and delta share it — SotW
//! converts a whole response into a [`Converted`] map, delta converts its
//! changed resources and applies them onto the set it holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_xds::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener as XdsListener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;
use weft_xds::pb::google::protobuf::Any;

use super::Kind;
use super::vhds::Group;
use crate::cluster::{Cluster, UpstreamTls};
use crate::endpoint::LoadAssignment;
use crate::listener::Listener;
use crate::route::RouteTable;

/// One type's converted resources, by name: what a SotW response holds,
/// or what a delta stream holds after a response.
#[derive(Clone, Debug)]
pub(super) enum Converted {
    Clusters(BTreeMap<String, Arc<Cluster>>),
    Assignments(BTreeMap<String, Arc<LoadAssignment>>),
    Listeners(BTreeMap<String, Arc<Listener>>),
    /// RDS as sent: a configuration with `vhds` has only its inline
    /// virtual hosts here; VHDS's are added when the snapshot is made.
    Routes(BTreeMap<String, Arc<RouteTable>>),
    /// VHDS: the virtual hosts of each route configuration.
    VirtualHosts(BTreeMap<String, Arc<Group>>),
}

/// One converted resource.
#[derive(Debug)]
pub(super) enum Item {
    Cluster(Arc<Cluster>),
    Assignment(Arc<LoadAssignment>),
    Listener(Arc<Listener>),
    Route(Arc<RouteTable>),
}

impl Converted {
    /// Nothing of kind `k`.
    pub(super) fn empty(k: Kind) -> Converted {
        match k {
            Kind::Cluster => Converted::Clusters(BTreeMap::new()),
            Kind::Endpoints => Converted::Assignments(BTreeMap::new()),
            Kind::Listener => Converted::Listeners(BTreeMap::new()),
            Kind::Routes => Converted::Routes(BTreeMap::new()),
            Kind::VirtualHosts => Converted::VirtualHosts(BTreeMap::new()),
        }
    }

    /// Adds or replaces `name`; says whether it was there.
    pub(super) fn insert(&mut self, name: String, item: Item) -> bool {
        match (self, item) {
            (Converted::Clusters(m), Item::Cluster(c)) => m.insert(name, c).is_some(),
            (Converted::Assignments(m), Item::Assignment(a)) => m.insert(name, a).is_some(),
            (Converted::Listeners(m), Item::Listener(l)) => m.insert(name, l).is_some(),
            (Converted::Routes(m), Item::Route(r)) => m.insert(name, r).is_some(),
            (_, item) => {
                // convert_one makes items of the map's own kind.
                tracing::error!(target: "weft::xds", ?item, "internal: a resource of another type; dropped");
                false
            }
        }
    }

    /// Drops `name`; says whether it was there.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        match self {
            Converted::Clusters(m) => m.remove(name).is_some(),
            Converted::Assignments(m) => m.remove(name).is_some(),
            Converted::Listeners(m) => m.remove(name).is_some(),
            Converted::Routes(m) => m.remove(name).is_some(),
            Converted::VirtualHosts(m) => m.remove(name).is_some(),
        }
    }

    /// Keeps only the names `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        match self {
            Converted::Clusters(m) => m.retain(|n, _| keep(n)),
            Converted::Assignments(m) => m.retain(|n, _| keep(n)),
            Converted::Listeners(m) => m.retain(|n, _| keep(n)),
            Converted::Routes(m) => m.retain(|n, _| keep(n)),
            Converted::VirtualHosts(m) => m.retain(|n, _| keep(n)),
        }
    }

    /// Whether it holds `name`.
    pub(super) fn contains(&self, name: &str) -> bool {
        match self {
            Converted::Clusters(m) => m.contains_key(name),
            Converted::Assignments(m) => m.contains_key(name),
            Converted::Listeners(m) => m.contains_key(name),
            Converted::Routes(m) => m.contains_key(name),
            Converted::VirtualHosts(m) => m.contains_key(name),
        }
    }
}

/// Converts one resource of kind `k` (not VHDS's, which need their route
/// configuration: [`super::vhds`]); returns its name.
pub(super) fn convert_one(k: Kind, any: &Any) -> Result<(String, Item), String> {
    fn one<X, M, E>(
        any: &Any,
        name: fn(&X) -> &str,
        conv: impl Fn(&X) -> Result<M, E>,
    ) -> Result<(String, Arc<M>), String>
    where
        X: prost::Message + prost::Name + Default,
        E: std::fmt::Display,
    {
        let x: X = weft_xds::unpack(any).map_err(|e| e.to_string())?;
        let m = conv(&x).map_err(|e| e.to_string())?;
        Ok((name(&x).to_string(), Arc::new(m)))
    }
    Ok(match k {
        Kind::Cluster => {
            let (n, c) = one::<XdsCluster, _, _>(any, |c| &c.name, |x| Cluster::try_from(x))?;
            (n, Item::Cluster(c))
        }
        Kind::Endpoints => {
            let (n, a) = one::<ClusterLoadAssignment, _, _>(
                any,
                |c| &c.cluster_name,
                |x| LoadAssignment::try_from(x),
            )?;
            (n, Item::Assignment(a))
        }
        Kind::Listener => {
            let (n, l) = one::<XdsListener, _, _>(any, |l| &l.name, |x| Listener::try_from(x))?;
            (n, Item::Listener(l))
        }
        Kind::Routes => {
            let (n, r) =
                one::<RouteConfiguration, _, _>(any, |r| &r.name, |x| RouteTable::try_from(x))?;
            (n, Item::Route(r))
        }
        Kind::VirtualHosts => return Err("virtual hosts come over VHDS only".into()),
    })
}

/// Converts every resource of a state-of-the-world response, or says
/// which one failed and why. VHDS needs the delta protocol, so a route
/// configuration with `vhds` is refused here.
pub(super) fn convert_all(k: Kind, resources: &[Any]) -> Result<Converted, String> {
    let mut out = Converted::empty(k);
    for any in resources {
        let (name, item) = convert_one(k, any)?;
        if let Item::Route(r) = &item
            && r.vhds()
        {
            return Err(format!(
                "route configuration {name}: vhds needs the delta xDS protocol (weft proxy --xds-protocol delta)"
            ));
        }
        if out.insert(name.clone(), item) {
            return Err(format!("{} {name:?} is sent twice", k.resource_name()));
        }
    }
    warn_plaintext(&out);
    Ok(out)
}

/// Warns when DestinationRules ask for TLS the proxy can't originate yet.
pub(super) fn warn_plaintext(c: &Converted) {
    let Converted::Clusters(clusters) = c else {
        return;
    };
    let plaintext = clusters
        .values()
        .filter(|c| c.tls_not_originated == UpstreamTls::Requested)
        .count();
    if plaintext > 0 {
        tracing::warn!(
            target: "weft::xds",
            clusters = plaintext,
            "DestinationRules ask for TLS to some clusters; this proxy can't originate TLS yet and sends plaintext to them (see /config_dump: tls_not_originated)"
        );
    }
}
