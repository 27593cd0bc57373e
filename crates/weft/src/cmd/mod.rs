//! Subcommands.

pub mod analyze;
pub mod control;
pub mod proxy;
pub mod proxy_status;
