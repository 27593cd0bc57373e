//! Subcommands.

pub mod analyze;
pub mod control;
pub mod proxy_config;
pub mod proxy_status;
