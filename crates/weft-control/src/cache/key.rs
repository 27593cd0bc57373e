//! What each part of a translation depends on, once a proxy is resolved:
//! the [`Key`] of the part every proxy of a shape shares, and the
//! [`OwnKey`] of a sidecar's own (inbound) part.
//!
//! Labels are the subtle input. A workload's labels are usually unique to
//! it (`app`, `version`), but translation reads them only to pick the
//! Sidecar resource (the key has the one chosen), to match VirtualService
//! `sourceLabels`, for `failoverPriority` and for a gateway's Gateway
//! resources. So a key holds, instead of the labels, which `sourceLabels`
//! selectors of the generation match them ([`LabelUses`]) — the whole
//! labels only where a `failoverPriority` or a gateway makes any label
//! matter. Likewise the locality: only when some traffic policy makes
//! endpoints depend on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use weft_config::Kind;
use weft_config::duration::Duration;
use weft_config::networking::{DestinationRule, TrafficPolicy, VirtualService};
use weft_registry::Locality;

use crate::translate::instance::Instance;
use crate::translate::{Inputs, Interception, Proxy, ProxyKind};

/// What the shared part ([`crate::translate::translate_shared`]) depends
/// on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    kind: ProxyKind,
    namespace: String,
    labels: LabelFacts,
    interception: Interception,
    locality: Locality,
    /// The Sidecar resource whose egress scope applies, if any.
    egress: Option<String>,
    /// Gateways only: their listeners bind the workload's address.
    instance: Option<Instance>,
}

/// What a key keeps of a proxy's labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LabelFacts {
    /// Every label matters.
    All(BTreeMap<String, String>),
    /// Whether each of the generation's `sourceLabels` selectors matches.
    Matches(Vec<bool>),
}

impl Key {
    /// The key of a proxy resolved by [`crate::translate::resolve`], for
    /// the generation `uses` was made from.
    pub fn of(resolved: &Proxy, uses: &LabelUses) -> Key {
        let gateway = resolved.kind == ProxyKind::Gateway;
        let labels = if gateway || uses.all {
            LabelFacts::All(resolved.labels.clone())
        } else {
            LabelFacts::Matches(
                uses.selectors
                    .iter()
                    .map(|s| weft_config::select::selects(s, &resolved.labels))
                    .collect(),
            )
        };
        Key {
            kind: resolved.kind,
            namespace: resolved.namespace.clone(),
            labels,
            interception: resolved.interception,
            locality: if uses.locality || gateway {
                resolved.locality.clone()
            } else {
                Locality::default()
            },
            egress: resolved.egress.as_ref().map(|e| e.sidecar.clone()),
            instance: if gateway {
                resolved.instance.as_deref().cloned()
            } else {
                None
            },
        }
    }
}

/// What a sidecar's own part ([`crate::translate::translate_own`])
/// depends on: all of it, so two generations with equal keys give equal
/// own parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnKey {
    interception: Interception,
    /// The resolved proxy's (shared, not copied: streams keep their key);
    /// compared and hashed by value.
    instance: Arc<Instance>,
    /// The mesh's `connectTimeout` (the inbound clusters').
    connect_timeout: Option<Duration>,
}

impl OwnKey {
    /// The key of a resolved proxy's own part; `None` when it has none
    /// (not a sidecar, or no known workload).
    pub fn of(inputs: Inputs<'_>, resolved: &Proxy) -> Option<OwnKey> {
        let instance = resolved
            .instance
            .as_ref()
            .filter(|_| resolved.kind == ProxyKind::Sidecar)?;
        Some(OwnKey {
            interception: resolved.interception,
            instance: Arc::clone(instance),
            connect_timeout: inputs.config.mesh.connect_timeout,
        })
    }
}

/// How one generation's config reads proxies' labels (outside Sidecar
/// selection, which [`Key`] has as the Sidecar chosen) and locality.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelUses {
    /// A `failoverPriority` is set somewhere: it may compare any label.
    all: bool,
    /// The distinct `sourceLabels` of every VirtualService match.
    selectors: Vec<BTreeMap<String, String>>,
    /// The proxy's locality matters: some traffic policy has outlier
    /// detection (locality failover) or a `distribute`, or labels do.
    /// Otherwise every proxy gets the same endpoint priorities and
    /// weights wherever it runs.
    locality: bool,
}

impl LabelUses {
    /// Reads them from the config.
    pub fn of(inputs: Inputs<'_>) -> LabelUses {
        let mut selectors = BTreeSet::new();
        for r in inputs.config.of_kind(Kind::VirtualService) {
            let Some(vs) = r.spec_as::<VirtualService>() else {
                continue;
            };
            let http = vs.http.iter().flat_map(|h| &h.matches);
            let tcp = vs.tcp.iter().flat_map(|t| &t.matches);
            let tls = vs.tls.iter().flat_map(|t| &t.matches);
            selectors.extend(
                http.map(|m| &m.source_labels)
                    .chain(tcp.map(|m| &m.source_labels))
                    .chain(tls.map(|m| &m.source_labels))
                    .filter(|l| !l.is_empty())
                    .cloned(),
            );
        }
        let mesh = inputs
            .config
            .mesh
            .locality_lb_setting
            .as_ref()
            .is_some_and(|s| !s.failover_priority.is_empty());
        let mesh_distribute = inputs
            .config
            .mesh
            .locality_lb_setting
            .as_ref()
            .is_some_and(|s| !s.distribute.is_empty());
        let rules = |reads: fn(&TrafficPolicy) -> bool| {
            inputs
                .config
                .of_kind(Kind::DestinationRule)
                .filter_map(|r| r.spec_as::<DestinationRule>())
                .any(|dr| {
                    dr.traffic_policy.iter().any(reads)
                        || dr
                            .subsets
                            .iter()
                            .filter_map(|s| s.traffic_policy.as_ref())
                            .any(reads)
                })
        };
        let all = mesh || rules(failover_priority);
        LabelUses {
            all,
            selectors: selectors.into_iter().collect(),
            locality: all || mesh_distribute || rules(locality_aware),
        }
    }
}

/// Whether a traffic policy (or one of its port-level ones) makes
/// endpoints depend on the client's locality: outlier detection (which
/// turns on locality failover) or a locality `distribute`.
fn locality_aware(policy: &TrafficPolicy) -> bool {
    let distribute = |lb: Option<&weft_config::networking::LoadBalancerSettings>| {
        lb.and_then(|lb| lb.locality_lb_setting.as_ref())
            .is_some_and(|s| !s.distribute.is_empty())
    };
    policy.outlier_detection.is_some()
        || distribute(policy.load_balancer.as_ref())
        || policy
            .port_level_settings
            .iter()
            .any(|p| p.outlier_detection.is_some() || distribute(p.load_balancer.as_ref()))
}

/// Whether a traffic policy (or one of its port-level ones) sets a
/// `failoverPriority`.
fn failover_priority(policy: &TrafficPolicy) -> bool {
    let set = |lb: Option<&weft_config::networking::LoadBalancerSettings>| {
        lb.and_then(|lb| lb.locality_lb_setting.as_ref())
            .is_some_and(|s| !s.failover_priority.is_empty())
    };
    set(policy.load_balancer.as_ref())
        || policy
            .port_level_settings
            .iter()
            .any(|p| set(p.load_balancer.as_ref()))
}
