//! Whole-system benchmarks of Weft (the `bench/` harness of STYLE.md).
//!
//! `weft-bench xds` runs a real `weft control` against thousands of
//! simulated sidecars in this process ([`client`]), on a generated mesh
//! ([`mesh`]), measuring the control plane through `/proc` ([`control`]);
//! [`xds`] is the scenario, [`report`] the markdown it writes into
//! `bench/README.md`.

pub mod client;
pub mod control;
pub mod mesh;
pub mod report;
pub mod xds;
