use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, found, lines, load_named, load_spec, read_sample, samples};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1", "ServiceEntry", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

#[track_caller]
fn clean(spec: &str) -> Loaded {
    let l = load(spec);
    test_util::clean(&l);
    l
}

const H: &str = "hosts: [api.example.com]\n";

#[test]
fn fully_populated_entries_load_clean() {
    let l = clean(
        "hosts: [api.example.com, www.example.com]
addresses: [10.1.0.0/16, 10.2.0.1]
ports:
- {number: 443, protocol: HTTPS, name: https, targetPort: 8443}
- {number: 80, protocol: HTTP, name: http}
location: MESH_EXTERNAL
resolution: STATIC
endpoints:
- address: 10.2.0.7
  ports: {https: 9443}
  labels: {app: api}
  network: net1
  locality: us-east1/us-east1-b
  weight: 2
  serviceAccount: api
exportTo: [., other]
subjectAltNames: [spiffe://cluster.local/ns/ns/sa/api]
",
    );
    let se = l.resources[0]
        .spec_as::<ServiceEntry>()
        .expect("a ServiceEntry");
    assert_eq!(se.resolution, ServiceResolution::Static);
    assert_eq!(se.ports[0].target_port, 8443);
    assert_eq!(se.endpoints[0].ports.get("https"), Some(&9443));
    clean(
        "hosts: [db.internal]
ports: [{number: 5432, protocol: TCP, name: tcp-pg}]
location: MESH_INTERNAL
resolution: STATIC
workloadSelector: {labels: {app: pg}}
",
    );
    clean(
        "hosts: [\"*.example.com\"]
ports: [{number: 443, protocol: TLS, name: tls}]
resolution: DYNAMIC_DNS
",
    );
}

#[test]
fn ipv6_address_ending_in_double_colon_reads_as_a_string() {
    let l = clean("hosts: [example.com]\naddresses: [1.2.3.4, 001:db8::]\n");
    let se = l.resources[0]
        .spec_as::<ServiceEntry>()
        .expect("a ServiceEntry");
    assert_eq!(
        se.addresses,
        vec!["1.2.3.4".to_string(), "001:db8::".to_string()]
    );
    expect(
        "hosts: [example.com]\naddresses: [{a: b}]\n",
        Code::WrongType,
        "spec.addresses[0]",
    );
}

#[test]
fn hosts() {
    expect("ports: []\n", Code::RequiredField, "spec.hosts");
    expect("hosts: [\"*\"]\n", Code::InvalidValue, "spec.hosts[0]");
    expect("hosts: [\"foo*\"]\n", Code::InvalidValue, "spec.hosts[0]");
    expect(
        "hosts: [\"a.*.com\"]\n",
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    expect("hosts: [1.2.3.4]\n", Code::InvalidValue, "spec.hosts[0]");
    expect(
        "hosts: [\"a_b.com\"]\n",
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    expect("hosts: [\"*x\"]\n", Code::Suspicious, "spec.hosts[0]");
    expect(
        "hosts: [\"*-x.example.com\"]\n",
        Code::Suspicious,
        "spec.hosts[0]",
    );
    clean("hosts: [\"*.example.com\", Example.COM, reviews]\n");
    expect("hosts: [a.com, A.com]\n", Code::Suspicious, "spec.hosts[1]");
}

#[test]
fn workload_selector() {
    expect(
        "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: \"*\"}}\n",
        Code::InvalidValue,
        "spec.workloadSelector.labels[app]",
    );
    expect(
        "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {\"*\": v}}\n",
        Code::InvalidValue,
        "spec.workloadSelector.labels[*]",
    );
    expect(
        "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nendpoints: [{address: 1.2.3.4}]\n",
        Code::ConflictingFields,
        "spec",
    );
    expect(
        "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {}\n",
        Code::Suspicious,
        "spec.workloadSelector",
    );
    expect(
        "hosts: [a.com]\nresolution: DNS\nworkloadSelector: {labels: {app: a}}\n",
        Code::Suspicious,
        "spec.workloadSelector",
    );
}

#[test]
fn addresses() {
    expect(
        &format!("{H}addresses: [1.2.3.4/99]\n"),
        Code::InvalidValue,
        "spec.addresses[0]",
    );
    expect(
        &format!("{H}addresses: [not-an-ip]\n"),
        Code::InvalidValue,
        "spec.addresses[0]",
    );
    expect(
        &format!("{H}addresses: [1.2.3.4/16]\nresolution: DNS\n"),
        Code::InvalidValue,
        "spec.addresses[0]",
    );
    expect(
        &format!("{H}addresses: [\"unix:///sock\"]\n"),
        Code::InvalidValue,
        "spec.addresses[0]",
    );
}

#[test]
fn ports() {
    expect(
        &format!("{H}ports: [{{number: 80}}]\n"),
        Code::RequiredField,
        "spec.ports[0].name",
    );
    expect(
        &format!("{H}ports: [{{number: 80, name: a_b}}]\n"),
        Code::InvalidValue,
        "spec.ports[0].name",
    );
    expect(
        &format!("{H}ports: [{{number: 1, name: a}}, {{number: 12, name: a}}]\n"),
        Code::InvalidValue,
        "spec.ports[1].name",
    );
    expect(
        &format!("{H}ports: [{{number: 1, name: a}}, {{number: 1, name: b}}]\n"),
        Code::InvalidValue,
        "spec.ports[1].number",
    );
    expect(
        &format!("{H}ports: [{{number: 99999, name: a}}]\n"),
        Code::InvalidValue,
        "spec.ports[0].number",
    );
    expect(
        &format!("{H}ports: [{{number: 0, name: a}}]\n"),
        Code::InvalidValue,
        "spec.ports[0].number",
    );
    expect(
        &format!("{H}ports: [{{number: 1, name: a, targetPort: 99999}}]\n"),
        Code::InvalidValue,
        "spec.ports[0].targetPort",
    );
    expect(
        &format!("{H}ports: [{{number: 1, name: a, targetPort: 2}}]\n"),
        Code::Suspicious,
        "spec.ports[0].targetPort",
    );
    expect(
        &format!("{H}ports: [{{number: 1, name: a, protocol: SMTP}}]\n"),
        Code::InvalidValue,
        "spec.ports[0].protocol",
    );
    clean(&format!(
        "{H}ports: [{{number: 1, name: a, protocol: grpc-web}}]\n"
    ));
}

#[test]
fn resolution_rules() {
    expect(
        &format!("{H}endpoints: [{{address: 1.2.3.4}}]\n"),
        Code::InvalidValue,
        "spec.endpoints",
    );
    expect(
        &format!(
            "{H}resolution: DNS_ROUND_ROBIN\nendpoints: [{{address: a.com}}, {{address: b.com}}]\n"
        ),
        Code::InvalidValue,
        "spec.endpoints",
    );
    expect(
        "hosts: [\"*.example.com\"]\nresolution: DNS\n",
        Code::InvalidValue,
        "spec.hosts[0]",
    );
    expect(
        "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 5432, name: pg, protocol: TCP}]\n",
        Code::InvalidValue,
        "spec.ports[0]",
    );
    expect(
        "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 5432, name: pg}]\n",
        Code::InvalidValue,
        "spec.ports[0]",
    );
    expect(
        "hosts: [a.com, b.com]\naddresses: [10.0.0.1]\nresolution: DNS\nports: [{number: 443, name: tls, protocol: TLS}]\n",
        Code::Suspicious,
        "spec",
    );
    expect(
        "hosts: [\"*.a.com\"]\nresolution: DYNAMIC_DNS\nlocation: MESH_INTERNAL\n",
        Code::InvalidValue,
        "spec.location",
    );
    expect(
        "hosts: [a.com]\nresolution: DYNAMIC_DNS\n",
        Code::Suspicious,
        "spec.hosts[0]",
    );
    expect(
        "hosts: [\"*.a.com\"]\nresolution: DYNAMIC_DNS\nendpoints: [{address: 1.1.1.1}]\n",
        Code::Suspicious,
        "spec.endpoints",
    );
}

#[test]
fn endpoints_follow_the_resolution() {
    let ports = "ports: [{number: 80, name: http, protocol: HTTP}]\n";
    expect(
        &format!("{H}{ports}resolution: STATIC\nendpoints: [{{address: vm.example.com}}]\n"),
        Code::InvalidValue,
        "spec.endpoints[0].address",
    );
    clean(&format!(
        "{H}{ports}resolution: STATIC\nendpoints: [{{address: \"unix:///sock\"}}]\n"
    ));
    expect(
        &format!(
            "{H}ports: [{{number: 80, name: a}}, {{number: 81, name: b}}]\nresolution: STATIC\nendpoints: [{{address: \"unix:///sock\"}}]\n"
        ),
        Code::InvalidValue,
        "spec.endpoints[0].address",
    );
    expect(
        &format!("{H}{ports}resolution: DNS\nendpoints: [{{address: \"unix:///sock\"}}]\n"),
        Code::InvalidValue,
        "spec.endpoints[0].address",
    );
    expect(
        &format!("{H}{ports}resolution: DNS\nendpoints: [{{network: n1}}]\n"),
        Code::RequiredField,
        "spec.endpoints[0].address",
    );
    expect(
        &format!(
            "{H}{ports}resolution: DNS\nendpoints: [{{address: a.com, ports: {{grpc: 90}}}}]\n"
        ),
        Code::InvalidValue,
        "spec.endpoints[0].ports[grpc]",
    );
    expect(
        &format!(
            "{H}{ports}resolution: STATIC\nendpoints: [{{address: 1.1.1.1, labels: {{app: \"a b\"}}}}]\n"
        ),
        Code::InvalidValue,
        "spec.endpoints[0].labels[app]",
    );
}

#[test]
fn export_to_and_sans() {
    clean(&format!("{H}exportTo: [\"~\"]\n"));
    expect(
        &format!("{H}exportTo: [\"*\", foo]\n"),
        Code::InvalidValue,
        "spec.exportTo",
    );
    expect(
        &format!("{H}exportTo: [., ns]\n"),
        Code::InvalidValue,
        "spec.exportTo[1]",
    );
    expect(
        &format!("{H}exportTo: [Bad_NS]\n"),
        Code::InvalidValue,
        "spec.exportTo[0]",
    );
    expect(
        &format!("{H}subjectAltNames: [\"\"]\n"),
        Code::InvalidValue,
        "spec.subjectAltNames[0]",
    );
}

#[test]
fn unknown_enum_values_are_rejected_with_choices() {
    let l = load(&format!("{H}resolution: DNS_RR\n"));
    assert_eq!(
        found(&l),
        vec![(Code::InvalidValue, "spec.resolution".to_string())]
    );
    assert!(l.diagnostics[0].message.contains("DNS_ROUND_ROBIN"));
}

// ---- Istio's own samples -------------------------------------------------

/// Documents of a sample file with their `_err:` line (TODO documents that
/// are commented out are uncommented).
fn sample_docs(text: &str) -> Vec<(Option<String>, String)> {
    let mut docs = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let flush = |cur: &mut Vec<&str>, docs: &mut Vec<(Option<String>, String)>| {
        let commented = cur.iter().any(|l| l.starts_with("#_err:"));
        let mut err = None;
        let mut body = String::new();
        for l in cur.drain(..) {
            let l = if commented {
                l.strip_prefix('#').unwrap_or(l)
            } else {
                l
            };
            if let Some(e) = l.strip_prefix("_err:") {
                err = Some(e.trim().trim_matches(['"', '\'']).to_string());
            } else if !l.trim_start().starts_with('#') {
                body.push_str(l);
                body.push('\n');
            }
        }
        if body.contains("kind:") {
            docs.push((err, body));
        }
    };
    for l in text.lines() {
        if l == "---" || l == "#---" {
            flush(&mut cur, &mut docs);
        } else {
            cur.push(l);
        }
    }
    flush(&mut cur, &mut docs);
    docs
}

#[test]
fn istio_service_entry_samples() {
    let dir = samples();
    for f in [
        "crds/serviceentry-valid.yaml",
        "datasets-head/networking-v1-ServiceEntry.yaml",
    ] {
        for (_, doc) in sample_docs(&read_sample(&dir, f)) {
            let l = load_named(&doc, f);
            assert!(!l.has_errors(), "{f}\n{doc}\n{:#?}", lines(&l));
            assert_eq!(l.resources.len(), 1);
        }
    }
    let invalid = sample_docs(&read_sample(&dir, "crds/serviceentry-invalid.yaml"));
    assert_eq!(invalid.len(), 15, "every document, including the TODO ones");
    for (err, doc) in invalid {
        let err = err.expect("invalid documents carry _err");
        let l = load_named(&doc, "se.yaml");
        assert!(l.has_errors() && l.resources.is_empty(), "{doc}");
        if err != "TODO" {
            let wanted = err
                .split_once(": Required value")
                .map_or(err.as_str(), |(p, _)| p);
            assert!(
                l.diagnostics.iter().any(|d| d.is_error()
                    && (d.message.contains(wanted)
                        || d.path.as_ref().is_some_and(|p| p.to_string() == wanted))),
                "{err}\n{:#?}",
                lines(&l)
            );
        }
    }
    let f = "galley-2021/networking-v1alpha3-ServiceEntry-invalid.yaml";
    let l = load_named(&read_sample(&dir, f), f);
    assert!(
        found(&l).contains(&(Code::RequiredField, "spec.hosts".to_string())),
        "{:#?}",
        lines(&l)
    );
}
