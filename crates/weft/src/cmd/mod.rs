//! Subcommands.

pub mod analyze;
pub mod control;
pub mod proxy_status;
