//! The synthetic mesh the control-plane benchmark serves: `M` services
//! spread over a handful of namespaces, declared for Weft's file registry
//! exactly as a user would (ServiceEntry + WorkloadEntry), half of them with
//! a DestinationRule (subsets `v1`, `v2`) and an 80/20 VirtualService.
//!
//! With [`Scope::Namespace`] each namespace also gets a `Sidecar` whose
//! egress hosts are `./*` and `istio-system/*`, as large meshes scope their
//! proxies: each proxy then sees its own namespace's services only.
//!
//! Addresses here are config only: the control plane never connects to an
//! endpoint, and neither does the benchmark.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What each proxy is given to see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// No Sidecar resource: every proxy sees every service.
    #[default]
    Full,
    /// One Sidecar per namespace (egress `./*`, `istio-system/*`).
    Namespace,
}

impl Scope {
    /// `full` or `namespace`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Namespace => "namespace",
        }
    }
}

/// The shape of the generated mesh.
#[derive(Clone, Debug)]
pub struct Mesh {
    /// Number of services (`svc-<i>`).
    pub services: usize,
    /// Number of namespaces (`ns-<k>`); service `i` is in `ns-<i % namespaces>`.
    pub namespaces: usize,
    /// Whether proxies are scoped by a Sidecar per namespace.
    pub scope: Scope,
}

/// One WorkloadEntry of the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Its name (`pod-<j>`): a sidecar with this pod name serves it.
    pub name: String,
    /// Its namespace (its service's).
    pub namespace: String,
    /// Its address.
    pub address: String,
    /// The service that selects it.
    pub service: usize,
    /// Its `version` label.
    pub version: &'static str,
}

/// The file holding the VirtualService that the route-change runs edit.
pub const EDITED_ROUTE_FILE: &str = "vs-svc-0.yaml";

impl Mesh {
    /// A mesh of `services` services in up to 5 namespaces.
    pub fn new(services: usize) -> Self {
        Mesh {
            services: services.max(1),
            namespaces: services.clamp(1, 5),
            scope: Scope::Full,
        }
    }

    /// The same mesh with its proxies scoped by `scope`.
    pub fn with_scope(self, scope: Scope) -> Self {
        Mesh { scope, ..self }
    }

    /// The namespace of service `i`.
    pub fn namespace_of(&self, i: usize) -> String {
        format!("ns-{}", i % self.namespaces)
    }

    /// The FQDN of service `i`.
    pub fn host(&self, i: usize) -> String {
        format!("svc-{i}.{}.svc.cluster.local", self.namespace_of(i))
    }

    /// Whether service `i` has a DestinationRule and a VirtualService
    /// (every other one, service 0 included).
    pub fn routed(i: usize) -> bool {
        i.is_multiple_of(2)
    }

    /// Whether service `i` also has a gRPC port (every fourth).
    pub fn has_grpc(i: usize) -> bool {
        i % 4 == 1
    }

    /// Every WorkloadEntry: 3 for even services (v1, v2, v2), 2 for odd (v1, v2).
    pub fn workloads(&self) -> Vec<Workload> {
        let mut out = Vec::new();
        for i in 0..self.services {
            let count = if i.is_multiple_of(2) { 3 } else { 2 };
            for e in 0..count {
                let j = out.len();
                out.push(Workload {
                    name: format!("pod-{j}"),
                    namespace: self.namespace_of(i),
                    address: address(1, j),
                    service: i,
                    version: if e == 0 { "v1" } else { "v2" },
                });
            }
        }
        out
    }

    /// Writes the mesh into `dir`, one set of files per namespace and the
    /// edited VirtualService in [`EDITED_ROUTE_FILE`].
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let workloads = self.workloads();
        for k in 0..self.namespaces {
            let ns = format!("ns-{k}");
            let (mut se, mut we, mut dr, mut vs) =
                (String::new(), String::new(), String::new(), String::new());
            for i in (k..self.services).step_by(self.namespaces) {
                se += &self.service_entry(i);
                if Self::routed(i) {
                    dr += &self.destination_rule(i);
                    if i != 0 {
                        vs += &self.virtual_service(i, 80);
                    }
                }
            }
            for w in workloads.iter().filter(|w| w.namespace == ns) {
                we += &workload_entry(w);
            }
            let sidecar = match self.scope {
                Scope::Full => String::new(),
                Scope::Namespace => sidecar(&ns),
            };
            for (kind, text) in [
                ("sidecars", sidecar),
                ("services", se),
                ("workloads", we),
                ("rules", dr),
                ("routes", vs),
            ] {
                if !text.is_empty() {
                    std::fs::write(dir.join(format!("{kind}-{ns}.yaml")), text)?;
                }
            }
        }
        self.write_route_weight(dir, 80)
    }

    /// Rewrites service 0's VirtualService with `v1_weight`% to v1 and the
    /// rest to v2; atomically (a new file renamed over the old one), so the
    /// watcher never reads half a file.
    pub fn write_route_weight(&self, dir: &Path, v1_weight: u32) -> std::io::Result<()> {
        write_atomically(
            &dir.join(EDITED_ROUTE_FILE),
            &self.virtual_service(0, v1_weight),
        )
    }

    /// Adds WorkloadEntry `pod-extra-<n>` (v1) to service 0: an
    /// endpoint-only change.
    pub fn add_endpoint(&self, dir: &Path, n: usize) -> std::io::Result<()> {
        let w = Workload {
            name: format!("pod-extra-{n}"),
            namespace: self.namespace_of(0),
            address: address(3, n),
            service: 0,
            version: "v1",
        };
        write_atomically(&dir.join(format!("extra-{n}.yaml")), &workload_entry(&w))
    }

    fn service_entry(&self, i: usize) -> String {
        let mut ports = String::from("  - number: 9080\n    name: http\n    protocol: HTTP\n");
        if Self::has_grpc(i) {
            ports += "  - number: 9090\n    name: grpc\n    protocol: GRPC\n";
        }
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\nspec:\n  hosts:\n  - {host}\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n{ports}  workloadSelector:\n    labels:\n      app: svc-{i}\n---\n",
            ns = self.namespace_of(i),
            host = self.host(i),
        )
    }

    fn destination_rule(&self, i: usize) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\nspec:\n  host: {host}\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n  - name: v2\n    labels:\n      version: v2\n---\n",
            ns = self.namespace_of(i),
            host = self.host(i),
        )
    }

    fn virtual_service(&self, i: usize, v1_weight: u32) -> String {
        let v1 = v1_weight.min(100);
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc-{i}\n  namespace: {ns}\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n    - destination:\n        host: {host}\n        subset: v1\n      weight: {v1}\n    - destination:\n        host: {host}\n        subset: v2\n      weight: {v2}\n---\n",
            ns = self.namespace_of(i),
            host = self.host(i),
            v2 = 100 - v1,
        )
    }
}

/// The namespace's default Sidecar: egress to its own namespace and `istio-system`.
fn sidecar(ns: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: {ns}\nspec:\n  egress:\n  - hosts:\n    - ./*\n    - istio-system/*\n---\n"
    )
}

fn workload_entry(w: &Workload) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  address: {addr}\n  labels:\n    app: svc-{svc}\n    version: {version}\n  serviceAccount: svc-{svc}\n  locality: region-a/zone-{zone}\n---\n",
        name = w.name,
        ns = w.namespace,
        addr = w.address,
        svc = w.service,
        version = w.version,
        zone = w.service % 3,
    );
    s
}

/// `10.<a>.<hi>.<lo>` for index `j` (config only, never dialled).
pub fn address(a: u8, j: usize) -> String {
    format!("10.{a}.{}.{}", (j / 256) % 256, j % 256)
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_the_mesh() {
        let mesh = Mesh::new(10);
        assert_eq!(mesh.namespaces, 5);
        let w = mesh.workloads();
        assert_eq!(w.len(), 5 * 3 + 5 * 2);
        assert!(
            w.iter()
                .all(|w| w.namespace == mesh.namespace_of(w.service))
        );
        assert_eq!(mesh.host(7), "svc-7.ns-2.svc.cluster.local");
        let vs = mesh.virtual_service(0, 70);
        assert!(
            vs.contains("weight: 70") && vs.contains("weight: 30"),
            "{vs}"
        );
    }

    #[test]
    fn namespace_scope_writes_one_sidecar_per_namespace() {
        let files = |scope| {
            let dir = tempfile::tempdir().expect("tempdir");
            Mesh::new(10)
                .with_scope(scope)
                .write(dir.path())
                .expect("write");
            let loaded = weft_config::load_paths(
                &[dir.path().to_path_buf()],
                &weft_config::LoadOptions::default(),
            );
            assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
            loaded
                .resources
                .iter()
                .filter(|r| r.kind() == weft_config::Kind::Sidecar)
                .map(|r| r.meta.namespace.clone())
                .collect::<Vec<_>>()
        };
        assert!(files(Scope::Full).is_empty());
        assert_eq!(
            files(Scope::Namespace),
            ["ns-0", "ns-1", "ns-2", "ns-3", "ns-4"]
        );
    }
}
