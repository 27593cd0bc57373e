use super::*;
use crate::load::Loaded;
use crate::test_util::{self, clean, load};

/// A Gateway with `spec` (flow YAML on one line).
fn load_gw(spec: &str) -> Loaded {
    load(&format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: istio-system}}\nspec: {spec}\n"
    ))
}

/// A Gateway with one server.
fn server(s: &str) -> Loaded {
    load_gw(&format!(
        "{{selector: {{istio: ingressgateway}}, servers: [{{{s}}}]}}"
    ))
}

#[track_caller]
fn expect(l: Loaded, code: Code, path: &str) -> Loaded {
    test_util::expect(&l, code, path);
    l
}

const HTTP80: &str = "port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']";

const FULL: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: public
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - name: http
    port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/bookinfo.example.com", "./admin.example.com"]
    tls: {httpsRedirect: true}
  - name: https
    port: {number: 443, name: https, protocol: HTTPS}
    bind: 0.0.0.0
    hosts: ["shop/*.example.com", "*"]
    tls:
      mode: SIMPLE
      credentialName: example-cert
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES128-GCM-SHA256]
  - name: passthrough
    port: {number: 443, name: tls-passthrough, protocol: TLS}
    bind: 0.0.0.0
    hosts: [db.example.com]
    tls: {mode: PASSTHROUGH}
  - name: mtls
    port: {number: 8443, name: mtls, protocol: https}
    hosts: [api.example.com, 192.168.1.10]
    tls:
      mode: MUTUAL
      serverCertificate: /etc/certs/server.pem
      privateKey: /etc/certs/key.pem
      caCertificates: /etc/certs/ca.pem
      caCrl: /etc/certs/crl.pem
      subjectAltNames: [spiffe://cluster.local/ns/a/sa/b]
      verifyCertificateSpki: [sJUDQ4AmJPQ6kgT/yb1y/sVhCEJ1fuf4AqnxVa9oXrU=]
      verifyCertificateHash: [a8e11e9e7b0b0c95a5a3c7d2fc2fb9dbc3f6e66d61c5e2e3b8a7c1f0d3e2b1a0]
  - name: optional
    port: {number: 9443, name: https-optional, protocol: HTTPS}
    hosts: [opt.example.com]
    tls:
      mode: OPTIONAL_MUTUAL
      tlsCertificates:
      - {serverCertificate: /etc/rsa/cert.pem, privateKey: /etc/rsa/key.pem}
      - {serverCertificate: /etc/ecdsa/cert.pem, privateKey: /etc/ecdsa/key.pem}
      caCertificates: /etc/certs/ca.pem
  - name: multi
    port: {number: 9444, name: https-multi, protocol: HTTPS}
    hosts: [multi.example.com]
    tls: {mode: SIMPLE, credentialNames: [rsa-cert, ecdsa-cert]}
  - name: cross-network
    port: {number: 15443, name: tls-auto, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
  - name: mesh-mtls
    port: {number: 15012, name: tls-istio, protocol: TLS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - name: grpc
    port: {number: 8080, name: grpc, protocol: GRPC}
    hosts: [grpc.example.com]
  - name: grpc-web
    port: {number: 8080, name: grpc-web, protocol: GRPC-WEB}
    hosts: [web.example.com]
  - name: tcp
    port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - name: mongo
    port: {number: 27017, name: mongo, protocol: MONGO}
    hosts: [mongo.example.com]
  - name: uds
    port: {number: 0, name: uds, protocol: HTTP2}
    bind: unix:///var/run/gateway.sock
    hosts: ["*.example.com"]
"#;

#[test]
fn fully_populated_gateway_is_clean() {
    let l = load(FULL);
    clean(&l);
    let gw = l.resources[0].spec_as::<Gateway>().expect("a Gateway");
    assert_eq!(
        gw.selector.get("istio").map(String::as_str),
        Some("ingressgateway")
    );
    assert_eq!(gw.servers.len(), 13);
    let https = &gw.servers[1];
    assert_eq!(https.bind, "0.0.0.0");
    assert_eq!(
        https.port.as_ref().map(ServerPort::protocol),
        Some(Protocol::Https)
    );
    let tls = https.tls.as_ref().expect("tls");
    assert_eq!(tls.mode, ServerTlsMode::Simple);
    assert_eq!(tls.credential_name, "example-cert");
    assert!(gw.servers[0].tls.as_ref().is_some_and(|t| t.https_redirect));
    assert_eq!(
        gw.servers[3].port.as_ref().map(ServerPort::protocol),
        Some(Protocol::Https)
    );
    assert_eq!(gw.servers[12].port.as_ref().map(|p| p.number), Some(0));
}

#[test]
fn needs_servers() {
    // Istio's galley sample.
    let l = load(
        "apiVersion: networking.istio.io/v1beta1\nkind: Gateway\nmetadata:\n  name: invalid-gateway\nspec:\n  selector:\n    istio: ingressgateway\n",
    );
    let l = expect(l, Code::RequiredField, "spec.servers");
    assert_eq!(
        l.diagnostics[0].message,
        "gateway must have at least one server"
    );
    expect(
        load_gw("{servers: []}"),
        Code::RequiredField,
        "spec.servers",
    );
}

#[test]
fn selector_labels() {
    expect(
        load_gw(&format!(
            "{{selector: {{istio: '*'}}, servers: [{{{HTTP80}}}]}}"
        )),
        Code::InvalidValue,
        "spec.selector[istio]",
    );
}

#[test]
fn server_hosts() {
    let port = "port: {number: 80, name: http, protocol: HTTP}";
    expect(server(port), Code::RequiredField, "spec.servers[0].hosts");
    for bad in [
        "reviews",
        "'~/a.example.com'",
        "'a/'",
        "'/a.com'",
        "'Bad_NS/a.com'",
        "'*foo.example.com'",
        "'a.*.com'",
        "'*.*.com'",
        "'a_b.example.com'",
        "ns/short",
    ] {
        expect(
            server(&format!("{port}, hosts: [{bad}]")),
            Code::InvalidValue,
            "spec.servers[0].hosts[0]",
        );
    }
    clean(&server(&format!(
        "{port}, hosts: ['*/*', './a.example.com', 'ns/*.example.com', '::1']"
    )));
}

#[test]
fn server_ports() {
    let hosts = "hosts: ['*']";
    expect(server(hosts), Code::RequiredField, "spec.servers[0].port");
    let l = expect(
        server(&format!(
            "port: {{number: 80, name: http, protocol: HTTPX}}, {hosts}"
        )),
        Code::InvalidValue,
        "spec.servers[0].port.protocol",
    );
    assert!(
        l.diagnostics[0]
            .message
            .starts_with("invalid protocol \"HTTPX\"")
    );
    expect(
        server(&format!("port: {{number: 80, name: http}}, {hosts}")),
        Code::RequiredField,
        "spec.servers[0].port.protocol",
    );
    expect(
        server(&format!("port: {{name: http, protocol: HTTP}}, {hosts}")),
        Code::InvalidValue,
        "spec.servers[0].port.number",
    );
    expect(
        server(&format!(
            "port: {{number: 70000, name: http, protocol: HTTP}}, {hosts}"
        )),
        Code::InvalidValue,
        "spec.servers[0].port.number",
    );
    expect(
        server(&format!(
            "port: {{number: 80, name: http, protocol: HTTP}}, bind: 'unix:///run/gw.sock', {hosts}"
        )),
        Code::InvalidValue,
        "spec.servers[0].port.number",
    );
    expect(
        server(&format!(
            "port: {{number: 80, name: http, protocol: HTTP, targetPort: 8080}}, {hosts}"
        )),
        Code::InvalidValue,
        "spec.servers[0].port.targetPort",
    );
    expect(
        server(&format!("port: {{number: 80, protocol: HTTP}}, {hosts}")),
        Code::RequiredField,
        "spec.servers[0].port.name",
    );
    expect(
        server(&format!(
            "port: {{number: 53, name: dns, protocol: UDP}}, {hosts}"
        )),
        Code::NotSupported,
        "spec.servers[0].port.protocol",
    );
}

#[test]
fn binds() {
    expect(
        server(&format!("{HTTP80}, bind: localhost")),
        Code::InvalidValue,
        "spec.servers[0].bind",
    );
    expect(
        server(&format!("{HTTP80}, bind: 10.0.0.0/8")),
        Code::InvalidValue,
        "spec.servers[0].bind",
    );
    expect(
        server(
            "port: {number: 0, name: uds, protocol: HTTP}, bind: 'unix://relative/path', hosts: ['*']",
        ),
        Code::InvalidValue,
        "spec.servers[0].bind",
    );
    clean(&server(
        "port: {number: 0, name: uds, protocol: HTTP}, bind: 'unix://@abstract', hosts: ['*']",
    ));
    clean(&server(&format!("{HTTP80}, bind: '::'")));
}

#[test]
fn protocol_and_tls() {
    let hosts = "hosts: ['*.example.com']";
    expect(
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}, {hosts}"
        )),
        Code::RequiredField,
        "spec.servers[0].tls",
    );
    expect(
        server(&format!(
            "port: {{number: 443, name: tls, protocol: TLS}}, {hosts}"
        )),
        Code::RequiredField,
        "spec.servers[0].tls",
    );
    expect(
        server(&format!(
            "{HTTP80}, tls: {{mode: SIMPLE, credentialName: c}}"
        )),
        Code::InvalidValue,
        "spec.servers[0].tls",
    );
    expect(
        server(&format!(
            "{HTTP80}, tls: {{httpsRedirect: true, serverCertificate: /c.pem}}"
        )),
        Code::InvalidValue,
        "spec.servers[0].tls",
    );
    expect(
        server(&format!(
            "port: {{number: 31400, name: tcp, protocol: TCP}}, {hosts}, tls: {{mode: PASSTHROUGH}}"
        )),
        Code::InvalidValue,
        "spec.servers[0].tls",
    );
    let l = expect(
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}, {hosts}, tls: {{mode: PASSTHROUGH, httpsRedirect: true}}"
        )),
        Code::Suspicious,
        "spec.servers[0].tls.httpsRedirect",
    );
    assert_eq!(l.resources.len(), 1);
    // The shared ServerTlsSettings rules apply too.
    expect(
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}, {hosts}, tls: {{mode: SIMPLE}}"
        )),
        Code::RequiredField,
        "spec.servers[0].tls.serverCertificate",
    );
}

#[test]
fn gateway_tls_rules() {
    let tls = |t: &str| {
        server(&format!(
            "port: {{number: 443, name: https, protocol: HTTPS}}, hosts: ['*.example.com'], tls: {{{t}}}"
        ))
    };
    for field in [
        "credentialName: c",
        "serverCertificate: /c.pem",
        "caCertificates: /ca.pem",
    ] {
        let name = field.split(':').next().unwrap_or_default();
        expect(
            tls(&format!("mode: ISTIO_MUTUAL, {field}")),
            Code::ConflictingFields,
            &format!("spec.servers[0].tls.{name}"),
        );
    }
    let l = expect(
        tls("mode: PASSTHROUGH, credentialName: c"),
        Code::Suspicious,
        "spec.servers[0].tls.mode",
    );
    assert_eq!(l.resources.len(), 1);
    expect(
        tls("mode: MUTUAL, credentialName: c, caCrl: /crl.pem"),
        Code::ConflictingFields,
        "spec.servers[0].tls.caCrl",
    );
    expect(
        tls("mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem"),
        Code::InvalidValue,
        "spec.servers[0].tls.caCrl",
    );
    expect(
        tls("mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0"),
        Code::Suspicious,
        "spec.servers[0].tls.minProtocolVersion",
    );
    expect(
        tls("mode: SIMPLE, credentialName: c, cipherSuites: [A, B, A]"),
        Code::Suspicious,
        "spec.servers[0].tls.cipherSuites[2]",
    );
    expect(
        tls(
            "mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, tlsCertificates: [{serverCertificate: /d.pem, privateKey: /e.pem}]",
        ),
        Code::ConflictingFields,
        "spec.servers[0].tls.tlsCertificates",
    );
}

#[test]
fn rules_across_servers() {
    let two = |a: &str, b: &str| load_gw(&format!("{{servers: [{{{a}}}, {{{b}}}]}}"));
    let l = expect(
        two(
            HTTP80,
            "port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']",
        ),
        Code::InvalidValue,
        "spec.servers[1].port.name",
    );
    assert_eq!(
        l.diagnostics[0].message,
        "port names in servers must be unique: duplicate name http"
    );
    let l = expect(
        two(
            HTTP80,
            "port: {number: 80, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: PASSTHROUGH}",
        ),
        Code::ConflictingFields,
        "spec.servers[1].port",
    );
    assert!(
        l.diagnostics[0]
            .message
            .starts_with("port 80 is already used by servers[0] with protocol HTTP")
    );
    expect(
        two(
            "port: {number: 9000, name: tcp-a, protocol: TCP}, hosts: ['*']",
            "port: {number: 9000, name: tcp-b, protocol: TCP}, hosts: [a.example.com]",
        ),
        Code::ConflictingFields,
        "spec.servers[1].port",
    );
    // Different binds do not share a port.
    clean(&two(
        "port: {number: 9000, name: tcp-a, protocol: TCP}, hosts: ['*'], bind: 10.0.0.1",
        "port: {number: 9000, name: tcp-b, protocol: TCP}, hosts: ['*'], bind: 10.0.0.2",
    ));
    // HTTP-family servers merge.
    clean(&two(
        HTTP80,
        "port: {number: 80, name: http2, protocol: HTTP2}, hosts: [a.example.com]",
    ));
    let l = expect(
        two(
            &format!("name: main, {HTTP80}"),
            "name: main, port: {number: 81, name: http81, protocol: HTTP}, hosts: ['*']",
        ),
        Code::Suspicious,
        "spec.servers[1].name",
    );
    assert_eq!(l.resources.len(), 1);
}

#[test]
fn default_endpoint_is_not_used() {
    let l = expect(
        server(&format!("{HTTP80}, defaultEndpoint: '127.0.0.1:8080'")),
        Code::NotSupported,
        "spec.servers[0].defaultEndpoint",
    );
    assert_eq!(l.resources.len(), 1);
}
