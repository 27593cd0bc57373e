//! Which DestinationRule applies to a service, and the traffic policy in
//! force for one port and subset of it.
//!
//! Istio's rules: a proxy looks for a DestinationRule for the host in its
//! own namespace, then the service's namespace, then the root namespace
//! (exportTo permitting); an exact host beats a wildcard. A subset's
//! policy, then a port-level policy, override the rule's policy field by
//! field (load balancer, connection pool, outlier detection, TLS).

use std::collections::HashMap;

use weft_config::host;
use weft_config::networking::{DestinationRule, PortTrafficPolicy, Subset, TrafficPolicy};
use weft_config::select::exported_to;
use weft_config::{Kind, Resource, ResourceKey};
use weft_registry::Service;

use super::{Inputs, Proxy};

/// The DestinationRule (and the resource holding it) for `service`, as
/// seen by `proxy`.
///
/// Uses the proxy's [`RuleIndex`] when [`super::resolve`] gave it one
/// (every [`super::translate`] does), else indexes the config for this
/// one lookup: the answer is the same, only the cost differs.
pub fn destination_rule_for<'a>(
    inputs: Inputs<'a>,
    proxy: &Proxy,
    service: &Service,
) -> Option<(&'a Resource, &'a DestinationRule)> {
    match &proxy.rules {
        Some(index) => index.lookup(inputs, proxy, service),
        None => RuleIndex::build(inputs).lookup(inputs, proxy, service),
    }
}

/// The DestinationRules in force (those without a workload selector),
/// indexed by host, so that finding a service's rule costs a hash lookup
/// and a look at the wildcard rules rather than a scan of the whole
/// config. Built once per translation; it belongs to the config snapshot
/// it was built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleIndex {
    /// Rules in config key order: resource key and FQDN host pattern.
    rules: Vec<(ResourceKey, String)>,
    /// Positions in `rules` of the rules with a concrete host, by host.
    exact: HashMap<String, Vec<usize>>,
    /// Positions in `rules` of the rules with a wildcard host.
    wildcard: Vec<usize>,
}

impl RuleIndex {
    /// Indexes the DestinationRules of `inputs`.
    pub fn build(inputs: Inputs<'_>) -> Self {
        let mut index = RuleIndex::default();
        for r in inputs.config.of_kind(Kind::DestinationRule) {
            let Some(dr) = r.spec_as::<DestinationRule>() else {
                continue;
            };
            if dr.workload_selector.is_some() {
                continue;
            }
            let pattern = host::fqdn(&dr.host, r.namespace());
            let at = index.rules.len();
            if pattern.starts_with('*') {
                index.wildcard.push(at);
            } else {
                index.exact.entry(pattern.clone()).or_default().push(at);
            }
            index.rules.push((r.key(), pattern));
        }
        index
    }

    /// Istio's choice for `service` from `proxy`: among the rules exported
    /// to the proxy's namespace whose host matches, the most specific in
    /// the proxy's namespace, else the service's, else the root
    /// namespace; the last of equals in key order.
    fn lookup<'a>(
        &self,
        inputs: Inputs<'a>,
        proxy: &Proxy,
        service: &Service,
    ) -> Option<(&'a Resource, &'a DestinationRule)> {
        let host = service.hostname.as_str();
        let mut positions: Vec<usize> = self.exact.get(host).cloned().unwrap_or_default();
        positions.extend(
            self.wildcard
                .iter()
                .copied()
                .filter(|&i| host::matches(&self.rules[i].1, host)),
        );
        positions.sort_unstable();
        let candidates: Vec<(&Resource, &DestinationRule, &str)> = positions
            .into_iter()
            .filter_map(|i| {
                let (key, pattern) = &self.rules[i];
                let r = inputs.config.resources.get(key)?;
                let dr = r.spec_as::<DestinationRule>()?;
                exported_to(&dr.export_to, r.namespace(), &proxy.namespace).then_some((
                    r.as_ref(),
                    dr,
                    pattern.as_str(),
                ))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        // Most specific host first (exact beats wildcard, longer wildcard beats shorter).
        let specificity = |pattern: &str| (pattern == host, pattern.len());
        let root = root_namespace(inputs);
        for ns in [
            proxy.namespace.as_str(),
            service.namespace.as_str(),
            root.as_str(),
        ] {
            let best = candidates
                .iter()
                .filter(|(r, _, _)| r.namespace() == ns)
                .max_by_key(|(_, _, pattern)| specificity(pattern));
            if let Some((r, dr, _)) = best {
                return Some((r, dr));
            }
        }
        None
    }
}

/// The mesh's root namespace (mesh-wide config lives there).
pub fn root_namespace(inputs: Inputs<'_>) -> String {
    let ns = &inputs.config.mesh.root_namespace;
    if ns.is_empty() {
        "istio-system".to_string()
    } else {
        ns.clone()
    }
}

/// The traffic policy for `port` of the rule's host, within `subset` if
/// given: the rule's policy, overridden by the subset's, then by the
/// port-level settings for `port` (subset's first, else the rule's).
pub fn effective_policy(dr: &DestinationRule, subset: Option<&Subset>, port: u16) -> TrafficPolicy {
    let mut policy = dr.traffic_policy.clone().unwrap_or_default();
    let subset_policy = subset.and_then(|s| s.traffic_policy.as_ref());
    if let Some(sp) = subset_policy {
        overlay(&mut policy, sp);
        if !sp.port_level_settings.is_empty() {
            policy.port_level_settings = sp.port_level_settings.clone();
        }
    }
    let port_policy = policy
        .port_level_settings
        .iter()
        .find(|p| p.port.as_ref().is_some_and(|s| s.number == u32::from(port)))
        .cloned();
    if let Some(pp) = port_policy {
        overlay_port(&mut policy, &pp);
    }
    policy.port_level_settings.clear();
    policy
}

/// Copies each listed field of `top` that is set over `base`'s.
macro_rules! overlay_fields {
    ($base:expr, $top:expr, $($field:ident),+) => {
        $(if $top.$field.is_some() {
            $base.$field = $top.$field.clone();
        })+
    };
}

fn overlay(base: &mut TrafficPolicy, top: &TrafficPolicy) {
    overlay_fields!(
        base,
        top,
        load_balancer,
        connection_pool,
        outlier_detection,
        tls,
        tunnel,
        proxy_protocol,
        retry_budget
    );
}

fn overlay_port(base: &mut TrafficPolicy, top: &PortTrafficPolicy) {
    overlay_fields!(
        base,
        top,
        load_balancer,
        connection_pool,
        outlier_detection,
        tls
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;
    use weft_config::networking::SimpleLb;

    const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: http-admin, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-client, namespace: client}
spec:
  host: reviews.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
"#;

    #[test]
    fn the_proxys_namespace_wins_then_the_services() {
        let mesh = TestMesh::new(MESH);
        let svc = mesh.service("reviews.shop.svc.cluster.local");
        let in_client = Proxy::sidecar("a", "client", &[]);
        let in_shop = Proxy::sidecar("b", "shop", &[]);
        let in_other = Proxy::sidecar("c", "other", &[]);
        let name = |p: &Proxy| {
            destination_rule_for(mesh.inputs(), p, &svc).map(|(r, _)| r.name().to_string())
        };
        assert_eq!(name(&in_client).as_deref(), Some("reviews-client"));
        assert_eq!(name(&in_shop).as_deref(), Some("reviews"));
        assert_eq!(name(&in_other).as_deref(), Some("reviews"));
    }

    #[test]
    fn subset_then_port_settings_override_field_by_field() {
        let mesh = TestMesh::new(MESH);
        let svc = mesh.service("reviews.shop.svc.cluster.local");
        let (_, dr) = destination_rule_for(mesh.inputs(), &Proxy::sidecar("b", "shop", &[]), &svc)
            .expect("dr");
        let lb = |p: &TrafficPolicy| p.load_balancer.as_ref().and_then(|l| l.simple);
        let base = effective_policy(dr, None, 9080);
        assert_eq!(lb(&base), Some(SimpleLb::Random));
        assert_eq!(
            base.connection_pool
                .as_ref()
                .and_then(|c| c.tcp.as_ref())
                .map(|t| t.max_connections),
            Some(10)
        );
        assert_eq!(
            lb(&effective_policy(dr, None, 9090)),
            Some(SimpleLb::RoundRobin)
        );
        let v1 = dr.subsets.first();
        let sub = effective_policy(dr, v1, 9080);
        assert_eq!(lb(&sub), Some(SimpleLb::LeastRequest));
        assert!(sub.connection_pool.is_some(), "inherited from the rule");
        assert!(sub.port_level_settings.is_empty());
    }
}
