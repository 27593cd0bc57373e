//! Licence policy: every dependency's licence expression must be satisfied
//! by the allow-list in `deny.toml` (read from there, so the two can't
//! drift). Runs offline from `cargo metadata`, so CI needs no cargo-deny.

use std::path::Path;
use std::process::Command;

fn allowed() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deny.toml"))
            .expect("deny.toml");
    let start = text.find("allow = [").expect("licenses.allow in deny.toml");
    let end = start + text[start..].find(']').expect("end of allow list");
    text[start..end]
        .lines()
        .skip(1)
        .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Whether an SPDX expression (`A OR B`, `A AND B`, `(A OR B) AND C`, old
/// `A/B`) is satisfied by the allowed licences.
fn satisfied(expr: &str, allowed: &[String]) -> bool {
    let expr = expr.trim();
    let strip = |e: &str| -> Option<String> {
        let e = e.trim();
        if e.starts_with('(') && e.ends_with(')') {
            // Only strip if the parens wrap the whole expression.
            let mut depth = 0;
            for (i, c) in e.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && i < e.len() - 1 {
                    return None;
                }
            }
            return Some(e[1..e.len() - 1].to_string());
        }
        None
    };
    if let Some(inner) = strip(expr) {
        return satisfied(&inner, allowed);
    }
    let split_top = |e: &str, op: &str| -> Vec<String> {
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut last = 0;
        let bytes = e.as_bytes();
        let mut i = 0;
        while i < e.len() {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            if depth == 0 && e[i..].starts_with(op) {
                parts.push(e[last..i].to_string());
                i += op.len();
                last = i;
                continue;
            }
            i += 1;
        }
        parts.push(e[last..].to_string());
        parts
    };
    let ors = split_top(expr, " OR ");
    if ors.len() > 1 {
        return ors.iter().any(|p| satisfied(p, allowed));
    }
    let slashes = split_top(expr, "/");
    if slashes.len() > 1 {
        return slashes.iter().any(|p| satisfied(p, allowed));
    }
    let ands = split_top(expr, " AND ");
    if ands.len() > 1 {
        return ands.iter().all(|p| satisfied(p, allowed));
    }
    allowed.iter().any(|a| a == expr)
}

#[test]
fn every_dependency_has_an_allowed_licence() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let allowed = allowed();
    let mut bad = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap_or("?");
        let version = p["version"].as_str().unwrap_or("?");
        match p["license"].as_str() {
            Some(l) if satisfied(l, &allowed) => {}
            other => bad.push(format!("{name} {version}: {other:?}")),
        }
    }
    assert!(
        bad.is_empty(),
        "dependencies with licences outside deny.toml's allow-list:\n{}",
        bad.join("\n")
    );
}

#[test]
fn expressions() {
    let allowed = vec!["MIT".to_string(), "Apache-2.0".to_string()];
    assert!(satisfied("MIT OR Apache-2.0", &allowed));
    assert!(satisfied("(MIT OR GPL-3.0) AND Apache-2.0", &allowed));
    assert!(satisfied("MIT/Apache-2.0", &allowed));
    assert!(!satisfied("GPL-3.0", &allowed));
    assert!(!satisfied("MIT AND GPL-3.0", &allowed));
}
