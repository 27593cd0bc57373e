//! VirtualService validation, after Istio's `ValidateVirtualService` and
//! the checks it calls (`validateHTTPRoute`, `validateTLSRoute`,
//! `validateTCPRoute`, ...), with Istio's wording where users know it.
//! A few rules are stricter where Istio accepts config it then ignores
//! (unsupported redirect codes, weights over 100, delegates without a
//! name); unreachable-route warnings are left to analysis.
//!
//! This file holds the top level, destinations and TLS/TCP routes;
//! [`super::hosts`] the host and gateway-name rules, [`super::http`] HTTP
//! routes, matches and headers, [`super::policies`] the per-route policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::hosts::{check_auto_sni, check_gateway_names, check_hosts, host_subset_of, is_auto_sni};
use super::http::check_http_route;
use super::*;
use crate::diag::Code;
use crate::validate::check_wildcard_host;
use crate::validate::{
    Validate, Validator, check_export_to, check_ip_or_cidr, check_port, check_selector_labels,
    is_dns1123_label,
};

/// The reserved gateway name for all sidecars.
pub(super) const MESH: &str = "mesh";

/// What a VirtualService applies to, which decides some host rules.
pub(super) struct Scope<'a> {
    pub(super) vs: &'a VirtualService,
    /// No hosts: a delegate, only reachable from a root's `delegate`.
    pub(super) delegate_vs: bool,
    /// Bound to gateways and not to `mesh`.
    pub(super) gateway_only: bool,
    /// Whether a TLS route matches on SNI (gateway hosts may then use the
    /// `outbound_.<port>_._.<host>` form of AUTO_PASSTHROUGH).
    pub(super) sni: bool,
}

impl Validate for VirtualService {
    fn validate(&self, v: &mut Validator) {
        let scope = Scope {
            vs: self,
            delegate_vs: self.hosts.is_empty(),
            gateway_only: !self.gateways.is_empty() && !self.gateways.iter().any(|g| g == MESH),
            sni: self
                .tls
                .iter()
                .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty())),
        };
        if scope.delegate_vs {
            // Istio: a VirtualService without hosts is a delegate.
            if !self.gateways.is_empty() {
                v.field("gateways", |v| {
                    v.error("delegate virtual service must have no gateways specified")
                        .hint("a VirtualService without hosts is a delegate; add hosts, or remove gateways and reference it from a root's `delegate`");
                });
            }
            if !self.tls.is_empty() {
                v.field("tls", |v| {
                    v.error("delegate virtual service must have no tls route specified")
                        .hint("only HTTP routes can be delegated; add hosts to make this a normal VirtualService");
                });
            }
            if !self.tcp.is_empty() {
                v.field("tcp", |v| {
                    v.error("delegate virtual service must have no tcp route specified")
                        .hint("only HTTP routes can be delegated; add hosts to make this a normal VirtualService");
                });
            }
        }
        v.field("gateways", |v| check_gateway_names(v, &self.gateways));
        check_hosts(v, &scope);
        if self.http.is_empty() && self.tcp.is_empty() && self.tls.is_empty() {
            v.report(
                Code::RequiredField,
                "http, tcp or tls must be provided in virtual service",
            )
            .hint(
                "add at least one route, e.g. `http: [{route: [{destination: {host: reviews}}]}]`",
            );
        }
        v.each("http", &self.http, |v, r| check_http_route(v, r, &scope));
        v.each("tls", &self.tls, |v, r| check_tls_route(v, r, &scope));
        v.each("tcp", &self.tcp, |v, r| check_tcp_route(v, r, &scope));
        check_export_to(v, &self.export_to, false);
    }
}

// ---- destinations ----------------------------------------------------------

/// Checks a destination: a host (not `*`), a valid subset name and port.
pub(super) fn check_destination(v: &mut Validator, d: &Destination) {
    if d.host.is_empty() {
        v.required("host")
            .hint("name the service, e.g. \"reviews\" or \"reviews.default.svc.cluster.local\"");
    } else if d.host == "*" {
        v.field("host", |v| {
            v.error("invalid destination host *")
                .hint("a destination names one service");
        });
    } else {
        v.field("host", |v| check_wildcard_host(v, &d.host));
    }
    if !d.subset.is_empty() && !is_dns1123_label(&d.subset) {
        v.field("subset", |v| {
            v.error(format!("subset name is invalid: {}", d.subset))
                .hint("subset names are lowercase DNS labels, as defined in the DestinationRule");
        });
    }
    if let Some(p) = &d.port {
        v.field("port", |v| v.field("number", |v| check_port(v, p.number)));
    }
}

/// Checks the destinations of a route (HTTP, TLS or TCP): each present
/// and valid, weights in 0..=100, and adding up to 100 when there are
/// several.
pub(super) fn check_route_destinations(v: &mut Validator, dests: &[(Option<&Destination>, i32)]) {
    v.field("route", |v| {
        for (i, (dest, weight)) in dests.iter().enumerate() {
            v.index(i, |v| {
                match dest {
                    None => {
                        v.required("destination")
                            .hint("destination is required: `destination: {host: ...}`");
                    }
                    Some(d) => v.field("destination", |v| check_destination(v, d)),
                }
                if !(0..=100).contains(weight) {
                    v.field("weight", |v| {
                        v.error(format!(
                            "weight {weight} is out of range: weights are 0..100"
                        ));
                    });
                }
            });
        }
        if dests.len() > 1 {
            let total: i64 = dests.iter().map(|(_, w)| i64::from(*w)).sum();
            if total != 100 {
                let terms: Vec<String> = dests.iter().map(|(_, w)| w.to_string()).collect();
                let label = if dests.len() == 2 {
                    "weight"
                } else {
                    "weights"
                };
                v.error(format!(
                    "{label} {} = {total}: route weights must add up to 100",
                    terms.join(" + ")
                ))
                .hint(if total == 0 {
                    "give each destination a `weight`, e.g. 50 and 50".to_string()
                } else if total < 100 {
                    format!(
                        "adjust the weights so they total 100 (they are {} short)",
                        100 - total
                    )
                } else {
                    format!(
                        "adjust the weights so they total 100 (they are {} over)",
                        total - 100
                    )
                });
            }
        }
    });
}

// ---- TLS and TCP routes ----------------------------------------------------

fn check_tls_route(v: &mut Validator, r: &TlsRoute, scope: &Scope<'_>) {
    if r.matches.is_empty() {
        v.field("match", |v| {
            v.report(
                Code::RequiredField,
                "TLS route must have at least one match condition",
            )
            .hint("add `match: [{sniHosts: [...]}]`");
        });
    }
    v.each("match", &r.matches, |v, m| {
        if m.sni_hosts.is_empty() {
            v.field("sniHosts", |v| {
                v.report(
                    Code::RequiredField,
                    "TLS match must have at least one SNI host",
                )
                .hint("list the SNI names to route, e.g. `sniHosts: [login.example.com]`");
            });
        }
        v.field("sniHosts", |v| {
            for (i, sni) in m.sni_hosts.iter().enumerate() {
                v.index(i, |v| check_sni_host(v, sni, scope));
            }
        });
        check_l4_common(
            v,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
        check_source_namespace(v, &m.source_namespace);
        check_source_scope(v, &m.gateways, &m.source_labels, &m.source_namespace, scope);
    });
    check_l4_route(v, "TLS", &r.route);
}

fn check_sni_host(v: &mut Validator, sni: &str, scope: &Scope<'_>) {
    if sni.parse::<IpAddr>().is_ok() {
        v.warn(format!(
            "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
        ));
        return;
    }
    let before = v.issues().len();
    if scope.gateway_only && is_auto_sni(sni) {
        check_auto_sni(v, sni);
    } else {
        check_wildcard_host(v, sni);
    }
    if v.issues().len() > before {
        return;
    }
    if !scope.vs.hosts.iter().any(|h| host_subset_of(sni, h)) {
        v.error(format!(
            "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
            scope.vs.hosts.join(", ")
        ))
        .hint("each SNI host must be one of the hosts, or fall under a wildcard host");
    }
}

fn check_l4_common(
    v: &mut Validator,
    subnets: &[String],
    port: u32,
    labels: &BTreeMap<String, String>,
    gateways: &[String],
) {
    v.field("destinationSubnets", |v| {
        for (i, s) in subnets.iter().enumerate() {
            v.index(i, |v| check_ip_or_cidr(v, s));
        }
    });
    if port != 0 {
        v.field("port", |v| check_port(v, port));
    }
    v.field("sourceLabels", |v| check_selector_labels(v, labels));
    v.field("gateways", |v| check_gateway_names(v, gateways));
}

fn check_tcp_route(v: &mut Validator, r: &TcpRoute, scope: &Scope<'_>) {
    v.each("match", &r.matches, |v, m| {
        check_l4_common(
            v,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
        if !m.source_subnet.is_empty() {
            v.field("sourceSubnet", |v| check_ip_or_cidr(v, &m.source_subnet));
        }
        check_source_namespace(v, &m.source_namespace);
        check_source_scope(v, &m.gateways, &m.source_labels, &m.source_namespace, scope);
    });
    check_l4_route(v, "TCP", &r.route);
}

/// The `route` of a TLS or TCP route: required, and its destinations.
fn check_l4_route(v: &mut Validator, kind: &str, route: &[RouteDestination]) {
    if route.is_empty() {
        v.field("route", |v| {
            v.report(Code::RequiredField, format!("{kind} route is required"))
                .hint("add `route: [{destination: {host: ...}}]`");
        });
    }
    let dests: Vec<_> = route
        .iter()
        .map(|d| (d.destination.as_ref(), d.weight))
        .collect();
    check_route_destinations(v, &dests);
}

/// Checks `sourceNamespace` is a namespace name.
pub(super) fn check_source_namespace(v: &mut Validator, ns: &str) {
    if !ns.is_empty() && !is_dns1123_label(ns) {
        v.field("sourceNamespace", |v| {
            v.error(format!("sourceNamespace match {ns} is invalid"))
                .hint("namespaces are lowercase DNS labels");
        });
    }
}

/// `sourceLabels`/`sourceNamespace` only act on sidecars: warn when the
/// match applies to gateways only.
pub(super) fn check_source_scope(
    v: &mut Validator,
    gateways: &[String],
    labels: &BTreeMap<String, String>,
    namespace: &str,
    scope: &Scope<'_>,
) {
    let effective = if gateways.is_empty() {
        &scope.vs.gateways
    } else {
        gateways
    };
    if effective.is_empty() || effective.iter().any(|g| g == MESH) {
        return;
    }
    let field = if !labels.is_empty() {
        "sourceLabels"
    } else if !namespace.is_empty() {
        "sourceNamespace"
    } else {
        return;
    };
    v.field(field, |v| {
        v.warn(format!(
            "{field} only applies to sidecars, but this match applies to gateways only"
        ))
        .hint("add \"mesh\" to the gateways, or remove the source condition");
    });
}
