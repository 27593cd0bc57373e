use super::*;
use weft_xds::pb::envoy::config::route::v3::route_action::hash_policy::{
    ConnectionProperties, Cookie as XdsCookie, Header, QueryParameter,
};

fn header(name: &str, terminal: bool) -> XdsHashPolicy {
    XdsHashPolicy {
        policy_specifier: Some(PolicySpecifier::Header(Header {
            header_name: name.into(),
            ..Default::default()
        })),
        terminal,
    }
}

fn cookie(name: &str, ttl_secs: Option<i64>) -> XdsHashPolicy {
    XdsHashPolicy {
        policy_specifier: Some(PolicySpecifier::Cookie(XdsCookie {
            name: name.into(),
            ttl: ttl_secs.map(|s| weft_xds::pb::google::protobuf::Duration {
                seconds: s,
                nanos: 0,
            }),
            path: "/".into(),
            ..Default::default()
        })),
        terminal: false,
    }
}

fn policy(p: &[XdsHashPolicy]) -> HashPolicy {
    HashPolicy::try_from(p).expect("converts")
}

fn key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> RequestKey<'a> {
    RequestKey {
        headers,
        authority: "reviews:9080",
        path: "/reviews/0",
        method: "GET",
        query,
        client: Some("127.0.0.7:40000".parse().expect("addr")),
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

#[test]
fn header_hash_is_xxhash64_of_the_value() {
    let p = policy(&[header("x-user", false)]);
    let h = headers(&[("x-user", "jason")]);
    assert_eq!(p.compute(&key(&h, None)).hash, Some(xxhash64(b"jason", 0)));
    assert_eq!(
        p.compute(&key(&headers(&[]), None)).hash,
        None,
        "absent: no hash"
    );
    // Several values: sorted, then chained, so their order doesn't matter.
    let ab = headers(&[("x-user", "a"), ("x-user", "b")]);
    let ba = headers(&[("x-user", "b"), ("x-user", "a")]);
    assert_eq!(p.compute(&key(&ab, None)), p.compute(&key(&ba, None)));
    assert_eq!(
        p.compute(&key(&ab, None)).hash,
        Some(xxhash64(b"b", xxhash64(b"a", 0)))
    );
    // Pseudo-headers.
    let p = policy(&[header(":authority", false)]);
    assert_eq!(
        p.compute(&key(&h, None)).hash,
        Some(xxhash64(b"reviews:9080", 0))
    );
}

#[test]
fn policies_combine_and_terminal_stops() {
    let h = headers(&[("a", "1"), ("b", "2")]);
    let (ha, hb) = (xxhash64(b"1", 0), xxhash64(b"2", 0));
    let both = policy(&[header("a", false), header("b", false)]);
    assert_eq!(
        both.compute(&key(&h, None)).hash,
        Some(ha.rotate_left(1) ^ hb)
    );
    let first = policy(&[header("a", true), header("b", false)]);
    assert_eq!(first.compute(&key(&h, None)).hash, Some(ha));
    // A terminal policy that finds nothing doesn't stop the list.
    let skip = policy(&[header("missing", true), header("b", false)]);
    assert_eq!(skip.compute(&key(&h, None)).hash, Some(hb));
}

#[test]
fn cookie_is_read_or_made_up_with_set_cookie() {
    let p = policy(&[cookie("session", Some(60))]);
    let h = headers(&[("cookie", "a=1; session=\"abc\"; b=2")]);
    let got = p.compute(&key(&h, None));
    assert_eq!(got.hash, Some(xxhash64(b"abc", 0)));
    assert_eq!(got.set_cookie, None);
    // Missing, with a ttl: one is made up and hashed.
    let got = p.compute(&key(&headers(&[]), None));
    let set = got.set_cookie.expect("set-cookie");
    let set = set.to_str().expect("ascii");
    let value = set
        .strip_prefix("session=\"")
        .and_then(|v| v.split('"').next())
        .expect("quoted value");
    assert_eq!(value.len(), 16);
    assert_eq!(got.hash, Some(xxhash64(value.as_bytes(), 0)));
    assert!(set.ends_with("\"; Max-Age=60; Path=/; HttpOnly"), "{set}");
    // Sending it back gives the same hash, and no new cookie.
    let back = headers(&[("cookie", &format!("session={value}"))]);
    let again = p.compute(&key(&back, None));
    assert_eq!(again.hash, got.hash);
    assert_eq!(again.set_cookie, None);
    // Zero ttl: a session cookie (no Max-Age); no ttl: no cookie at all.
    let session = policy(&[cookie("s", Some(0))]).compute(&key(&headers(&[]), None));
    let set = session.set_cookie.expect("set-cookie");
    assert!(!set.to_str().expect("ascii").contains("Max-Age"));
    let none = policy(&[cookie("s", None)]).compute(&key(&headers(&[]), None));
    assert_eq!(none, Hashed::default());
}

#[test]
fn source_ip_and_query_parameter() {
    let p = policy(&[XdsHashPolicy {
        policy_specifier: Some(PolicySpecifier::ConnectionProperties(
            ConnectionProperties { source_ip: true },
        )),
        terminal: false,
    }]);
    let h = headers(&[]);
    assert_eq!(
        p.compute(&key(&h, None)).hash,
        Some(xxhash64(b"127.0.0.7", 0))
    );
    let p = policy(&[XdsHashPolicy {
        policy_specifier: Some(PolicySpecifier::QueryParameter(QueryParameter {
            name: "user".into(),
        })),
        terminal: false,
    }]);
    assert_eq!(
        p.compute(&key(&h, Some("a=1&user=jason&b"))).hash,
        Some(xxhash64(b"jason", 0))
    );
    assert_eq!(p.compute(&key(&h, Some("a=1"))).hash, None);
    assert_eq!(p.compute(&key(&h, None)).hash, None);
}

#[test]
fn bad_policies_are_rejected() {
    assert!(HashPolicy::try_from(&[header("bad header", false)][..]).is_err());
    assert!(HashPolicy::try_from(&[cookie("bad;name", Some(1))][..]).is_err());
    assert!(HashPolicy::try_from(&[][..]).expect("empty").is_empty());
}

proptest::proptest! {
    /// Cookie headers and query strings are the client's: whatever they
    /// hold, hashing doesn't panic, and a cookie given is what is hashed.
    #[test]
    fn arbitrary_cookies_and_queries_hash_without_panicking(
        raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        query in ".{0,64}",
        value in "[a-zA-Z0-9]{1,16}",
    ) {
        let p = policy(&[
            cookie("session", Some(60)),
            XdsHashPolicy {
                policy_specifier: Some(PolicySpecifier::QueryParameter(QueryParameter {
                    name: "user".into(),
                })),
                terminal: false,
            },
        ]);
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&raw) {
            h.append(header::COOKIE, v);
        }
        let _ = p.compute(&key(&h, Some(&query)));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_str(&format!("x=1; session={value}")).expect("ascii"));
        let only_cookie = policy(&[cookie("session", Some(60))]);
        proptest::prop_assert_eq!(
            only_cookie.compute(&key(&h, None)).hash,
            Some(xxhash64(value.as_bytes(), 0))
        );
    }
}
