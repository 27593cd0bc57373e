//! A mesh built from YAML text, for translation tests.

use std::path::Path;
use std::sync::Arc;

use weft_config::LoadOptions;
use weft_config::load::{Loaded, load_paths, load_str};
use weft_config::store::Snapshot;
use weft_registry::{Hostname, RegistrySnapshot, Service};

use super::{Inputs, Proxy};

/// Config and registry snapshots from the same resources.
#[derive(Debug)]
pub(crate) struct TestMesh {
    pub config: Snapshot,
    pub registry: RegistrySnapshot,
}

impl TestMesh {
    /// From YAML documents; they must load without errors.
    pub fn new(text: &str) -> Self {
        Self::from_loaded(load_str(
            text,
            Path::new("mesh.yaml"),
            &LoadOptions::default(),
        ))
    }

    /// From the repository's `examples/`.
    pub fn examples() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        Self::from_loaded(load_paths(&[dir], &LoadOptions::default()))
    }

    fn from_loaded(loaded: Loaded) -> Self {
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        let registry = weft_registry::file::build(&loaded.resources);
        let config = Snapshot {
            version: 1,
            resources: loaded
                .resources
                .into_iter()
                .map(|r| (r.key(), Arc::new(r)))
                .collect(),
            mesh: Arc::new(loaded.mesh.map(|(m, _)| m).unwrap_or_default()),
            ..Snapshot::default()
        };
        TestMesh { config, registry }
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            config: &self.config,
            registry: &self.registry,
        }
    }

    /// The service with this host (the first declared).
    pub fn service(&self, host: &str) -> Arc<Service> {
        self.registry
            .services
            .get(&Hostname::new(host))
            .and_then(|v| v.first())
            .cloned()
            .expect("service")
    }
}

/// Compares `value`, as pretty JSON, with `tests/golden/<name>`;
/// `WEFT_BLESS=1` rewrites the file instead (review the diff).
pub(crate) fn check_golden(name: &str, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).expect("json") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("WEFT_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .expect("golden file missing: run with WEFT_BLESS=1 to create it");
    assert!(
        want == text,
        "output differs from {}; if the change is intended, rerun with WEFT_BLESS=1 and review the diff.\n--- got ---\n{text}",
        path.display()
    );
}

/// Protobuf JSON's spelling of a duration (`"0.5s"`).
pub(crate) fn duration_json(d: &weft_xds::pb::google::protobuf::Duration) -> serde_json::Value {
    let secs = d.seconds as f64 + f64::from(d.nanos) / 1e9;
    serde_json::json!(format!("{secs}s"))
}

/// The Bookinfo productpage-v1 sidecar (no labels of its own: resolution
/// finds its WorkloadEntry by pod name).
/// The Bookinfo ingress gateway of `examples/` (`router~`, found by its
/// WorkloadEntry's name).
pub(crate) fn ingress_gateway() -> Proxy {
    Proxy {
        kind: crate::translate::proxy::ProxyKind::Gateway,
        pod: "ingressgateway".into(),
        ..Proxy::sidecar(
            "router~127.0.0.1~ingressgateway.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    }
}

pub(crate) fn productpage() -> Proxy {
    Proxy {
        pod: "productpage-v1".into(),
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    }
}
