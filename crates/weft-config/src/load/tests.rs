use super::*;
use crate::test_util::{found_with_lines, lines, load, path_of};

#[test]
fn broken_document_is_reported_and_the_others_load() {
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {egress: [{hosts: [\"./*\"]}]}\n---\nkind: [\n---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: b}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert_eq!(l.resources.len(), 2, "{:?}", lines(&l));
    assert_eq!(l.diagnostics.len(), 1);
    assert_eq!(l.diagnostics[0].code, Code::SyntaxError);
    assert_eq!(l.diagnostics[0].line, Some(6));
}

#[test]
fn namespace_defaults_from_options() {
    let text = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
    let l = load_str(
        text,
        Path::new("t.yaml"),
        &LoadOptions {
            default_namespace: "shop".into(),
        },
    );
    assert_eq!(l.resources[0].namespace(), "shop");
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a, namespace: x}\nspec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert_eq!(l.resources[0].namespace(), "x");
    let l = load(text);
    assert_eq!(l.resources[0].namespace(), "default");
}

#[test]
fn lists_are_unwrapped() {
    let l = load(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: Sidecar\n  metadata: {name: a}\n  spec: {egress: [{hosts: [\"./*\"]}]}\n- apiVersion: networking.istio.io/v1\n  kind: Sidecar\n  metadata: {name: b}\n  spec: {egress: [{hosts: [\"./*\"]}]}\n",
    );
    assert_eq!(l.resources.len(), 2, "{:?}", lines(&l));
    assert_eq!(l.resources[1].source.line, 8);
}

#[test]
fn unknown_kind_suggests() {
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: a}\nspec: {}\n",
    );
    assert_eq!(l.diagnostics[0].code, Code::UnknownKind);
    assert_eq!(l.diagnostics[0].line, Some(2));
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("did you mean \"VirtualService\"?")
    );
}

#[test]
fn wrong_version_is_rejected_with_the_versions_that_work() {
    let l = load(
        "apiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: {}\n",
    );
    assert!(l.resources.is_empty());
    assert_eq!(l.rejected.len(), 1);
    assert_eq!(l.diagnostics[0].code, Code::UnsupportedVersion);
    assert!(
        l.diagnostics[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("security.istio.io/v1"))
    );
}

#[test]
fn kubernetes_objects_are_skipped_with_an_info() {
    let l = load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {}\n");
    assert!(!l.has_errors());
    assert_eq!(l.diagnostics[0].code, Code::IgnoredKind);
}

#[test]
fn missing_metadata_name_and_spec() {
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {namespace: a}\nspec: {}\n",
    );
    assert_eq!(l.diagnostics[0].code, Code::InvalidName);
    let l = load("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\n");
    assert_eq!(l.diagnostics[0].code, Code::RequiredField);
    assert_eq!(path_of(&l.diagnostics[0]), "spec");
    assert_eq!(l.rejected.len(), 1);
}

#[test]
fn not_an_object_and_missing_kind() {
    let l = load("- a\n- b\n");
    assert_eq!(l.diagnostics[0].code, Code::UnknownKind);
    let l = load("apiVersion: networking.istio.io/v1\nmetadata: {name: a}\n");
    assert_eq!(l.diagnostics[0].code, Code::UnknownKind);
    assert!(l.diagnostics[0].message.contains("kind: Required value"));
}

#[test]
fn unknown_top_level_field() {
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {egress: [{hosts: [\"./*\"]}]}\nspce: {}\n",
    );
    assert_eq!(l.diagnostics[0].code, Code::UnknownField);
    assert_eq!(l.diagnostics[0].line, Some(5));
}

#[test]
fn json_documents_load_with_lines() {
    let l = load(
        "{\n  \"apiVersion\": \"networking.istio.io/v1\",\n  \"kind\": \"Sidecar\",\n  \"metadata\": {\"name\": \"a\"},\n  \"spec\": {\"bogus\": 1, \"egress\": [{\"hosts\": [\"./*\"]}]}\n}\n",
    );
    assert_eq!(l.diagnostics.len(), 1, "{:?}", lines(&l));
    assert_eq!(l.diagnostics[0].code, Code::UnknownField);
    assert_eq!(l.diagnostics[0].line, Some(5));
}

#[test]
fn duplicates_are_reported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
    std::fs::write(dir.path().join("a.yaml"), doc).expect("write");
    std::fs::write(dir.path().join("b.yaml"), doc).expect("write");
    std::fs::write(dir.path().join(".hidden.yaml"), doc).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not config").expect("write");
    let l = load_paths(&[dir.path().to_path_buf()], &LoadOptions::default());
    assert_eq!(l.resources.len(), 1);
    assert_eq!(l.files.len(), 2);
    assert_eq!(l.diagnostics.len(), 1);
    assert_eq!(l.diagnostics[0].code, Code::DuplicateResource);
}

#[test]
fn unreadable_paths_are_diagnostics() {
    let l = load_paths(
        &[Path::new("/nonexistent/weft").to_path_buf()],
        &LoadOptions::default(),
    );
    assert_eq!(l.diagnostics[0].code, Code::UnreadableFile);
}

#[test]
fn every_type_error_of_a_document_is_reported() {
    let l = load(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: reviews\n  http:\n  - timeout: 10 s\n    retries: {attempts: many}\n    route:\n    - destination: {host: reviews}\n      weight: -1\n",
    );
    assert_eq!(
        found_with_lines(&l),
        vec![
            (Code::WrongType, "spec.hosts".into(), 5),
            (Code::WrongType, "spec.http[0].timeout".into(), 7),
            (Code::WrongType, "spec.http[0].retries.attempts".into(), 8),
            (
                Code::InvalidValue,
                "spec.http[0].route[0].weight".into(),
                11
            ),
        ],
        "{:#?}",
        lines(&l)
    );
    assert_eq!(l.rejected.len(), 1);
}
