use super::*;
use http::HeaderMap;
use weft_xds::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use weft_xds::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RouteMatch,
    WeightedCluster as XdsWeighted,
};
use weft_xds::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use weft_xds::pb::google::protobuf::{BoolValue, UInt32Value};

fn to(cluster: &str, m: RouteMatch) -> XdsRoute {
    XdsRoute {
        name: cluster.into(),
        r#match: Some(m),
        action: Some(XdsAction::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.into())),
        ..Default::default()
    }
}

fn vhost(name: &str, domains: &[&str], routes: Vec<XdsRoute>) -> XdsVhost {
    XdsVhost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..Default::default()
    }
}

fn table(vhosts: Vec<XdsVhost>) -> RouteTable {
    RouteTable::try_from(&RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vhosts,
        ..Default::default()
    })
    .expect("converts")
}

fn req<'a>(
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> RequestView<'a> {
    RequestView {
        method: "GET",
        scheme: "http",
        authority,
        path,
        query,
        headers,
    }
}

#[test]
fn a_configuration_that_ignores_ports_matches_names_without_them() {
    let vhosts = || {
        vec![
            vhost(
                "reviews",
                &["reviews", "10.0.0.1", "[fd00::1]"],
                vec![to("a", prefix("/"))],
            ),
            vhost("any", &["*"], vec![to("e", prefix("/"))]),
        ]
    };
    let t = RouteTable::try_from(&RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vhosts(),
        ignore_port_in_host_matching: true,
        ..Default::default()
    })
    .expect("converts");
    let name = |host: &str| t.virtual_host(host).map(|v| v.name.as_str());
    for host in [
        "reviews",
        "reviews:9080",
        "REVIEWS:80",
        "10.0.0.1:9080",
        "[fd00::1]:9080",
        "[fd00::1]",
    ] {
        assert_eq!(name(host), Some("reviews"), "{host}");
    }
    // Only a numeric port goes; a bare IPv6 address is not cut.
    assert_eq!(name("reviews:http"), Some("any"));
    assert_eq!(name("fd00::1"), Some("any"));
    // Without the flag the port is part of the name, as Envoy matches.
    let strict = table(vhosts());
    assert_eq!(
        strict.virtual_host("reviews:9080").map(|v| v.name.as_str()),
        Some("any")
    );
    assert_eq!(strip_port("a:80"), "a");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("::1"), "::1");
    assert_eq!(strip_port("a:"), "a:");
}

#[test]
fn domains_match_exact_then_suffix_then_prefix_then_any() {
    let t = table(vec![
        vhost(
            "exact",
            &[
                "reviews.shop.svc.cluster.local",
                "reviews.shop.svc.cluster.local:9080",
            ],
            vec![to("a", prefix("/"))],
        ),
        vhost(
            "suffix",
            &["*.shop.svc.cluster.local"],
            vec![to("b", prefix("/"))],
        ),
        vhost(
            "longer-suffix",
            &["*.cache.shop.svc.cluster.local"],
            vec![to("c", prefix("/"))],
        ),
        vhost("prefix", &["api.*"], vec![to("d", prefix("/"))]),
        vhost("any", &["*"], vec![to("e", prefix("/"))]),
    ]);
    let name = |host: &str| t.virtual_host(host).map(|v| v.name.as_str());
    assert_eq!(name("reviews.shop.svc.cluster.local:9080"), Some("exact"));
    assert_eq!(
        name("REVIEWS.shop.svc.cluster.local"),
        Some("exact"),
        "case-insensitive"
    );
    assert_eq!(name("ratings.shop.svc.cluster.local"), Some("suffix"));
    assert_eq!(
        name("x.cache.shop.svc.cluster.local"),
        Some("longer-suffix")
    );
    assert_eq!(
        name("shop.svc.cluster.local"),
        Some("any"),
        "a wildcard matches at least one character"
    );
    assert_eq!(name("api.example.com"), Some("prefix"));
    assert_eq!(name("elsewhere"), Some("any"));
    let no_any = table(vec![vhost("exact", &["a"], vec![to("a", prefix("/"))])]);
    assert!(no_any.virtual_host("b").is_none());
}

#[test]
fn routes_match_paths_headers_and_query_in_order() {
    let exact_header = HeaderMatcher {
        name: "end-user".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::Exact("jason".into())),
            ..Default::default()
        })),
        ..Default::default()
    };
    let routes = vec![
        to(
            "exact",
            RouteMatch {
                path_specifier: Some(PathSpecifier::Path("/login".into())),
                ..Default::default()
            },
        ),
        to(
            "regex",
            RouteMatch {
                path_specifier: Some(PathSpecifier::SafeRegex(RegexMatcher {
                    regex: "/api/v[0-9]+/.*".into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ),
        to(
            "header",
            RouteMatch {
                headers: vec![exact_header],
                ..prefix("/")
            },
        ),
        to(
            "query",
            RouteMatch {
                query_parameters: vec![QueryParameterMatcher {
                    name: "debug".into(),
                    query_parameter_match_specifier: Some(
                        QueryParameterMatchSpecifier::PresentMatch(true),
                    ),
                }],
                ..prefix("/")
            },
        ),
        to(
            "method",
            RouteMatch {
                headers: vec![HeaderMatcher {
                    name: ":method".into(),
                    header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(
                        StringMatcher {
                            match_pattern: Some(MatchPattern::Exact("POST".into())),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..prefix("/")
            },
        ),
        to(
            "caseless",
            RouteMatch {
                case_sensitive: Some(BoolValue { value: false }),
                ..prefix("/Static")
            },
        ),
        to("default", prefix("/")),
    ];
    let t = table(vec![vhost("r", &["*"], routes)]);
    let empty = HeaderMap::new();
    let mut jason = HeaderMap::new();
    jason.insert("end-user", "jason".parse().expect("value"));
    let pick = |path: &str, query: Option<&str>, headers: &HeaderMap| {
        t.find(&req("r", path, query, headers))
            .map(|(_, r)| r.name.clone())
    };
    assert_eq!(pick("/login", None, &empty).as_deref(), Some("exact"));
    assert_eq!(pick("/login/x", None, &empty).as_deref(), Some("default"));
    assert_eq!(
        pick("/api/v2/users", None, &empty).as_deref(),
        Some("regex")
    );
    assert_eq!(
        pick("/xapi/v2/users", None, &empty).as_deref(),
        Some("default"),
        "regexes match whole paths"
    );
    assert_eq!(pick("/", None, &jason).as_deref(), Some("header"));
    assert_eq!(
        pick("/", Some("a=1&debug"), &empty).as_deref(),
        Some("query")
    );
    assert_eq!(
        pick("/static/x.css", None, &empty).as_deref(),
        Some("caseless")
    );
    let mut post = empty.clone();
    post.insert("x", "y".parse().expect("value"));
    let view = RequestView {
        method: "POST",
        ..req("r", "/", None, &post)
    };
    assert_eq!(t.find(&view).map(|(_, r)| r.name.as_str()), Some("method"));
}

#[test]
fn inverted_and_missing_headers() {
    let m = Matcher::try_from(&RouteMatch {
        headers: vec![HeaderMatcher {
            name: "x-canary".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Exact("yes".into())),
                ..Default::default()
            })),
            invert_match: true,
            treat_missing_header_as_empty: true,
        }],
        ..prefix("/")
    })
    .expect("converts");
    let empty = HeaderMap::new();
    assert!(
        m.matches(&req("h", "/", None, &empty)),
        "missing is empty, and empty isn't yes"
    );
    let mut yes = HeaderMap::new();
    yes.insert("x-canary", "yes".parse().expect("value"));
    assert!(!m.matches(&req("h", "/", None, &yes)));
}

#[test]
fn weighted_clusters_split_by_weight() {
    let route = XdsRoute {
        r#match: Some(prefix("/")),
        action: Some(XdsAction::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::WeightedClusters(XdsWeighted {
                clusters: vec![
                    ClusterWeight {
                        name: "v1".into(),
                        weight: Some(UInt32Value { value: 80 }),
                        ..Default::default()
                    },
                    ClusterWeight {
                        name: "v2".into(),
                        weight: Some(UInt32Value { value: 20 }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    };
    let t = table(vec![vhost("r", &["*"], vec![route])]);
    let Action::Forward(f) = &t.virtual_hosts[0].routes[0].action else {
        panic!("forward")
    };
    assert_eq!(f.timeout, Some(DEFAULT_TIMEOUT), "Envoy's 15 s when unset");
    let v1 = (0..10_000).filter(|_| f.target.pick().0 == "v1").count();
    assert!((7_700..8_300).contains(&v1), "{v1}");
    assert_eq!(
        t.clusters().into_iter().collect::<Vec<_>>(),
        vec!["v1", "v2"]
    );
}

#[test]
fn bad_route_configurations_are_rejected_naming_the_resource() {
    let bad_regex = to(
        "x",
        RouteMatch {
            path_specifier: Some(PathSpecifier::SafeRegex(RegexMatcher {
                regex: "(unclosed".into(),
                ..Default::default()
            })),
            ..Default::default()
        },
    );
    let e = RouteTable::try_from(&RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vec![vhost(
            "reviews.shop.svc.cluster.local:9080",
            &["reviews"],
            vec![bad_regex],
        )],
        ..Default::default()
    })
    .expect_err("bad regex");
    let msg = e.to_string();
    assert!(msg.contains("route configuration 9080"), "{msg}");
    assert!(msg.contains("reviews.shop.svc.cluster.local:9080"), "{msg}");
    assert!(msg.contains("(unclosed"), "{msg}");

    let e = RouteTable::try_from(&RouteConfiguration {
        name: "80".into(),
        virtual_hosts: vec![
            vhost("a", &["dup.example"], vec![to("a", prefix("/"))]),
            vhost("b", &["dup.example"], vec![to("b", prefix("/"))]),
        ],
        ..Default::default()
    })
    .expect_err("duplicate domain");
    assert!(
        e.to_string().contains("claimed by two virtual hosts"),
        "{e}"
    );

    let no_action = XdsRoute {
        r#match: Some(prefix("/")),
        ..Default::default()
    };
    assert!(
        RouteTable::try_from(&RouteConfiguration {
            name: "1".into(),
            virtual_hosts: vec![vhost("v", &["*"], vec![no_action])],
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn direct_responses_and_header_operations() {
    use weft_xds::pb::envoy::config::core::v3::{
        DataSource, HeaderValue as XdsHeaderValue, HeaderValueOption,
    };
    let route = XdsRoute {
        r#match: Some(prefix("/")),
        action: Some(XdsAction::DirectResponse(DirectResponseAction {
            status: 418,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString("teapot".into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        response_headers_to_add: vec![HeaderValueOption {
            header: Some(XdsHeaderValue {
                key: "x-added".into(),
                value: "1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        response_headers_to_remove: vec!["x-secret".into()],
        ..Default::default()
    };
    let t = table(vec![vhost("r", &["*"], vec![route])]);
    let r = &t.virtual_hosts[0].routes[0];
    let Action::Direct { status, body } = &r.action else {
        panic!("direct")
    };
    assert_eq!((status.as_u16(), body.as_ref()), (418, &b"teapot"[..]));
    let mut h = HeaderMap::new();
    h.insert("x-secret", "s".parse().expect("value"));
    r.response_headers.apply(&mut h);
    assert!(h.get("x-secret").is_none());
    assert_eq!(h.get("x-added").map(|v| v.as_bytes()), Some(&b"1"[..]));
}

#[test]
fn istios_default_retry_policy_is_read() {
    use weft_xds::pb::envoy::config::route::v3::RetryPolicy;
    use weft_xds::pb::envoy::config::route::v3::retry_policy::RetryHostPredicate;
    let mut r = to("c", prefix("/"));
    if let Some(XdsAction::Route(a)) = &mut r.action {
        a.retry_policy = Some(RetryPolicy {
            retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
                .into(),
            num_retries: Some(UInt32Value { value: 2 }),
            retriable_status_codes: vec![503],
            retry_host_predicate: vec![RetryHostPredicate {
                name: "envoy.retry_host_predicates.previous_hosts".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let t = table(vec![vhost("v", &["*"], vec![r])]);
    let Action::Forward(f) = &t.virtual_hosts[0].routes[0].action else {
        panic!("forward")
    };
    let retry = f.retry.as_ref().expect("a retry policy");
    assert_eq!(retry.attempts, 2);
    assert!(retry.other_host);
    use crate::retry::Outcome;
    let h = http::HeaderMap::new();
    assert!(retry.retries(Outcome::Response(StatusCode::SERVICE_UNAVAILABLE, &h)));
    assert!(!retry.retries(Outcome::Response(StatusCode::INTERNAL_SERVER_ERROR, &h)));
    assert!(retry.retries(Outcome::of::<()>(
        &Err(crate::errors::ProxyError::ConnectFailure {
            endpoint: "e".into(),
            reason: "refused".into()
        }),
        false
    )));
    assert!(!retry.retries(Outcome::of::<()>(
        &Err(crate::errors::ProxyError::Timeout("e".into())),
        false
    )));
}

#[test]
fn fault_cors_and_mirrors_are_read_from_the_route_or_its_virtual_host() {
    use weft_xds::pb::envoy::config::core::v3::RuntimeFractionalPercent;
    use weft_xds::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;
    use weft_xds::pb::envoy::extensions::filters::http::fault::v3::FaultAbort;
    use weft_xds::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
    use weft_xds::pb::envoy::r#type::v3::FractionalPercent;
    let abort = |status: u32| HttpFault {
        abort: Some(FaultAbort {
            error_type: Some(ErrorType::HttpStatus(status)),
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut own = to("c", prefix("/own"));
    own.typed_per_filter_config
        .insert(crate::fault::FILTER.into(), weft_xds::pack(&abort(418)));
    if let Some(XdsAction::Route(a)) = &mut own.action {
        a.request_mirror_policies.push(RequestMirrorPolicy {
            cluster: "shadow".into(),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator: 250_000,
                    denominator: 2,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    // Wrapped in a FilterConfig, as Envoy also accepts.
    let mut wrapped = to("c", prefix("/wrapped"));
    wrapped.typed_per_filter_config.insert(
        crate::cors::FILTER.into(),
        weft_xds::pack(&FilterConfig {
            config: Some(weft_xds::pack(&CorsPolicy {
                allow_origin_string_match: vec![StringMatcher {
                    match_pattern: Some(MatchPattern::Exact("https://a".into())),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        }),
    );
    let inherits = to("c", prefix("/"));
    let mut vh = vhost("v", &["*"], vec![own, wrapped, inherits]);
    vh.typed_per_filter_config
        .insert(crate::fault::FILTER.into(), weft_xds::pack(&abort(503)));
    let t = table(vec![vh]);
    let routes = &t.virtual_hosts[0].routes;
    let status = |r: &Route| {
        r.fault
            .as_ref()
            .and_then(|f| f.abort)
            .map(|(k, _)| format!("{k:?}"))
    };
    assert_eq!(status(&routes[0]).as_deref(), Some("Http(418)"));
    assert_eq!(status(&routes[2]).as_deref(), Some("Http(503)"));
    assert!(
        routes[1]
            .cors
            .as_ref()
            .is_some_and(|c| c.allows("https://a"))
    );
    assert!(routes[0].cors.is_none());
    let Action::Forward(f) = &routes[0].action else {
        panic!("forward")
    };
    assert_eq!(f.mirrors.len(), 1);
    assert_eq!(f.mirrors[0].cluster, "shadow");
    assert_eq!(
        f.mirrors[0].fraction,
        Fraction {
            numerator: 250_000,
            denominator: 1_000_000
        }
    );
    // A config that doesn't decode is an error naming the filter.
    let mut bad = to("c", prefix("/"));
    bad.typed_per_filter_config.insert(
        crate::fault::FILTER.into(),
        Any {
            type_url: HttpFault::type_url(),
            value: vec![0xff, 0xff],
        },
    );
    let err = RouteTable::try_from(&RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vec![vhost("v", &["*"], vec![bad])],
        ..Default::default()
    })
    .expect_err("a broken fault config is rejected");
    assert!(err.reason.contains("envoy.filters.http.fault"), "{err}");
}

#[test]
fn vhds_tables_share_virtual_hosts_and_rebuild_the_index_only_when_domains_change() {
    let base = RouteTable::try_from(&RouteConfiguration {
        name: "80".into(),
        vhds: Some(weft_xds::pb::envoy::config::route::v3::Vhds::default()),
        ..Default::default()
    })
    .expect("converts");
    assert!(base.vhds() && base.virtual_hosts.is_empty());
    let convert = |name: &str, domains: &[&str], cluster: &str| {
        Arc::new(
            base.convert_virtual_host(&vhost(name, domains, vec![to(cluster, prefix("/"))]))
                .expect("converts"),
        )
    };
    let cluster = |t: &RouteTable, host: &str| {
        let h = HeaderMap::new();
        t.find(&req(host, "/", None, &h))
            .map(|(_, r)| r.name.clone())
    };
    let a = convert("a", &["a"], "c1");
    let t1 = base
        .with_virtual_hosts([a.clone(), convert("b", &["b", "*.b"], "c2")], None)
        .expect("indexed");
    assert_eq!(cluster(&t1, "x.b").as_deref(), Some("c2"));
    // b's routes change, its domains don't.
    let t2 = base
        .with_virtual_hosts([a.clone(), convert("b", &["b", "*.b"], "c3")], Some(&t1))
        .expect("indexed");
    assert!(Arc::ptr_eq(&t2.virtual_hosts[0], &a), "a is shared");
    assert_eq!(cluster(&t2, "b").as_deref(), Some("c3"));
    assert_eq!(cluster(&t2, "a").as_deref(), Some("c1"));
    // b's domains change: the index follows.
    let t3 = base
        .with_virtual_hosts([a.clone(), convert("b", &["bee"], "c3")], Some(&t2))
        .expect("indexed");
    assert_eq!(cluster(&t3, "b"), None);
    assert_eq!(cluster(&t3, "x.b"), None);
    assert_eq!(cluster(&t3, "bee").as_deref(), Some("c3"));
    // One more virtual host, and one claiming a's domain.
    let t4 = base
        .with_virtual_hosts(
            [
                a.clone(),
                convert("b", &["bee"], "c3"),
                convert("c", &["c"], "c1"),
            ],
            Some(&t3),
        )
        .expect("indexed");
    assert_eq!(cluster(&t4, "c").as_deref(), Some("c1"));
    let err = base
        .with_virtual_hosts([a, convert("d", &["A"], "c2")], Some(&t4))
        .expect_err("a domain claimed twice");
    assert!(err.to_string().contains("claimed by two"), "{err}");
}
