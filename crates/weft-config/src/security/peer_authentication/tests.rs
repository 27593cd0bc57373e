use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::resource::Spec;
use crate::test_util::{document, found_with_lines, load};

fn doc(spec: &str) -> String {
    document(
        "security.istio.io/v1",
        "PeerAuthentication",
        "pa",
        "foo",
        spec,
    )
}

fn spec(l: &Loaded) -> &PeerAuthentication {
    match &l.resources[0].spec {
        Spec::PeerAuthentication(p) => p,
        other => panic!("not a PeerAuthentication: {other:?}"),
    }
}

#[test]
fn full_document_loads_clean() {
    let l = load(&doc(
        "  selector:\n    matchLabels: {app: reviews}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    8080: {mode: STRICT}\n    \"9090\": {mode: DISABLE}\n    9091: {mode: UNSET}\n",
    ));
    assert!(l.diagnostics.is_empty(), "{:?}", found_with_lines(&l));
    let pa = spec(&l);
    assert_eq!(pa.mtls.as_ref().map(|m| m.mode), Some(MtlsMode::Permissive));
    assert_eq!(pa.mode_for_port(8080), MtlsMode::Strict);
    assert_eq!(pa.mode_for_port(9090), MtlsMode::Disable);
    assert_eq!(pa.mode_for_port(9091), MtlsMode::Permissive);
    assert_eq!(pa.mode_for_port(1), MtlsMode::Permissive);
}

#[test]
fn empty_selector_and_spec_are_valid() {
    assert!(load(&doc("  selector: {}\n")).diagnostics.is_empty());
    assert!(load(&doc("  {}\n")).diagnostics.is_empty());
}

#[test]
fn unknown_mode_is_unsupported_value() {
    let l = load(&doc("  mtls:\n    mode: BLAH\n"));
    assert_eq!(
        found_with_lines(&l),
        vec![(Code::InvalidValue, "spec.mtls.mode".into(), 6)]
    );
    assert!(
        l.diagnostics[0]
            .message
            .starts_with("Unsupported value: \"BLAH\"")
    );
}

#[test]
fn non_numeric_port_key() {
    let l = load(&doc(
        "  selector: {matchLabels: {foo: bar}}\n  portLevelMtls:\n    \"acd\":\n      mode: STRICT\n",
    ));
    assert_eq!(
        found_with_lines(&l),
        vec![(Code::InvalidValue, "spec.portLevelMtls[acd]".into(), 7)]
    );
    assert!(l.diagnostics[0].message.contains("type conversion error"));
}

#[test]
fn port_level_without_selector() {
    let l = load(&doc("  portLevelMtls:\n    \"80\":\n      mode: STRICT\n"));
    assert_eq!(
        found_with_lines(&l),
        vec![(Code::InvalidValue, "spec.portLevelMtls".into(), 5)]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("portLevelMtls requires selector")
    );
    let l = load(&doc(
        "  selector: {matchLabels: {}}\n  portLevelMtls: {80: {mode: STRICT}}\n",
    ));
    assert_eq!(found_with_lines(&l).len(), 1);
}

#[test]
fn empty_port_level_map() {
    let l = load(&doc(
        "  selector: {matchLabels: {foo: bar}}\n  portLevelMtls: {}\n",
    ));
    assert_eq!(
        found_with_lines(&l),
        vec![(Code::InvalidValue, "spec.portLevelMtls".into(), 6)]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("should have at least 1 properties")
    );
}

#[test]
fn galley_empty_port_level_without_selector_is_rejected() {
    let l = load(&doc("  portLevelMtls: {}\n"));
    assert!(l.has_errors());
    assert!(l.resources.is_empty());
    assert!(
        found_with_lines(&l)
            .iter()
            .all(|d| d.1 == "spec.portLevelMtls")
    );
}

#[test]
fn ports_out_of_range() {
    for port in ["0", "42949672", "65536", "99999999999999"] {
        let l = load(&doc(&format!(
            "  selector: {{matchLabels: {{foo: bar}}}}\n  portLevelMtls:\n    \"{port}\":\n      mode: STRICT\n"
        )));
        assert_eq!(
            found_with_lines(&l),
            vec![(Code::InvalidValue, format!("spec.portLevelMtls[{port}]"), 7)],
            "{port}"
        );
        assert!(
            l.diagnostics[0]
                .message
                .contains("port must be between 1-65535"),
            "{}",
            l.diagnostics[0].message
        );
    }
    let l = load(&doc(
        "  selector: {matchLabels: {foo: bar}}\n  portLevelMtls: {\"-1\": {mode: STRICT}}\n",
    ));
    assert_eq!(found_with_lines(&l)[0].1, "spec.portLevelMtls[-1]");
}

#[test]
fn bad_selector_labels() {
    let l = load(&doc("  selector: {matchLabels: {app: \"*\"}}\n"));
    assert_eq!(
        found_with_lines(&l),
        vec![(
            Code::InvalidValue,
            "spec.selector.matchLabels[app]".into(),
            5
        )]
    );
}

#[test]
fn typo_in_field_is_reported() {
    let l = load(&doc("  mtl: {mode: STRICT}\n"));
    assert_eq!(
        found_with_lines(&l),
        vec![(Code::UnknownField, "spec.mtl".into(), 5)]
    );
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("did you mean \"mtls\"?")
    );
}
