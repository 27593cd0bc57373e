//! Policy checks: selectors that select nothing, Sidecars that collide,
//! mTLS settings that contradict each other, authorization policies naming
//! identities nothing has.

use std::collections::BTreeMap;

use super::{Index, Workload, diag, selects};
use crate::diag::{Code, Diagnostic};
use crate::host;
use crate::networking::{
    ClientTlsMode, DestinationRule, EnvoyFilter, ServiceLocation, Sidecar, TrafficPolicy,
};
use crate::path::{FieldPath, Seg};
use crate::resource::{Kind, Resource};
use crate::security::{AuthorizationPolicy, MtlsMode, PeerAuthentication, RequestAuthentication};
use crate::telemetry::Telemetry;

pub(super) fn check(ix: &Index, out: &mut Vec<Diagnostic>) {
    check_selectors(ix, out);
    check_sidecars(ix, out);
    check_mtls(ix, out);
    check_authorization(ix, out);
}

/// The labels a resource's workload selector names, and the path of that field.
fn selector_of(res: &Resource) -> Option<(&BTreeMap<String, String>, FieldPath)> {
    let spec = FieldPath::root().field("spec");
    match res.kind() {
        Kind::Sidecar => res
            .spec_as::<Sidecar>()
            .and_then(|s| s.workload_selector.as_ref())
            .map(|s| (&s.labels, spec.field("workloadSelector").field("labels"))),
        Kind::EnvoyFilter => res
            .spec_as::<EnvoyFilter>()
            .and_then(|s| s.workload_selector.as_ref())
            .map(|s| (&s.labels, spec.field("workloadSelector").field("labels"))),
        Kind::PeerAuthentication => res
            .spec_as::<PeerAuthentication>()
            .and_then(|s| s.selector.as_ref())
            .map(|s| (&s.match_labels, spec.field("selector").field("matchLabels"))),
        Kind::RequestAuthentication => res
            .spec_as::<RequestAuthentication>()
            .and_then(|s| s.selector.as_ref())
            .map(|s| (&s.match_labels, spec.field("selector").field("matchLabels"))),
        Kind::AuthorizationPolicy => res
            .spec_as::<AuthorizationPolicy>()
            .and_then(|s| s.selector.as_ref())
            .map(|s| (&s.match_labels, spec.field("selector").field("matchLabels"))),
        Kind::Telemetry => res
            .spec_as::<Telemetry>()
            .and_then(|s| s.selector.as_ref())
            .map(|s| (&s.match_labels, spec.field("selector").field("matchLabels"))),
        _ => None,
    }
}

/// Workloads a selector in `res`'s namespace selects (every namespace for
/// the root namespace, where policies are mesh-wide).
fn selected<'a>(
    ix: &'a Index,
    res: &Resource,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a Workload<'a>> {
    ix.workloads
        .iter()
        .filter(|w| w.inline_of.is_none())
        .filter(|w| w.namespace == res.namespace() || res.namespace() == ix.root_namespace)
        .filter(|w| selects(labels, &w.entry.labels))
        .collect()
}

fn check_selectors(ix: &Index, out: &mut Vec<Diagnostic>) {
    for res in ix.resources {
        let Some((labels, path)) = selector_of(res) else {
            continue;
        };
        if labels.is_empty() || !selected(ix, res, labels).is_empty() {
            continue;
        }
        let mut d = diag(
            res,
            Code::SelectorMatchesNothing,
            path,
            format!(
                "selects no workload in namespace {}: no workload carries {}",
                res.namespace(),
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        d.hint = Some(format!(
            "this {} has no effect until a workload carries these labels",
            res.kind()
        ));
        out.push(d);
    }
}

fn check_sidecars(ix: &Index, out: &mut Vec<Diagnostic>) {
    let spec = FieldPath::root().field("spec");
    let mut default_per_ns: BTreeMap<&str, &Resource> = BTreeMap::new();
    let mut by_workload: BTreeMap<String, &Resource> = BTreeMap::new();
    for res in ix.of_kind(Kind::Sidecar) {
        let Some(sc) = res.spec_as::<Sidecar>() else {
            continue;
        };
        match sc
            .workload_selector
            .as_ref()
            .filter(|s| !s.labels.is_empty())
        {
            None => match default_per_ns.get(res.namespace()) {
                Some(first) => {
                    let mut d = diag(
                        res,
                        Code::ConflictingSidecars,
                        spec.clone(),
                        format!(
                            "namespace {} already has a Sidecar without workloadSelector ({}/{}); only one can apply",
                            res.namespace(),
                            first.namespace(),
                            first.name()
                        ),
                    );
                    d.hint = Some("merge them, or give one a workloadSelector".to_string());
                    out.push(d);
                }
                None => {
                    default_per_ns.insert(res.namespace(), res);
                }
            },
            Some(sel) => {
                for w in selected(ix, res, &sel.labels) {
                    match by_workload.get(&w.name) {
                        Some(first) if first.key() != res.key() => {
                            let mut d = diag(
                                res,
                                Code::ConflictingSidecars,
                                spec.field("workloadSelector"),
                                format!(
                                    "workload {} is also selected by Sidecar {}/{}; only one can apply",
                                    w.name,
                                    first.namespace(),
                                    first.name()
                                ),
                            );
                            d.hint = Some(
                                "make the selectors disjoint, or merge the Sidecars".to_string(),
                            );
                            out.push(d);
                        }
                        Some(_) => {}
                        None => {
                            by_workload.insert(w.name.clone(), res);
                        }
                    }
                }
            }
        }
        for (i, eg) in sc.egress.iter().enumerate() {
            for (j, h) in eg.hosts.iter().enumerate() {
                let Some((hns, hh)) = h.split_once('/') else {
                    continue;
                };
                if hh == "*" || hns == "~" {
                    continue;
                }
                let ns = match hns {
                    "." => Some(res.namespace()),
                    "*" => None,
                    other => Some(other),
                };
                let found = ix.services.iter().any(|s| {
                    ns.is_none_or(|n| s.res.namespace() == n)
                        && host::overlap(&host::fqdn(hh, s.res.namespace()), &s.host)
                });
                if !found {
                    let mut d = diag(
                        res,
                        Code::SidecarEgressHostNotFound,
                        spec.field("egress")
                            .join(Seg::Index(i))
                            .field("hosts")
                            .join(Seg::Index(j)),
                        format!("egress host {h:?} matches no service"),
                    );
                    d.hint = super::did_you_mean(hh, &ix.host_names());
                    out.push(d);
                }
            }
        }
    }
}

/// A traffic policy of a DestinationRule, where it is, and the subset
/// labels it is limited to (`None` for the rule-wide policy).
type ScopedPolicy<'a> = (
    FieldPath,
    &'a TrafficPolicy,
    Option<&'a BTreeMap<String, String>>,
);

/// The PeerAuthentication mode in force for a workload, and the policy
/// that sets it: workload selector, then namespace, then mesh (root
/// namespace). `UNSET` inherits from the next level.
fn effective_mtls<'a>(ix: &'a Index, w: &Workload) -> Option<(MtlsMode, &'a Resource)> {
    let policies: Vec<(&Resource, &PeerAuthentication)> = ix
        .of_kind(Kind::PeerAuthentication)
        .filter_map(|r| r.spec_as::<PeerAuthentication>().map(|p| (r, p)))
        .collect();
    let mode = |p: &PeerAuthentication| {
        p.mtls
            .as_ref()
            .map(|m| m.mode)
            .filter(|m| *m != MtlsMode::Unset)
    };
    let workload_level = policies.iter().find(|(r, p)| {
        r.namespace() == w.namespace
            && p.selector.as_ref().is_some_and(|s| {
                !s.match_labels.is_empty() && selects(&s.match_labels, &w.entry.labels)
            })
    });
    let namespace_level = policies.iter().find(|(r, p)| {
        r.namespace() == w.namespace
            && p.selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
    });
    let mesh_level = policies.iter().find(|(r, p)| {
        r.namespace() == ix.root_namespace
            && p.selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
    });
    [workload_level, namespace_level, mesh_level]
        .into_iter()
        .flatten()
        .find_map(|(r, p)| mode(p).map(|m| (m, *r)))
}

fn check_mtls(ix: &Index, out: &mut Vec<Diagnostic>) {
    for res in ix.of_kind(Kind::DestinationRule) {
        let Some(dr) = res.spec_as::<DestinationRule>() else {
            continue;
        };
        let fqdn = host::fqdn(&dr.host, res.namespace());
        let services: Vec<_> = ix
            .services_for(&fqdn, res.namespace())
            .into_iter()
            .filter(|s| s.se.location == ServiceLocation::MeshInternal)
            .collect();
        if services.is_empty() {
            continue;
        }
        let spec = FieldPath::root().field("spec");
        let mut policies: Vec<ScopedPolicy> = Vec::new();
        if let Some(tp) = &dr.traffic_policy {
            policies.push((spec.field("trafficPolicy"), tp, None));
        }
        for (i, s) in dr.subsets.iter().enumerate() {
            if let Some(tp) = &s.traffic_policy {
                policies.push((
                    spec.field("subsets")
                        .join(Seg::Index(i))
                        .field("trafficPolicy"),
                    tp,
                    Some(&s.labels),
                ));
            }
        }
        for (path, tp, subset) in policies {
            let mut modes = Vec::new();
            if let Some(tls) = &tp.tls {
                modes.push((path.field("tls").field("mode"), tls.mode));
            }
            for (i, pl) in tp.port_level_settings.iter().enumerate() {
                if let Some(tls) = &pl.tls {
                    let p = path
                        .field("portLevelSettings")
                        .join(Seg::Index(i))
                        .field("tls")
                        .field("mode");
                    modes.push((p, tls.mode));
                }
            }
            for (mode_path, mode) in modes {
                if !matches!(mode, ClientTlsMode::Disable | ClientTlsMode::Simple) {
                    continue;
                }
                let strict = services
                    .iter()
                    .flat_map(|s| ix.workloads_of(s))
                    .filter(|w| subset.is_none_or(|labels| selects(labels, &w.entry.labels)))
                    .find_map(|w| match effective_mtls(ix, w) {
                        Some((MtlsMode::Strict, pa)) => Some((w.name.clone(), pa)),
                        _ => None,
                    });
                if let Some((workload, pa)) = strict {
                    let what = if mode == ClientTlsMode::Disable {
                        "plaintext"
                    } else {
                        "TLS without a workload certificate"
                    };
                    let mut d = diag(
                        res,
                        Code::MtlsConflict,
                        mode_path,
                        format!(
                            "sends {what} to {fqdn}, but PeerAuthentication {}/{} requires STRICT mTLS for workload {workload}: connections will be refused",
                            pa.namespace(),
                            pa.name()
                        ),
                    );
                    d.hint = Some("use `mode: ISTIO_MUTUAL` (or no tls) here, or make the PeerAuthentication PERMISSIVE".to_string());
                    out.push(d);
                }
            }
        }
    }
}

fn check_authorization(ix: &Index, out: &mut Vec<Diagnostic>) {
    for res in ix.of_kind(Kind::AuthorizationPolicy) {
        let Some(ap) = res.spec_as::<AuthorizationPolicy>() else {
            continue;
        };
        for (i, rule) in ap.rules.iter().enumerate() {
            for (j, from) in rule.from.iter().flatten().enumerate() {
                let Some(src) = &from.source else { continue };
                let at = FieldPath::root()
                    .field("spec")
                    .field("rules")
                    .join(Seg::Index(i))
                    .field("from")
                    .join(Seg::Index(j))
                    .field("source");
                for (k, ns) in src.namespaces.iter().enumerate() {
                    if !ns.contains('*') && !ix.namespaces.contains(ns.as_str()) {
                        let mut d = diag(
                            res,
                            Code::AuthorizationPolicyReference,
                            at.field("namespaces").join(Seg::Index(k)),
                            format!("namespace {ns:?} has nothing in the mesh"),
                        );
                        let names: Vec<&str> = ix.namespaces.iter().copied().collect();
                        d.hint = super::did_you_mean(ns, &names);
                        out.push(d);
                    }
                }
                for (k, p) in src.principals.iter().enumerate() {
                    // `<trust-domain>/ns/<namespace>/sa/<service-account>`
                    let parts: Vec<&str> = p.split('/').collect();
                    let [_, "ns", ns, "sa", sa] = parts.as_slice() else {
                        continue;
                    };
                    if p.contains('*') {
                        continue;
                    }
                    let runs = ix
                        .workloads
                        .iter()
                        .any(|w| w.namespace == *ns && w.entry.service_account == *sa);
                    if !runs {
                        let mut d = diag(
                            res,
                            Code::AuthorizationPolicyReference,
                            at.field("principals").join(Seg::Index(k)),
                            format!(
                                "no workload runs as service account {sa:?} in namespace {ns:?}"
                            ),
                        );
                        let accounts: Vec<String> = ix
                            .workloads
                            .iter()
                            .filter(|w| !w.entry.service_account.is_empty())
                            .map(|w| {
                                format!(
                                    "{}/ns/{}/sa/{}",
                                    parts[0], w.namespace, w.entry.service_account
                                )
                            })
                            .collect();
                        let accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
                        d.hint = super::did_you_mean(p, &accounts);
                        out.push(d);
                    }
                }
            }
        }
    }
}
