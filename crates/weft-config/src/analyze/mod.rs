//! Analysis across resources, like `istioctl analyze`: what each resource
//! refers to must exist, and resources must not contradict each other.
//!
//! [`analyze`] builds an [`Index`] of the mesh (services from ServiceEntries,
//! workloads from WorkloadEntries and ServiceEntry endpoints) once, then
//! runs each check. Every diagnostic points at the field at fault, with its
//! line. Only valid resources are analyzed: rejected ones were already
//! reported by validation.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Code, Diagnostic};
use crate::host;
use crate::load::Loaded;
use crate::networking::{ServiceEntry, WorkloadEntry};
use crate::path::FieldPath;
use crate::resource::{Kind, Resource};
pub(crate) use crate::select::{exported_to, selects};

mod policy;
mod routes;

/// Checks the loaded resources against each other.
pub fn analyze(loaded: &Loaded) -> Vec<Diagnostic> {
    let ix = Index::new(loaded);
    let mut out = Vec::new();
    routes::check(&ix, &mut out);
    policy::check(&ix, &mut out);
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    out
}

/// A service: one host of a ServiceEntry.
#[derive(Debug)]
pub(crate) struct Service<'a> {
    /// Lowercase host (completed if short).
    pub host: String,
    pub res: &'a Resource,
    pub se: &'a ServiceEntry,
}

/// A workload: a WorkloadEntry, or an endpoint written inside a ServiceEntry.
#[derive(Debug)]
pub(crate) struct Workload<'a> {
    pub namespace: &'a str,
    /// `ns/name` of the WorkloadEntry, or `ns/serviceentry[i]` for an endpoint.
    pub name: String,
    pub entry: &'a WorkloadEntry,
    /// The ServiceEntry an inline endpoint belongs to.
    pub inline_of: Option<&'a Resource>,
}

/// What analysis knows about the mesh.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    pub resources: &'a [Resource],
    pub services: Vec<Service<'a>>,
    pub workloads: Vec<Workload<'a>>,
    /// Namespaces anything is declared in.
    pub namespaces: BTreeSet<&'a str>,
    /// The mesh's root namespace (mesh-wide policies live there).
    pub root_namespace: String,
}

impl<'a> Index<'a> {
    fn new(loaded: &'a Loaded) -> Self {
        let resources = loaded.resources.as_slice();
        let mut services = Vec::new();
        let mut workloads = Vec::new();
        for res in resources {
            if let Some(se) = res.spec_as::<ServiceEntry>() {
                for h in &se.hosts {
                    services.push(Service {
                        host: host::fqdn(h, res.namespace()),
                        res,
                        se,
                    });
                }
                for (i, ep) in se.endpoints.iter().enumerate() {
                    workloads.push(Workload {
                        namespace: res.namespace(),
                        name: format!("{}/{}[{i}]", res.namespace(), res.name()),
                        entry: ep,
                        inline_of: Some(res),
                    });
                }
            }
            if let Some(we) = res.spec_as::<WorkloadEntry>() {
                workloads.push(Workload {
                    namespace: res.namespace(),
                    name: format!("{}/{}", res.namespace(), res.name()),
                    entry: we,
                    inline_of: None,
                });
            }
        }
        let root_namespace = loaded
            .mesh
            .as_ref()
            .map(|(m, _)| m.root_namespace.clone())
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "istio-system".to_string());
        Index {
            resources,
            services,
            workloads,
            namespaces: resources.iter().map(Resource::namespace).collect(),
            root_namespace,
        }
    }

    /// Resources of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a Resource> + '_ {
        self.resources.iter().filter(move |r| r.kind() == kind)
    }

    /// Services whose hosts overlap `fqdn` (a completed host, possibly a
    /// wildcard) and that are visible from namespace `from`.
    pub fn services_for(&self, fqdn: &str, from: &str) -> Vec<&Service<'a>> {
        self.services
            .iter()
            .filter(|s| {
                host::overlap(fqdn, &s.host)
                    && exported_to(&s.se.export_to, s.res.namespace(), from)
            })
            .collect()
    }

    /// The workloads behind a service.
    pub fn workloads_of(&self, svc: &Service<'a>) -> Vec<&Workload<'a>> {
        match &svc.se.workload_selector {
            Some(sel) => self
                .workloads
                .iter()
                .filter(|w| w.inline_of.is_none() && w.namespace == svc.res.namespace())
                .filter(|w| selects(&sel.labels, &w.entry.labels))
                .collect(),
            None => self
                .workloads
                .iter()
                .filter(|w| w.inline_of.is_some_and(|r| std::ptr::eq(r, svc.res)))
                .collect(),
        }
    }

    /// WorkloadEntries in `namespace` carrying all of `labels`.
    pub fn workloads_selected(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<&Workload<'a>> {
        self.workloads
            .iter()
            .filter(|w| {
                w.inline_of.is_none()
                    && w.namespace == namespace
                    && selects(labels, &w.entry.labels)
            })
            .collect()
    }

    /// Host names of all services, for "did you mean" hints.
    pub fn host_names(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.host.as_str()).collect()
    }
}

/// A diagnostic about `res` at `path`, with the line of that field.
pub(crate) fn diag(
    res: &Resource,
    code: Code,
    path: FieldPath,
    message: impl Into<String>,
) -> Diagnostic {
    let mut d = Diagnostic::new(code, message);
    d.resource = Some(res.key().to_ref());
    d.file = Some(res.source.file.clone());
    d.line = Some(res.line_of(&path));
    d.path = Some(path);
    d
}

/// `Kind ns/name (file:line)`: another resource, named so a reader can find it.
pub(crate) fn describe(res: &Resource) -> String {
    format!(
        "{} ({}:{})",
        res.key(),
        res.source.file.display(),
        res.source.line
    )
}

/// The closest of `names` to `word`, as a hint.
pub(crate) fn did_you_mean(word: &str, names: &[&str]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase();
    let w = norm(word);
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(&w, &norm(n)), *n))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("did you mean {n:?}?"))
}

#[cfg(test)]
mod tests;
