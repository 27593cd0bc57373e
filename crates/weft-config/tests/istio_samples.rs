//! Istio's own sample and validation YAML (`../shared/istio-samples/`, kept
//! beside the checkout, never copied in): every valid file loads and
//! validates clean, every invalid document is rejected with an error that
//! names its field.

use std::path::{Path, PathBuf};

use weft_config::load::{load_file, load_str};
use weft_config::{Diagnostic, LoadOptions, Severity};

fn samples() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-samples");
    assert!(
        dir.is_dir(),
        "Istio's samples are expected at {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

fn files(sub: &str, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(samples().join(sub))
        .expect("sample folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pred))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {sub}");
    out
}

fn errors(d: &[Diagnostic]) -> Vec<String> {
    d.iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn valid_samples_load_clean() {
    let mut valid = files("bookinfo", |n| n.ends_with(".yaml"));
    valid.extend(files("datasets-head", |n| n.ends_with(".yaml")));
    valid.extend(files("crds", |n| n.ends_with("-valid.yaml")));
    let mut failures = Vec::new();
    let mut count = 0;
    for f in &valid {
        let loaded = load_file(f, &LoadOptions::default());
        count += loaded.resources.len();
        let errs = errors(&loaded.diagnostics);
        if !errs.is_empty() || !loaded.rejected.is_empty() {
            failures.push(format!("{}:\n  {}", f.display(), errs.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "valid samples rejected:\n{}",
        failures.join("\n")
    );
    assert!(
        count >= 30,
        "only {count} resources loaded from the valid samples"
    );
}

/// Splits a file into documents, and each document's `_err:` expectation.
fn invalid_documents(text: &str) -> Vec<(String, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut expect = String::new();
    let flush = |cur: &mut String, expect: &mut String, docs: &mut Vec<(String, String)>| {
        if !expect.is_empty() {
            docs.push((std::mem::take(cur), std::mem::take(expect)));
        }
        cur.clear();
    };
    for line in text.lines() {
        if line.starts_with("---") {
            flush(&mut cur, &mut expect, &mut docs);
            continue;
        }
        if let Some(e) = line.strip_prefix("_err:") {
            expect = e.trim().trim_matches(['"', '\'']).to_string();
            cur.push_str("#\n"); // keep line numbers
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    flush(&mut cur, &mut expect, &mut docs);
    docs
}

#[test]
fn invalid_crd_documents_are_rejected_naming_the_field() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in files("crds", |n| n.ends_with("-invalid.yaml")) {
        let text = std::fs::read_to_string(&f).expect("read");
        for (doc, expect) in invalid_documents(&text) {
            checked += 1;
            let loaded = load_str(&doc, &f, &LoadOptions::default());
            let errs: Vec<&Diagnostic> =
                loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
            let named = errs
                .iter()
                .any(|d| d.path.as_ref().is_some_and(|p| !p.is_empty()));
            // Where Istio's expectation names a path, ours must name the same.
            let want_path = expect
                .split_once(": ")
                .map(|(p, _)| p)
                .filter(|p| p.starts_with("spec"));
            let path_ok = want_path.is_none_or(|want| {
                errs.iter()
                    .any(|d| d.path.as_ref().is_some_and(|p| p.to_string() == want))
            });
            if errs.is_empty() || !named || !path_ok || !loaded.resources.is_empty() {
                failures.push(format!(
                    "{} (expected: {expect}):\n  got: {:?}",
                    f.display(),
                    errs.iter().map(|d| d.to_string()).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(checked >= 20, "only {checked} invalid documents found");
    assert!(
        failures.is_empty(),
        "invalid documents accepted or not named:\n{}",
        failures.join("\n")
    );
}

#[test]
fn galley_invalid_files_are_rejected_naming_the_field() {
    let mut failures = Vec::new();
    for f in files("galley-2021", |n| n.ends_with(".yaml")) {
        let loaded = load_file(&f, &LoadOptions::default());
        let named = loaded
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.path.as_ref().is_some_and(|p| !p.is_empty()));
        if !named || !loaded.resources.is_empty() {
            failures.push(format!(
                "{}: {:?}",
                f.display(),
                errors(&loaded.diagnostics)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "galley invalid files accepted:\n{}",
        failures.join("\n")
    );
}
