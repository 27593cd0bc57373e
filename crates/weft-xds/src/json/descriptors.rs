//! How `descriptors/envoy.bin` is made from the `FileDescriptorSet` that
//! `envoy-types` ships (`src/generated/types.bin`, 3.4 MB): keep the proto
//! files under [`ROOTS`] and everything they import, drop source comments.
//! Used by `scripts/xds-descriptors.sh` (through the `xds-descriptors`
//! example) and by the test that keeps the checked-in file current.

use prost::Message;
use prost_reflect::DescriptorPool;
use prost_reflect::prost_types::{FileDescriptorProto, FileDescriptorSet};

/// Proto files (path prefixes) whose messages Weft may send or print: the
/// xDS resources, every filter, transport socket and upstream extension a
/// translation may pack into an `Any`, and the admin config dump.
pub const ROOTS: &[&str] = &[
    "envoy/admin/v3/config_dump.proto",
    "envoy/admin/v3/config_dump_shared.proto",
    "envoy/config/cluster/v3/",
    "envoy/config/endpoint/v3/",
    "envoy/config/listener/v3/",
    "envoy/config/route/v3/",
    "envoy/config/rbac/v3/",
    "envoy/extensions/filters/http/",
    "envoy/extensions/filters/listener/",
    "envoy/extensions/filters/network/http_connection_manager/",
    "envoy/extensions/filters/network/tcp_proxy/",
    "envoy/extensions/filters/network/rbac/",
    "envoy/extensions/filters/network/ext_authz/",
    "envoy/extensions/filters/network/local_ratelimit/",
    "envoy/extensions/filters/network/ratelimit/",
    "envoy/extensions/transport_sockets/tls/",
    "envoy/extensions/transport_sockets/raw_buffer/",
    "envoy/extensions/upstreams/http/",
    "envoy/extensions/load_balancing_policies/",
    "envoy/extensions/request_id/uuid/",
    "envoy/extensions/retry/",
    "envoy/service/discovery/v3/",
];

/// `full` (an encoded `FileDescriptorSet`) reduced to the files matching
/// `roots` (path prefixes) and their transitive imports, in dependency
/// order, without `source_code_info`. Deterministic: the same input gives
/// the same bytes.
pub fn prune(full: &[u8], roots: &[&str]) -> Result<Vec<u8>, prost_reflect::DescriptorError> {
    let pool = DescriptorPool::decode(full)?;
    let mut keep: Vec<String> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut starts: Vec<_> = pool
        .files()
        .filter(|f| roots.iter().any(|r| f.name().starts_with(r)))
        .collect();
    starts.sort_by(|a, b| a.name().cmp(b.name()));
    // Depth-first, imports before importers (the order a pool needs).
    fn visit(
        file: prost_reflect::FileDescriptor,
        seen: &mut std::collections::BTreeSet<String>,
        keep: &mut Vec<String>,
    ) {
        if !seen.insert(file.name().to_string()) {
            return;
        }
        for dep in file.dependencies() {
            visit(dep, seen, keep);
        }
        keep.push(file.name().to_string());
    }
    for f in starts {
        visit(f, &mut seen, &mut keep);
    }
    let file = keep
        .iter()
        .filter_map(|name| pool.get_file_by_name(name))
        .map(|f| FileDescriptorProto {
            source_code_info: None,
            ..f.file_descriptor_proto().clone()
        })
        .collect();
    Ok(FileDescriptorSet { file }.encode_to_vec())
}

/// Where the `FileDescriptorSet` of the `envoy-types` this workspace
/// locks is: asks `cargo metadata` (offline) for the crate's manifest.
/// For the generating tool and the freshness test, not for servers.
pub fn envoy_types_descriptor_set(cargo: &str) -> Result<std::path::PathBuf, String> {
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run {cargo} metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cargo} metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("envoy-types is not among the workspace's packages")?;
    let dir = std::path::Path::new(manifest)
        .parent()
        .ok_or("envoy-types' manifest has no directory")?;
    Ok(dir.join("src/generated/types.bin"))
}
