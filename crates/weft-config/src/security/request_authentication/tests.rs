use super::*;
use crate::diag::Code;
use crate::resource::Spec;
use crate::test_util::{self, document, found, load};

fn doc(spec: &str) -> String {
    document(
        "security.istio.io/v1",
        "RequestAuthentication",
        "ra",
        "foo",
        spec,
    )
}

/// The only diagnostic of a document with one JWT rule `rule`.
#[track_caller]
fn one_rule(rule: &str) -> (Code, String) {
    test_util::one(&load(&doc(&format!("  jwtRules:\n  - {rule}\n"))))
}

const FULL: &str = r#"  selector:
    matchLabels: {app: httpbin}
  jwtRules:
  - issuer: "https://accounts.example.com"
    audiences: [bookstore_android.apps.example.com, bookstore_web.apps.example.com]
    jwksUri: https://accounts.example.com:8443/.well-known/jwks.json
    fromHeaders:
    - name: x-jwt-assertion
      prefix: "Bearer "
    - name: Authorization
    fromParams: [my_token]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
    outputClaimToHeaders:
    - header: x-jwt-sub
      claim: sub
    - header: x-jwt-group
      claim: nested.key.group
    timeout: 5s
    spaceDelimitedClaims: [custom_scope, provider.login.scope]
  - issuer: "1234567-compute@developer.gserviceaccount.com"
    jwks: '{"keys": [{"kty": "RSA", "e": "AQAB", "n": "xyz", "kid": "a"}]}'
"#;

#[test]
fn full_document_loads_clean() {
    let l = load(&doc(FULL));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    let Spec::RequestAuthentication(ra) = &l.resources[0].spec else {
        panic!("not a RequestAuthentication");
    };
    assert_eq!(ra.jwt_rules.len(), 2);
    assert_eq!(ra.jwt_rules[0].from_headers[0].prefix, "Bearer ");
    assert_eq!(ra.jwt_rules[0].timeout, Some(Duration::from_secs(5)));
    assert!(ra.jwt_rules[0].forward_original_token);
}

#[test]
fn target_refs_load_clean() {
    let l = load(&doc(
        "  targetRefs:\n  - {group: \"\", kind: Service, name: foo}\n  - {group: gateway.networking.k8s.io, kind: GatewayClass, name: istio}\n  jwtRules:\n  - {issuer: example.com, jwksUri: \"http://jwks.example.com/keys\"}\n",
    ));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
}

#[test]
fn selector_target_ref_exclusive() {
    let l = load(&doc(
        "  selector: {matchLabels: {a: b}}\n  targetRef: {group: \"\", kind: Service, name: foo}\n",
    ));
    assert_eq!(found(&l), vec![(Code::ConflictingFields, "spec".into())]);
    assert!(
        l.diagnostics[0]
            .message
            .contains("only one of targetRefs or selector")
    );
    let l = load(&doc(
        "  targetRef: {group: \"\", kind: Service, name: foo}\n  targetRefs: [{group: \"\", kind: Service, name: bar}]\n",
    ));
    assert_eq!(found(&l), vec![(Code::ConflictingFields, "spec".into())]);
}

#[test]
fn target_ref_group_kind_namespace() {
    let l = load(&doc(
        "  targetRef: {group: \"__\", kind: Service, name: foo}\n",
    ));
    assert_eq!(
        found(&l),
        vec![(Code::InvalidValue, "spec.targetRef.group".into())]
    );
    let l = load(&doc(
        "  targetRef: {group: \"\", kind: Service, name: foo, namespace: bar}\n",
    ));
    assert_eq!(
        found(&l),
        vec![(Code::InvalidValue, "spec.targetRef.namespace".into())]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("cross namespace referencing")
    );
    let l = load(&doc("  targetRef: {group: \"\", kind: Service}\n"));
    assert_eq!(
        found(&l),
        vec![(Code::RequiredField, "spec.targetRef.name".into())]
    );
}

#[test]
fn issuer_is_required() {
    assert_eq!(
        one_rule("audiences: [a]"),
        (Code::RequiredField, "spec.jwtRules[0].issuer".into())
    );
    // Stricter than Istio 1.27+, which accepts a rule with only a JWKS URI:
    // that rule would accept tokens of any issuer.
    assert_eq!(
        one_rule("jwksUri: https://example.com/jwks"),
        (Code::RequiredField, "spec.jwtRules[0].issuer".into())
    );
    assert_eq!(
        one_rule("issuer: \" example.com\""),
        (Code::NeverMatches, "spec.jwtRules[0].issuer".into())
    );
}

#[test]
fn null_rule_is_a_type_error() {
    let l = load(&doc("  jwtRules:\n  -\n"));
    assert!(l.has_errors());
    assert_eq!(
        found(&l),
        vec![(Code::WrongType, "spec.jwtRules[0]".into())]
    );
}

#[test]
fn duplicate_issuer_warns() {
    let l = load(&doc("  jwtRules:\n  - issuer: a\n  - issuer: a\n"));
    assert_eq!(
        found(&l),
        vec![(Code::Suspicious, "spec.jwtRules[1].issuer".into())]
    );
}

#[test]
fn empty_audience() {
    assert_eq!(
        one_rule("{issuer: example, audiences: [\"\"]}"),
        (Code::InvalidValue, "spec.jwtRules[0].audiences[0]".into())
    );
}

#[test]
fn jwks_uri_must_be_http_url() {
    for bad in [
        "\"hTPp\\\\\\\\blah\"",
        "ftp://example.com/jwks",
        "https://",
        "\"https://example.com:99999/jwks\"",
        "\"https://exa mple.com/jwks\"",
    ] {
        assert_eq!(
            one_rule(&format!("{{issuer: example, jwksUri: {bad}}}")),
            (Code::InvalidValue, "spec.jwtRules[0].jwksUri".into()),
            "{bad}"
        );
    }
    let l = load(&doc(
        "  jwtRules:\n  - {issuer: e, jwksUri: \"hTPp\\\\blah\"}\n",
    ));
    assert!(l.diagnostics[0].message.contains("url must have scheme"));
}

#[test]
fn jwks_and_jwks_uri_conflict() {
    assert_eq!(
        one_rule(
            "{issuer: e, jwksUri: \"https://e.com/k\", jwks: '{\"keys\": [{\"kty\": \"EC\"}]}'}"
        ),
        (Code::ConflictingFields, "spec.jwtRules[0]".into())
    );
}

#[test]
fn jwks_must_parse() {
    for bad in [
        "'not json'",
        "'{\"keys\": 1}'",
        "'{\"keys\": []}'",
        "'{\"keys\": [{}]}'",
        "'[]'",
    ] {
        assert_eq!(
            one_rule(&format!("{{issuer: e, jwks: {bad}}}")),
            (Code::InvalidValue, "spec.jwtRules[0].jwks".into()),
            "{bad}"
        );
    }
}

#[test]
fn from_headers() {
    assert_eq!(
        one_rule("{issuer: e, fromHeaders: [{prefix: baz}]}"),
        (
            Code::RequiredField,
            "spec.jwtRules[0].fromHeaders[0].name".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, fromHeaders: [{name: \"x jwt\"}]}"),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].fromHeaders[0].name".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, fromHeaders: [{name: x-a}, {name: X-A}]}"),
        (
            Code::Suspicious,
            "spec.jwtRules[0].fromHeaders[1].name".into()
        )
    );
}

#[test]
fn from_params_and_cookies() {
    assert_eq!(
        one_rule("{issuer: e, fromParams: [\"\"]}"),
        (Code::InvalidValue, "spec.jwtRules[0].fromParams[0]".into())
    );
    assert_eq!(
        one_rule("{issuer: e, fromCookies: [\"\"]}"),
        (Code::InvalidValue, "spec.jwtRules[0].fromCookies[0]".into())
    );
    assert_eq!(
        one_rule("{issuer: e, fromCookies: [\"a;b\"]}"),
        (Code::InvalidValue, "spec.jwtRules[0].fromCookies[0]".into())
    );
}

#[test]
fn output_headers() {
    assert_eq!(
        one_rule("{issuer: e, outputPayloadToHeader: \"x payload\"}"),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].outputPayloadToHeader".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, outputClaimToHeaders: [{claim: \"\", header: h}]}"),
        (
            Code::RequiredField,
            "spec.jwtRules[0].outputClaimToHeaders[0].claim".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, outputClaimToHeaders: [{claim: x, header: \"\"}]}"),
        (
            Code::RequiredField,
            "spec.jwtRules[0].outputClaimToHeaders[0].header".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, outputClaimToHeaders: [{claim: x, header: \":authority\"}]}"),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].outputClaimToHeaders[0].header".into()
        )
    );
    assert_eq!(
        one_rule("{issuer: e, outputClaimToHeaders: [{claim: \"a b\", header: h}]}"),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].outputClaimToHeaders[0].claim".into()
        )
    );
    assert_eq!(
        one_rule(
            "{issuer: e, outputClaimToHeaders: [{claim: a, header: h}, {claim: b, header: H}]}"
        ),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].outputClaimToHeaders[1].header".into()
        )
    );
}

#[test]
fn timeout() {
    assert_eq!(
        one_rule("{issuer: e, timeout: 0s}"),
        (Code::InvalidValue, "spec.jwtRules[0].timeout".into())
    );
    assert_eq!(
        one_rule("{issuer: e, timeout: 1500us}"),
        (Code::InvalidValue, "spec.jwtRules[0].timeout".into())
    );
    let l = load(&doc("  jwtRules:\n  - {issuer: e, timeout: apple}\n"));
    assert_eq!(
        found(&l),
        vec![(Code::WrongType, "spec.jwtRules[0].timeout".into())]
    );
}

#[test]
fn space_delimited_claims() {
    assert_eq!(
        one_rule("{issuer: e, spaceDelimitedClaims: [\"\"]}"),
        (
            Code::InvalidValue,
            "spec.jwtRules[0].spaceDelimitedClaims[0]".into()
        )
    );
}

#[test]
fn url_checker() {
    let check = |url: &str| {
        let mut v = Validator::new("default");
        check_http_url(&mut v, url);
        v.into_issues().len()
    };
    assert_eq!(check("https://example.com"), 0);
    assert_eq!(check("HTTP://[::1]:8080/x"), 0);
    assert_eq!(check("https://user@example.com/x?y#z"), 0);
    assert_eq!(check("https://example.com:0/"), 1);
    assert_eq!(check("example.com/jwks"), 1);
}
