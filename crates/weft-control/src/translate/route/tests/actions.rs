//! Tests of route actions: destinations and splits, retries, timeouts,
//! faults, CORS, mirrors, redirects, direct responses, rewrites, header
//! operations and consistent hashing.

use super::*;
use crate::translate::route::actions::{CORS_FILTER, FAULT_FILTER};

#[test]
fn weighted_split_with_subsets() {
    let routes = reviews_routes(&reviews_vs(
        "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 75}\n    \
         - {destination: {host: reviews, subset: v2}, weight: 25}\n    \
         - {destination: {host: reviews, subset: v3}, weight: 0}\n",
    ));
    assert_eq!(
        weighted(&routes[0]),
        [
            (
                "outbound|9080|v1|reviews.shop.svc.cluster.local".to_string(),
                75
            ),
            (
                "outbound|9080|v2|reviews.shop.svc.cluster.local".to_string(),
                25
            ),
        ]
    );
}

#[test]
fn destination_ports_explicit_or_the_services_only_port() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /r}}]\n    route: [{destination: {host: ratings, port: {number: 9090}}}]\n  \
         - route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v2}}]\n",
    ));
    assert_eq!(
        cluster(&routes[0]),
        "outbound|9090||ratings.shop.svc.cluster.local"
    );
    assert_eq!(
        cluster(&routes[1]),
        "outbound|9080|v2|reviews.shop.svc.cluster.local"
    );
}

#[test]
fn retries_default_explicit_and_disabled() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /default}}]\n    route: [{destination: {host: reviews}}]\n  \
         - match: [{uri: {prefix: /explicit}}]\n    route: [{destination: {host: reviews}}]\n    \
         retries: {attempts: 4, perTryTimeout: 1s, retryOn: '5xx,429,reset', retryRemoteLocalities: true}\n  \
         - route: [{destination: {host: reviews}}]\n    retries: {attempts: 0}\n",
    ));
    let default = action(&routes[0]).retry_policy.clone().expect("default");
    assert_eq!(default.num_retries.map(|n| n.value), Some(2));
    assert_eq!(
        default.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert_eq!(default.retriable_status_codes, [503]);
    assert_eq!(
        default.retry_host_predicate[0].name,
        policies::PREVIOUS_HOSTS_PREDICATE
    );
    let explicit = action(&routes[1]).retry_policy.clone().expect("explicit");
    assert_eq!(explicit.num_retries.map(|n| n.value), Some(4));
    assert_eq!(explicit.retry_on, "5xx,reset,retriable-status-codes");
    assert_eq!(explicit.retriable_status_codes, [429]);
    assert_eq!(
        explicit.per_try_timeout,
        Some(Duration {
            seconds: 1,
            nanos: 0
        })
    );
    assert_eq!(
        explicit.retry_priority.map(|p| p.name).as_deref(),
        Some(policies::PREVIOUS_PRIORITIES)
    );
    assert_eq!(action(&routes[2]).retry_policy, None);
}

#[test]
fn timeout() {
    let routes = reviews_routes(&reviews_vs(
        "  - route: [{destination: {host: reviews}}]\n    timeout: 1.5s\n",
    ));
    let a = action(&routes[0]);
    let limit = Some(Duration {
        seconds: 1,
        nanos: 500_000_000,
    });
    assert_eq!(a.timeout, limit);
    // As Istio's setTimeout: a gRPC call's own deadline applies, within
    // the route's (and with no route timeout, 0: the deadline alone).
    #[allow(deprecated)]
    let grpc = a.max_grpc_timeout;
    assert_eq!(grpc, limit);
    assert_eq!(a.max_stream_duration, None);
    let routes = reviews_routes(&reviews_vs("  - route: [{destination: {host: reviews}}]\n"));
    #[allow(deprecated)]
    let grpc = action(&routes[0]).max_grpc_timeout;
    assert_eq!(grpc, Some(Duration::default()));
}

#[test]
fn fault_injection_is_per_filter_config() {
    let routes = reviews_routes(&reviews_vs(
        "  - route: [{destination: {host: reviews}}]\n    fault:\n      \
         delay: {fixedDelay: 2s, percentage: {value: 12.5}}\n      \
         abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}\n",
    ));
    let any = &routes[0].typed_per_filter_config[FAULT_FILTER];
    let fault: HttpFault = unpack(any).expect("HTTPFault");
    let delay = fault.delay.expect("delay");
    assert_eq!(delay.percentage, Some(millionths(125_000)));
    assert_eq!(
        delay.fault_delay_secifier,
        Some(FaultDelaySecifier::FixedDelay(Duration {
            seconds: 2,
            nanos: 0
        }))
    );
    let abort = fault.abort.expect("abort");
    assert_eq!(abort.error_type, Some(ErrorType::GrpcStatus(14)));
    assert_eq!(abort.percentage, Some(millionths(10_000)));
}

#[test]
fn cors_policy_is_per_filter_config() {
    let routes = reviews_routes(&reviews_vs(
        "  - route: [{destination: {host: reviews}}]\n    corsPolicy:\n      \
         allowOrigins: [{exact: 'https://a.example'}, {prefix: 'https://b.'}]\n      \
         allowMethods: [GET, POST]\n      allowHeaders: [x-a]\n      maxAge: 24h\n      \
         allowCredentials: true\n",
    ));
    let cors: CorsPolicy = unpack(&routes[0].typed_per_filter_config[CORS_FILTER]).expect("cors");
    assert_eq!(cors.allow_origin_string_match.len(), 2);
    assert_eq!(cors.allow_methods, "GET,POST");
    assert_eq!(cors.allow_headers, "x-a");
    assert_eq!(cors.max_age, "86400");
    assert_eq!(cors.allow_credentials.map(|b| b.value), Some(true));
}

#[test]
fn mirrors_with_percentages() {
    let routes = reviews_routes(&reviews_vs(
        "  - route: [{destination: {host: reviews, subset: v1}}]\n    \
         mirrors: [{destination: {host: reviews, subset: v2}, percentage: {value: 50}}, \
         {destination: {host: ratings, port: {number: 9080}}}]\n",
    ));
    let mirrors = &action(&routes[0]).request_mirror_policies;
    let got: Vec<(&str, Option<FractionalPercent>)> = mirrors
        .iter()
        .map(|m| {
            (
                m.cluster.as_str(),
                m.runtime_fraction.as_ref().and_then(|f| f.default_value),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "outbound|9080|v2|reviews.shop.svc.cluster.local",
                Some(millionths(500_000))
            ),
            (
                "outbound|9080||ratings.shop.svc.cluster.local",
                Some(FractionalPercent {
                    numerator: 100,
                    denominator: DenominatorType::Hundred as i32
                })
            ),
        ]
    );
}

#[test]
fn redirect() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /old}}]\n    \
         redirect: {uri: /new, authority: new.example, scheme: https, port: 443, redirectCode: 308}\n  \
         - redirect: {derivePort: FROM_REQUEST_PORT}\n",
    ));
    let Some(Action::Redirect(r)) = &routes[0].action else {
        panic!("redirect");
    };
    assert_eq!(r.host_redirect, "new.example");
    assert_eq!(
        r.path_rewrite_specifier,
        Some(PathRewriteSpecifier::PathRedirect("/new".into()))
    );
    assert_eq!(
        r.scheme_rewrite_specifier,
        Some(SchemeRewriteSpecifier::SchemeRedirect("https".into()))
    );
    assert_eq!(r.port_redirect, 0, "no explicit :443 for https");
    assert_eq!(
        r.response_code,
        RedirectResponseCode::PermanentRedirect as i32
    );
    let Some(Action::Redirect(r)) = &routes[1].action else {
        panic!("redirect");
    };
    assert_eq!(r.port_redirect, 9080);
    assert_eq!(
        r.response_code,
        RedirectResponseCode::MovedPermanently as i32
    );
}

#[test]
fn direct_response() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {exact: /text}}]\n    directResponse: {status: 418, body: {string: teapot}}\n  \
         - directResponse: {status: 200, body: {bytes: aGk=}}\n",
    ));
    let body = |r: &Route| match &r.action {
        Some(Action::DirectResponse(d)) => (d.status, d.body.clone().and_then(|b| b.specifier)),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body(&routes[0]),
        (418, Some(Specifier::InlineString("teapot".into())))
    );
    assert_eq!(
        body(&routes[1]),
        (200, Some(Specifier::InlineBytes(b"hi".to_vec())))
    );
}

#[test]
fn rewrites() {
    let routes = reviews_routes(&reviews_vs(
        "  - match: [{uri: {prefix: /api}}]\n    rewrite: {uri: /v2, authority: internal.example}\n    \
         route: [{destination: {host: reviews}}]\n  \
         - rewrite: {uriRegexRewrite: {match: '^/x/(.*)', rewrite: '/\\1'}}\n    \
         route: [{destination: {host: reviews}}]\n",
    ));
    let a = action(&routes[0]);
    assert_eq!(a.prefix_rewrite, "/v2");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral(
            "internal.example".into()
        ))
    );
    let rr = action(&routes[1])
        .regex_rewrite
        .clone()
        .expect("regex rewrite");
    assert_eq!(rr.pattern.map(|p| p.regex).as_deref(), Some("^/x/(.*)"));
    assert_eq!(rr.substitution, "/\\1");
}

#[test]
fn header_operations_on_routes_and_weighted_clusters() {
    let routes = reviews_routes(&reviews_vs(
        "  - headers:\n      request: {set: {x-set: a, ':authority': new.example}, add: {x-add: b}, remove: [x-gone]}\n      \
         response: {set: {x-resp: c}, remove: [server]}\n    \
         route:\n    - {destination: {host: reviews, subset: v1}, weight: 90, headers: {request: {set: {x-v: '1'}}}}\n    \
         - {destination: {host: reviews, subset: v2}, weight: 10}\n",
    ));
    let r = &routes[0];
    let ops: Vec<(String, String, i32)> = r
        .request_headers_to_add
        .iter()
        .map(|h| {
            let hv = h.header.clone().unwrap_or_default();
            (hv.key, hv.value, h.append_action)
        })
        .collect();
    assert_eq!(
        ops,
        [
            (
                "x-set".into(),
                "a".into(),
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
            (
                "x-add".into(),
                "b".into(),
                HeaderAppendAction::AppendIfExistsOrAdd as i32
            ),
        ]
    );
    assert_eq!(r.request_headers_to_remove, ["x-gone"]);
    assert_eq!(r.response_headers_to_add.len(), 1);
    assert_eq!(r.response_headers_to_remove, ["server"]);
    assert_eq!(
        action(r).host_rewrite_specifier,
        Some(HostRewriteSpecifier::HostRewriteLiteral(
            "new.example".into()
        ))
    );
    let Some(ClusterSpecifier::WeightedClusters(w)) = &action(r).cluster_specifier else {
        panic!("weighted");
    };
    assert_eq!(w.clusters[0].request_headers_to_add.len(), 1);
    assert!(w.clusters[1].request_headers_to_add.is_empty());
}

#[test]
fn consistent_hash_becomes_a_hash_policy() {
    let dr = |lb: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: reviews, namespace: shop}}\n\
             spec:\n  host: reviews\n  trafficPolicy: {{loadBalancer: {{consistentHash: {lb}}}}}\n  \
             subsets: [{{name: v1, labels: {{version: v1}}}}]\n"
        )
    };
    let policy_of = |extra: &str| -> (Vec<Option<PolicySpecifier>>, bool) {
        let routes = reviews_routes(extra);
        let a = action(&routes[0]);
        let predicates = a
            .retry_policy
            .as_ref()
            .is_some_and(|r| !r.retry_host_predicate.is_empty());
        (
            a.hash_policy
                .iter()
                .map(|h| h.policy_specifier.clone())
                .collect(),
            predicates,
        )
    };
    let (header, other_hosts) = policy_of(&dr("{httpHeaderName: x-user}"));
    assert!(matches!(&header[..], [Some(PolicySpecifier::Header(h))] if h.header_name == "x-user"));
    assert!(!other_hosts, "retries stay on the hashed host");
    let (cookie, _) = policy_of(&dr("{httpCookie: {name: session, ttl: 60s, path: /}}"));
    assert!(matches!(&cookie[..], [Some(PolicySpecifier::Cookie(c))]
        if c.name == "session" && c.path == "/" && c.ttl == Some(Duration { seconds: 60, nanos: 0 })));
    let (ip, _) = policy_of(&dr("{useSourceIp: true}"));
    assert!(matches!(&ip[..], [Some(PolicySpecifier::ConnectionProperties(c))] if c.source_ip));
    // Through a VirtualService destination, with a subset.
    let both = format!(
        "{}\n---\n{}",
        dr("{httpQueryParameterName: user}"),
        reviews_vs("  - route: [{destination: {host: reviews, subset: v1}}]\n")
    );
    let (query, _) = policy_of(&both);
    assert!(matches!(&query[..], [Some(PolicySpecifier::QueryParameter(q))] if q.name == "user"));
}
