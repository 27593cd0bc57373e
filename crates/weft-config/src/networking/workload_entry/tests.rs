use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, found, load_spec};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1", "WorkloadEntry", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

#[test]
fn fully_populated_entry_loads_clean() {
    let l = load(
        "address: 10.0.0.5\nports: {http: 8080, grpc: 9090}\nlabels: {app: ratings, version: v1}\nnetwork: vm-net\nlocality: us-east1/us-east1-b/rack7\nweight: 3\nserviceAccount: ratings-sa\n",
    );
    assert!(l.diagnostics.is_empty(), "{:?}", found(&l));
    let we = l.resources[0]
        .spec_as::<WorkloadEntry>()
        .expect("a WorkloadEntry");
    assert_eq!(we.ports.get("grpc"), Some(&9090));
    assert_eq!(we.weight, 3);
    assert_eq!(we.service_account, "ratings-sa");
}

#[test]
fn other_address_kinds_are_accepted() {
    for spec in [
        "address: vm1.example.com\n",
        "address: \"2001:db8::1\"\n",
        "address: unix:///var/run/app.sock\n",
        "address: unix://@abstract\n",
        "network: remote\nlabels: {app: x}\n",
    ] {
        let l = load(spec);
        assert!(!l.has_errors(), "{spec}: {:?}", found(&l));
    }
}

#[test]
fn address_is_required_without_network() {
    expect("labels: {app: x}\n", Code::RequiredField, "spec.address");
    expect("network: remote\n", Code::Suspicious, "spec.address");
}

#[test]
fn bad_addresses_are_rejected() {
    expect(
        "address: \"foo_bar.example.com\"\n",
        Code::InvalidValue,
        "spec.address",
    );
    expect("address: 1.2.3\n", Code::InvalidValue, "spec.address");
    expect(
        "address: \"*.example.com\"\n",
        Code::InvalidValue,
        "spec.address",
    );
    expect(
        "address: unix://relative/path\n",
        Code::InvalidValue,
        "spec.address",
    );
    expect(
        "address: unix:///dir/\n",
        Code::InvalidValue,
        "spec.address",
    );
    expect(
        &format!("address: {}.com\n", "a".repeat(300)),
        Code::InvalidValue,
        "spec.address",
    );
}

#[test]
fn unix_endpoints_have_no_ports() {
    expect(
        "address: unix:///sock\nports: {http: 80}\n",
        Code::InvalidValue,
        "spec.ports",
    );
}

#[test]
fn ports_are_named_and_in_range() {
    expect(
        "address: 1.1.1.1\nports: {http: 0}\n",
        Code::InvalidValue,
        "spec.ports[http]",
    );
    expect(
        "address: 1.1.1.1\nports: {http: 70000}\n",
        Code::InvalidValue,
        "spec.ports[http]",
    );
    expect(
        "address: 1.1.1.1\nports: {my_port: 80}\n",
        Code::InvalidValue,
        "spec.ports[my_port]",
    );
}

#[test]
fn labels_locality_and_service_account_are_checked() {
    expect(
        "address: 1.1.1.1\nlabels: {app: \"a b\"}\n",
        Code::InvalidValue,
        "spec.labels[app]",
    );
    expect(
        "address: 1.1.1.1\nlocality: us//rack\n",
        Code::InvalidValue,
        "spec.locality",
    );
    expect(
        "address: 1.1.1.1\nlocality: us/*\n",
        Code::InvalidValue,
        "spec.locality",
    );
    expect(
        "address: 1.1.1.1\nserviceAccount: Bad_SA\n",
        Code::InvalidValue,
        "spec.serviceAccount",
    );
}

#[test]
fn negative_weight_is_a_type_error() {
    expect(
        "address: 1.1.1.1\nweight: -1\n",
        Code::WrongType,
        "spec.weight",
    );
}

#[test]
fn helpers() {
    assert!(is_name_label("HTTP-web"));
    assert!(!is_name_label("-a"));
    assert!(!is_name_label(""));
    assert_eq!(fqdn_error("a.b.com"), None);
    assert_eq!(fqdn_error("a.b.com."), None);
    assert!(fqdn_error("1.2.3").is_some());
    assert!(fqdn_error("a..b").is_some());
    assert!(fqdn_error("").is_some());
}
