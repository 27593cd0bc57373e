//! `weft proxy-config routes`: a line per route.

use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteConfiguration, RouteMatch, VirtualHost, header_matcher, route,
    route_action, route_match,
};

use super::{istio_config, table};

/// `weft proxy-config routes` filters.
#[derive(Debug, Default, clap::Args)]
pub struct RouteFilter {
    /// Only the route configuration of this name (e.g. `9080`).
    #[arg(long)]
    name: Option<String>,
}

impl RouteFilter {
    /// The route configurations that pass: those named by a port first,
    /// by port (`8000` before `15010`), then the others by name.
    pub fn select<'a>(&self, routes: &'a [RouteConfiguration]) -> Vec<&'a RouteConfiguration> {
        let mut out: Vec<&RouteConfiguration> = routes
            .iter()
            .filter(|r| self.name.as_ref().is_none_or(|n| &r.name == n))
            .collect();
        out.sort_by_key(|r| {
            let port = r.name.parse::<u32>().ok();
            (port.is_none(), port, r.name.clone())
        });
        out
    }
}

/// A virtual host's domains, shortened as istioctl does: names with a port
/// and the long forms of names also given short (`reviews.default` beside
/// `reviews.default.svc.cluster.local`) are left out, and past two the
/// rest are counted.
pub(super) fn describe_domains(domains: &[String]) -> String {
    if let [one] = domains {
        return one.clone();
    }
    let without_port: Vec<&str> = domains
        .iter()
        .map(String::as_str)
        .filter(|d| !d.contains(':') || (d.matches(':').count() > 2 && d.ends_with(']')))
        .collect();
    let kept: Vec<&str> = without_port
        .iter()
        .copied()
        .filter(|d| {
            let shorter = |suffix: &str| {
                d.strip_suffix(suffix)
                    .is_some_and(|s| without_port.contains(&s))
            };
            !shorter(".svc.cluster.local") && !shorter(".svc")
        })
        .collect();
    const MAX: usize = 2;
    if kept.len() > MAX {
        format!("{} + {} more...", kept[..MAX].join(", "), kept.len() - MAX)
    } else {
        kept.join(", ")
    }
}

pub(super) fn describe_header(h: &HeaderMatcher) -> String {
    use weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let name = &h.name;
    let not = if h.invert_match { "!" } else { "" };
    let spec = match &h.header_match_specifier {
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)) => match &s.match_pattern {
            Some(MatchPattern::Exact(v)) => format!("{name}={v}"),
            Some(MatchPattern::Prefix(v)) => format!("{name}^={v}"),
            Some(MatchPattern::Suffix(v)) => format!("{name}$={v}"),
            Some(MatchPattern::Contains(v)) => format!("{name}*={v}"),
            Some(MatchPattern::SafeRegex(r)) => format!("{name}~={}", r.regex),
            Some(MatchPattern::Custom(_)) | None => name.clone(),
        },
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true)) => {
            format!("{name} present")
        }
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(false)) => {
            format!("{name} absent")
        }
        _ => name.clone(),
    };
    format!("{not}{spec}")
}

/// A route's match: its path (`/api*` for a prefix), then its header
/// conditions in brackets.
pub(super) fn describe_match(m: Option<&RouteMatch>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    let mut out = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("{p}*"),
        Some(route_match::PathSpecifier::Path(p)) => p.clone(),
        Some(route_match::PathSpecifier::SafeRegex(r)) => format!("regex {}", r.regex),
        Some(route_match::PathSpecifier::PathSeparatedPrefix(p)) => format!("{p}/*"),
        Some(route_match::PathSpecifier::ConnectMatcher(_)) => "CONNECT".into(),
        _ => String::new(),
    };
    if !m.headers.is_empty() {
        let headers: Vec<String> = m.headers.iter().map(describe_header).collect();
        out.push_str(&format!(" [{}]", headers.join(", ")));
    }
    out
}

pub(super) fn is_passthrough(r: &Route) -> bool {
    matches!(
        &r.action,
        Some(route::Action::Route(a))
            if matches!(&a.cluster_specifier,
                Some(route_action::ClusterSpecifier::Cluster(c)) if c == "PassthroughCluster")
    )
}

/// NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE: one line per route
/// (routes to `PassthroughCluster` left out, as istioctl does; a virtual
/// host without routes shows `/*` and `404`).
pub fn routes(routes: &[&RouteConfiguration]) -> String {
    let mut rows = Vec::new();
    let row = |rc: &RouteConfiguration, vh: &VirtualHost, m: String, vs: String| {
        vec![
            rc.name.clone(),
            vh.name.clone(),
            describe_domains(&vh.domains),
            m,
            vs,
        ]
    };
    for rc in routes {
        for vh in &rc.virtual_hosts {
            for r in vh.routes.iter().filter(|r| !is_passthrough(r)) {
                rows.push(row(
                    rc,
                    vh,
                    describe_match(r.r#match.as_ref()),
                    istio_config(r.metadata.as_ref(), "virtual-service"),
                ));
            }
            if vh.routes.is_empty() {
                rows.push(row(rc, vh, "/*".into(), "404".into()));
            }
        }
    }
    table(
        &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
        &rows,
        5,
    )
}
