//! `--call` chains: a reviews instance calling a ratings instance, directly
//! and through an HTTP proxy, with trace headers propagated.

use crate::{Sample, curl};

fn ratings() -> Sample {
    Sample::start(&[
        "--name",
        "ratings",
        "--version",
        "v1",
        "--http",
        "127.0.0.1:0",
    ])
}

/// The JSON echo of the downstream, quoted on reviews' `call:` line.
fn downstream_echo(body: &str) -> serde_json::Value {
    let line = body
        .lines()
        .find(|l| l.starts_with("call: "))
        .unwrap_or_else(|| panic!("no call line in {body}"));
    let (head, json) = line.split_once(" | ").expect("call line with a reply");
    assert!(head.ends_with("-> 200 HTTP/1.1"), "{line}");
    serde_json::from_str(json).expect("downstream json echo")
}

#[test]
fn calls_carry_the_incoming_trace_headers_and_nothing_else() {
    let ratings = ratings();
    let call = format!("{}/ratings/0?format=json", ratings.url());
    let reviews = Sample::start(&[
        "--name",
        "reviews",
        "--version",
        "v2",
        "--http",
        "127.0.0.1:0",
        "--call",
        &call,
    ]);
    let r = curl(&[
        "-H",
        "x-request-id: req-42",
        "-H",
        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "-H",
        "tracestate: congo=t61rcWkgMzE",
        "-H",
        "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7",
        "-H",
        "x-b3-spanid: e457b5a2e4d86bd1",
        "-H",
        "x-b3-parentspanid: 05e3ac9a4f6e3b90",
        "-H",
        "x-b3-sampled: 1",
        "-H",
        "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
        "-H",
        "end-user: jason",
        "-H",
        "x-private: do-not-forward",
        "-H",
        "cookie: session=1",
        &format!("{}/reviews/0", reviews.url()),
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("reviews v2\n"), "{}", r.body);
    let down = downstream_echo(&r.body);
    assert_eq!(down["name"], "ratings");
    assert_eq!(down["target"], "/ratings/0?format=json");
    let h = &down["headers"];
    for (name, value) in [
        ("x-request-id", "req-42"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ("end-user", "jason"),
        ("user-agent", "weft-sample/reviews"),
        ("host", &ratings.addr("http").to_string()),
    ] {
        assert_eq!(h[name], value, "{name} in {h}");
    }
    assert!(
        h.get("x-private").is_none() && h.get("cookie").is_none(),
        "{h}"
    );

    // Without trace headers in, none go out.
    let r = curl(&[&format!("{}/plain", reviews.url())]);
    let h = &downstream_echo(&r.body)["headers"];
    assert!(
        h.get("x-request-id").is_none() && h.get("traceparent").is_none(),
        "{h}"
    );
}

#[test]
fn calls_through_a_proxy_use_absolute_form_and_failures_are_502() {
    // ratings stands in for the proxy: it echoes the request line it got.
    let proxy = ratings();
    let reviews = Sample::start(&[
        "--name",
        "reviews",
        "--http",
        "127.0.0.1:0",
        "--proxy",
        &proxy.url(),
        "--call",
        "http://ratings.shop.svc.cluster.local:9080/ratings/7?format=json",
    ]);
    let r = curl(&["--http2-prior-knowledge", &format!("{}/r", reviews.url())]);
    assert_eq!(r.status, 200, "{}", r.body);
    let down = downstream_echo(&r.body);
    assert_eq!(
        down["target"],
        "http://ratings.shop.svc.cluster.local:9080/ratings/7?format=json"
    );
    assert_eq!(
        down["headers"]["host"],
        "ratings.shop.svc.cluster.local:9080"
    );

    // A call that gets no reply (nothing listens on port 1) makes a 502
    // that says why; an explicit status still wins.
    let broken = Sample::start(&[
        "--name",
        "reviews",
        "--http",
        "127.0.0.1:0",
        "--call",
        "http://127.0.0.1:1/ratings",
        "--call",
        &format!("{}/ok", proxy.url()),
    ]);
    let r = curl(&[&broken.url()]);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.body
            .contains("call: http://127.0.0.1:1/ratings -> error: "),
        "{}",
        r.body
    );
    assert!(
        r.body.contains(&format!(
            "call: {}/ok -> 200 HTTP/1.1 | ratings v1",
            proxy.url()
        )),
        "{}",
        r.body
    );
    assert_eq!(curl(&[&format!("{}/status/418", broken.url())]).status, 418);
}
