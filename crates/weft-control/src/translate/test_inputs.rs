//! A mesh built from YAML text, for translation tests.

use std::path::Path;
use std::sync::Arc;

use weft_config::LoadOptions;
use weft_config::load::{Loaded, load_paths, load_str};
use weft_config::store::Snapshot;
use weft_registry::{Hostname, RegistrySnapshot, Service};

use super::Inputs;

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
