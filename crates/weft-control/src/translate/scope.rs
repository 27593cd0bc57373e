//! The Sidecar resource's egress scope: which services a proxy is told
//! about. The Sidecar for a proxy is the one in its namespace whose
//! `workloadSelector` selects its labels, else the one in its namespace
//! without selector, else the root namespace's one without selector (Istio's
//! order). Its egress listeners' `hosts` (`namespace/dnsName`, with `*`,
//! `.` for the proxy's own namespace, `~` for none) limit the services;
//! without a Sidecar, or without egress listeners, every visible service
//! is in scope.

use weft_config::networking::Sidecar;
use weft_config::{Kind, Resource, host};
use weft_registry::Service;

use super::policy::root_namespace;
use super::{Inputs, Proxy};

/// The services a proxy is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressScope {
    /// The Sidecar it comes from (`namespace/name`).
    pub sidecar: String,
    /// `(namespace selector, host pattern)`; namespace `*` is any.
    hosts: Vec<(String, String)>,
}

impl EgressScope {
    /// Whether `service` is in scope for a proxy in `proxy_namespace`.
    pub fn allows(&self, service: &Service, proxy_namespace: &str) -> bool {
        self.hosts.iter().any(|(ns, pattern)| {
            let ns_ok = match ns.as_str() {
                "*" => true,
                "." => service.namespace == proxy_namespace,
                "~" => false,
                ns => service.namespace == ns,
            };
            ns_ok && host::matches(pattern, service.hostname.as_str())
        })
    }
}

/// The Sidecar resource that applies to `proxy`: its namespace's one
/// selecting its labels, else its namespace's one without selector, else
/// the root namespace's one without selector.
pub fn sidecar_for<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> Option<(&'a Resource, &'a Sidecar)> {
    let root = root_namespace(inputs);
    let sidecars: Vec<(&Resource, &Sidecar)> = inputs
        .config
        .of_kind_in(Kind::Sidecar, &proxy.namespace)
        .chain(inputs.config.of_kind_in(Kind::Sidecar, &root))
        .filter_map(|r| r.spec_as::<Sidecar>().map(|s| (r.as_ref(), s)))
        .collect();
    let selects = |s: &Sidecar| {
        s.workload_selector
            .as_ref()
            .filter(|sel| !sel.labels.is_empty())
            .map(|sel| weft_config::select::selects(&sel.labels, &proxy.labels))
    };
    sidecars
        .iter()
        .find(|(r, s)| r.namespace() == proxy.namespace && selects(s) == Some(true))
        .or_else(|| {
            sidecars
                .iter()
                .find(|(r, s)| r.namespace() == proxy.namespace && selects(s).is_none())
        })
        .or_else(|| {
            sidecars
                .iter()
                .find(|(r, s)| r.namespace() == root && selects(s).is_none())
        })
        .copied()
}

/// The egress scope of `proxy`, or `None` when every visible service is in scope.
pub fn egress_scope(inputs: Inputs<'_>, proxy: &Proxy) -> Option<EgressScope> {
    let chosen = sidecar_for(inputs, proxy)?;
    let (res, sidecar) = chosen;
    if sidecar.egress.is_empty() {
        return None; // Istio's default egress listener: `*/*`
    }
    let hosts: Vec<(String, String)> = sidecar
        .egress
        .iter()
        .flat_map(|e| e.hosts.iter())
        .filter_map(|h| h.split_once('/'))
        .map(|(ns, h)| (ns.to_string(), h.to_ascii_lowercase()))
        .collect();
    Some(EgressScope {
        sidecar: format!("{}/{}", res.namespace(), res.name()),
        hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;
    use crate::translate::translate;

    const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: shop}
spec: {hosts: [a.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: other}
spec: {hosts: [b.other.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.2}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: other}
spec: {hosts: [c.other.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.3}]}
"#;

    fn hosts_sent(yaml: &str, labels: &[(&str, &str)]) -> Vec<String> {
        let mesh = TestMesh::new(&format!("{SERVICES}---\n{yaml}"));
        let r = translate(mesh.inputs(), &Proxy::sidecar("p", "shop", labels));
        let mut hosts: Vec<String> = r
            .clusters
            .iter()
            .filter_map(|c| c.name.rsplit('|').next().map(str::to_string))
            .filter(|h| h.ends_with(".svc.cluster.local"))
            .collect();
        hosts.dedup();
        hosts
    }

    #[test]
    fn a_namespace_sidecar_limits_what_proxies_receive() {
        let sidecar = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\", \"other/b.other.svc.cluster.local\"]}]}\n";
        assert_eq!(
            hosts_sent(sidecar, &[]),
            vec!["a.shop.svc.cluster.local", "b.other.svc.cluster.local"]
        );
    }

    #[test]
    fn a_workload_sidecar_beats_the_namespace_one_and_the_root_one_applies_last() {
        let ns = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
        let workload = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: app, namespace: shop}\nspec: {workloadSelector: {labels: {app: x}}, egress: [{hosts: [\"other/*\"]}]}\n";
        let both = format!("{ns}---\n{workload}");
        assert_eq!(
            hosts_sent(&both, &[("app", "x")]),
            vec!["b.other.svc.cluster.local", "c.other.svc.cluster.local"]
        );
        assert_eq!(
            hosts_sent(&both, &[("app", "y")]),
            vec!["a.shop.svc.cluster.local"]
        );
        let root = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: istio-system}\nspec: {egress: [{hosts: [\"*/c.other.svc.cluster.local\"]}]}\n";
        assert_eq!(hosts_sent(root, &[]), vec!["c.other.svc.cluster.local"]);
    }

    #[test]
    fn without_a_sidecar_everything_visible_is_sent() {
        assert_eq!(hosts_sent("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: d, namespace: elsewhere}\nspec: {egress: [{hosts: [\"./*\"]}]}\n", &[]).len(), 3);
    }
}
