use super::*;
use crate::diag::Code;
use crate::resource::Spec;
use crate::test_util::{self, document, found, load, read_sample, samples};

fn doc(spec: &str) -> String {
    document(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "ap",
        "foo",
        spec,
    )
}

/// The only diagnostic of `spec`, as (code, path).
#[track_caller]
fn one(spec: &str) -> (Code, String) {
    test_util::one(&load(&doc(spec)))
}

fn rule(body: &str) -> String {
    format!("  rules:\n  - {body}\n")
}

const FULL: &str = r#"  selector:
    matchLabels: {app: httpbin}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep", "*-suffix", "prefix-*"]
        notPrincipals: ["cluster.local/ns/default/sa/evil"]
        requestPrincipals: ["https://issuer.example.com/*"]
        notRequestPrincipals: ["https://issuer.example.com/bad"]
        namespaces: ["test", "dev-*"]
        notNamespaces: ["kube-system"]
        ipBlocks: ["10.0.0.0/8", "1.2.3.4"]
        notIpBlocks: ["10.1.0.0/16"]
        remoteIpBlocks: ["203.0.113.0/24"]
        notRemoteIpBlocks: ["203.0.113.4"]
        trustDomains: ["cluster.local"]
        notTrustDomains: ["evil.local"]
    - source:
        serviceAccounts: ["default/sleep", "bookinfo-productpage"]
        notServiceAccounts: ["default/evil"]
    to:
    - operation:
        hosts: ["*.example.com", "example.com"]
        notHosts: ["admin.example.com"]
        ports: ["8080", "443"]
        notPorts: ["9090"]
        methods: ["GET", "POST"]
        notMethods: ["DELETE"]
        paths: ["/api/*", "/v1/{*}/items", "/static/{**}", "*.png"]
        notPaths: ["/admin*"]
    when:
    - key: request.headers[x-user]
      values: ["alice", "bob*"]
      notValues: ["mallory"]
    - key: source.ip
      values: ["10.0.0.0/8"]
    - key: destination.port
      notValues: ["22"]
    - key: request.auth.claims[groups]
      values: ["admins"]
    - key: source.serviceAccount
      values: ["default/sleep"]
"#;

#[test]
fn full_document_loads_clean() {
    let l = load(&doc(FULL));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    let Spec::AuthorizationPolicy(ap) = &l.resources[0].spec else {
        panic!("not an AuthorizationPolicy");
    };
    assert_eq!(ap.action, AuthorizationAction::Deny);
    let from = ap.rules[0].from.as_ref().expect("from");
    assert_eq!(from.len(), 2);
    assert_eq!(
        from[1].source.as_ref().map(|s| s.service_accounts.len()),
        Some(2)
    );
    assert_eq!(ap.rules[0].when.len(), 5);
}

#[test]
fn custom_with_provider_and_target_refs() {
    let l = load(&doc(
        "  targetRefs:\n  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n  action: CUSTOM\n  provider: {name: my-authz}\n  rules:\n  - to:\n    - operation: {paths: [\"/admin/*\"]}\n",
    ));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    let l = load(&doc(
        "  targetRef: {kind: Service, group: \"\", name: svc, namespace: foo}\n  rules: [{}]\n",
    ));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
}

#[test]
fn empty_policies_are_valid() {
    assert!(load(&doc("  {}\n")).diagnostics.is_empty());
    assert!(load(&doc("  rules: [{}]\n")).diagnostics.is_empty());
}

#[test]
fn selector_and_target_refs_are_exclusive() {
    assert_eq!(
        one(
            "  selector: {matchLabels: {a: b}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n"
        ),
        (Code::ConflictingFields, "spec".into())
    );
}

#[test]
fn target_ref_checks() {
    assert_eq!(
        one("  targetRef: {kind: Service, group: \"\"}\n"),
        (Code::RequiredField, "spec.targetRef.name".into())
    );
    assert_eq!(
        one("  targetRef: {kind: Serv_ice, group: \"\", name: a}\n"),
        (Code::InvalidValue, "spec.targetRef.kind".into())
    );
    assert_eq!(
        one("  targetRefs: [{kind: Gateway, group: \"\", name: a}]\n"),
        (Code::InvalidValue, "spec.targetRefs[0].group".into())
    );
    assert_eq!(
        one(
            "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: a, namespace: bar}]\n"
        ),
        (Code::InvalidValue, "spec.targetRefs[0].namespace".into())
    );
    assert_eq!(
        one("  targetRefs: [{group: \"\", name: a}]\n"),
        (Code::RequiredField, "spec.targetRefs[0].kind".into())
    );
}

#[test]
fn custom_needs_provider_and_rules() {
    assert_eq!(
        one("  action: CUSTOM\n  rules: [{}]\n"),
        (Code::RequiredField, "spec.provider".into())
    );
    assert_eq!(
        one("  action: CUSTOM\n  provider: {}\n  rules: [{}]\n"),
        (Code::RequiredField, "spec.provider.name".into())
    );
    assert_eq!(
        one("  action: CUSTOM\n  provider: {name: x}\n"),
        (Code::NeverMatches, "spec.rules".into())
    );
}

#[test]
fn custom_does_not_support_identities() {
    assert_eq!(
        one(
            "  action: CUSTOM\n  provider: {name: x}\n  rules:\n  - from:\n    - source: {principals: [a]}\n"
        ),
        (
            Code::InvalidValue,
            "spec.rules[0].from[0].source.principals".into()
        )
    );
    assert_eq!(
        one(
            "  action: CUSTOM\n  provider: {name: x}\n  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [a]}\n"
        ),
        (Code::InvalidValue, "spec.rules[0].when[0].key".into())
    );
}

#[test]
fn provider_only_with_custom() {
    assert_eq!(
        one("  action: ALLOW\n  provider: {name: x}\n  rules: [{}]\n"),
        (Code::InvalidValue, "spec.provider".into())
    );
}

#[test]
fn deny_and_audit_without_rules() {
    assert_eq!(
        one("  action: DENY\n"),
        (Code::NeverMatches, "spec.rules".into())
    );
    assert_eq!(
        one("  action: AUDIT\n"),
        (Code::Suspicious, "spec.rules".into())
    );
}

#[test]
fn deny_with_only_http_attributes_warns() {
    assert_eq!(
        one(&format!(
            "  action: DENY\n{}",
            rule("to:\n    - operation: {methods: [GET]}")
        )),
        (Code::Suspicious, "spec.rules[0]".into())
    );
    let l = load(&doc(&format!(
        "  action: DENY\n{}",
        rule("to:\n    - operation: {methods: [GET], ports: [\"80\"]}")
    )));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
}

#[test]
fn empty_from_to_source_operation() {
    assert_eq!(
        one(&rule("from: []")),
        (Code::InvalidValue, "spec.rules[0].from".into())
    );
    assert_eq!(
        one(&rule("to: []")),
        (Code::InvalidValue, "spec.rules[0].to".into())
    );
    assert_eq!(
        one(&rule("from: [{}]")),
        (Code::RequiredField, "spec.rules[0].from[0].source".into())
    );
    assert_eq!(
        one(&rule("from: [{source: {}}]")),
        (Code::InvalidValue, "spec.rules[0].from[0].source".into())
    );
    assert_eq!(
        one(&rule("to: [{}]")),
        (Code::RequiredField, "spec.rules[0].to[0].operation".into())
    );
    assert_eq!(
        one(&rule("to: [{operation: {}}]")),
        (Code::InvalidValue, "spec.rules[0].to[0].operation".into())
    );
}

#[test]
fn service_accounts_with_namespaces_or_principals() {
    let l = load(&doc(&rule(
        "from:\n    - source: {serviceAccounts: [\"bar/sa\"], namespaces: [bar]}",
    )));
    assert_eq!(
        found(&l),
        vec![(
            Code::ConflictingFields,
            "spec.rules[0].from[0].source".into()
        )]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("Cannot set serviceAccounts with namespaces or principals")
    );
    assert_eq!(
        one(&rule(
            "from:\n    - source: {notServiceAccounts: [sa], principals: [bar]}"
        )),
        (
            Code::ConflictingFields,
            "spec.rules[0].from[0].source".into()
        )
    );
}

#[test]
fn service_account_format() {
    for bad in ["\"a/b/c\"", "\"ns/*\"", "\"/sa\"", "\"\""] {
        assert_eq!(
            one(&rule(&format!(
                "from:\n    - source: {{serviceAccounts: [{bad}]}}"
            ))),
            (
                Code::InvalidValue,
                "spec.rules[0].from[0].source.serviceAccounts[0]".into()
            ),
            "{bad}"
        );
    }
    let many: Vec<String> = (0..17).map(|i| format!("sa{i}")).collect();
    assert_eq!(
        one(&rule(&format!(
            "from:\n    - source: {{serviceAccounts: [{}]}}",
            many.join(", ")
        ))),
        (
            Code::InvalidValue,
            "spec.rules[0].from[0].source.serviceAccounts".into()
        )
    );
    assert_eq!(
        one(&rule(
            "from:\n    - source: {serviceAccounts: [Default/Sleep]}"
        )),
        (
            Code::NeverMatches,
            "spec.rules[0].from[0].source.serviceAccounts[0]".into()
        )
    );
}

#[test]
fn ip_blocks_must_be_ips() {
    assert_eq!(
        one(&rule(
            "from:\n    - source: {ipBlocks: [\"1.2.3.4\", \"10.0.0.0/33\"]}"
        )),
        (
            Code::InvalidValue,
            "spec.rules[0].from[0].source.ipBlocks[1]".into()
        )
    );
    assert_eq!(
        one(&rule("from:\n    - source: {notRemoteIpBlocks: [nope]}")),
        (
            Code::InvalidValue,
            "spec.rules[0].from[0].source.notRemoteIpBlocks[0]".into()
        )
    );
}

#[test]
fn empty_values_and_bad_wildcards() {
    assert_eq!(
        one(&rule("from:\n    - source: {principals: [\"\"]}")),
        (
            Code::InvalidValue,
            "spec.rules[0].from[0].source.principals[0]".into()
        )
    );
    for bad in ["a*b", "*a*", "**"] {
        assert_eq!(
            one(&rule(&format!(
                "to:\n    - operation: {{hosts: [\"{bad}\"]}}"
            ))),
            (
                Code::InvalidValue,
                "spec.rules[0].to[0].operation.hosts[0]".into()
            ),
            "{bad}"
        );
    }
    assert_eq!(
        one(&rule("to:\n    - operation: {paths: [\"/api/*/users\"]}")),
        (
            Code::InvalidValue,
            "spec.rules[0].to[0].operation.paths[0]".into()
        )
    );
}

#[test]
fn namespaces_that_never_match() {
    assert_eq!(
        one(&rule("from:\n    - source: {namespaces: [Prod]}")),
        (
            Code::NeverMatches,
            "spec.rules[0].from[0].source.namespaces[0]".into()
        )
    );
}

#[test]
fn ports_must_be_numbers_in_range() {
    for bad in ["\"0\"", "\"65536\"", "http", "\"80-90\"", "\"*\""] {
        assert_eq!(
            one(&rule(&format!("to:\n    - operation: {{ports: [{bad}]}}"))),
            (
                Code::InvalidValue,
                "spec.rules[0].to[0].operation.ports[0]".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn methods_that_never_match() {
    let l = load(&doc(&rule("to:\n    - operation: {methods: [get]}")));
    assert_eq!(
        found(&l),
        vec![(
            Code::NeverMatches,
            "spec.rules[0].to[0].operation.methods[0]".into()
        )]
    );
    assert_eq!(l.diagnostics[0].hint.as_deref(), Some("write \"GET\""));
    assert_eq!(
        one(&rule(
            "to:\n    - operation: {notMethods: [\"/pkg.Svc/Get\"]}"
        )),
        (
            Code::NeverMatches,
            "spec.rules[0].to[0].operation.notMethods[0]".into()
        )
    );
    // Custom (extension) methods are fine.
    assert!(
        load(&doc(&rule(
            "to:\n    - operation: {methods: [PURGE, method]}"
        )))
        .diagnostics
        .is_empty()
    );
}

#[test]
fn paths_that_never_match() {
    assert_eq!(
        one(&rule("to:\n    - operation: {paths: [api/v1]}")),
        (
            Code::NeverMatches,
            "spec.rules[0].to[0].operation.paths[0]".into()
        )
    );
    assert_eq!(
        one(&rule("to:\n    - operation: {notPaths: [\"/a?b=1\"]}")),
        (
            Code::NeverMatches,
            "spec.rules[0].to[0].operation.notPaths[0]".into()
        )
    );
}

#[test]
fn path_templates() {
    for ok in ["/{*}", "/a/{*}/b", "/{**}", "/a/{**}/b.txt", "/{*}/{**}"] {
        assert!(
            load(&doc(&rule(&format!(
                "to:\n    - operation: {{paths: [\"{ok}\"]}}"
            ))))
            .diagnostics
            .is_empty(),
            "{ok}"
        );
    }
    for bad in ["/{**}/{*}", "/{name}", "/a{*}", "/{*}/a*b", "/{*}//x"] {
        assert_eq!(
            one(&rule(&format!(
                "to:\n    - operation: {{paths: [\"{bad}\"]}}"
            ))),
            (
                Code::InvalidValue,
                "spec.rules[0].to[0].operation.paths[0]".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn when_needs_key_and_values() {
    let l = load(&doc(&rule("when:\n    - values: [x]")));
    assert_eq!(
        found(&l),
        vec![(Code::RequiredField, "spec.rules[0].when[0].key".into())]
    );
    assert_eq!(
        one(&rule("when:\n    - key: source.ip")),
        (Code::RequiredField, "spec.rules[0].when[0].values".into())
    );
}

#[test]
fn when_keys() {
    for bad in [
        "request.header[x]",
        "request.headers",
        "request.headers[]",
        "destination.namespace",
        "destination.labels[app]",
        "destination.user",
        "source.ips",
    ] {
        assert_eq!(
            one(&rule(&format!(
                "when:\n    - {{key: \"{bad}\", values: [a]}}"
            ))),
            (Code::InvalidValue, "spec.rules[0].when[0].key".into()),
            "{bad}"
        );
    }
    let l = load(&doc(&rule("when:\n    - {key: source.ips, values: [a]}")));
    assert_eq!(
        l.diagnostics[0].hint.as_deref(),
        Some("did you mean \"source.ip\"?")
    );
}

#[test]
fn when_values_by_key() {
    assert_eq!(
        one(&rule("when:\n    - {key: remote.ip, values: [\"1.2.3\"]}")),
        (Code::InvalidValue, "spec.rules[0].when[0].values[0]".into())
    );
    assert_eq!(
        one(&rule(
            "when:\n    - {key: destination.port, notValues: [\"99999\"]}"
        )),
        (
            Code::InvalidValue,
            "spec.rules[0].when[0].notValues[0]".into()
        )
    );
    assert_eq!(
        one(&rule(
            "when:\n    - {key: source.serviceAccount, values: [\"a*\"]}"
        )),
        (Code::InvalidValue, "spec.rules[0].when[0].values[0]".into())
    );
    assert_eq!(
        one(&rule(
            "when:\n    - {key: \"request.headers[x]\", values: [\"\"]}"
        )),
        (Code::InvalidValue, "spec.rules[0].when[0].values[0]".into())
    );
}

#[test]
fn values_negated_entirely_never_match() {
    assert_eq!(
        one(&rule(
            "when:\n    - {key: \"request.headers[x]\", values: [a, b], notValues: [b, a]}"
        )),
        (Code::NeverMatches, "spec.rules[0].when[0].values".into())
    );
    assert_eq!(
        one(&rule(
            "from:\n    - source: {principals: [a], notPrincipals: [a]}"
        )),
        (
            Code::NeverMatches,
            "spec.rules[0].from[0].source.principals".into()
        )
    );
    assert_eq!(
        one(&rule(
            "to:\n    - operation: {ports: [\"80\"], notPorts: [\"80\", \"81\"]}"
        )),
        (
            Code::NeverMatches,
            "spec.rules[0].to[0].operation.ports".into()
        )
    );
}

#[test]
fn unknown_action() {
    assert_eq!(
        one("  action: REJECT\n"),
        (Code::InvalidValue, "spec.action".into())
    );
}

// ---- Istio's own samples ---------------------------------------------------

/// Documents of a `*-invalid.yaml` file with their `_err:` line removed.
fn invalid_docs(text: &str) -> Vec<(String, String)> {
    text.split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(|d| {
            let err = d
                .lines()
                .find_map(|l| l.strip_prefix("_err:"))
                .unwrap_or("")
                .trim()
                .to_string();
            let body: Vec<&str> = d.lines().filter(|l| !l.starts_with("_err:")).collect();
            (err, body.join("\n"))
        })
        .collect()
}

#[test]
fn istio_valid_security_samples_load_clean() {
    let dir = samples();
    for name in [
        "crds/authz-valid.yaml",
        "crds/peerauth-valid.yaml",
        "datasets-head/security-v1-AuthorizationPolicy.yaml",
        "datasets-head/security-v1-PeerAuthentication.yaml",
    ] {
        let l = load(&read_sample(&dir, name));
        assert!(l.diagnostics.is_empty(), "{name}: {:#?}", l.diagnostics);
        assert!(!l.resources.is_empty(), "{name}");
    }
}

#[test]
fn istio_invalid_security_samples_are_rejected() {
    let dir = samples();
    for name in ["crds/authz-invalid.yaml", "crds/peerauth-invalid.yaml"] {
        for (err, body) in invalid_docs(&read_sample(&dir, name)) {
            if err.is_empty() || err.contains("TODO") {
                continue;
            }
            let l = load(&body);
            assert!(l.has_errors(), "{name}: {err}: accepted");
            assert!(l.resources.is_empty(), "{name}: {err}");
            let errors: Vec<_> = l.diagnostics.iter().filter(|d| d.is_error()).collect();
            assert!(
                errors.iter().all(|d| d.path.is_some()),
                "{name}: {err}: {errors:#?}"
            );
            let want = err.trim_matches(['\'', '"']);
            let want = want
                .strip_prefix("spec.portLevelMtls in body ")
                .unwrap_or(want);
            assert!(
                errors.iter().any(|d| d.message.contains(want)),
                "{name}: expected {want:?} in {errors:#?}"
            );
        }
    }
    for name in [
        "galley-2021/security-v1beta1-AuthorizationPolicy-invalid.yaml",
        "galley-2021/security-v1beta1-PeerAuthentication-invalid.yaml",
    ] {
        let l = load(&read_sample(&dir, name));
        assert!(l.has_errors(), "{name}");
        assert!(
            l.diagnostics.iter().all(|d| d.path.is_some()),
            "{name}: {:#?}",
            l.diagnostics
        );
    }
    let l = load(&read_sample(
        &dir,
        "galley-2021/security-v1beta1-AuthorizationPolicy-invalid.yaml",
    ));
    assert_eq!(
        found(&l),
        vec![(Code::RequiredField, "spec.rules[0].when[0].key".into())]
    );
}

proptest::proptest! {
    /// The value checks never panic, whatever the strings.
    #[test]
    fn value_checks_never_panic(values in proptest::collection::vec(".{0,24}", 0..4), key in ".{0,32}") {
        let mut v = Validator::new("default");
        check_paths(&mut v, &values);
        check_ports(&mut v, &values);
        check_service_accounts(&mut v, &values);
        check_strings(&mut v, &values, check_method);
        check_strings(&mut v, &values, check_namespace_value);
        let _ = condition_kind(&key);
        let c = Condition { key, values: values.clone(), not_values: values };
        c.check(&mut v, true);
        for s in &c.values {
            crate::security::check_http_url(&mut v, s);
        }
    }
}
