//! Helpers shared by the crate's unit tests: load a document, list and show
//! its diagnostics, assert what they say, and read Istio's own samples.
//!
//! Each test module keeps only its kind-specific wrappers (the document
//! around a spec, a spec around a policy), written over these.

use std::path::{Path, PathBuf};

use crate::diag::{Code, Diagnostic, Severity};
use crate::load::{LoadOptions, Loaded, load_str};

/// Loads `text` as the file `t.yaml`, with default options.
pub(crate) fn load(text: &str) -> Loaded {
    load_named(text, "t.yaml")
}

/// Loads `text` as the file `file` (the name diagnostics show), with
/// default options.
pub(crate) fn load_named(text: &str, file: &str) -> Loaded {
    LAST_TEXT.with(|t| t.replace(text.to_string()));
    load_str(text, Path::new(file), &LoadOptions::default())
}

thread_local! {
    /// The text this test thread loaded last, shown when an assertion on it
    /// fails (a loop of cases otherwise only shows the loop's line).
    static LAST_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The document loaded last on this thread, for failure messages.
fn last_text() -> String {
    LAST_TEXT.with(|t| t.borrow().clone())
}

/// Every line of `text` indented by two spaces, to nest it under a key.
pub(crate) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The text of one resource: `kind` of `api_version`, named `name` in
/// `namespace`, with `spec` (already indented) on the lines after `spec:`.
pub(crate) fn document(
    api_version: &str,
    kind: &str,
    name: &str,
    namespace: &str,
    spec: &str,
) -> String {
    format!(
        "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

/// Loads one resource `t` in `namespace`: `kind` of `api_version` with
/// `spec` (YAML written from column 0) indented under `spec:`.
pub(crate) fn load_spec(api_version: &str, kind: &str, namespace: &str, spec: &str) -> Loaded {
    load(&document(api_version, kind, "t", namespace, &indent(spec)))
}

/// The field path of `d` as messages write it; empty when it has none.
pub(crate) fn path_of(d: &Diagnostic) -> String {
    d.path.as_ref().map(|p| p.to_string()).unwrap_or_default()
}

/// `(code, path)` of each of `diags`.
pub(crate) fn found_in(diags: &[Diagnostic]) -> Vec<(Code, String)> {
    diags.iter().map(|d| (d.code, path_of(d))).collect()
}

/// `(code, path)` of every diagnostic of `l`.
pub(crate) fn found(l: &Loaded) -> Vec<(Code, String)> {
    found_in(&l.diagnostics)
}

/// `(code, path, line)` of every diagnostic of `l`; line 0 when unknown.
pub(crate) fn found_with_lines(l: &Loaded) -> Vec<(Code, String, usize)> {
    l.diagnostics
        .iter()
        .map(|d| (d.code, path_of(d), d.line.unwrap_or(0)))
        .collect()
}

/// Each of `diags` as `weft` prints it.
pub(crate) fn render(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(|d| d.to_string()).collect()
}

/// Every diagnostic of `l` as `weft` prints it.
pub(crate) fn lines(l: &Loaded) -> Vec<String> {
    render(&l.diagnostics)
}

/// Asserts that `l` has a diagnostic `code` at `path`; and that the resource
/// was rejected if `code` is an error, or else loaded with no error at all.
#[track_caller]
pub(crate) fn expect(l: &Loaded, code: Code, path: &str) {
    assert!(
        found(l).contains(&(code, path.to_string())),
        "{}\nwanted {code:?} at {path}, got {:#?}",
        last_text(),
        lines(l)
    );
    if code.severity() == Severity::Error {
        assert!(
            l.resources.is_empty(),
            "{}\n{code:?} at {path} should reject the resource: {:#?}",
            last_text(),
            lines(l)
        );
    } else {
        assert!(
            !l.resources.is_empty() && !l.has_errors(),
            "{}\n{code:?} at {path} should leave the resource loaded: {:#?}",
            last_text(),
            lines(l)
        );
    }
}

/// Asserts that `l` holds one resource and no diagnostic.
#[track_caller]
pub(crate) fn clean(l: &Loaded) {
    assert!(l.diagnostics.is_empty(), "{}\n{:#?}", last_text(), lines(l));
    assert_eq!(l.resources.len(), 1, "{}", last_text());
}

/// The only diagnostic of `l`, as `(code, path)`; fails unless there is
/// exactly one.
#[track_caller]
pub(crate) fn one(l: &Loaded) -> (Code, String) {
    let d = found(l);
    assert_eq!(d.len(), 1, "{}\n{:#?}", last_text(), lines(l));
    d[0].clone()
}

/// Istio's own samples, `shared/istio-samples` beside the checkout (see its
/// README). CI always has it; a test that reads it fails without it rather
/// than pass having checked nothing.
pub(crate) fn samples() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/istio-samples");
    assert!(
        dir.is_dir(),
        "Istio's samples are expected at {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

/// The text of sample `name`, a path under `dir` (from [`samples`]).
pub(crate) fn read_sample(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}
