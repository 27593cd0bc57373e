//! Weft's control plane: turns the config store and the service registry
//! into per-proxy Envoy xDS v3 resources.
//!
//! [`translate`] is a pure function of (config, registry, proxy): no
//! sockets, no clocks, unit- and golden-tested. The xDS server ([`ads`])
//! only decides *when* to call it and *what* to send.

pub mod ads;
pub mod cache;
pub mod config_dump;
pub mod debug;
pub mod server;
pub mod translate;
pub mod vhds;
