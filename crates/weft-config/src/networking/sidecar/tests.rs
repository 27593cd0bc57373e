use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, lines, load_spec};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1", "Sidecar", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

#[track_caller]
fn clean(spec: &str) {
    test_util::clean(&load(spec));
}

const FULL: &str = r#"workloadSelector: {labels: {app: ratings}}
ingress:
- port: {number: 9080, protocol: HTTP, name: http}
  bind: 0.0.0.0
  captureMode: IPTABLES
  defaultEndpoint: 127.0.0.1:8080
  tls: {mode: SIMPLE, serverCertificate: /etc/c.pem, privateKey: /etc/k.pem}
  connectionPool: {http: {http1MaxPendingRequests: 10}, tcp: {maxConnections: 5}}
- port: {number: 9443, protocol: TCP, name: tcp}
  defaultEndpoint: unix:///var/run/app.sock
- port: {number: 9090, protocol: GRPC, name: grpc}
  defaultEndpoint: "[::1]:9091"
egress:
- port: {number: 0, protocol: HTTP, name: uds}
  bind: unix:///var/run/egress.sock
  captureMode: NONE
  hosts: [istio-system/*]
- port: {number: 3306, protocol: MYSQL, name: mysql}
  bind: 127.0.0.1
  captureMode: NONE
  hosts: ["*/mysql.prod.svc.cluster.local"]
- hosts: ["./*", "istio-system/*", "~/*", "prod/*.example.com"]
inboundConnectionPool: {http: {http1MaxPendingRequests: 100}}
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy: {host: egress.istio-system.svc.cluster.local, subset: v1, port: {number: 443}}
"#;

#[test]
fn fully_populated_sidecar_loads_clean() {
    let l = load(FULL);
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    let sc = l.resources[0].spec_as::<Sidecar>().expect("a Sidecar");
    assert_eq!(sc.ingress[0].capture_mode, CaptureMode::Iptables);
    assert_eq!(sc.egress[2].port, None);
    let otp = sc.outbound_traffic_policy.as_ref().expect("policy");
    assert_eq!(otp.mode, OutboundTrafficMode::AllowAny);
    assert_eq!(
        otp.egress_proxy
            .as_ref()
            .and_then(|p| p.port.as_ref())
            .map(|p| p.number),
        Some(443)
    );
}

#[test]
fn workload_selector() {
    expect(
        "workloadSelector: {labels: {app: \"*\"}}\negress: [{hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.workloadSelector.labels[app]",
    );
    expect(
        "workloadSelector: {}\negress: [{hosts: [./*]}]\n",
        Code::Suspicious,
        "spec.workloadSelector",
    );
}

#[test]
fn ingress_ports() {
    let i = "spec.ingress[0]";
    expect(
        "ingress: [{defaultEndpoint: \"127.0.0.1:80\"}]\n",
        Code::RequiredField,
        &format!("{i}.port"),
    );
    expect(
        "ingress: [{port: {number: 80, protocol: HTTP, name: http, targetPort: 81}}]\n",
        Code::InvalidValue,
        &format!("{i}.port.targetPort"),
    );
    expect(
        "ingress: [{port: {number: 80, name: \"h_1\"}}]\n",
        Code::InvalidValue,
        &format!("{i}.port.name"),
    );
    expect(
        "ingress: [{port: {number: 80, protocol: FTP}}]\n",
        Code::InvalidValue,
        &format!("{i}.port.protocol"),
    );
    expect(
        "ingress: [{port: {number: 0, protocol: HTTP}}]\n",
        Code::InvalidValue,
        &format!("{i}.port.number"),
    );
    expect(
        "ingress: [{port: {number: 70000}}]\n",
        Code::InvalidValue,
        &format!("{i}.port.number"),
    );
    expect(
        "ingress: [{port: {number: 80}, bind: \"unix:///sock\"}]\n",
        Code::InvalidValue,
        &format!("{i}.bind"),
    );
    expect(
        "ingress: [{port: {number: 80}}, {port: {number: 80}}]\n",
        Code::InvalidValue,
        "spec.ingress[1].port.number",
    );
}

#[test]
fn default_endpoint() {
    let d = "spec.ingress[0].defaultEndpoint";
    let spec =
        |ep: &str| format!("ingress: [{{port: {{number: 80}}, defaultEndpoint: \"{ep}\"}}]\n");
    for ok in [
        "127.0.0.1:8080",
        "0.0.0.0:8080",
        "[::1]:8080",
        "[::]:8080",
        ":8080",
        "unix://@app",
    ] {
        clean(&spec(ok));
    }
    expect(&spec("10.0.0.1:8080"), Code::InvalidValue, d);
    expect(&spec("127.0.0.1"), Code::InvalidValue, d);
    expect(&spec("127.0.0.1:http"), Code::InvalidValue, d);
    expect(&spec("127.0.0.1:0"), Code::InvalidValue, d);
    expect(&spec("unix://relative.sock"), Code::InvalidValue, d);
}

#[test]
fn ingress_tls_and_pools() {
    let t = "spec.ingress[0].tls";
    let spec = |tls: &str| {
        format!(
            "ingress: [{{port: {{number: 443, protocol: HTTPS}}, tls: {{serverCertificate: /c, privateKey: /k, {tls}}}}}]\n"
        )
    };
    clean(&spec("mode: SIMPLE"));
    expect(
        &spec("mode: SIMPLE, subjectAltNames: [a]"),
        Code::InvalidValue,
        &format!("{t}.subjectAltNames"),
    );
    expect(
        &spec("mode: SIMPLE, httpsRedirect: true"),
        Code::InvalidValue,
        &format!("{t}.httpsRedirect"),
    );
    expect(
        "ingress: [{port: {number: 443}, tls: {mode: SIMPLE, credentialName: cert}}]\n",
        Code::InvalidValue,
        t,
    );
    expect(
        &spec("mode: ISTIO_MUTUAL"),
        Code::InvalidValue,
        &format!("{t}.mode"),
    );
    expect(
        &spec("mode: MUTUAL"),
        Code::RequiredField,
        &format!("{t}.caCertificates"),
    );
    expect(
        "ingress: [{port: {number: 5432, protocol: TCP}, connectionPool: {http: {maxRetries: 1}}}]\n",
        Code::Suspicious,
        "spec.ingress[0].connectionPool.http",
    );
    expect(
        "ingress: [{port: {number: 80}, connectionPool: {}}]\n",
        Code::InvalidValue,
        "spec.ingress[0].connectionPool",
    );
    expect(
        "inboundConnectionPool: {tcp: {connectTimeout: 0s}}\n",
        Code::InvalidValue,
        "spec.inboundConnectionPool.tcp.connectTimeout",
    );
}

#[test]
fn egress_listeners() {
    expect(
        "egress: [{hosts: [./*]}, {hosts: [a/*]}]\n",
        Code::InvalidValue,
        "spec.egress[0]",
    );
    expect(
        "egress: [{port: {number: 80}, hosts: [./*]}, {hosts: [./*]}, {hosts: [a/*]}]\n",
        Code::InvalidValue,
        "spec.egress[2]",
    );
    expect(
        "egress: [{port: {number: 80}}]\n",
        Code::RequiredField,
        "spec.egress[0].hosts",
    );
    expect(
        "egress: [{port: {number: 0, protocol: HTTP}, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].bind",
    );
    expect(
        "egress: [{port: {number: 0}, bind: \"unix:///s\", captureMode: IPTABLES, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].captureMode",
    );
    expect(
        "egress:\n- {port: {number: 0}, bind: \"unix:///s\", hosts: [./*]}\n- {port: {number: 0}, bind: \"unix:///s\", hosts: [./*]}\n",
        Code::InvalidValue,
        "spec.egress[1].bind",
    );
    expect(
        "egress:\n- {port: {number: 80}, hosts: [./*]}\n- {port: {number: 80}, hosts: [./*]}\n",
        Code::InvalidValue,
        "spec.egress[1].port.number",
    );
    expect(
        "egress: [{port: {number: 80}, bind: not-an-ip, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].bind",
    );
    expect(
        "egress: [{port: {number: 80, targetPort: 8080}, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].port.targetPort",
    );
    expect(
        "egress: [{port: {number: 80, protocol: XYZ}, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].port.protocol",
    );
    expect(
        "egress: [{captureMode: SOMETIMES, hosts: [./*]}]\n",
        Code::InvalidValue,
        "spec.egress[0].captureMode",
    );
}

#[test]
fn egress_hosts() {
    let h = "spec.egress[0].hosts[0]";
    let spec = |host: &str| format!("egress: [{{hosts: [\"{host}\"]}}]\n");
    for ok in [
        "*/*",
        "./*",
        "~/*",
        "prod/*",
        "prod/*.example.com",
        "*/api.example.com",
        // Istio's ValidateWildcardDomain allows a partial wildcard first label.
        "prod/*x.example.com",
    ] {
        clean(&spec(ok));
    }
    expect(&spec("api.example.com"), Code::InvalidValue, h);
    expect(&spec("/api.example.com"), Code::InvalidValue, h);
    expect(&spec("prod/"), Code::InvalidValue, h);
    expect(&spec("Prod_NS/*"), Code::InvalidValue, h);
    expect(&spec("prod/reviews"), Code::InvalidValue, h);
    expect(&spec("prod/a.*.example.com"), Code::InvalidValue, h);
    expect(&spec("prod/a..b"), Code::InvalidValue, h);
    expect(
        "egress: [{hosts: [\"prod/a.example.com\", \"prod/a.example.com\"]}]\n",
        Code::Suspicious,
        "spec.egress[0].hosts[1]",
    );
    expect(
        "egress: [{hosts: [\"./*\", \"ns/a.example.com\"]}]\n",
        Code::Suspicious,
        "spec.egress[0].hosts[1]",
    );
    expect(
        "egress: [{hosts: [\"*/*\", \"prod/*\"]}]\n",
        Code::Suspicious,
        "spec.egress[0].hosts",
    );
}

#[test]
fn outbound_traffic_policy() {
    let p = "spec.outboundTrafficPolicy.egressProxy";
    let spec = |mode: &str, proxy: &str| {
        format!("outboundTrafficPolicy: {{mode: {mode}, egressProxy: {{{proxy}}}}}\n")
    };
    clean("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n");
    expect(
        &spec("REGISTRY_ONLY", "host: a.com, port: {number: 80}"),
        Code::InvalidValue,
        p,
    );
    expect(
        &spec("ALLOW_ANY", "port: {number: 80}"),
        Code::RequiredField,
        &format!("{p}.host"),
    );
    expect(
        &spec("ALLOW_ANY", "host: \"*.a.com\", port: {number: 80}"),
        Code::InvalidValue,
        &format!("{p}.host"),
    );
    expect(
        &spec("ALLOW_ANY", "host: a.com"),
        Code::RequiredField,
        &format!("{p}.port"),
    );
    expect(
        &spec("ALLOW_ANY", "host: a.com, port: {number: 0}"),
        Code::InvalidValue,
        &format!("{p}.port.number"),
    );
    expect(
        &spec(
            "ALLOW_ANY",
            "host: a.com, subset: \"v 1\", port: {number: 80}",
        ),
        Code::InvalidValue,
        &format!("{p}.subset"),
    );
    expect(
        "outboundTrafficPolicy: {mode: DENY}\n",
        Code::InvalidValue,
        "spec.outboundTrafficPolicy.mode",
    );
}

#[test]
fn empty_sidecar_is_rejected() {
    expect("{}\n", Code::InvalidValue, "spec");
}
