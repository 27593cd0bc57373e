//! Subcommands.

pub mod analyze;
pub mod control;
