//! Host rules: VirtualService hosts (wildcards, IPs, duplicates), the
//! AUTO_PASSTHROUGH SNI form, gateway references, and Gateway server hosts.

use std::net::IpAddr;

use super::checks::{MESH, Scope};
use crate::diag::Code;
use crate::validate::{Validator, check_wildcard_host, is_dns1123_label, wildcard_domain_error};

/// Checks `hosts`: each a valid (wildcard) name or IP, `*` only on gateways, no overlaps.
pub(super) fn check_hosts(v: &mut Validator, scope: &Scope<'_>) {
    let hosts = &scope.vs.hosts;
    let mut all_valid = true;
    v.field("hosts", |v| {
        for (i, host) in hosts.iter().enumerate() {
            v.index(i, |v| {
                if host.parse::<IpAddr>().is_ok() {
                    return;
                }
                let before = v.issues().len();
                if scope.gateway_only && scope.sni && is_auto_sni(host) {
                    check_auto_sni(v, host);
                } else {
                    check_wildcard_host(v, host);
                }
                if v.issues().len() > before {
                    all_valid = false;
                } else if host == "*" && !scope.gateway_only {
                    all_valid = false;
                    v.error("wildcard host * is not allowed for virtual services bound to the mesh gateway")
                        .hint("list the hosts the routes are for, or bind the VirtualService only to gateways (without `mesh`)");
                }
            });
        }
        if !all_valid {
            return;
        }
        for (j, b) in hosts.iter().enumerate() {
            if let Some(a) = hosts[..j].iter().find(|a| host_matches(a, b)) {
                v.index(j, |v| {
                    v.error(format!("duplicate hosts in virtual service: {a} & {b}"))
                        .hint("a host may appear once; a wildcard host already covers the names under it");
                });
            }
        }
    });
}

/// Whether two hosts overlap, wildcards included (Istio's `host.Name.Matches`;
/// case-insensitive, as DNS is).
pub(crate) fn host_matches(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether `a` names only hosts that `b` also names (Istio's `SubsetOf`).
pub(super) fn host_subset_of(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b {
        return true;
    }
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (Some(_), None) => false,
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => false,
    }
}

/// Whether `host` uses the `outbound_.<port>_._.<host>` SNI form that
/// AUTO_PASSTHROUGH gateways route on.
pub(super) fn is_auto_sni(host: &str) -> bool {
    host.starts_with("outbound_")
}

/// Checks the `outbound_.<port>_._.<host>` form.
pub(super) fn check_auto_sni(v: &mut Validator, host: &str) {
    let parts: Vec<&str> = host.split('_').collect();
    let ok = parts.len() >= 4
        && parts[0] == "outbound"
        && parts[1]
            .trim_matches('.')
            .bytes()
            .any(|b| b.is_ascii_digit())
        && parts[3]
            .trim_matches('.')
            .bytes()
            .any(|b| b.is_ascii_alphabetic());
    if !ok {
        v.error(format!(
            "invalid host {host:?}: should follow the outbound_.<PORT>_._.<HOSTNAME> format"
        ))
        .hint("e.g. \"outbound_.9080_._.reviews.default.svc.cluster.local\"");
    }
}

/// Checks a Gateway server host: `[namespace/]dnsName`, where the namespace
/// is `*`, `.` or a namespace name and the name is a full DNS name, `*`,
/// a `*.`-wildcard or an IP address (Istio's
/// `ValidateNamespaceSlashWildcardHostname` for gateways).
pub(crate) fn check_gateway_host(v: &mut Validator, host: &str) {
    let name = match host.split_once('/') {
        Some((ns, name)) => {
            if ns.is_empty() || name.is_empty() {
                v.error(format!(
                    "host {host:?}: config namespace and dnsName in host entry cannot be empty"
                ))
                .hint("write \"namespace/host\", \"*/host\", \"./host\" or just \"host\"");
                return;
            }
            if ns != "*" && ns != "." && !is_dns1123_label(ns) {
                v.error(format!("invalid namespace value {ns:?} in gateway"))
                    .hint("the namespace part is \"*\" (any), \".\" (the Gateway's own) or a namespace name");
            }
            name
        }
        None => host,
    };
    if name == "*" || name.parse::<IpAddr>().is_ok() {
        return;
    }
    if !name.contains('.') {
        v.error(format!(
            "host {name:?}: short names (non FQDN) are not allowed"
        ))
        .hint("use the full name, e.g. \"reviews.default.svc.cluster.local\" or \"*.example.com\"");
        return;
    }
    if name.contains('*') && !name.starts_with("*.") {
        v.error(format!("partial wildcard {name:?} not allowed"))
            .hint("a gateway host wildcard is a whole first label: \"*.example.com\"");
        return;
    }
    check_wildcard_host(v, name);
}

/// Checks gateway references: `mesh`, `name`, `namespace/name` (or the
/// legacy `name.namespace`, with a warning); reports at `[i]` of the
/// current path.
pub(super) fn check_gateway_names(v: &mut Validator, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        v.index(i, |v| {
            if names[..i].contains(name) {
                v.warn(format!("gateway {name:?} is listed twice"));
            }
            if name == MESH {
                return;
            }
            match name.split_once('/') {
                Some((ns, gw)) => {
                    if ns.is_empty() || gw.is_empty() {
                        v.error(format!(
                            "gateway {name:?}: config namespace and gateway name cannot be empty"
                        ))
                        .hint("write \"namespace/name\" or just \"name\"");
                        return;
                    }
                    if !is_dns1123_label(ns) {
                        v.error(format!("invalid value for namespace: {ns:?}"))
                            .hint("namespaces are lowercase DNS labels");
                    }
                    if !is_dns1123_label(gw) {
                        v.error(format!("invalid value for gateway name: {gw:?}"))
                            .hint("Gateway names are lowercase DNS labels");
                    }
                }
                None if name.contains('.') => {
                    if let Some((msg, hint)) = wildcard_domain_error(name) {
                        v.error(msg).hint(hint);
                    } else if let Some((gw, rest)) = name.split_once('.') {
                        let ns = rest.split('.').next().unwrap_or(rest);
                        v.report(
                            Code::Deprecated,
                            format!(
                                "using legacy gateway name format {name:?}; prefer the <namespace>/<name> format: \"{ns}/{gw}\""
                            ),
                        )
                        .hint(format!("write \"{ns}/{gw}\""));
                    }
                }
                None => {
                    if !is_dns1123_label(name) {
                        v.error(format!("invalid gateway name {name:?}"))
                            .hint("Gateway names are lowercase DNS labels; use \"mesh\" for sidecars");
                    }
                }
            }
        });
    }
}
