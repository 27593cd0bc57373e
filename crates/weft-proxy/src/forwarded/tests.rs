//! The header rules against the cases of Envoy's
//! `config_http_conn_man_headers` documentation.

use super::*;

const GATEWAY_IP: [u8; 4] = [10, 0, 0, 9];

fn gateway(hops: u32) -> Config {
    Config {
        use_remote_address: true,
        xff_num_trusted_hops: hops,
        ..Config::default()
    }
}

fn down(peer: [u8; 4]) -> Downstream {
    Downstream {
        peer: Some(SocketAddr::from((peer, 40000))),
        local_ip: Some(IpAddr::from(GATEWAY_IP)),
        scheme: "http",
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[test]
fn an_edge_proxy_appends_the_peer_and_marks_external_clients() {
    // A client on the internet, no XFF: the peer is appended, the request
    // is external (edge): external address set, internal controls removed.
    let mut h = headers(&[
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-internal", "true"),
        ("x-request-id", "client-chosen"),
        ("x-forwarded-proto", "https"),
    ]);
    let v = apply(&gateway(0), &down([203, 0, 113, 7]), &mut h);
    assert_eq!(
        v,
        Verdict {
            internal: false,
            edge: true,
            client: Some(IpAddr::from([203, 0, 113, 7]))
        }
    );
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(get(&h, "x-envoy-external-address"), Some("203.0.113.7"));
    assert_eq!(get(&h, "x-envoy-internal"), None);
    assert_eq!(get(&h, "x-envoy-retry-on"), None);
    // Not trusted from an external client: overwritten.
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    let id = get(&h, "x-request-id").expect("id");
    assert_ne!(id, "client-chosen", "an edge request gets a new ID");
    assert_eq!(id.len(), 36);
    // preserve_external_request_id keeps it.
    let mut h = headers(&[("x-request-id", "client-chosen")]);
    let keep = Config {
        preserve_external_request_id: true,
        ..gateway(0)
    };
    apply(&keep, &down([203, 0, 113, 7]), &mut h);
    assert_eq!(get(&h, "x-request-id"), Some("client-chosen"));
}

#[test]
fn an_internal_peer_without_xff_is_internal() {
    // A peer on loopback: the proxy's own IP is appended; internal.
    let mut h = headers(&[("x-request-id", "abc"), ("x-envoy-retry-on", "5xx")]);
    let v = apply(&gateway(0), &down([127, 0, 0, 1]), &mut h);
    assert!(v.internal && !v.edge);
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.0.9"));
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-envoy-external-address"), None);
    assert_eq!(
        get(&h, "x-request-id"),
        Some("abc"),
        "kept: not an edge request"
    );
    assert_eq!(
        get(&h, "x-envoy-retry-on"),
        Some("5xx"),
        "kept for internal requests"
    );
}

#[test]
fn a_client_sent_xff_is_trusted_only_as_far_as_the_trusted_hops() {
    // With no trusted hops the client's XFF says nothing: the peer is the
    // client, and a request carrying XFF is never internal.
    let mut h = headers(&[("x-forwarded-for", "10.1.2.3")]);
    let v = apply(&gateway(0), &down([192, 168, 1, 5]), &mut h);
    assert_eq!(v.client, Some(IpAddr::from([192, 168, 1, 5])));
    assert!(!v.internal && v.edge);
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.1.2.3,192.168.1.5"));
    assert_eq!(get(&h, "x-envoy-external-address"), Some("192.168.1.5"));
    // One trusted hop (a load balancer in front): the rightmost XFF entry
    // is the client.
    let mut h = headers(&[
        ("x-forwarded-for", "203.0.113.7, 198.51.100.1"),
        ("x-forwarded-proto", "https"),
    ]);
    let v = apply(&gateway(1), &down([192, 168, 1, 5]), &mut h);
    assert_eq!(v.client, Some(IpAddr::from([198, 51, 100, 1])));
    assert_eq!(get(&h, "x-envoy-external-address"), Some("198.51.100.1"));
    assert_eq!(
        get(&h, "x-forwarded-for"),
        Some("203.0.113.7, 198.51.100.1,192.168.1.5")
    );
    assert_eq!(
        get(&h, "x-forwarded-proto"),
        Some("https"),
        "a trusted hop set it"
    );
    // Fewer entries than trusted hops: the peer.
    let mut h = headers(&[("x-forwarded-for", "203.0.113.7")]);
    let v = apply(&gateway(2), &down([192, 168, 1, 5]), &mut h);
    assert_eq!(v.client, Some(IpAddr::from([192, 168, 1, 5])));
    // skip_xff_append leaves the header as it came.
    let mut h = headers(&[("x-forwarded-for", "203.0.113.7")]);
    let skip = Config {
        skip_xff_append: true,
        ..gateway(0)
    };
    apply(&skip, &down([192, 168, 1, 5]), &mut h);
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
}

#[test]
fn a_sidecar_passes_xff_on_and_trusts_a_single_internal_entry() {
    let sidecar = Config::default();
    // No XFF: nothing added, not internal, not edge.
    let mut h = headers(&[("x-envoy-expected-rq-timeout-ms", "100")]);
    let v = apply(&sidecar, &down([127, 0, 0, 1]), &mut h);
    assert!(!v.internal && !v.edge);
    assert_eq!(get(&h, "x-forwarded-for"), None);
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-envoy-expected-rq-timeout-ms"), None);
    assert!(get(&h, "x-request-id").is_some(), "generated when missing");
    // One internal address (a gateway's): internal.
    let mut h = headers(&[
        ("x-forwarded-for", "10.0.0.9"),
        ("x-forwarded-proto", "https"),
    ]);
    let v = apply(&sidecar, &down([127, 0, 0, 1]), &mut h);
    assert!(v.internal);
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.0.9"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"), "kept");
    // Two entries: the rightmost is the client, but not trusted as internal.
    let mut h = headers(&[
        ("x-forwarded-for", "203.0.113.7,10.0.0.9"),
        ("x-envoy-internal", "true"),
    ]);
    let v = apply(&sidecar, &down([127, 0, 0, 1]), &mut h);
    assert_eq!(v.client, Some(IpAddr::from(GATEWAY_IP)));
    assert!(!v.internal);
    assert_eq!(
        get(&h, "x-envoy-internal"),
        None,
        "a forged x-envoy-internal goes"
    );
    // An external single entry: not internal.
    let mut h = headers(&[("x-forwarded-for", "203.0.113.7")]);
    assert!(!apply(&sidecar, &down([127, 0, 0, 1]), &mut h).internal);
}

#[test]
fn internal_ranges_and_request_id_settings_are_read_from_the_hcm() {
    use weft_xds::pb::envoy::config::core::v3::CidrRange;
    use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::InternalAddressConfig;
    use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};
    let hcm = HttpConnectionManager {
        use_remote_address: Some(BoolValue { value: true }),
        xff_num_trusted_hops: 1,
        skip_xff_append: true,
        generate_request_id: Some(BoolValue { value: false }),
        preserve_external_request_id: true,
        forward_client_cert_details: ForwardClientCertDetails::AppendForward as i32,
        internal_address_config: Some(InternalAddressConfig {
            cidr_ranges: vec![CidrRange {
                address_prefix: "100.64.7.1".into(),
                prefix_len: Some(UInt32Value { value: 10 }),
            }],
            ..InternalAddressConfig::default()
        }),
        ..HttpConnectionManager::default()
    };
    let c = Config::try_from(&hcm).expect("config");
    assert!(c.use_remote_address && c.skip_xff_append && c.preserve_external_request_id);
    assert!(!c.generate_request_id);
    assert_eq!(c.xff_num_trusted_hops, 1);
    assert_eq!(c.client_cert, ClientCert::AppendForward);
    assert!(c.is_internal(IpAddr::from([100, 100, 0, 1])));
    assert!(
        !c.is_internal(IpAddr::from([10, 0, 0, 1])),
        "only the ranges given"
    );
    // Unset: Envoy's defaults.
    let d = Config::try_from(&HttpConnectionManager::default()).expect("config");
    assert_eq!(d, Config::default());
    assert!(d.is_internal(IpAddr::from([172, 16, 0, 1])));
    assert!(d.is_internal("fd00::1".parse().expect("ip")));
    assert!(d.is_internal("::ffff:10.1.1.1".parse().expect("ip")));
    assert!(!d.is_internal(IpAddr::from([8, 8, 8, 8])));
    // generate_request_id false: none made.
    let mut h = HeaderMap::new();
    apply(
        &Config {
            generate_request_id: false,
            ..Config::default()
        },
        &down([127, 0, 0, 1]),
        &mut h,
    );
    assert!(h.get("x-request-id").is_none());
    let bad = HttpConnectionManager {
        internal_address_config: Some(InternalAddressConfig {
            cidr_ranges: vec![CidrRange {
                address_prefix: "nope".into(),
                prefix_len: None,
            }],
            ..InternalAddressConfig::default()
        }),
        ..HttpConnectionManager::default()
    };
    assert!(Config::try_from(&bad).is_err());
}

#[test]
fn xfcc_is_removed_without_mtls_unless_always_forwarded() {
    let mut h = headers(&[("x-forwarded-client-cert", "By=spiffe://x")]);
    apply(&Config::default(), &down([127, 0, 0, 1]), &mut h);
    assert!(h.get("x-forwarded-client-cert").is_none());
    let mut h = headers(&[("x-forwarded-client-cert", "By=spiffe://x")]);
    let always = Config {
        client_cert: ClientCert::AlwaysForwardOnly,
        ..Config::default()
    };
    apply(&always, &down([127, 0, 0, 1]), &mut h);
    assert_eq!(get(&h, "x-forwarded-client-cert"), Some("By=spiffe://x"));
}

#[test]
fn only_sane_request_ids_are_kept() {
    assert!(valid_request_id(&HeaderValue::from_static("abc-123")));
    assert!(!valid_request_id(&HeaderValue::from_static("")));
    assert!(!valid_request_id(&HeaderValue::from_static("has space")));
    let long = "x".repeat(MAX_REQUEST_ID + 1);
    assert!(!valid_request_id(
        &HeaderValue::from_str(&long).expect("value")
    ));
}
