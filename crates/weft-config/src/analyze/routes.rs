//! Traffic checks: VirtualServices against services, subsets and gateways;
//! DestinationRules and ServiceEntries against the workloads they describe.

use std::collections::BTreeMap;

use super::{Index, describe, diag, did_you_mean, exported_to, selects};
use crate::diag::{Code, Diagnostic};
use crate::host;
use crate::networking::{
    Destination, DestinationRule, Gateway, HttpMatchRequest, HttpRoute, Protocol, ServiceEntry,
    VirtualService,
};
use crate::path::{FieldPath, Seg};
use crate::resource::{Kind, Resource};

pub(super) fn check(ix: &Index, out: &mut Vec<Diagnostic>) {
    for res in ix.of_kind(Kind::VirtualService) {
        let Some(vs) = res.spec_as::<VirtualService>() else {
            continue;
        };
        check_gateway_refs(ix, res, vs, out);
        for (path, dest) in destinations(vs) {
            check_destination(ix, res, &path, dest, out);
        }
        check_unreachable(res, vs, out);
        check_hosts_on_gateways(ix, res, vs, out);
    }
    check_conflicting_virtual_services(ix, out);
    check_destination_rules(ix, out);
    check_service_entries(ix, out);
    check_gateway_selectors(ix, out);
}

/// Every destination of a VirtualService with its path.
fn destinations(vs: &VirtualService) -> Vec<(FieldPath, &Destination)> {
    let spec = FieldPath::root().field("spec");
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let at = spec.field("http").join(Seg::Index(i));
        for (j, d) in r.route.iter().enumerate() {
            if let Some(dest) = &d.destination {
                out.push((
                    at.field("route").join(Seg::Index(j)).field("destination"),
                    dest,
                ));
            }
        }
        if let Some(m) = &r.mirror {
            out.push((at.field("mirror"), m));
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            if let Some(dest) = &m.destination {
                out.push((
                    at.field("mirrors").join(Seg::Index(j)).field("destination"),
                    dest,
                ));
            }
        }
    }
    let l4 = [
        (
            "tcp",
            vs.tcp
                .iter()
                .map(|r| r.route.as_slice())
                .collect::<Vec<_>>(),
        ),
        ("tls", vs.tls.iter().map(|r| r.route.as_slice()).collect()),
    ];
    for (section, routes) in l4 {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                if let Some(dest) = &d.destination {
                    let at = spec.field(section).join(Seg::Index(i)).field("route");
                    out.push((at.join(Seg::Index(j)).field("destination"), dest));
                }
            }
        }
    }
    out
}

/// DestinationRules visible from `from` whose host overlaps `fqdn`.
fn rules_for<'a>(
    ix: &Index<'a>,
    fqdn: &str,
    from: &str,
) -> Vec<(&'a Resource, &'a DestinationRule)> {
    ix.of_kind(Kind::DestinationRule)
        .filter_map(|r| r.spec_as::<DestinationRule>().map(|dr| (r, dr)))
        .filter(|(r, dr)| {
            host::overlap(&host::fqdn(&dr.host, r.namespace()), fqdn)
                && exported_to(&dr.export_to, r.namespace(), from)
        })
        .collect()
}

fn check_destination(
    ix: &Index,
    res: &Resource,
    path: &FieldPath,
    dest: &Destination,
    out: &mut Vec<Diagnostic>,
) {
    if dest.host.is_empty() {
        return; // validation reported it
    }
    let ns = res.namespace();
    let fqdn = host::fqdn(&dest.host, ns);
    let services = ix.services_for(&fqdn, ns);
    if services.is_empty() {
        let mut d = diag(
            res,
            Code::ReferencedHostNotFound,
            path.field("host"),
            format!("host {fqdn:?} matches no service in the mesh"),
        );
        d.hint = Some(did_you_mean(&fqdn, &ix.host_names()).unwrap_or_else(|| {
            "declare the service with a ServiceEntry (hosts, ports and the workloads behind it)"
                .to_string()
        }));
        out.push(d);
        return;
    }
    if !dest.subset.is_empty() {
        let rules = rules_for(ix, &fqdn, ns);
        let defined: Vec<&str> = rules
            .iter()
            .flat_map(|(_, dr)| dr.subsets.iter().map(|s| s.name.as_str()))
            .collect();
        if !defined.contains(&dest.subset.as_str()) {
            let mut d = diag(
                res,
                Code::ReferencedSubsetNotFound,
                path.field("subset"),
                format!(
                    "subset {:?} is not defined in any DestinationRule for host {}",
                    dest.subset, dest.host
                ),
            );
            d.hint = Some(match rules.first() {
                Some((r, _)) if !defined.is_empty() => format!(
                    "define it in DestinationRule {}/{}, or use one of: {}",
                    r.namespace(),
                    r.name(),
                    defined.join(", ")
                ),
                Some((r, _)) => format!(
                    "add a subset named {:?} to DestinationRule {}/{}",
                    dest.subset,
                    r.namespace(),
                    r.name()
                ),
                None => format!(
                    "add a DestinationRule for host {} with a subset named {:?} (labels that select its workloads)",
                    dest.host, dest.subset
                ),
            });
            out.push(d);
        }
    }
    let ports: Vec<u32> = services
        .iter()
        .flat_map(|s| s.se.ports.iter().map(|p| p.number))
        .collect();
    let port_list = ports
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match &dest.port {
        Some(p) if p.number != 0 && !ports.is_empty() && !ports.contains(&p.number) => {
            let mut d = diag(
                res,
                Code::ReferencedPortNotFound,
                path.field("port").field("number"),
                format!("port {} is not a port of {fqdn}", p.number),
            );
            d.hint = Some(format!(
                "{fqdn} has port{} {}",
                if ports.len() == 1 { "" } else { "s" },
                port_list
            ));
            out.push(d);
        }
        None if services.len() == 1 && services[0].se.ports.len() > 1 => {
            let mut d = diag(
                res,
                Code::DestinationPortRequired,
                path.clone(),
                format!(
                    "{fqdn} has {} ports and this destination names none",
                    ports.len()
                ),
            );
            d.hint = Some(format!(
                "add `port: {{number: N}}` with one of {}",
                port_list
            ));
            out.push(d);
        }
        _ => {}
    }
}

/// `(namespace, name)` a gateway reference names, or `None` for `mesh`.
fn gateway_ref<'a>(reference: &'a str, own: &'a str) -> Option<(&'a str, &'a str)> {
    if reference == "mesh" {
        return None;
    }
    Some(reference.split_once('/').unwrap_or((own, reference)))
}

fn check_gateway_refs(ix: &Index, res: &Resource, vs: &VirtualService, out: &mut Vec<Diagnostic>) {
    let known: Vec<(&str, &str)> = ix
        .of_kind(Kind::Gateway)
        .map(|g| (g.namespace(), g.name()))
        .collect();
    let names: Vec<String> = known.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut refs: Vec<(FieldPath, &str)> = Vec::new();
    let spec = FieldPath::root().field("spec");
    for (k, g) in vs.gateways.iter().enumerate() {
        refs.push((spec.field("gateways").join(Seg::Index(k)), g));
    }
    for (i, r) in vs.http.iter().enumerate() {
        for (j, m) in r.matches.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                let p = spec
                    .field("http")
                    .join(Seg::Index(i))
                    .field("match")
                    .join(Seg::Index(j))
                    .field("gateways");
                refs.push((p.join(Seg::Index(k)), g));
            }
        }
    }
    for (path, reference) in refs {
        let Some((ns, name)) = gateway_ref(reference, res.namespace()) else {
            continue;
        };
        if !known.contains(&(ns, name)) {
            let mut d = diag(
                res,
                Code::ReferencedGatewayNotFound,
                path,
                format!("gateway {ns}/{name} does not exist"),
            );
            d.hint = Some(did_you_mean(&format!("{ns}/{name}"), &names).unwrap_or_else(|| {
                "name a Gateway as `name` (same namespace) or `namespace/name`, or `mesh` for sidecars".to_string()
            }));
            out.push(d);
        }
    }
}

/// Whether a match block matches every request.
fn matches_everything(m: &HttpMatchRequest) -> bool {
    let uri_all = match &m.uri {
        None => true,
        Some(u) => {
            u.prefix.as_deref() == Some("/")
                || u.regex.as_deref().is_some_and(|r| r == ".*" || r == "/.*")
        }
    };
    uri_all
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.port == 0
        && m.source_labels.is_empty()
        && m.gateways.is_empty()
        && m.query_params.is_empty()
        && m.without_headers.is_empty()
        && m.source_namespace.is_empty()
}

fn route_name(r: &HttpRoute, i: usize) -> String {
    if r.name.is_empty() {
        format!("http[{i}]")
    } else {
        format!("{:?}", r.name)
    }
}

fn check_unreachable(res: &Resource, vs: &VirtualService, out: &mut Vec<Diagnostic>) {
    let spec = FieldPath::root().field("spec");
    let catch_all = vs
        .http
        .iter()
        .position(|r| r.matches.is_empty() || r.matches.iter().any(matches_everything));
    if let Some(i) = catch_all {
        for (k, r) in vs.http.iter().enumerate().skip(i + 1) {
            let mut d = diag(
                res,
                Code::UnreachableRoute,
                spec.field("http").join(Seg::Index(k)),
                format!(
                    "route {} can never match: route {} before it matches every request",
                    route_name(r, k),
                    route_name(&vs.http[i], i)
                ),
            );
            d.hint = Some("move the catch-all route last".to_string());
            out.push(d);
        }
    }
    if let Some(i) = vs.tcp.iter().position(|r| r.matches.is_empty()) {
        for k in i + 1..vs.tcp.len() {
            let mut d = diag(
                res,
                Code::UnreachableRoute,
                spec.field("tcp").join(Seg::Index(k)),
                format!(
                    "route tcp[{k}] can never match: route tcp[{i}] before it has no match and takes every connection"
                ),
            );
            d.hint = Some("move the route without `match` last".to_string());
            out.push(d);
        }
    }
}

/// A VirtualService bound to gateways must name hosts those gateways serve.
fn check_hosts_on_gateways(
    ix: &Index,
    res: &Resource,
    vs: &VirtualService,
    out: &mut Vec<Diagnostic>,
) {
    let ns = res.namespace();
    let gateways: Vec<(&Resource, &Gateway)> = vs
        .gateways
        .iter()
        .filter_map(|g| gateway_ref(g, ns))
        .filter_map(|(gns, gname)| {
            ix.of_kind(Kind::Gateway)
                .find(|r| r.namespace() == gns && r.name() == gname)
        })
        .filter_map(|r| r.spec_as::<Gateway>().map(|g| (r, g)))
        .collect();
    if gateways.is_empty() {
        return;
    }
    for (k, h) in vs.hosts.iter().enumerate() {
        let fqdn = host::fqdn(h, ns);
        let served = gateways.iter().any(|(gr, g)| {
            g.servers.iter().flat_map(|s| s.hosts.iter()).any(|sh| {
                let (hns, hh) = sh.split_once('/').unwrap_or(("*", sh));
                let ns_ok = match hns {
                    "*" => true,
                    "." => gr.namespace() == ns,
                    other => other == ns,
                };
                ns_ok && host::overlap(&host::fqdn(hh, gr.namespace()), &fqdn)
            })
        });
        if !served {
            let mut d = diag(
                res,
                Code::VirtualServiceHostNotInGateway,
                FieldPath::root()
                    .field("spec")
                    .field("hosts")
                    .join(Seg::Index(k)),
                format!(
                    "host {h:?} is not served by any server of gateway{} {}",
                    if gateways.len() == 1 { "" } else { "s" },
                    gateways
                        .iter()
                        .map(|(r, _)| format!("{}/{}", r.namespace(), r.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            d.hint = Some(
                "add the host to a server's `hosts` in the Gateway, or fix the VirtualService host"
                    .to_string(),
            );
            out.push(d);
        }
    }
}

/// Two VirtualServices for the same host on sidecars: only one applies.
fn check_conflicting_virtual_services(ix: &Index, out: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<String, Vec<(&Resource, usize, &VirtualService)>> = BTreeMap::new();
    for res in ix.of_kind(Kind::VirtualService) {
        let Some(vs) = res.spec_as::<VirtualService>() else {
            continue;
        };
        let for_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
        if !for_mesh {
            continue;
        }
        for (k, h) in vs.hosts.iter().enumerate() {
            seen.entry(host::fqdn(h, res.namespace()))
                .or_default()
                .push((res, k, vs));
        }
    }
    for (h, claims) in seen {
        let Some(((first, _, first_vs), rest)) = claims.split_first() else {
            continue;
        };
        for (res, k, vs) in rest {
            let shared = exported_to(&first_vs.export_to, first.namespace(), res.namespace())
                || exported_to(&vs.export_to, res.namespace(), first.namespace());
            if !shared {
                continue;
            }
            let mut d = diag(
                res,
                Code::ConflictingVirtualServiceHosts,
                FieldPath::root()
                    .field("spec")
                    .field("hosts")
                    .join(Seg::Index(*k)),
                format!(
                    "host {h} is also routed by {}; sidecars use only one of them",
                    describe(first)
                ),
            );
            d.hint = Some("merge the routes into one VirtualService".to_string());
            out.push(d);
        }
    }
}

fn check_destination_rules(ix: &Index, out: &mut Vec<Diagnostic>) {
    let mut by_host: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for res in ix.of_kind(Kind::DestinationRule) {
        let Some(dr) = res.spec_as::<DestinationRule>() else {
            continue;
        };
        let fqdn = host::fqdn(&dr.host, res.namespace());
        let services = ix.services_for(&fqdn, res.namespace());
        let spec = FieldPath::root().field("spec");
        if services.is_empty() {
            let mut d = diag(
                res,
                Code::DestinationRuleHostNotFound,
                spec.field("host"),
                format!("host {fqdn:?} matches no service in the mesh"),
            );
            d.hint = did_you_mean(&fqdn, &ix.host_names());
            out.push(d);
        } else {
            let workloads: Vec<_> = services.iter().flat_map(|s| ix.workloads_of(s)).collect();
            for (i, subset) in dr.subsets.iter().enumerate() {
                if subset.labels.is_empty()
                    || workloads
                        .iter()
                        .any(|w| selects(&subset.labels, &w.entry.labels))
                {
                    continue;
                }
                let mut d = diag(
                    res,
                    Code::SubsetSelectsNoWorkload,
                    spec.field("subsets").join(Seg::Index(i)).field("labels"),
                    format!(
                        "subset {:?} selects no workload of {fqdn}: none carries {}",
                        subset.name,
                        labels_text(&subset.labels)
                    ),
                );
                let mut seen: Vec<String> = workloads
                    .iter()
                    .map(|w| labels_text(&w.entry.labels))
                    .collect();
                seen.sort();
                seen.dedup();
                d.hint = Some(if seen.is_empty() {
                    format!("{fqdn} has no workloads at all")
                } else {
                    format!("its workloads carry: {}", seen.join("; "))
                });
                out.push(d);
            }
        }
        if dr.workload_selector.is_none() {
            by_host
                .entry((res.namespace().to_string(), fqdn))
                .or_default()
                .push(res);
        }
    }
    for ((_, h), rules) in by_host {
        let Some((first, rest)) = rules.split_first() else {
            continue;
        };
        for res in rest {
            let mut d = diag(
                res,
                Code::ConflictingDestinationRules,
                FieldPath::root().field("spec").field("host"),
                format!(
                    "{} is also for host {h}; only one traffic policy applies",
                    describe(first)
                ),
            );
            d.hint = Some("merge them into one DestinationRule".to_string());
            out.push(d);
        }
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn check_service_entries(ix: &Index, out: &mut Vec<Diagnostic>) {
    let spec = FieldPath::root().field("spec");
    let mut claims: BTreeMap<(String, u32), &Resource> = BTreeMap::new();
    for res in ix.of_kind(Kind::ServiceEntry) {
        let Some(se) = res.spec_as::<ServiceEntry>() else {
            continue;
        };
        for (k, h) in se.hosts.iter().enumerate() {
            let fqdn = host::fqdn(h, res.namespace());
            for p in &se.ports {
                match claims.get(&(fqdn.clone(), p.number)) {
                    Some(first)
                        if first.key() != res.key() && first.namespace() == res.namespace() =>
                    {
                        let mut d = diag(
                            res,
                            Code::ConflictingServiceEntries,
                            spec.field("hosts").join(Seg::Index(k)),
                            format!(
                                "host {fqdn} port {} is also declared by {}",
                                p.number,
                                describe(first)
                            ),
                        );
                        d.hint = Some("declare each host and port in one ServiceEntry".to_string());
                        out.push(d);
                    }
                    Some(_) => {}
                    None => {
                        claims.insert((fqdn.clone(), p.number), res);
                    }
                }
            }
        }
        for (i, p) in se.ports.iter().enumerate() {
            let protocol = if p.protocol.is_empty() {
                Protocol::from_port_name(&p.name)
            } else {
                Protocol::parse(&p.protocol)
            };
            if protocol == Protocol::Unsupported {
                let mut d = diag(
                    res,
                    Code::PortProtocolUnknown,
                    spec.field("ports").join(Seg::Index(i)),
                    format!(
                        "port {} ({:?}) declares no protocol; its traffic will be sniffed",
                        p.number, p.name
                    ),
                );
                d.hint = Some("set `protocol:` (HTTP, HTTP2, GRPC, TCP, TLS, ...) or name the port `<protocol>-...`".to_string());
                out.push(d);
            }
        }
        if let Some(sel) = &se.workload_selector
            && !sel.labels.is_empty()
            && ix
                .workloads_selected(res.namespace(), &sel.labels)
                .is_empty()
        {
            let mut d = diag(
                res,
                Code::SelectorMatchesNothing,
                spec.field("workloadSelector").field("labels"),
                format!(
                    "workloadSelector selects no WorkloadEntry in namespace {}: the service has no endpoints",
                    res.namespace()
                ),
            );
            d.hint =
                Some("add WorkloadEntries carrying these labels, or fix the labels".to_string());
            out.push(d);
        }
    }
    // Workloads nothing routes to.
    let gateway_selectors: Vec<&BTreeMap<String, String>> = ix
        .of_kind(Kind::Gateway)
        .filter_map(|r| r.spec_as::<Gateway>())
        .map(|g| &g.selector)
        .filter(|s| !s.is_empty())
        .collect();
    for w in ix.workloads.iter().filter(|w| w.inline_of.is_none()) {
        let in_service = ix.services.iter().any(|s| {
            s.se.workload_selector.as_ref().is_some_and(|sel| {
                s.res.namespace() == w.namespace && selects(&sel.labels, &w.entry.labels)
            })
        });
        let is_gateway = gateway_selectors
            .iter()
            .any(|sel| selects(sel, &w.entry.labels));
        if in_service || is_gateway {
            continue;
        }
        let Some(res) = ix
            .of_kind(Kind::WorkloadEntry)
            .find(|r| format!("{}/{}", r.namespace(), r.name()) == w.name)
        else {
            continue;
        };
        let mut d = diag(
            res,
            Code::WorkloadWithoutService,
            FieldPath::root().field("spec").field("labels"),
            "no ServiceEntry selects this workload, so nothing routes to it".to_string(),
        );
        d.hint = Some("add a ServiceEntry whose workloadSelector matches these labels".to_string());
        out.push(d);
    }
}

fn check_gateway_selectors(ix: &Index, out: &mut Vec<Diagnostic>) {
    for res in ix.of_kind(Kind::Gateway) {
        let Some(gw) = res.spec_as::<Gateway>() else {
            continue;
        };
        if gw.selector.is_empty() {
            continue;
        }
        if !ix
            .workloads
            .iter()
            .any(|w| w.inline_of.is_none() && selects(&gw.selector, &w.entry.labels))
        {
            let mut d = diag(
                res,
                Code::GatewaySelectsNothing,
                FieldPath::root().field("spec").field("selector"),
                format!(
                    "selector {} selects no workload: no gateway proxy serves this Gateway",
                    labels_text(&gw.selector)
                ),
            );
            d.hint = Some(
                "add the gateway's WorkloadEntry with these labels, or fix the selector"
                    .to_string(),
            );
            out.push(d);
        }
    }
}
