//! Subcommands.

pub mod analyze;
pub mod control;
pub mod iptables;
pub mod proxy;
pub mod proxy_config;
pub mod proxy_status;
