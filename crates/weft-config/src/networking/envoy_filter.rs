//! `EnvoyFilter` (v1alpha3): patches to the Envoy configuration Istio
//! generates. Weft does not generate Envoy configuration, so it only reads
//! and checks these (and says so); the patch `value` stays free-form JSON.
//!
//! Checks follow Istio's `ValidateEnvoyFilter` (without its decoding of
//! `value` into Envoy protos).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::WorkloadSelector;
use crate::diag::Code;
use crate::security::PolicyTargetReference;
use crate::validate::{Validate, Validator, check_regex};

/// `EnvoyFilter` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvoyFilter {
    /// Workloads to patch (default: all in the namespace, or the mesh from the root namespace).
    pub workload_selector: Option<WorkloadSelector>,
    /// Gateway API resources to patch, instead of `workloadSelector`.
    pub target_refs: Vec<PolicyTargetReference>,
    /// The patches, applied in order; required.
    pub config_patches: Vec<EnvoyConfigObjectPatch>,
    /// Order among EnvoyFilters (lower first; default 0).
    pub priority: i32,
}

/// `EnvoyConfigObjectPatch`: where and what to patch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvoyConfigObjectPatch {
    /// The kind of Envoy object patched; required.
    pub apply_to: ApplyTo,
    /// Which objects of that kind.
    #[serde(rename = "match")]
    pub r#match: Option<EnvoyConfigObjectMatch>,
    /// The change; required.
    pub patch: Option<EnvoyPatch>,
}

/// `EnvoyFilter.ApplyTo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApplyTo {
    /// Unset (invalid).
    #[default]
    Invalid,
    /// A listener.
    Listener,
    /// A filter chain of a listener.
    FilterChain,
    /// A network filter of a filter chain.
    NetworkFilter,
    /// An HTTP filter of the HTTP connection manager.
    HttpFilter,
    /// A route configuration (RDS).
    RouteConfiguration,
    /// A virtual host of a route configuration.
    VirtualHost,
    /// A route of a virtual host.
    HttpRoute,
    /// A cluster (CDS).
    Cluster,
    /// An extension config (ECDS).
    ExtensionConfig,
    /// The bootstrap configuration.
    Bootstrap,
    /// A listener filter.
    ListenerFilter,
}

/// `EnvoyFilter.PatchContext`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatchContext {
    /// Sidecars and gateways, both directions.
    #[default]
    Any,
    /// Sidecar inbound.
    SidecarInbound,
    /// Sidecar outbound.
    SidecarOutbound,
    /// Gateways.
    Gateway,
    /// Ambient waypoints.
    Waypoint,
}

/// `EnvoyConfigObjectMatch`: at most one of listener, routeConfiguration,
/// cluster, waypoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvoyConfigObjectMatch {
    /// Which proxies' config (default `ANY`).
    pub context: PatchContext,
    /// Proxy version and metadata to match.
    pub proxy: Option<ProxyMatch>,
    /// Listener attributes.
    pub listener: Option<ListenerMatch>,
    /// Route configuration attributes.
    pub route_configuration: Option<RouteConfigurationMatch>,
    /// Cluster attributes.
    pub cluster: Option<ClusterMatch>,
    /// Waypoint attributes (context `WAYPOINT`).
    pub waypoint: Option<WaypointMatch>,
}

/// `EnvoyFilter.ProxyMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyMatch {
    /// RE2 regex on the proxy's Istio version.
    pub proxy_version: String,
    /// Node metadata that must match exactly.
    pub metadata: BTreeMap<String, String>,
}

/// `EnvoyFilter.ListenerMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListenerMatch {
    /// Service or gateway port.
    pub port_number: u32,
    /// Not implemented by Istio.
    pub port_name: String,
    /// A filter chain of the listener.
    pub filter_chain: Option<FilterChainMatch>,
    /// A listener filter by name.
    pub listener_filter: String,
    /// Listener name.
    pub name: String,
}

/// `ListenerMatch.FilterChainMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FilterChainMatch {
    /// Filter chain name.
    pub name: String,
    /// SNI of the chain's match.
    pub sni: String,
    /// `raw_buffer` or `tls` (sidecar inbound).
    pub transport_protocol: String,
    /// Comma-separated ALPN values (`h2`, `http/1.1`, ...).
    pub application_protocols: String,
    /// A network filter in the chain.
    pub filter: Option<FilterMatch>,
    /// Destination port of the chain's match.
    pub destination_port: u32,
}

/// `ListenerMatch.FilterMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FilterMatch {
    /// Network filter name; required.
    pub name: String,
    /// A filter inside it (an HTTP filter of the connection manager).
    pub sub_filter: Option<SubFilterMatch>,
}

/// `ListenerMatch.SubFilterMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubFilterMatch {
    /// Filter name; required.
    pub name: String,
}

/// `EnvoyFilter.RouteConfigurationMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteConfigurationMatch {
    /// Service or gateway port.
    pub port_number: u32,
    /// Gateway server port name (context `GATEWAY`).
    pub port_name: String,
    /// Gateway `namespace/name` (context `GATEWAY`).
    pub gateway: String,
    /// A virtual host.
    pub vhost: Option<VirtualHostMatch>,
    /// Route configuration name.
    pub name: String,
}

/// `RouteConfigurationMatch.VirtualHostMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualHostMatch {
    /// Virtual host name (`host:port`).
    pub name: String,
    /// A domain of the virtual host.
    pub domain_name: String,
    /// A route in it.
    pub route: Option<VhostRouteMatch>,
}

/// `RouteConfigurationMatch.RouteMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VhostRouteMatch {
    /// Route name (a VirtualService http route's name, or `default`).
    pub name: String,
    /// Route action.
    pub action: RouteActionMatch,
}

/// `RouteMatch.Action`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouteActionMatch {
    /// Any action.
    #[default]
    Any,
    /// Routes to clusters.
    Route,
    /// Redirects.
    Redirect,
    /// Responds directly.
    DirectResponse,
}

/// `EnvoyFilter.ClusterMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterMatch {
    /// Service port.
    pub port_number: u32,
    /// Fully qualified service name.
    pub service: String,
    /// Subset of the service.
    pub subset: String,
    /// Exact cluster name (e.g. `PassthroughCluster`).
    pub name: String,
}

/// `EnvoyFilter.WaypointMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WaypointMatch {
    /// A filter of the waypoint.
    pub filter: Option<FilterMatch>,
    /// A route of the waypoint.
    pub route: Option<WaypointRouteMatch>,
}

/// `WaypointMatch.RouteMatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WaypointRouteMatch {
    /// Route name.
    pub name: String,
}

/// `EnvoyFilter.Patch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvoyPatch {
    /// How to apply the patch; required.
    pub operation: PatchOperation,
    /// The Envoy config (JSON/YAML) to merge, add or insert.
    pub value: Option<serde_json::Value>,
    /// Where an added HTTP filter goes relative to Istio's filters.
    pub filter_class: FilterClass,
}

/// `Patch.Operation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatchOperation {
    /// Unset (invalid).
    #[default]
    Invalid,
    /// Proto-merge into the matched object.
    Merge,
    /// Append to the list.
    Add,
    /// Remove the matched object.
    Remove,
    /// Insert before the matched filter/route.
    InsertBefore,
    /// Insert after the matched filter/route.
    InsertAfter,
    /// Insert first in the list.
    InsertFirst,
    /// Replace the matched object.
    Replace,
}

/// `Patch.FilterClass`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterClass {
    /// Istio decides.
    #[default]
    Unspecified,
    /// After Istio's authentication filters.
    Authn,
    /// After Istio's authorization filters.
    Authz,
    /// Before Istio's stats filters.
    Stats,
}

/// The HTTP connection manager's name (old and new).
const HCM: &str = "envoy.filters.network.http_connection_manager";
const HCM_OLD: &str = "envoy.http_connection_manager";

/// Deprecated Envoy filter names and their replacements.
const DEPRECATED_FILTERS: &[(&str, &str)] = &[
    (HCM_OLD, HCM),
    ("envoy.tcp_proxy", "envoy.filters.network.tcp_proxy"),
    ("envoy.mongo_proxy", "envoy.filters.network.mongo_proxy"),
    ("envoy.redis_proxy", "envoy.filters.network.redis_proxy"),
    ("envoy.ratelimit", "envoy.filters.network.ratelimit"),
    ("envoy.router", "envoy.filters.http.router"),
    ("envoy.cors", "envoy.filters.http.cors"),
    ("envoy.fault", "envoy.filters.http.fault"),
    ("envoy.lua", "envoy.filters.http.lua"),
    ("envoy.buffer", "envoy.filters.http.buffer"),
    ("envoy.csrf", "envoy.filters.http.csrf"),
    ("envoy.grpc_web", "envoy.filters.http.grpc_web"),
    ("envoy.health_check", "envoy.filters.http.health_check"),
    ("envoy.rate_limit", "envoy.filters.http.ratelimit"),
    (
        "envoy.listener.tls_inspector",
        "envoy.filters.listener.tls_inspector",
    ),
    (
        "envoy.listener.http_inspector",
        "envoy.filters.listener.http_inspector",
    ),
    (
        "envoy.listener.original_dst",
        "envoy.filters.listener.original_dst",
    ),
];

impl ApplyTo {
    fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Invalid => "INVALID",
            ApplyTo::Listener => "LISTENER",
            ApplyTo::FilterChain => "FILTER_CHAIN",
            ApplyTo::NetworkFilter => "NETWORK_FILTER",
            ApplyTo::HttpFilter => "HTTP_FILTER",
            ApplyTo::RouteConfiguration => "ROUTE_CONFIGURATION",
            ApplyTo::VirtualHost => "VIRTUAL_HOST",
            ApplyTo::HttpRoute => "HTTP_ROUTE",
            ApplyTo::Cluster => "CLUSTER",
            ApplyTo::ExtensionConfig => "EXTENSION_CONFIG",
            ApplyTo::Bootstrap => "BOOTSTRAP",
            ApplyTo::ListenerFilter => "LISTENER_FILTER",
        }
    }

    /// The operations Istio applies for this kind of object (others are
    /// silently skipped).
    fn operations(self) -> &'static [PatchOperation] {
        use PatchOperation::*;
        match self {
            ApplyTo::Invalid => &[],
            ApplyTo::Listener | ApplyTo::FilterChain | ApplyTo::Cluster => &[Merge, Add, Remove],
            ApplyTo::NetworkFilter | ApplyTo::HttpFilter | ApplyTo::ListenerFilter => &[
                Merge,
                Add,
                Remove,
                InsertBefore,
                InsertAfter,
                InsertFirst,
                Replace,
            ],
            ApplyTo::RouteConfiguration | ApplyTo::Bootstrap => &[Merge],
            ApplyTo::VirtualHost => &[Merge, Add, Remove, Replace],
            ApplyTo::HttpRoute => &[Merge, Add, Remove, InsertBefore, InsertAfter, InsertFirst],
            ApplyTo::ExtensionConfig => &[Add, Replace],
        }
    }

    fn is_listener_class(self) -> bool {
        matches!(
            self,
            ApplyTo::Listener
                | ApplyTo::FilterChain
                | ApplyTo::NetworkFilter
                | ApplyTo::HttpFilter
                | ApplyTo::ListenerFilter
        )
    }
}

impl PatchOperation {
    fn as_str(self) -> &'static str {
        match self {
            PatchOperation::Invalid => "INVALID",
            PatchOperation::Merge => "MERGE",
            PatchOperation::Add => "ADD",
            PatchOperation::Remove => "REMOVE",
            PatchOperation::InsertBefore => "INSERT_BEFORE",
            PatchOperation::InsertAfter => "INSERT_AFTER",
            PatchOperation::InsertFirst => "INSERT_FIRST",
            PatchOperation::Replace => "REPLACE",
        }
    }
}

impl Validate for EnvoyFilter {
    fn validate(&self, v: &mut Validator) {
        v.report(
            Code::NotSupported,
            "EnvoyFilter patches the Envoy configuration Istio generates; Weft checks it but does not apply it",
        )
        .hint("express the behaviour with VirtualService, DestinationRule, Telemetry or the security APIs");
        if let Some(sel) = &self.workload_selector {
            v.field("workloadSelector", |v| {
                sel.validate(v);
                if sel.labels.is_empty() {
                    v.warn("Envoy filter: workload selector specified without labels, will be applied to all services in namespace");
                }
            });
            if !self.target_refs.is_empty() {
                v.conflict("only one of targetRefs or workloadSelector can be set");
            }
        }
        v.each("targetRefs", &self.target_refs, |v, r| {
            if r.kind.is_empty() {
                v.required("kind");
            }
            if r.name.is_empty() {
                v.required("name");
            }
            if !r.namespace.is_empty() {
                v.field("namespace", |v| {
                    v.error("targetRef namespace must not be set; cross namespace referencing is not supported");
                });
            }
        });
        if self.config_patches.is_empty() {
            v.warn("no configPatches: the EnvoyFilter does nothing");
        }
        v.each("configPatches", &self.config_patches, |v, p| p.validate(v));
    }
}

impl Validate for EnvoyConfigObjectPatch {
    fn validate(&self, v: &mut Validator) {
        let apply_to = self.apply_to;
        if apply_to == ApplyTo::Invalid {
            v.required("applyTo").hint("e.g. applyTo: HTTP_FILTER");
        }
        match &self.patch {
            None => {
                v.required("patch");
            }
            Some(p) => v.field("patch", |v| check_patch(v, p, apply_to)),
        }
        if let Some(m) = &self.r#match {
            v.field("match", |v| check_match(v, m, apply_to));
        }
    }
}

fn check_patch(v: &mut Validator, p: &EnvoyPatch, apply_to: ApplyTo) {
    if p.operation == PatchOperation::Invalid {
        v.required("operation").hint("e.g. operation: MERGE");
        return;
    }
    if p.operation != PatchOperation::Remove && p.value.is_none() {
        v.required("value")
            .hint("Envoy filter: missing patch value for non-remove operation");
    }
    if apply_to != ApplyTo::Invalid && !apply_to.operations().contains(&p.operation) {
        let ops: Vec<&str> = apply_to.operations().iter().map(|o| o.as_str()).collect();
        v.field("operation", |v| {
            v.warn(format!(
                "operation {} has no effect with applyTo {}",
                p.operation.as_str(),
                apply_to.as_str()
            ))
            .hint(format!("{} supports {}", apply_to.as_str(), ops.join(", ")));
        });
    }
    if p.filter_class != FilterClass::Unspecified
        && !(apply_to == ApplyTo::HttpFilter && p.operation == PatchOperation::Add)
    {
        v.field("filterClass", |v| {
            v.warn("filterClass only applies to ADD operations on HTTP_FILTER");
        });
    }
    if let Some(value) = &p.value
        && !value.is_object()
    {
        v.field("value", |v| {
            v.error("patch value must be an object (the Envoy config to apply)");
        });
    }
}

fn check_match(v: &mut Validator, m: &EnvoyConfigObjectMatch, apply_to: ApplyTo) {
    if let Some(p) = &m.proxy
        && !p.proxy_version.is_empty()
    {
        v.field("proxy", |v| {
            v.field("proxyVersion", |v| {
                let before = v.issues().len();
                check_regex(v, &p.proxy_version);
                if v.issues().len() == before
                    && let Some(e) = nested_repetition(&p.proxy_version)
                {
                    v.error(format!(
                        "Envoy filter: invalid regex for proxy version, [error parsing regexp: {e}]"
                    ));
                }
            });
        });
    }
    let objects = [
        m.listener.is_some(),
        m.route_configuration.is_some(),
        m.cluster.is_some(),
        m.waypoint.is_some(),
    ];
    if objects.iter().filter(|o| **o).count() > 1 {
        v.conflict("only one of listener, routeConfiguration, cluster or waypoint can be set");
        return;
    }
    if m.context == PatchContext::Waypoint {
        check_waypoint(v, m, apply_to);
        return;
    }
    let any = objects.iter().any(|o| *o);
    if !any {
        return;
    }
    if apply_to.is_listener_class() {
        let Some(l) = &m.listener else {
            v.error(
                "Envoy filter: applyTo for listener class objects cannot have non listener match",
            )
            .hint("match with listener: {...}");
            return;
        };
        v.field("listener", |v| check_listener_match(v, l, apply_to));
    } else if matches!(
        apply_to,
        ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
    ) {
        if m.route_configuration.is_none() {
            v.error("Envoy filter: applyTo for http route class objects cannot have non route configuration match")
                .hint("match with routeConfiguration: {...}");
        }
    } else if apply_to == ApplyTo::Cluster {
        if m.cluster.is_none() {
            v.error(
                "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
            )
            .hint("match with cluster: {...}");
        }
    } else if matches!(apply_to, ApplyTo::ExtensionConfig | ApplyTo::Bootstrap) {
        v.warn(format!(
            "listener, routeConfiguration and cluster matches have no effect with applyTo {}",
            apply_to.as_str()
        ));
    }
}

fn check_listener_match(v: &mut Validator, l: &ListenerMatch, apply_to: ApplyTo) {
    let Some(fc) = &l.filter_chain else { return };
    let Some(f) = &fc.filter else { return };
    v.field("filterChain", |v| {
        v.field("filter", |v| {
            if matches!(apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
                v.warn(format!(
                    "Envoy filter: filter match has no effect when used with {}",
                    apply_to.as_str()
                ));
            }
            if f.name.is_empty() {
                v.required("name").hint("Envoy filter: filter match has no name to match on");
                return;
            }
            deprecated_filter_name(v, &f.name);
            if let Some(sub) = &f.sub_filter {
                v.field("subFilter", |v| {
                    if apply_to != ApplyTo::HttpFilter {
                        v.error("Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only");
                    } else if f.name != HCM && f.name != HCM_OLD {
                        v.error(format!("Envoy filter: subfilter match requires filter match with {HCM}"));
                    } else if sub.name.is_empty() {
                        v.required("name")
                            .hint("Envoy filter: subfilter match has no name to match on");
                    } else {
                        v.field("name", |v| deprecated_filter_name(v, &sub.name));
                    }
                });
            }
        });
    });
}

fn deprecated_filter_name(v: &mut Validator, name: &str) {
    if let Some((_, new)) = DEPRECATED_FILTERS.iter().find(|(old, _)| *old == name) {
        v.report(
            Code::Deprecated,
            format!("using deprecated filter name {name:?}; use {new:?} instead"),
        );
    }
}

/// Istio's rules for patches to ambient waypoints.
fn check_waypoint(v: &mut Validator, m: &EnvoyConfigObjectMatch, apply_to: ApplyTo) {
    let unsupported = [
        ApplyTo::Listener,
        ApplyTo::ListenerFilter,
        ApplyTo::Bootstrap,
        ApplyTo::ExtensionConfig,
    ];
    if unsupported.contains(&apply_to) {
        v.field("context", |v| {
            v.error(format!(
                "Envoy filter: applyTo {} is not supported for waypoint",
                apply_to.as_str()
            ));
        });
        return;
    }
    if m.listener.is_some() || m.route_configuration.is_some() || m.cluster.is_some() {
        v.error("waypoint patches match with waypoint: {...}, not listener, routeConfiguration or cluster");
        return;
    }
    let filter = m.waypoint.as_ref().and_then(|w| w.filter.as_ref());
    let route = m.waypoint.as_ref().and_then(|w| w.route.as_ref());
    v.field("waypoint", |v| {
        if filter.is_some() && matches!(apply_to, ApplyTo::RouteConfiguration | ApplyTo::Cluster) {
            v.field("filter", |v| {
                v.error(format!(
                    "Envoy filter: applyTo {} for waypoint cannot have filter match",
                    apply_to.as_str()
                ));
            });
        }
        if route.is_some() && matches!(apply_to, ApplyTo::Cluster | ApplyTo::FilterChain) {
            v.field("route", |v| {
                v.error(format!(
                    "Envoy filter: applyTo {} for waypoint cannot have route match",
                    apply_to.as_str()
                ));
            });
        }
        if apply_to == ApplyTo::HttpFilter {
            match filter {
                None => {
                    v.required("filter")
                        .hint("Envoy filter: applyTo HTTP_FILTER for waypoint must have filter match");
                }
                Some(f) => v.field("filter", |v| {
                    if f.name != HCM {
                        v.field("name", |v| {
                            v.error(format!(
                                "Envoy filter: applyTo HTTP_FILTER for waypoint requires name with {HCM}"
                            ));
                        });
                    } else if f.sub_filter.as_ref().is_none_or(|s| s.name.is_empty()) {
                        v.error("Envoy filter: applyTo HTTP_FILTER for waypoint must have subfilter name")
                            .hint("subFilter: {name: envoy.filters.http.router}");
                    }
                }),
            }
        }
    });
}

/// Go's regexp (and RE2) reject a repetition of a repetition (`a**`,
/// `a++`, `a+?*`), which `regex_syntax` accepts.
fn nested_repetition(re: &str) -> Option<String> {
    let b = re.as_bytes();
    // The end of a repetition operator starting at `i`, if one does.
    let rep_end = |i: usize| -> Option<usize> {
        match b.get(i)? {
            b'*' | b'+' | b'?' => Some(i + 1),
            b'{' => {
                let close = i + re[i..].find('}')?;
                let inner = &re[i + 1..close];
                let ok = !inner.is_empty()
                    && inner.bytes().all(|c| c.is_ascii_digit() || c == b',')
                    && inner.as_bytes()[0].is_ascii_digit()
                    && inner.matches(',').count() <= 1;
                ok.then_some(close + 1)
            }
            _ => None,
        }
    };
    let (mut i, mut in_class) = (0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            _ if in_class => {}
            _ if i > 0 && b[i - 1] != b'(' && b[i - 1] != b'|' => {
                if let Some(mut j) = rep_end(i) {
                    if b.get(j) == Some(&b'?') {
                        j += 1;
                    }
                    if let Some(k) = rep_end(j) {
                        return Some(format!(
                            "invalid nested repetition operator: `{}`",
                            &re[i..k]
                        ));
                    }
                    i = j;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests;
