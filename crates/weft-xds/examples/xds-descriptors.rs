//! Writes `crates/weft-xds/descriptors/envoy.bin`: the descriptor set of
//! the locked `envoy-types`, pruned to `weft_xds::json::descriptors::ROOTS`.
//! Run through `scripts/xds-descriptors.sh` (or `--check` to only compare).

use std::path::Path;
use std::process::ExitCode;

use weft_xds::json::descriptors::{ROOTS, envoy_types_descriptor_set, prune};

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let result = envoy_types_descriptor_set(&cargo).and_then(|src| {
        let full = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let pruned = prune(&full, ROOTS).map_err(|e| format!("{}: {e}", src.display()))?;
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("descriptors/envoy.bin");
        let current = std::fs::read(&out).unwrap_or_default();
        if check {
            return if current == pruned {
                Ok(format!("{} is current", out.display()))
            } else {
                Err(format!(
                    "{} is out of date: run scripts/xds-descriptors.sh",
                    out.display()
                ))
            };
        }
        std::fs::write(&out, &pruned).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(format!(
            "wrote {} ({} bytes, from {} of {} bytes)",
            out.display(),
            pruned.len(),
            src.display(),
            full.len()
        ))
    });
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xds-descriptors: {e}");
            ExitCode::FAILURE
        }
    }
}
