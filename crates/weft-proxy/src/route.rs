//! Routes (RDS `RouteConfiguration`s, and the inline ones of inbound
//! listeners) in Weft's own form: precompiled virtual host lookup by
//! domain and ordered routes with compiled matchers.
//!
//! Converted: domains (exact, `*.suffix`, `prefix*`, `*`), every path,
//! header and query parameter match, weighted clusters, timeouts, prefix
//! and regex rewrites, host rewrites, redirects, direct responses and
//! header additions/removals on requests and responses, retry policies
//! ([`crate::retry`]), request mirrors, and the fault and CORS filters'
//! per-route (or per-virtual-host) configs ([`crate::fault`],
//! [`crate::cors`]). Hash policies are read here and acted on by
//! [`crate::hash`] and the balancer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use regex::Regex;
use weft_xds::pb::envoy::config::core::v3::{HeaderValueOption, data_source, header_value_option};
use weft_xds::pb::envoy::config::route::v3::redirect_action::{
    PathRewriteSpecifier, SchemeRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::route::Action as XdsAction;
use weft_xds::pb::envoy::config::route::v3::route_action::{
    ClusterSpecifier, HostRewriteSpecifier,
};
use weft_xds::pb::envoy::config::route::v3::weighted_cluster::cluster_weight;
use weft_xds::pb::envoy::config::route::v3::{
    RedirectAction, Route as XdsRoute, RouteAction, RouteConfiguration, VirtualHost as XdsVhost,
};

use prost::Name;
use weft_xds::pb::envoy::config::route::v3::FilterConfig;
use weft_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use weft_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use weft_xds::pb::google::protobuf::Any;

use crate::cluster::proto_duration;
use crate::cors::Cors;
use crate::fault::{Fault, Fraction};
pub use crate::retry::Retry;

pub mod matcher;

pub use matcher::{Matcher, RequestView};

/// Envoy's route timeout when a route sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a route configuration can't be used; names the resource and where in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("route configuration {config}: {location}: {reason}")]
pub struct RouteError {
    /// The route configuration.
    pub config: String,
    /// The virtual host and route.
    pub location: String,
    /// What is wrong.
    pub reason: String,
}

/// One route configuration.
#[derive(Debug)]
pub struct RouteTable {
    /// Its name (`"9080"`, or `inbound|9080||` for inline ones).
    pub name: String,
    /// Its virtual hosts (shared with the next table of a VHDS update).
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
    /// Virtual hosts by domain (shared with the next table of a VHDS
    /// update when no domain changed).
    index: Arc<DomainIndex>,
    /// `ignore_port_in_host_matching`: a `:port` is stripped from the
    /// authority before matching (Istio sets it on sidecar routes and sends
    /// their domains without ports).
    ignore_port: bool,
    /// Whether VHDS brings its virtual hosts (`vhds` is set).
    vhds: bool,
    /// The configuration's own header changes, applied to every route
    /// (kept to convert VHDS's virtual hosts).
    request_headers: HeaderOps,
    response_headers: HeaderOps,
}

/// A route table's virtual hosts by domain (positions in its list).
#[derive(Debug, Default)]
struct DomainIndex {
    exact: crate::fasthash::FastMap<String, usize>,
    /// `*.suffix` domains as `(".suffix", vhost)`, longest first.
    suffixes: Vec<(String, usize)>,
    /// `prefix*` domains as `("prefix", vhost)`, longest first.
    prefixes: Vec<(String, usize)>,
    any: Option<usize>,
}

/// A virtual host.
#[derive(Debug)]
pub struct VirtualHost {
    /// Its name (`reviews.shop.svc.cluster.local:9080`).
    pub name: String,
    /// The domains it answers.
    pub domains: Vec<String>,
    /// Its routes, in order; the first that matches wins.
    pub routes: Vec<Route>,
    /// Whether upstream requests carry `x-envoy-attempt-count`.
    pub attempt_count: bool,
}

/// A route.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// When it applies.
    pub matcher: Matcher,
    /// What it does.
    pub action: Action,
    /// Header changes on the request (route's, then the virtual host's).
    pub request_headers: HeaderOps,
    /// Header changes on the response.
    pub response_headers: HeaderOps,
    /// Fault injection (`envoy.filters.http.fault`).
    pub fault: Option<Fault>,
    /// CORS (`envoy.filters.http.cors`).
    pub cors: Option<Cors>,
}

/// What a route does.
#[derive(Debug)]
pub enum Action {
    /// Forward to a cluster.
    Forward(Box<Forward>),
    /// Answer directly.
    Direct {
        /// The status.
        status: StatusCode,
        /// The body.
        body: Bytes,
    },
    /// Answer with a redirect.
    Redirect(Redirect),
}

/// Forwarding to one or several clusters.
#[derive(Debug)]
pub struct Forward {
    /// The clusters.
    pub target: Target,
    /// Until the upstream's response headers; `None`: no limit.
    pub timeout: Option<Duration>,
    /// For gRPC requests, the route's `max_grpc_timeout`: when set, a gRPC
    /// request's own deadline (`grpc-timeout`) is its timeout instead,
    /// capped by this (`ZERO`: no cap; no deadline: no limit but the cap).
    pub max_grpc_timeout: Option<Duration>,
    /// Replaces the matched path prefix.
    pub prefix_rewrite: Option<String>,
    /// Rewrites the path with a regex.
    pub regex_rewrite: Option<(Regex, String)>,
    /// Replaces the authority.
    pub host_rewrite: Option<String>,
    /// When to try again.
    pub retry: Option<Retry>,
    /// Where copies go.
    pub mirrors: Vec<Mirror>,
    /// The key for consistent-hash balancing ([`crate::hash`]).
    pub hash: crate::hash::HashPolicy,
}

/// A copy of the request sent to another cluster, its answer discarded.
#[derive(Debug)]
pub struct Mirror {
    /// The cluster.
    pub cluster: String,
    /// The share of requests mirrored.
    pub fraction: Fraction,
}

/// Unpacks a route's or virtual host's per-filter config for `filter`:
/// the message itself, or wrapped in Envoy's `FilterConfig`; `None` when
/// absent or disabled.
fn per_filter<M: prost::Message + prost::Name + Default>(
    configs: &HashMap<String, Any>,
    filter: &str,
) -> Result<Option<M>, String> {
    let Some(any) = configs.get(filter) else {
        return Ok(None);
    };
    if any.type_url == FilterConfig::type_url() {
        let wrapped: FilterConfig =
            weft_xds::unpack(any).map_err(|e| format!("{filter} config: {e}"))?;
        if wrapped.disabled {
            return Ok(None);
        }
        return match &wrapped.config {
            Some(inner) => weft_xds::unpack(inner)
                .map(Some)
                .map_err(|e| format!("{filter} config: {e}")),
            None => Ok(None),
        };
    }
    weft_xds::unpack(any)
        .map(Some)
        .map_err(|e| format!("{filter} config: {e}"))
}

/// A route's fault and CORS filter configs: the route's own, else its
/// virtual host's (the most specific wins, as in Envoy).
fn filters(
    route: &HashMap<String, Any>,
    vhost: &HashMap<String, Any>,
) -> Result<(Option<Fault>, Option<Cors>), String> {
    let pick = |filter: &str| {
        if route.contains_key(filter) {
            route
        } else {
            vhost
        }
    };
    let fault = per_filter::<HttpFault>(pick(crate::fault::FILTER), crate::fault::FILTER)?
        .map(|f| Fault::try_from(&f))
        .transpose()?;
    let cors = per_filter::<CorsPolicy>(pick(crate::cors::FILTER), crate::cors::FILTER)?
        .map(|c| Cors::try_from(&c))
        .transpose()?;
    Ok((fault, cors))
}

/// Which cluster(s).
#[derive(Debug)]
pub enum Target {
    /// One cluster.
    Cluster(String),
    /// A weighted split.
    Weighted {
        /// Each cluster with its weight and own header changes.
        clusters: Vec<WeightedCluster>,
        /// Sum of the weights.
        total: u64,
    },
}

/// One cluster of a split.
#[derive(Debug)]
pub struct WeightedCluster {
    /// The cluster.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Its request header changes.
    pub request_headers: HeaderOps,
    /// Its response header changes.
    pub response_headers: HeaderOps,
    /// Its authority rewrite.
    pub host_rewrite: Option<String>,
}

impl Target {
    /// The clusters it names.
    pub fn clusters(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Target::Cluster(c) => (Some(c.as_str()), &[][..]),
            Target::Weighted { clusters, .. } => (None, clusters.as_slice()),
        };
        one.into_iter().chain(many.iter().map(|c| c.name.as_str()))
    }

    /// Picks a cluster: the one, or by weight (a random draw).
    pub fn pick(&self) -> (&str, Option<&WeightedCluster>) {
        match self {
            Target::Cluster(c) => (c, None),
            Target::Weighted { clusters, total } => {
                let mut slot = fastrand::u64(..(*total).max(1));
                for c in clusters {
                    let w = u64::from(c.weight);
                    if slot < w {
                        return (&c.name, Some(c));
                    }
                    slot -= w;
                }
                let last = &clusters[clusters.len() - 1];
                (&last.name, Some(last))
            }
        }
    }
}

/// A redirect.
#[derive(Debug)]
pub struct Redirect {
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
    /// New scheme.
    pub scheme: Option<String>,
    /// New host.
    pub host: Option<String>,
    /// New port (0: keep).
    pub port: u16,
    /// New path (with query, if it has one).
    pub path: Option<String>,
    /// New prefix for the matched one.
    pub prefix: Option<String>,
    /// Drop the query.
    pub strip_query: bool,
}

/// Header additions and removals.
#[derive(Clone, Debug, Default)]
pub struct HeaderOps {
    set: Vec<(HeaderName, HeaderValue)>,
    append: Vec<(HeaderName, HeaderValue)>,
    add_if_absent: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderOps {
    fn convert(add: &[HeaderValueOption], remove: &[String]) -> Result<HeaderOps, String> {
        let mut out = HeaderOps::default();
        for o in add {
            let Some(h) = &o.header else { continue };
            let name = HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|_| format!("header name {:?} is invalid", h.key))?;
            let value = if h.raw_value.is_empty() {
                HeaderValue::from_str(&h.value)
            } else {
                HeaderValue::from_bytes(&h.raw_value)
            }
            .map_err(|_| format!("value of header {} is invalid", h.key))?;
            use header_value_option::HeaderAppendAction as A;
            #[allow(deprecated)]
            let legacy_append = o.append.as_ref().map(|b| b.value);
            match (A::try_from(o.append_action), legacy_append) {
                (_, Some(true)) | (Ok(A::AppendIfExistsOrAdd), None) => {
                    out.append.push((name, value));
                }
                (Ok(A::AddIfAbsent), _) => out.add_if_absent.push((name, value)),
                _ => out.set.push((name, value)),
            }
        }
        for r in remove {
            out.remove.push(
                HeaderName::from_bytes(r.as_bytes())
                    .map_err(|_| format!("header name {r:?} is invalid"))?,
            );
        }
        Ok(out)
    }

    fn extend(&mut self, other: HeaderOps) {
        self.set.extend(other.set);
        self.append.extend(other.append);
        self.add_if_absent.extend(other.add_if_absent);
        self.remove.extend(other.remove);
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.append.is_empty()
            && self.add_if_absent.is_empty()
            && self.remove.is_empty()
    }

    /// Applies the changes: removals first, then set, append, add-if-absent.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for r in &self.remove {
            headers.remove(r);
        }
        for (k, v) in &self.set {
            headers.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.append {
            headers.append(k.clone(), v.clone());
        }
        for (k, v) in &self.add_if_absent {
            if !headers.contains_key(k) {
                headers.insert(k.clone(), v.clone());
            }
        }
    }
}

impl TryFrom<&RouteConfiguration> for RouteTable {
    type Error = RouteError;

    /// Converts a route configuration with its inline virtual hosts; one
    /// with `vhds` gets the rest from VHDS ([`RouteTable::with_virtual_hosts`]).
    fn try_from(rc: &RouteConfiguration) -> Result<Self, Self::Error> {
        let err = |location: &str, reason: String| RouteError {
            config: rc.name.clone(),
            location: location.into(),
            reason,
        };
        let request_headers =
            HeaderOps::convert(&rc.request_headers_to_add, &rc.request_headers_to_remove)
                .map_err(|reason| err("request headers", reason))?;
        let response_headers =
            HeaderOps::convert(&rc.response_headers_to_add, &rc.response_headers_to_remove)
                .map_err(|reason| err("response headers", reason))?;
        let mut base = RouteTable {
            name: rc.name.clone(),
            virtual_hosts: Vec::new(),
            index: Arc::default(),
            ignore_port: rc.ignore_port_in_host_matching,
            vhds: rc.vhds.is_some(),
            request_headers,
            response_headers,
        };
        let hosts = rc
            .virtual_hosts
            .iter()
            .map(|vh| base.convert_virtual_host(vh).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        base.index(hosts)?;
        Ok(base)
    }
}

impl RouteTable {
    /// Converts one of this configuration's virtual hosts (inline, or
    /// from VHDS): the configuration's own header changes apply to each
    /// of its routes, after the virtual host's and the route's.
    pub fn convert_virtual_host(&self, vh: &XdsVhost) -> Result<VirtualHost, RouteError> {
        let mut converted = virtual_host(vh).map_err(|(location, reason)| RouteError {
            config: self.name.clone(),
            location,
            reason,
        })?;
        if !(self.request_headers.is_empty() && self.response_headers.is_empty()) {
            for r in &mut converted.routes {
                r.request_headers.extend(self.request_headers.clone());
                r.response_headers.extend(self.response_headers.clone());
            }
        }
        Ok(converted)
    }

    /// This configuration with `hosts` (VHDS's, converted by
    /// [`RouteTable::convert_virtual_host`]) after its inline virtual
    /// hosts; fails when two claim one domain. The virtual hosts are
    /// shared, not converted again, and the domain index is `previous`'s
    /// (the table it replaces) when every virtual host in the same place
    /// claims the same domains — a route change — else built.
    pub fn with_virtual_hosts(
        &self,
        hosts: impl IntoIterator<Item = Arc<VirtualHost>>,
        previous: Option<&RouteTable>,
    ) -> Result<RouteTable, RouteError> {
        let mut table = RouteTable {
            name: self.name.clone(),
            virtual_hosts: Vec::new(),
            index: Arc::default(),
            ignore_port: self.ignore_port,
            vhds: self.vhds,
            request_headers: self.request_headers.clone(),
            response_headers: self.response_headers.clone(),
        };
        let hosts: Vec<Arc<VirtualHost>> =
            self.virtual_hosts.iter().cloned().chain(hosts).collect();
        if let Some(previous) = previous
            && previous.virtual_hosts.len() == hosts.len()
            && previous
                .virtual_hosts
                .iter()
                .zip(&hosts)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a.domains == b.domains)
        {
            table.index = previous.index.clone();
            table.virtual_hosts = hosts;
            return Ok(table);
        }
        table.index(hosts)?;
        Ok(table)
    }

    /// Whether its virtual hosts come from VHDS (`vhds` is set).
    pub fn vhds(&self) -> bool {
        self.vhds
    }

    /// Indexes `hosts` by domain and takes them as its virtual hosts.
    fn index(&mut self, hosts: Vec<Arc<VirtualHost>>) -> Result<(), RouteError> {
        let mut index = DomainIndex::default();
        let mut seen_suffixes = HashSet::new();
        let mut seen_prefixes = HashSet::new();
        for (i, vh) in hosts.iter().enumerate() {
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                let duplicate = if d == "*" {
                    index.any.replace(i).is_some()
                } else if let Some(suffix) = d.strip_prefix('*') {
                    index.suffixes.push((suffix.to_string(), i));
                    !seen_suffixes.insert(suffix.to_string())
                } else if let Some(prefix) = d.strip_suffix('*') {
                    index.prefixes.push((prefix.to_string(), i));
                    !seen_prefixes.insert(prefix.to_string())
                } else {
                    index.exact.insert(d.clone(), i).is_some()
                };
                if duplicate {
                    return Err(RouteError {
                        config: self.name.clone(),
                        location: format!("virtual host {}", vh.name),
                        reason: format!("domain {d:?} is claimed by two virtual hosts"),
                    });
                }
            }
        }
        index.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        index.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        self.index = Arc::new(index);
        self.virtual_hosts = hosts;
        Ok(())
    }
}

fn virtual_host(vh: &XdsVhost) -> Result<VirtualHost, (String, String)> {
    let vh_loc = || format!("virtual host {}", vh.name);
    let vh_request = HeaderOps::convert(&vh.request_headers_to_add, &vh.request_headers_to_remove)
        .map_err(|r| (vh_loc(), r))?;
    let vh_response =
        HeaderOps::convert(&vh.response_headers_to_add, &vh.response_headers_to_remove)
            .map_err(|r| (vh_loc(), r))?;
    let mut routes = Vec::with_capacity(vh.routes.len());
    for (i, r) in vh.routes.iter().enumerate() {
        let loc = || {
            let name = if r.name.is_empty() {
                format!("#{i}")
            } else {
                r.name.clone()
            };
            format!("virtual host {} route {name}", vh.name)
        };
        let mut route = route(r, &vh.typed_per_filter_config).map_err(|e| (loc(), e))?;
        // Route-level changes apply after (so win over) the virtual host's.
        let mut req = vh_request.clone();
        req.extend(std::mem::take(&mut route.request_headers));
        route.request_headers = req;
        let mut resp = vh_response.clone();
        resp.extend(std::mem::take(&mut route.response_headers));
        route.response_headers = resp;
        routes.push(route);
    }
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.clone(),
        routes,
        attempt_count: vh.include_request_attempt_count,
    })
}

fn route(r: &XdsRoute, vhost_filters: &HashMap<String, Any>) -> Result<Route, String> {
    let (fault, cors) = filters(&r.typed_per_filter_config, vhost_filters)?;
    let matcher = Matcher::try_from(r.r#match.as_ref().ok_or("route has no match")?)?;
    let action = match &r.action {
        Some(XdsAction::Route(a)) => Action::Forward(Box::new(forward(a)?)),
        Some(XdsAction::DirectResponse(d)) => Action::Direct {
            status: StatusCode::from_u16(u16::try_from(d.status).unwrap_or(0))
                .map_err(|_| format!("direct response status {} is invalid", d.status))?,
            body: match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                Some(data_source::Specifier::InlineString(s)) => Bytes::from(s.clone()),
                Some(data_source::Specifier::InlineBytes(b)) => Bytes::from(b.clone()),
                None => Bytes::new(),
                Some(_) => return Err("direct response bodies from files are not supported".into()),
            },
        },
        Some(XdsAction::Redirect(rd)) => Action::Redirect(redirect(rd)?),
        Some(_) => return Err("route action kind is not supported".into()),
        None => return Err("route has no action".into()),
    };
    Ok(Route {
        name: r.name.clone(),
        matcher,
        action,
        request_headers: HeaderOps::convert(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
        )?,
        response_headers: HeaderOps::convert(
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
        )?,
        fault,
        cors,
    })
}

fn forward(a: &RouteAction) -> Result<Forward, String> {
    let target = match &a.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) if !c.is_empty() => Target::Cluster(c.clone()),
        Some(ClusterSpecifier::WeightedClusters(w)) => {
            let mut clusters = Vec::new();
            for c in &w.clusters {
                let weight = c.weight.as_ref().map_or(0, |w| w.value);
                let host_rewrite = c.host_rewrite_specifier.as_ref().map(|h| match h {
                    cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h) => h.clone(),
                });
                clusters.push(WeightedCluster {
                    name: c.name.clone(),
                    weight,
                    request_headers: HeaderOps::convert(
                        &c.request_headers_to_add,
                        &c.request_headers_to_remove,
                    )?,
                    response_headers: HeaderOps::convert(
                        &c.response_headers_to_add,
                        &c.response_headers_to_remove,
                    )?,
                    host_rewrite,
                });
            }
            let total: u64 = clusters.iter().map(|c| u64::from(c.weight)).sum();
            if total == 0 {
                return Err("weighted clusters have no weight".into());
            }
            clusters.retain(|c| c.weight > 0);
            Target::Weighted { clusters, total }
        }
        _ => return Err("route action names no cluster".into()),
    };
    let timeout = match &a.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(d) => {
            Some(proto_duration(d).map_err(|e| format!("timeout {e}"))?).filter(|d| !d.is_zero())
        }
    };
    #[allow(deprecated)]
    let max_grpc_timeout = a
        .max_grpc_timeout
        .as_ref()
        .map(|d| proto_duration(d).map_err(|e| format!("max_grpc_timeout {e}")))
        .transpose()?;
    let regex_rewrite = a
        .regex_rewrite
        .as_ref()
        .map(|r| {
            let pattern = r.pattern.as_ref().ok_or("regex rewrite has no pattern")?;
            let re = Regex::new(&pattern.regex)
                .map_err(|e| format!("regex rewrite {:?}: {e}", pattern.regex))?;
            // RE2 substitutions write `\1`; the regex crate `${1}`.
            let subst = Regex::new(r"\\(\d)")
                .map(|d| d.replace_all(&r.substitution, "$${$1}").into_owned())
                .unwrap_or_else(|_| r.substitution.clone());
            Ok::<_, String>((re, subst))
        })
        .transpose()?;
    Ok(Forward {
        target,
        timeout,
        max_grpc_timeout,
        prefix_rewrite: Some(a.prefix_rewrite.clone()).filter(|p| !p.is_empty()),
        regex_rewrite,
        host_rewrite: match &a.host_rewrite_specifier {
            Some(HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(h.clone()),
            _ => None,
        },
        retry: a
            .retry_policy
            .as_ref()
            .map(Retry::try_from)
            .transpose()
            .map_err(|e| format!("retry policy: {e}"))?
            .filter(|r| r.attempts > 0),
        mirrors: a
            .request_mirror_policies
            .iter()
            .filter(|m| !m.cluster.is_empty())
            .map(|m| Mirror {
                cluster: m.cluster.clone(),
                fraction: m.runtime_fraction.as_ref().map_or(Fraction::ALL, |f| {
                    Fraction::from_xds(f.default_value.as_ref())
                }),
            })
            .collect(),
        hash: crate::hash::HashPolicy::try_from(a.hash_policy.as_slice())?,
    })
}

fn redirect(r: &RedirectAction) -> Result<Redirect, String> {
    let status = match r.response_code {
        0 => StatusCode::MOVED_PERMANENTLY,
        1 => StatusCode::FOUND,
        2 => StatusCode::SEE_OTHER,
        3 => StatusCode::TEMPORARY_REDIRECT,
        4 => StatusCode::PERMANENT_REDIRECT,
        other => return Err(format!("redirect response code {other} is unknown")),
    };
    let (path, prefix) = match &r.path_rewrite_specifier {
        Some(PathRewriteSpecifier::PathRedirect(p)) => (Some(p.clone()), None),
        Some(PathRewriteSpecifier::PrefixRewrite(p)) => (None, Some(p.clone())),
        Some(PathRewriteSpecifier::RegexRewrite(_) | PathRewriteSpecifier::PathRewrite(_)) => {
            return Err("regex rewrites in redirects are not supported".into());
        }
        None => (None, None),
    };
    Ok(Redirect {
        status,
        scheme: match &r.scheme_rewrite_specifier {
            Some(SchemeRewriteSpecifier::HttpsRedirect(true)) => Some("https".into()),
            Some(SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.clone()),
            _ => None,
        },
        host: Some(r.host_redirect.clone()).filter(|h| !h.is_empty()),
        port: u16::try_from(r.port_redirect).map_err(|_| "redirect port out of range")?,
        path,
        prefix,
        strip_query: r.strip_query,
    })
}

/// `host` without a trailing `:port` (digits), as Envoy strips it for
/// `ignore_port_in_host_matching`: `a:80` → `a`, `[::1]:80` → `[::1]`; a
/// bare IPv6 address or a non-numeric suffix stays as it is.
fn strip_port(host: &str) -> &str {
    let Some(colon) = host.rfind(':') else {
        return host;
    };
    let (name, port) = (&host[..colon], &host[colon + 1..]);
    let numeric = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let bracketed = name.starts_with('[') && name.ends_with(']');
    if numeric && (bracketed || !name.contains(':')) {
        name
    } else {
        host
    }
}

impl RouteTable {
    /// The virtual host for `authority`: exact domain, then the longest
    /// `*.suffix`, then the longest `prefix*`, then `*` (Envoy's order);
    /// without its port when the configuration ignores ports.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHost> {
        let domains = &*self.index;
        if domains.exact.is_empty() && domains.suffixes.is_empty() && domains.prefixes.is_empty() {
            // Only `*` (an inbound sidecar's routes): nothing to compare
            // the authority with.
            return self.virtual_hosts.get(domains.any?).map(Arc::as_ref);
        }
        let authority = if self.ignore_port {
            strip_port(authority)
        } else {
            authority
        };
        let lower;
        let host = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = authority.to_ascii_lowercase();
            lower.as_str()
        } else {
            authority
        };
        let index = domains
            .exact
            .get(host)
            .copied()
            .or_else(|| {
                domains
                    .suffixes
                    .iter()
                    .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
                    .map(|(_, i)| *i)
            })
            .or_else(|| {
                domains
                    .prefixes
                    .iter()
                    .find(|(p, _)| host.len() > p.len() && host.starts_with(p.as_str()))
                    .map(|(_, i)| *i)
            })
            .or(domains.any)?;
        self.virtual_hosts.get(index).map(Arc::as_ref)
    }

    /// The virtual host and first matching route for a request.
    pub fn find(&self, req: &RequestView<'_>) -> Option<(&VirtualHost, &Route)> {
        let vh = self.virtual_host(req.authority)?;
        vh.routes
            .iter()
            .find(|r| r.matcher.matches(req))
            .map(|r| (vh, r))
    }

    /// Every cluster its routes name.
    pub fn clusters(&self) -> BTreeSet<&str> {
        self.virtual_hosts
            .iter()
            .flat_map(|v| v.routes.iter())
            .filter_map(|r| match &r.action {
                Action::Forward(f) => Some(f.target.clusters()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests;
