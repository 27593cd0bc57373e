use weft_xds::pack;
use weft_xds::pb::envoy::config::core::v3::{CidrRange, Pipe, SocketAddress};
use weft_xds::pb::envoy::config::listener::v3::{ApiListener, FilterChainMatch};
use weft_xds::pb::envoy::config::route::v3::{Route, RouteAction};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;
use weft_xds::pb::google::protobuf::{Struct, UInt32Value, Value};

use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::core::v3::HealthStatus;
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint, lb_endpoint};
use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weft_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteConfiguration, RouteMatch, VirtualHost, header_matcher, route,
    route_action, route_match,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use super::super::Dump;
use super::listeners::{
    TCP_PROXY, describe_chain_match, describe_destination, describe_inline_routes, describe_tcp,
};
use super::routes::describe_domains;
use super::*;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn columns_are_padded_like_tabwriter_and_lines_not_trailed() {
    let rows = vec![strings(&["a", "", "c"]), strings(&["longer", "b", ""])];
    assert_eq!(
        table(&["X", "Y", "Z"], &rows, 2),
        "X       Y  Z\na          c\nlonger  b\n"
    );
}

#[test]
fn cluster_names_parse_like_istios() {
    let n = ClusterName::parse("outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_eq!(
        (
            n.fqdn.as_str(),
            n.port,
            n.subset.as_str(),
            n.direction.as_str()
        ),
        (
            "reviews.default.svc.cluster.local",
            Some(9080),
            "v1",
            "outbound"
        )
    );
    let n = ClusterName::parse("PassthroughCluster");
    assert_eq!((n.fqdn.as_str(), n.port), ("PassthroughCluster", None));
}

fn metadata(config: &str) -> Metadata {
    let mut m = Metadata::default();
    m.filter_metadata.insert(
        "istio".into(),
        Struct {
            fields: [(
                "config".to_string(),
                Value {
                    kind: Some(value::Kind::StringValue(config.into())),
                },
            )]
            .into_iter()
            .collect(),
        },
    );
    m
}

#[test]
fn istio_config_metadata_names_the_resource() {
    let m =
        metadata("/apis/networking.istio.io/v1alpha3/namespaces/default/destination-rule/reviews");
    assert_eq!(
        istio_config(Some(&m), "destination-rule"),
        "reviews.default"
    );
    assert_eq!(istio_config(Some(&m), "virtual-service"), "<unknown>");
    assert_eq!(istio_config(None, "destination-rule"), "");
    assert_eq!(
        istio_config(Some(&Metadata::default()), "destination-rule"),
        ""
    );
}

#[test]
fn domains_are_shortened_like_istioctl() {
    let d = strings(&[
        "reviews.default.svc.cluster.local",
        "reviews.default.svc.cluster.local:9080",
        "reviews",
        "reviews:9080",
        "reviews.default.svc",
        "reviews.default",
        "10.0.0.7",
        "[fd00:10:96::7]",
        "[fd00:10:96::7]:9080",
    ]);
    assert_eq!(describe_domains(&d), "reviews, reviews.default + 2 more...");
    assert_eq!(describe_domains(&strings(&["*"])), "*");
    assert_eq!(describe_domains(&strings(&["a.com", "a.com:80"])), "a.com");
}

fn chain(m: FilterChainMatch, filters: Vec<Filter>) -> FilterChain {
    FilterChain {
        filter_chain_match: Some(m),
        filters,
        ..FilterChain::default()
    }
}

fn tcp(cluster: &str) -> Filter {
    Filter {
        name: TCP_PROXY.into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(&TcpProxy {
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..TcpProxy::default()
        }))),
    }
}

#[test]
fn filter_chain_matches_and_destinations_read_like_istioctl() {
    let m = FilterChainMatch {
        application_protocols: strings(&["http/1.0", "http/1.1", "h2c"]),
        destination_port: Some(UInt32Value { value: 8080 }),
        prefix_ranges: vec![CidrRange {
            address_prefix: "10.0.0.0".into(),
            prefix_len: Some(UInt32Value { value: 8 }),
        }],
        ..FilterChainMatch::default()
    };
    assert_eq!(
        describe_chain_match(&chain(m, vec![])),
        "App: HTTP; Addr: 10.0.0.0/8:8080"
    );
    let m = FilterChainMatch {
        destination_port: Some(UInt32Value { value: 15006 }),
        application_protocols: strings(&["x"]),
        ..FilterChainMatch::default()
    };
    assert_eq!(
        describe_chain_match(&chain(m, vec![])),
        "App: x; Addr: *:15006"
    );
    assert_eq!(describe_chain_match(&FilterChain::default()), "ALL");

    assert_eq!(
        describe_destination(&[tcp("outbound|3306||db")]),
        "Cluster: outbound|3306||db"
    );
    assert_eq!(
        describe_destination(&[tcp("PassthroughCluster")]),
        "PassthroughCluster"
    );
    assert_eq!(describe_destination(&[]), "Non-HTTP/Non-TCP");
    let weighted = TcpProxy {
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::WeightedClusters(
            tcp_proxy::WeightedCluster {
                clusters: vec![
                    tcp_proxy::weighted_cluster::ClusterWeight {
                        name: "a".into(),
                        weight: 80,
                        ..Default::default()
                    },
                    tcp_proxy::weighted_cluster::ClusterWeight {
                        name: "b".into(),
                        weight: 20,
                        ..Default::default()
                    },
                ],
            },
        )),
        ..TcpProxy::default()
    };
    assert_eq!(describe_tcp(&weighted), "WeightedClusters: a(80),b(20)");
}

fn route_to(prefix: &str, cluster: &str) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.into())),
            ..RouteMatch::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
            ..RouteAction::default()
        })),
        ..Route::default()
    }
}

#[test]
fn inline_routes_show_their_cluster_or_their_matches() {
    let one = RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            domains: strings(&["*"]),
            routes: vec![route_to("/", "inbound|9080||")],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    };
    assert_eq!(describe_inline_routes(&one), "Cluster: inbound|9080||");
    let many = RouteConfiguration {
        virtual_hosts: vec![VirtualHost {
            domains: strings(&["a.com", "b.com"]),
            routes: vec![route_to("/api", "x"), route_to("/", "y")],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    };
    assert_eq!(
        describe_inline_routes(&many),
        "Inline Route: a.com/b.com /api*, /*"
    );
}

#[test]
fn listeners_show_every_address_and_api_listeners_their_name() {
    let sock = |a: &str, p: u32| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: a.into(),
            port_specifier: Some(PortSpecifier::PortValue(p)),
            ..SocketAddress::default()
        })),
    };
    let dual = Listener {
        name: "0.0.0.0_9080".into(),
        address: Some(sock("0.0.0.0", 9080)),
        additional_addresses: vec![
            weft_xds::pb::envoy::config::listener::v3::AdditionalAddress {
                address: Some(sock("::", 9080)),
                ..Default::default()
            },
        ],
        filter_chains: vec![FilterChain {
            filters: vec![tcp("outbound|9080||a")],
            ..FilterChain::default()
        }],
        default_filter_chain: Some(FilterChain {
            filters: vec![tcp("PassthroughCluster")],
            ..FilterChain::default()
        }),
        ..Listener::default()
    };
    let hcm = HttpConnectionManager {
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            route_config_name: "greeter.shop.svc.cluster.local:50051".into(),
            ..Rds::default()
        })),
        ..HttpConnectionManager::default()
    };
    let api = Listener {
        name: "greeter.shop.svc.cluster.local:50051".into(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack(&hcm)),
        }),
        ..Listener::default()
    };
    let pipe = Listener {
        name: "uds".into(),
        address: Some(Address {
            address: Some(address::Address::Pipe(Pipe {
                path: "/run/app.sock".into(),
                mode: 0,
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![tcp("inbound|80||")],
            ..FilterChain::default()
        }],
        ..Listener::default()
    };
    let all = [dual, api, pipe];
    assert_eq!(
        listeners(&ListenerFilter::default().select(&all)),
        "\
ADDRESSES                      PORT  MATCH DESTINATION
greeter.shop.svc.cluster.local 50051 ALL   Route: greeter.shop.svc.cluster.local:50051
unix:///run/app.sock           -     ALL   Cluster: inbound|80||
0.0.0.0,::                     9080  ALL   PassthroughCluster
0.0.0.0,::                     9080  ALL   Cluster: outbound|9080||a
"
    );
}

#[test]
fn routes_show_matches_headers_and_their_virtual_service() {
    let mut jason = route_to("/", "outbound|9080|v2|reviews");
    jason
        .r#match
        .as_mut()
        .expect("match")
        .headers
        .push(HeaderMatcher {
            name: "end-user".into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true)),
            invert_match: true,
            ..HeaderMatcher::default()
        });
    jason.metadata = Some(metadata(
        "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/reviews",
    ));
    let rc = RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vec![
            VirtualHost {
                name: "reviews:9080".into(),
                domains: strings(&["reviews"]),
                routes: vec![jason],
                ..VirtualHost::default()
            },
            VirtualHost {
                name: "empty".into(),
                domains: strings(&["e"]),
                ..VirtualHost::default()
            },
            VirtualHost {
                name: "allow_any".into(),
                domains: strings(&["*"]),
                routes: vec![route_to("/", "PassthroughCluster")],
                ..VirtualHost::default()
            },
        ],
        ..RouteConfiguration::default()
    };
    assert_eq!(
        routes(&[&rc]),
        "\
NAME     VHOST NAME       DOMAINS     MATCH                      VIRTUAL SERVICE
9080     reviews:9080     reviews     /* [!end-user present]     reviews.shop
9080     empty            e           /*                         404
"
    );
}

#[test]
fn endpoints_of_eds_and_of_clusters_own_assignments_filter_by_status() {
    use weft_xds::pb::envoy::config::endpoint::v3::{Endpoint, LocalityLbEndpoints};
    let ep = |ip: &str, health: HealthStatus| LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.into(),
                    port_specifier: Some(PortSpecifier::PortValue(80)),
                    ..SocketAddress::default()
                })),
            }),
            ..Endpoint::default()
        })),
        health_status: health as i32,
        ..LbEndpoint::default()
    };
    let la = |name: &str, eps: Vec<LbEndpoint>| ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: eps,
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    };
    let dump = Dump {
        endpoints: vec![la(
            "outbound|80||b",
            vec![
                ep("10.0.0.2", HealthStatus::Unhealthy),
                ep("10.0.0.1", HealthStatus::Unknown),
            ],
        )],
        clusters: vec![Cluster {
            name: "outbound|80||a".into(),
            load_assignment: Some(la("", vec![ep("fd00::1", HealthStatus::Draining)])),
            ..Cluster::default()
        }],
        ..Dump::default()
    };
    assert_eq!(
        endpoints(&EndpointFilter::default().select(&dump), &dump.clusters),
        "\
ENDPOINT         STATUS        OUTLIER CHECK     CLUSTER
[fd00::1]:80     DRAINING      -                 outbound|80||a
10.0.0.2:80      UNHEALTHY     -                 outbound|80||b
10.0.0.1:80      HEALTHY       -                 outbound|80||b
"
    );
    let healthy = EndpointFilter {
        status: Some("healthy".into()),
        ..EndpointFilter::default()
    };
    let selected = healthy.select(&dump);
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].endpoints[0].lb_endpoints.len(), 1);
}

#[test]
fn route_configurations_sort_by_port_then_name() {
    let rc = |name: &str| RouteConfiguration {
        name: name.into(),
        ..RouteConfiguration::default()
    };
    let all = [
        rc("http.8080"),
        rc("15010"),
        rc("9080"),
        rc("8000"),
        rc("a:1"),
    ];
    let names: Vec<&str> = RouteFilter::default()
        .select(&all)
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["8000", "9080", "15010", "a:1", "http.8080"]);
}
