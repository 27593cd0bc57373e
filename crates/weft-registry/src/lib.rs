//! Where services and endpoints come from.
//!
//! Every source — files (the embedded default, [`file`]), and later
//! Kubernetes and Consul — fills one model ([`model`]): services with typed
//! ports, endpoints with labels, locality, weight, health and identity.
//! The control plane only sees the [`Registry`] trait. WorkloadEntries of
//! proxies that register themselves from a WorkloadGroup
//! ([`autoregister`]) join the file source's config snapshots.

use std::sync::Arc;

use tokio::sync::watch;

pub mod autoregister;
pub mod file;
pub mod model;

pub use autoregister::{AutoRegistry, Registration};
pub use file::FileRegistry;
pub use model::{
    Endpoint, EndpointAddress, Health, Hostname, Locality, Location, RegistrySnapshot, Resolution,
    Service, ServicePort, SourceIndex, SourcePorts,
};

/// A source of services and endpoints.
pub trait Registry: Send + Sync + 'static {
    /// A short name for logs and debug output (`file`, `kubernetes`, `consul`).
    fn name(&self) -> &'static str;

    /// What the registry knows now.
    fn snapshot(&self) -> Arc<RegistrySnapshot>;

    /// Every new snapshot, as it is published.
    fn subscribe(&self) -> watch::Receiver<Arc<RegistrySnapshot>>;
}
