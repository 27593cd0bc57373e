use super::*;
use crate::diag::Code;
use crate::resource::Spec;
use crate::test_util::{self, document, found, load};

fn doc(spec: &str) -> String {
    document("telemetry.istio.io/v1", "Telemetry", "t", "foo", spec)
}

/// The only diagnostic of `spec`, as (code, path).
#[track_caller]
fn one(spec: &str) -> (Code, String) {
    test_util::one(&load(&doc(spec)))
}

const FULL: &str = r#"  selector:
    matchLabels: {app: reviews}
  tracing:
  - match: {mode: CLIENT_AND_SERVER}
    providers: [{name: otlp}]
    randomSamplingPercentage: 54.54
    disableSpanReporting: false
    useRequestIdForTraceSampling: true
    enableIstioTags: true
    customTags:
      env:
        environment: {name: NAME, defaultValue: default}
      header:
        header: {name: x-name, defaultValue: default name}
      literal:
        literal: {value: default literal}
      cluster:
        formatter: {value: "%UPSTREAM_CLUSTER%"}
  metrics:
  - providers: [{name: prometheus}]
    reportingInterval: 5s
    overrides:
    - match: {customMetric: foo, mode: SERVER}
      disabled: false
      tagOverrides:
        request_method: {value: request.method}
        request_host: {operation: UPSERT, value: request.host}
        response_flags: {operation: REMOVE}
    - match: {metric: GRPC_REQUEST_MESSAGES, mode: CLIENT}
      disabled: true
  accessLogging:
  - match: {mode: CLIENT}
    providers: [{name: envoy}]
    disabled: false
    filter:
      expression: 'response.code >= 400 || !has(request.useragent)'
"#;

#[test]
fn full_document_loads_clean() {
    let l = load(&doc(FULL));
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    let Spec::Telemetry(t) = &l.resources[0].spec else {
        panic!("not a Telemetry");
    };
    assert_eq!(t.tracing[0].random_sampling_percentage, Some(54.54));
    assert_eq!(t.tracing[0].custom_tags.len(), 4);
    assert_eq!(
        t.tracing[0].custom_tags["cluster"]
            .formatter
            .as_ref()
            .map(|f| f.value.as_str()),
        Some("%UPSTREAM_CLUSTER%")
    );
    let o = &t.metrics[0].overrides[1];
    assert_eq!(
        o.match_.as_ref().and_then(|m| m.metric),
        Some(IstioMetric::GrpcRequestMessages)
    );
    assert_eq!(
        t.access_logging[0].match_.as_ref().map(|m| m.mode),
        Some(WorkloadMode::Client)
    );
}

#[test]
fn target_refs_and_v1alpha1() {
    let l = load(
        "apiVersion: telemetry.istio.io/v1alpha1\nkind: Telemetry\nmetadata: {name: t}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n  accessLogging: [{providers: [{name: envoy}]}]\n",
    );
    assert!(l.diagnostics.is_empty(), "{:#?}", l.diagnostics);
    assert_eq!(
        one(
            "  selector: {matchLabels: {a: b}}\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n"
        ),
        (Code::ConflictingFields, "spec".into())
    );
}

#[test]
fn provider_names_required() {
    assert_eq!(
        one("  metrics: [{providers: [{name: \"\"}]}]\n"),
        (
            Code::RequiredField,
            "spec.metrics[0].providers[0].name".into()
        )
    );
    assert_eq!(
        one("  accessLogging: [{providers: [{}]}]\n"),
        (
            Code::RequiredField,
            "spec.accessLogging[0].providers[0].name".into()
        )
    );
    assert_eq!(
        one("  tracing: [{providers: [{}]}]\n"),
        (
            Code::RequiredField,
            "spec.tracing[0].providers[0].name".into()
        )
    );
}

#[test]
fn multiple_tracing_and_providers_warn() {
    assert_eq!(
        one("  tracing: [{}, {}]\n"),
        (Code::Suspicious, "spec.tracing".into())
    );
    assert_eq!(
        one("  tracing: [{providers: [{name: a}, {name: b}]}]\n"),
        (Code::Suspicious, "spec.tracing[0].providers".into())
    );
}

#[test]
fn sampling_percentage_range() {
    for bad in ["-1", "100.5"] {
        assert_eq!(
            one(&format!(
                "  tracing: [{{randomSamplingPercentage: {bad}}}]\n"
            )),
            (
                Code::InvalidValue,
                "spec.tracing[0].randomSamplingPercentage".into()
            )
        );
    }
    assert!(
        load(&doc("  tracing: [{randomSamplingPercentage: 100}]\n"))
            .diagnostics
            .is_empty()
    );
}

#[test]
fn custom_tags_exactly_one() {
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {}\n"),
        (Code::InvalidValue, "spec.tracing[0].customTags[a]".into())
    );
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {literal: {value: x}, header: {name: y}}\n"),
        (
            Code::ConflictingFields,
            "spec.tracing[0].customTags[a]".into()
        )
    );
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {literal: {value: \"\"}}\n"),
        (
            Code::RequiredField,
            "spec.tracing[0].customTags[a].literal.value".into()
        )
    );
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {environment: {defaultValue: x}}\n"),
        (
            Code::RequiredField,
            "spec.tracing[0].customTags[a].environment.name".into()
        )
    );
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {header: {name: \"x y\"}}\n"),
        (
            Code::InvalidValue,
            "spec.tracing[0].customTags[a].header.name".into()
        )
    );
    assert_eq!(
        one("  tracing:\n  - customTags:\n      a: {formatter: {value: \"\"}}\n"),
        (
            Code::RequiredField,
            "spec.tracing[0].customTags[a].formatter.value".into()
        )
    );
    assert_eq!(
        one(
            "  tracing:\n  - customTags:\n      a: {formatter: {value: \"%A%\"}, literal: {value: x}}\n"
        ),
        (
            Code::ConflictingFields,
            "spec.tracing[0].customTags[a]".into()
        )
    );
}

#[test]
fn metric_selector() {
    assert_eq!(
        one("  metrics: [{overrides: [{match: {metric: REQUEST_COUNT, customMetric: foo}}]}]\n"),
        (
            Code::ConflictingFields,
            "spec.metrics[0].overrides[0].match".into()
        )
    );
    assert_eq!(
        one("  metrics: [{overrides: [{match: {customMetric: \"\"}}]}]\n"),
        (
            Code::InvalidValue,
            "spec.metrics[0].overrides[0].match.customMetric".into()
        )
    );
    assert_eq!(
        one("  metrics: [{overrides: [{match: {metric: REQUEST_COUNTS}}]}]\n"),
        (
            Code::InvalidValue,
            "spec.metrics[0].overrides[0].match.metric".into()
        )
    );
}

#[test]
fn tag_overrides() {
    let l = load(&doc(
        "  metrics:\n  - overrides:\n    - tagOverrides:\n        foo:\n          operation: UPSERT\n",
    ));
    assert_eq!(
        found(&l),
        vec![(
            Code::RequiredField,
            "spec.metrics[0].overrides[0].tagOverrides[foo].value".into()
        )]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("value must be set when operation is UPSERT")
    );
    let l = load(&doc(
        "  metrics:\n  - overrides:\n    - tagOverrides:\n        foo:\n          operation: REMOVE\n          value: oops\n",
    ));
    assert_eq!(
        found(&l),
        vec![(
            Code::InvalidValue,
            "spec.metrics[0].overrides[0].tagOverrides[foo].value".into()
        )]
    );
    assert!(
        l.diagnostics[0]
            .message
            .contains("value must not be set when operation is REMOVE")
    );
}

#[test]
fn reporting_interval() {
    assert_eq!(
        one("  metrics: [{reportingInterval: 0s}]\n"),
        (
            Code::InvalidValue,
            "spec.metrics[0].reportingInterval".into()
        )
    );
}

#[test]
fn access_log_filter() {
    assert_eq!(
        one("  accessLogging: [{filter: {expression: \"\"}}]\n"),
        (
            Code::RequiredField,
            "spec.accessLogging[0].filter.expression".into()
        )
    );
    for bad in [
        "\"has(request.x\"",
        "\"response.code >= 400)\"",
        "\"request.path == 'x\"",
    ] {
        assert_eq!(
            one(&format!(
                "  accessLogging: [{{filter: {{expression: {bad}}}}}]\n"
            )),
            (
                Code::InvalidValue,
                "spec.accessLogging[0].filter.expression".into()
            ),
            "{bad}"
        );
    }
}

#[test]
fn mode_values() {
    assert_eq!(
        one("  accessLogging: [{match: {mode: BOTH}}]\n"),
        (
            Code::InvalidValue,
            "spec.accessLogging[0].match.mode".into()
        )
    );
}
