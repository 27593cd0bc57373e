use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, found, load_spec};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1", "WorkloadGroup", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

const T: &str = "template: {serviceAccount: default}\n";

#[test]
fn fully_populated_group_loads_clean() {
    let l = load(
        r#"metadata:
  labels: {app.kubernetes.io/name: reviews, app.kubernetes.io/version: "1.3.4"}
  annotations: {example.com/owner: team-a}
template:
  ports: {grpc: 3550, http: 8080}
  serviceAccount: default
  network: vm-net
  locality: us-east1/us-east1-b
  weight: 2
probe:
  initialDelaySeconds: 5
  timeoutSeconds: 3
  periodSeconds: 4
  successThreshold: 3
  failureThreshold: 3
  httpGet:
    path: /foo/bar
    host: 127.0.0.1
    port: 3100
    scheme: HTTPS
    httpHeaders:
    - {name: Lit-Header, value: Im-The-Best}
"#,
    );
    assert!(l.diagnostics.is_empty(), "{:?}", found(&l));
    let wg = l.resources[0]
        .spec_as::<WorkloadGroup>()
        .expect("a WorkloadGroup");
    let probe = wg.probe.as_ref().expect("probe");
    assert_eq!(probe.http_get.as_ref().map(|h| h.port), Some(3100));
    for method in [
        "tcpSocket: {host: localhost, port: 3306}",
        "exec: {command: [cat, /tmp/healthy]}",
        "grpc: {port: 9090, service: grpc.health.v1.Health}",
    ] {
        let l = load(&format!("{T}probe: {{{method}}}\n"));
        assert!(l.diagnostics.is_empty(), "{method}: {:?}", found(&l));
    }
}

#[test]
fn template() {
    expect(
        "probe: {tcpSocket: {port: 80}}\n",
        Code::RequiredField,
        "spec.template",
    );
    expect(
        "template: {address: 10.0.0.1}\n",
        Code::Suspicious,
        "spec.template.address",
    );
    expect(
        "template: {labels: {app: a}}\n",
        Code::Suspicious,
        "spec.template.labels",
    );
    expect(
        "template: {ports: {http: 0}}\n",
        Code::InvalidValue,
        "spec.template.ports[http]",
    );
    expect(
        "template: {serviceAccount: \"Not Valid\"}\n",
        Code::InvalidValue,
        "spec.template.serviceAccount",
    );
}

#[test]
fn metadata() {
    expect(
        &format!("{T}metadata: {{labels: {{app: \"a b\"}}}}\n"),
        Code::InvalidValue,
        "spec.metadata.labels[app]",
    );
}

#[test]
fn probe() {
    let p = "spec.probe";
    expect(
        &format!("{T}probe: {{periodSeconds: 5}}\n"),
        Code::InvalidValue,
        p,
    );
    expect(
        &format!("{T}probe: {{tcpSocket: {{port: 1}}, exec: {{command: [a]}}}}\n"),
        Code::ConflictingFields,
        p,
    );
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        expect(
            &format!("{T}probe: {{{field}: -1, tcpSocket: {{port: 1}}}}\n"),
            Code::InvalidValue,
            &format!("{p}.{field}"),
        );
    }
    expect(
        &format!("{T}probe: {{httpGet: {{path: /}}}}\n"),
        Code::RequiredField,
        &format!("{p}.httpGet.port"),
    );
    expect(
        &format!("{T}probe: {{httpGet: {{port: 70000}}}}\n"),
        Code::InvalidValue,
        &format!("{p}.httpGet.port"),
    );
    expect(
        &format!("{T}probe: {{httpGet: {{port: 80, scheme: FTP}}}}\n"),
        Code::InvalidValue,
        &format!("{p}.httpGet.scheme"),
    );
    expect(
        &format!("{T}probe: {{httpGet: {{port: 80, path: health}}}}\n"),
        Code::InvalidValue,
        &format!("{p}.httpGet.path"),
    );
    expect(
        &format!("{T}probe: {{httpGet: {{port: 80, httpHeaders: [{{name: \"bad header\"}}]}}}}\n"),
        Code::InvalidValue,
        &format!("{p}.httpGet.httpHeaders[0].name"),
    );
    expect(
        &format!("{T}probe: {{tcpSocket: {{host: a}}}}\n"),
        Code::RequiredField,
        &format!("{p}.tcpSocket.port"),
    );
    expect(
        &format!("{T}probe: {{exec: {{}}}}\n"),
        Code::RequiredField,
        &format!("{p}.exec.command"),
    );
    expect(
        &format!("{T}probe: {{exec: {{command: [\"\"]}}}}\n"),
        Code::InvalidValue,
        &format!("{p}.exec.command[0]"),
    );
    expect(
        &format!("{T}probe: {{grpc: {{service: s}}}}\n"),
        Code::RequiredField,
        &format!("{p}.grpc.port"),
    );
}
