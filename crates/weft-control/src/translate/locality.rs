//! Locality load balancing: which endpoints a proxy prefers, by where it
//! runs.
//!
//! Istio's rules, computed for each proxy from its own locality (the
//! node's, else its WorkloadEntry's):
//! - the setting is the DestinationRule's `localityLbSetting`, else the
//!   mesh's (on by default); `enabled: false` on either turns it off;
//! - `distribute` rewrites locality weights for clients `from` a locality
//!   (patterns `region/zone/subzone`, `*` matching anything), and drops
//!   the localities it doesn't list;
//! - otherwise, only when the traffic policy has outlier detection (without
//!   it Envoy would never leave a priority), endpoints get priorities:
//!   first by `failoverPriority` labels, then by locality — same
//!   region/zone/subzone 0, same zone 1, same region 2, elsewhere 3, and 4
//!   for regions a `failover` rule doesn't send this region's traffic to.
//!   Priorities are then renumbered 0..N without gaps, as Envoy wants.

use std::collections::BTreeMap;

use weft_config::networking::{LocalityLbSetting, TrafficPolicy};
use weft_registry::{Endpoint, Locality};

use super::{Inputs, Proxy};

/// Kubernetes' and Istio's topology labels, which `failoverPriority` may
/// name; every endpoint and proxy carries them, from its locality.
const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
const NETWORK_LABEL: &str = "topology.istio.io/network";

/// Endpoints of one locality at one priority, as EDS sends them.
#[derive(Debug)]
pub struct Group<'a> {
    /// Where they are.
    pub locality: &'a Locality,
    /// The endpoints.
    pub endpoints: Vec<&'a Endpoint>,
    /// Envoy priority (0 first).
    pub priority: u32,
    /// Locality weight (the sum of the endpoints' weights unless
    /// `distribute` says otherwise).
    pub weight: u32,
}

/// The locality setting in force for a cluster with `policy`, if any.
pub fn setting<'a>(
    inputs: Inputs<'a>,
    policy: Option<&'a TrafficPolicy>,
) -> Option<&'a LocalityLbSetting> {
    static ENABLED: LocalityLbSetting = LocalityLbSetting {
        distribute: Vec::new(),
        failover: Vec::new(),
        failover_priority: Vec::new(),
        enabled: None,
    };
    let rule = policy
        .and_then(|p| p.load_balancer.as_ref())
        .and_then(|lb| lb.locality_lb_setting.as_ref());
    let chosen = match rule {
        Some(r) => r,
        None => inputs
            .config
            .mesh
            .locality_lb_setting
            .as_ref()
            .unwrap_or(&ENABLED),
    };
    (chosen.enabled != Some(false)).then_some(chosen)
}

/// Whether the cluster should ask Envoy for locality-weighted balancing
/// (Istio sets it when weights or failover priorities are in play).
pub fn weighted(setting: Option<&LocalityLbSetting>, policy: Option<&TrafficPolicy>) -> bool {
    let Some(s) = setting else { return false };
    let failover = policy.is_some_and(|p| p.outlier_detection.is_some());
    !s.distribute.is_empty()
        || (failover && (!s.failover.is_empty() || !s.failover_priority.is_empty()))
}

/// Groups `endpoints` by locality and applies `setting` as seen by `proxy`.
pub fn groups<'a>(
    endpoints: Vec<&'a Endpoint>,
    proxy: &Proxy,
    setting: Option<&LocalityLbSetting>,
    outlier_detection: bool,
) -> Vec<Group<'a>> {
    let mut by_locality: BTreeMap<&Locality, Vec<&Endpoint>> = BTreeMap::new();
    for e in endpoints {
        by_locality.entry(&e.locality).or_default().push(e);
    }
    let mut groups: Vec<Group<'a>> = by_locality
        .into_iter()
        .map(|(locality, endpoints)| Group {
            locality,
            weight: weight_of(&endpoints),
            endpoints,
            priority: 0,
        })
        .collect();
    let Some(setting) = setting else {
        return groups;
    };
    if !setting.distribute.is_empty() {
        distribute(&mut groups, &proxy.locality, setting);
    } else if outlier_detection {
        if !setting.failover_priority.is_empty() {
            groups = by_labels(groups, proxy, &setting.failover_priority);
        }
        if setting.failover_priority.is_empty() || !setting.failover.is_empty() {
            by_locality_failover(&mut groups, &proxy.locality, setting);
        }
    }
    groups.sort_by(|a, b| (a.priority, a.locality).cmp(&(b.priority, b.locality)));
    groups
}

fn weight_of(endpoints: &[&Endpoint]) -> u32 {
    endpoints
        .iter()
        .map(|e| e.weight.max(1))
        .fold(0u32, u32::saturating_add)
        .max(1)
}

/// Whether `locality` matches `pattern` (`region[/zone[/subzone]]`, each
/// part `*` for any; a missing part matches anything).
pub fn matches(locality: &Locality, pattern: &str) -> bool {
    let mut parts = pattern.splitn(3, '/');
    let part = |rule: Option<&str>, value: &str, required: bool| match rule {
        Some("*") => true,
        None | Some("") => !required,
        Some(r) => r == value,
    };
    part(parts.next(), &locality.region, true)
        && part(parts.next(), &locality.zone, false)
        && part(parts.next(), &locality.subzone, false)
}

/// `distribute`: the first rule for the client's locality sets each
/// matching destination locality's weight (a pattern matching several
/// shares its weight among them in proportion to their own); localities
/// no pattern names get no traffic.
fn distribute(groups: &mut Vec<Group<'_>>, client: &Locality, setting: &LocalityLbSetting) {
    let Some(rule) = setting.distribute.iter().find(|d| matches(client, &d.from)) else {
        return;
    };
    let mut assigned = vec![false; groups.len()];
    for (pattern, weight) in &rule.to {
        let matched: Vec<usize> = (0..groups.len())
            .filter(|i| !assigned[*i] && matches(groups[*i].locality, pattern))
            .collect();
        let total: u64 = matched.iter().map(|i| u64::from(groups[*i].weight)).sum();
        for i in matched {
            assigned[i] = true;
            let share = (u64::from(groups[i].weight) * u64::from(*weight)).div_ceil(total.max(1));
            groups[i].weight = u32::try_from(share).unwrap_or(u32::MAX).max(1);
        }
    }
    let mut keep = assigned.into_iter();
    groups.retain(|_| keep.next().unwrap_or(false));
}

/// The value of a topology or workload label on an endpoint.
fn endpoint_label<'a>(e: &'a Endpoint, key: &str) -> Option<&'a str> {
    match key {
        REGION_LABEL => Some(&e.locality.region),
        ZONE_LABEL => Some(&e.locality.zone),
        SUBZONE_LABEL => Some(&e.locality.subzone),
        NETWORK_LABEL => Some(&e.network),
        _ => e.labels.get(key).map(String::as_str),
    }
}

fn proxy_label<'a>(p: &'a Proxy, key: &str) -> Option<&'a str> {
    match key {
        REGION_LABEL => Some(&p.locality.region),
        ZONE_LABEL => Some(&p.locality.zone),
        SUBZONE_LABEL => Some(&p.locality.subzone),
        _ => p.labels.get(key).map(String::as_str),
    }
}

/// `failoverPriority`: within each locality, endpoints matching all the
/// listed labels of the proxy come first; one that first differs at the
/// j-th label of n gets priority n - j. `key=value` compares with `value`
/// instead of the proxy's own label. A proxy without labels is left
/// alone, as Istio does.
fn by_labels<'a>(groups: Vec<Group<'a>>, proxy: &Proxy, labels: &[String]) -> Vec<Group<'a>> {
    if proxy.labels.is_empty() {
        return groups;
    }
    let rules: Vec<(&str, Option<&str>)> = labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (l.as_str(), None),
        })
        .collect();
    let lowest = u32::try_from(rules.len()).unwrap_or(u32::MAX);
    let priority = |e: &Endpoint| {
        rules
            .iter()
            .position(|(key, fixed)| {
                let want = fixed.or_else(|| proxy_label(proxy, key));
                want != endpoint_label(e, key)
            })
            .map_or(0, |j| lowest - u32::try_from(j).unwrap_or(0))
    };
    let mut out = Vec::new();
    for g in groups {
        let mut by_priority: BTreeMap<u32, Vec<&Endpoint>> = BTreeMap::new();
        for e in g.endpoints {
            by_priority.entry(priority(e)).or_default().push(e);
        }
        for (priority, endpoints) in by_priority {
            out.push(Group {
                locality: g.locality,
                weight: weight_of(&endpoints),
                endpoints,
                priority,
            });
        }
    }
    renumber(&mut out);
    out
}

/// Locality failover: priorities by how close each locality is to the
/// client, kept below those `failoverPriority` already set.
fn by_locality_failover(groups: &mut [Group<'_>], client: &Locality, setting: &LocalityLbSetting) {
    for g in groups.iter_mut() {
        let mut p = if client.region != g.locality.region {
            3
        } else if client.zone != g.locality.zone {
            2
        } else if client.subzone != g.locality.subzone {
            1
        } else {
            0
        };
        if p == 3
            && let Some(rule) = setting.failover.iter().find(|f| f.from == client.region)
            && g.locality.region != rule.to
        {
            p = 4;
        }
        g.priority = g.priority.saturating_mul(5).saturating_add(p);
    }
    renumber(groups);
}

/// Renumbers priorities 0..N in order, without gaps.
fn renumber(groups: &mut [Group<'_>]) {
    let mut distinct: Vec<u32> = groups.iter().map(|g| g.priority).collect();
    distinct.sort_unstable();
    distinct.dedup();
    for g in groups.iter_mut() {
        g.priority = u32::try_from(distinct.partition_point(|p| *p < g.priority)).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests;
