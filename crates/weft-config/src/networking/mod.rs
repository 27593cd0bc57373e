//! `networking.istio.io`: traffic management resources.

mod common;
mod destination_rule;
mod envoy_filter;
mod gateway;
mod protocol;
mod service_entry;
mod sidecar;
mod virtual_service;
mod workload_entry;
mod workload_group;

pub use common::*;
pub use destination_rule::*;
pub use envoy_filter::*;
pub use gateway::*;
pub use protocol::*;
pub use service_entry::*;
pub use sidecar::*;
pub use virtual_service::*;
pub use workload_entry::*;
pub use workload_group::*;
