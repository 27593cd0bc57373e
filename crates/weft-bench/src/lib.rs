//! Whole-system benchmarks of Weft (the `bench/` harness of STYLE.md).
//!
//! `weft-bench xds` runs a real `weft control` against thousands of
//! simulated sidecars in this process ([`client`]), on a generated mesh
//! ([`mesh`]), measuring the control plane through `/proc` ([`control`]);
//! [`xds`] is the scenario, [`report`] the markdown it writes into
//! `bench/README.md`.
//!
//! `weft-bench dataplane` runs one backend directly and behind Weft, nginx
//! and haproxy under wrk and h2load ([`dataplane`], processes and configs in
//! [`procs`], markdown in [`dpreport`]); [`paced`] is its evenly spaced
//! fixed-rate load.

pub mod client;
pub mod control;
pub mod dataplane;
pub mod dpreport;
pub mod mesh;
pub mod paced;
pub mod procs;
pub mod report;
pub mod wire;
pub mod xds;
