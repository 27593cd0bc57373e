//! VirtualService HTTP route actions → Envoy routes: destinations and
//! weighted splits, rewrites, redirects, direct responses, header
//! operations, mirrors, timeouts and retries, fault and CORS per-filter
//! config, and consistent-hash policies from DestinationRules.

use std::collections::BTreeMap;

use weft_config::host;
use weft_config::networking::{
    ConsistentHashLb, Destination, Headers, HttpDirectResponse, HttpMatchRequest, HttpRedirect,
    HttpRoute, RedirectPortSelection,
};
use weft_config::{Resource, networking::HeaderOperations};
use weft_registry::Service;
use weft_xds::pack;
use weft_xds::pb::envoy::config::core::v3::data_source::Specifier;
use weft_xds::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use weft_xds::pb::envoy::config::core::v3::{DataSource, HeaderValue, HeaderValueOption};
use weft_xds::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie, CookieAttribute, Header, PolicySpecifier, QueryParameter,
};
use weft_xds::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HashPolicy, HostRewriteSpecifier, RequestMirrorPolicy,
};
use weft_xds::pb::envoy::config::route::v3::weighted_cluster::{ClusterWeight, cluster_weight};
use weft_xds::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, RedirectAction, Route, RouteAction, WeightedCluster,
};
use weft_xds::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::{Cx, matches, policies};
use crate::translate::envoy::istio_config_metadata;
use crate::translate::{names, policy};

pub use weft_xds::names::{CORS_FILTER, FAULT_FILTER};

/// The Envoy route for one `match` entry (or none) of a VirtualService
/// HTTP route; `None` when the route cannot be expressed (a delegate, no
/// destination, an unsupported redirect code or match).
pub(super) fn translate_route(
    cx: &Cx<'_>,
    vs: &Resource,
    http: &HttpRoute,
    m: Option<&HttpMatchRequest>,
) -> Option<Route> {
    let name = match m {
        Some(m) if !m.name.is_empty() => format!("{}.{}", http.name, m.name),
        _ => http.name.clone(),
    };
    let mut route = Route {
        name,
        r#match: Some(matches::route_match(m)?),
        stat_prefix: m.map(|m| m.stat_prefix.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let ops = HeaderOps::of(http.headers.as_ref());
    route.request_headers_to_add = ops.request_add;
    route.request_headers_to_remove = ops.request_remove;
    route.response_headers_to_add = ops.response_add;
    route.response_headers_to_remove = ops.response_remove;
    let action = if let Some(r) = &http.redirect {
        Action::Redirect(redirect(r, cx.port)?)
    } else if let Some(d) = &http.direct_response {
        Action::DirectResponse(direct_response(d))
    } else if http.delegate.is_some() || http.route.is_empty() {
        return None;
    } else {
        Action::Route(route_action(
            cx,
            vs.namespace(),
            http,
            ops.authority,
            &mut route,
        ))
    };
    route.decorator = Some(Decorator {
        operation: operation(&route, &action, vs.name(), cx.port),
        ..Default::default()
    });
    route.action = Some(action);
    route.metadata = Some(istio_config_metadata(
        "virtual-service",
        vs.namespace(),
        vs.name(),
    ));
    if let Some(fault) = http.fault.as_ref().and_then(policies::fault) {
        route
            .typed_per_filter_config
            .insert(FAULT_FILTER.to_string(), pack(&fault));
    }
    if let Some(cors) = &http.cors_policy {
        route
            .typed_per_filter_config
            .insert(CORS_FILTER.to_string(), pack(&policies::cors(cors)));
    }
    Some(route)
}

/// The operation name traces show (Istio's `GetRouteOperation`):
/// `host:port/path` for a single destination, else `vs-name:port/path`.
fn operation(route: &Route, action: &Action, vs_name: &str, port: u16) -> String {
    use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
    let path = match route
        .r#match
        .as_ref()
        .and_then(|m| m.path_specifier.as_ref())
    {
        Some(PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(PathSpecifier::Path(p)) => p.clone(),
        Some(PathSpecifier::SafeRegex(r)) => r.regex.clone(),
        _ => "/*".to_string(),
    };
    if let Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(c)),
        ..
    }) = action
        && let Some(parts) = names::parse_cluster(c)
    {
        return format!("{}:{}{path}", parts.host, parts.port);
    }
    format!("{vs_name}:{port}{path}")
}

fn route_action(
    cx: &Cx<'_>,
    vs_namespace: &str,
    http: &HttpRoute,
    mut authority: String,
    route: &mut Route,
) -> RouteAction {
    let mut action = RouteAction::default();
    policies::set_timeout(
        &mut action,
        http.timeout.map(|t| t.get()).unwrap_or_default(),
        cx.proxy.kind,
    );
    if let Some(rw) = &http.rewrite {
        if let Some(rr) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(matches::regex_matcher(&rr.matches)),
                substitution: rr.rewrite.clone(),
            });
        } else if !rw.uri.is_empty() {
            action.prefix_rewrite = rw.uri.clone();
        }
        if !rw.authority.is_empty() {
            authority = rw.authority.clone();
        }
    }
    if !authority.is_empty() {
        action.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(authority));
    }
    let single_mirror = http.mirror.as_ref().map(|d| {
        (
            d,
            policies::mirror_fraction(http.mirror_percentage, http.mirror_percent),
        )
    });
    let mirrors = http.mirrors.iter().filter_map(|m| {
        Some((
            m.destination.as_ref()?,
            policies::mirror_fraction(m.percentage, None),
        ))
    });
    for (dest, fraction) in single_mirror.into_iter().chain(mirrors) {
        if let Some(fraction) = fraction {
            action.request_mirror_policies.push(RequestMirrorPolicy {
                cluster: target(cx, vs_namespace, dest).cluster,
                runtime_fraction: Some(fraction),
                trace_sampled: Some(BoolValue { value: false }),
                ..Default::default()
            });
        }
    }

    let mut hashes: Vec<HashPolicy> = Vec::new();
    let mut add_hash = |h: Option<HashPolicy>| {
        if let Some(h) = h
            && !hashes.contains(&h)
        {
            hashes.push(h);
        }
    };
    if let [only] = http.route.as_slice() {
        let dest = only.destination.clone().unwrap_or_default();
        let t = target(cx, vs_namespace, &dest);
        add_hash(t.hash_policy(cx));
        action.cluster_specifier = Some(ClusterSpecifier::Cluster(t.cluster));
        let ops = HeaderOps::of(only.headers.as_ref());
        route.request_headers_to_add.extend(ops.request_add);
        route.request_headers_to_remove.extend(ops.request_remove);
        route.response_headers_to_add.extend(ops.response_add);
        route.response_headers_to_remove.extend(ops.response_remove);
        if !ops.authority.is_empty() && action.host_rewrite_specifier.is_none() {
            action.host_rewrite_specifier =
                Some(HostRewriteSpecifier::HostRewriteLiteral(ops.authority));
        }
    } else {
        let mut clusters = Vec::new();
        // Zero-weight destinations get no traffic; Envoy needs none of them.
        for dst in http.route.iter().filter(|d| d.weight > 0) {
            let dest = dst.destination.clone().unwrap_or_default();
            let t = target(cx, vs_namespace, &dest);
            add_hash(t.hash_policy(cx));
            let ops = HeaderOps::of(dst.headers.as_ref());
            clusters.push(ClusterWeight {
                name: t.cluster,
                weight: Some(UInt32Value {
                    value: u32::try_from(dst.weight).unwrap_or(0),
                }),
                request_headers_to_add: ops.request_add,
                request_headers_to_remove: ops.request_remove,
                response_headers_to_add: ops.response_add,
                response_headers_to_remove: ops.response_remove,
                host_rewrite_specifier: (!ops.authority.is_empty()).then_some(
                    cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(ops.authority),
                ),
                ..Default::default()
            });
        }
        action.cluster_specifier = Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        }));
    }
    let consistent_hash = !hashes.is_empty();
    action.hash_policy = hashes;
    let retries =
        http.retries
            .as_ref()
            .or(cx.inputs.config.mesh.default_http_retry_policy.as_ref());
    action.retry_policy = policies::retry_policy(retries, consistent_hash);
    action
}

/// Where a destination sends traffic.
pub(super) struct Target<'a> {
    /// `outbound|<port>|<subset>|<host>`.
    pub(super) cluster: String,
    /// The destination service, if the registry has it.
    service: Option<&'a Service>,
    /// The subset name (empty for the whole service).
    subset: String,
    /// The destination port.
    port: u16,
}

/// Resolves a destination written in a VirtualService in `vs_namespace`:
/// short host names complete in that namespace; the port is the one
/// given, else the service's only port, else this route's port (Istio's
/// `GetDestinationCluster`).
pub(super) fn target<'a>(cx: &Cx<'a>, vs_namespace: &str, dest: &Destination) -> Target<'a> {
    let host = host::fqdn(&dest.host, vs_namespace);
    let service = cx.service(&host);
    let port = match (&dest.port, service) {
        (Some(p), _) => u16::try_from(p.number).unwrap_or(cx.port),
        (None, Some(svc)) if svc.ports.len() == 1 => svc.ports[0].number,
        _ => cx.port,
    };
    Target {
        cluster: names::outbound_cluster(port, &dest.subset, &host),
        service,
        subset: dest.subset.clone(),
        port,
    }
}

impl Target<'_> {
    fn hash_policy(&self, cx: &Cx<'_>) -> Option<HashPolicy> {
        let svc = self.service?;
        let cx = Cx {
            port: self.port,
            ..*cx
        };
        service_hash_policy(&cx, svc, &self.subset)
    }
}

/// The hash policy for consistent-hash load balancing to `svc` on
/// `cx.port` (within `subset`, if not empty), from the DestinationRule the
/// proxy sees for it.
pub(super) fn service_hash_policy(cx: &Cx<'_>, svc: &Service, subset: &str) -> Option<HashPolicy> {
    let (_, dr) = policy::destination_rule_for(cx.inputs, cx.proxy, svc)?;
    let subset = dr
        .subsets
        .iter()
        .find(|s| !subset.is_empty() && s.name == subset);
    let effective = policy::effective_policy(dr, subset, cx.port);
    hash_policy(effective.load_balancer?.consistent_hash.as_ref()?)
}

/// Istio's `consistentHashToHashPolicy`.
fn hash_policy(ch: &ConsistentHashLb) -> Option<HashPolicy> {
    let specifier = if let Some(name) = &ch.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: name.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &ch.http_cookie {
        PolicySpecifier::Cookie(Cookie {
            name: cookie.name.clone(),
            ttl: cookie.ttl.map(|t| policies::duration(t.get())),
            path: cookie.path.clone(),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        })
    } else if let Some(source_ip) = ch.use_source_ip {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip })
    } else if let Some(name) = &ch.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    })
}

/// Istio's `ApplyRedirect`; `None` for a status code Envoy cannot send.
fn redirect(r: &HttpRedirect, port: u16) -> Option<RedirectAction> {
    let response_code = match r.redirect_code {
        0 | 301 => RedirectResponseCode::MovedPermanently,
        302 => RedirectResponseCode::Found,
        303 => RedirectResponseCode::SeeOther,
        307 => RedirectResponseCode::TemporaryRedirect,
        308 => RedirectResponseCode::PermanentRedirect,
        other => {
            tracing::warn!(code = other, "redirect code not supported; route skipped");
            return None;
        }
    };
    let mut out = RedirectAction {
        host_redirect: r.authority.clone(),
        response_code: response_code as i32,
        path_rewrite_specifier: (!r.uri.is_empty())
            .then(|| PathRewriteSpecifier::PathRedirect(r.uri.clone())),
        scheme_rewrite_specifier: (!r.scheme.is_empty())
            .then(|| SchemeRewriteSpecifier::SchemeRedirect(r.scheme.clone())),
        ..Default::default()
    };
    let port_given = r.port.is_some() || r.derive_port.is_some();
    out.port_redirect = match (r.port, r.derive_port) {
        (Some(p), _) => p,
        (None, Some(RedirectPortSelection::FromRequestPort)) => u32::from(port),
        _ => 0,
    };
    if port_given {
        // No explicit :80 for http or :443 for https.
        let scheme = if r.scheme.is_empty() {
            "http"
        } else {
            &r.scheme
        };
        if (out.port_redirect == 80 && scheme == "http")
            || (out.port_redirect == 443 && scheme == "https")
        {
            out.port_redirect = 0;
        }
    }
    Some(out)
}

/// Istio's `ApplyDirectResponse`.
fn direct_response(d: &HttpDirectResponse) -> DirectResponseAction {
    let body = d.body.as_ref().and_then(|b| {
        let specifier = if let Some(s) = &b.string {
            Specifier::InlineString(s.clone())
        } else {
            Specifier::InlineBytes(policies::base64_decode(b.bytes.as_deref()?)?)
        };
        Some(DataSource {
            specifier: Some(specifier),
            ..Default::default()
        })
    });
    DirectResponseAction {
        status: d.status,
        body,
        ..Default::default()
    }
}

/// Header operations in Envoy's terms (Istio's `TranslateHeadersOperations`).
#[derive(Debug, Default)]
struct HeaderOps {
    request_add: Vec<HeaderValueOption>,
    request_remove: Vec<String>,
    response_add: Vec<HeaderValueOption>,
    response_remove: Vec<String>,
    /// A request `:authority`/`host` to set: a host rewrite, not a header.
    authority: String,
}

impl HeaderOps {
    fn of(headers: Option<&Headers>) -> Self {
        let Some(h) = headers else {
            return HeaderOps::default();
        };
        let empty = HeaderOperations::default();
        let req = h.request.as_ref().unwrap_or(&empty);
        let resp = h.response.as_ref().unwrap_or(&empty);
        // `set` wins over `add` for the authority.
        let authority = [&req.set, &req.add]
            .into_iter()
            .find_map(|m| {
                m.iter()
                    .find(|(k, _)| is_authority(k))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        HeaderOps {
            request_add: header_values(req),
            request_remove: without_internal(&req.remove),
            response_add: header_values(resp),
            response_remove: without_internal(&resp.remove),
            authority,
        }
    }
}

/// `set` (overwrite) then `add` (append), each sorted by name, without
/// pseudo-headers and `host`, which Envoy cannot change this way.
fn header_values(ops: &HeaderOperations) -> Vec<HeaderValueOption> {
    let entries = |map: &BTreeMap<String, String>, action: HeaderAppendAction| {
        map.iter()
            .filter(|(k, _)| !is_internal(k))
            .map(move |(k, v)| HeaderValueOption {
                header: Some(HeaderValue {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                }),
                append_action: action as i32,
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let mut out = entries(&ops.set, HeaderAppendAction::OverwriteIfExistsOrAdd);
    out.extend(entries(&ops.add, HeaderAppendAction::AppendIfExistsOrAdd));
    out
}

fn without_internal(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !is_internal(n)).cloned().collect()
}

fn is_internal(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}
