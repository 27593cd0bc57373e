use super::*;
use weft_xds::TypeUrl;

mod delta;
mod vhds;

use weft_xds::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use weft_xds::pb::envoy::config::cluster::v3::cluster;
use weft_xds::pb::envoy::config::core::v3::{AggregatedConfigSource, ConfigSource, config_source};
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener as XdsListener;
use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{Route, RouteAction, RouteMatch, VirtualHost};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
};

pub(super) fn eds_cluster(name: &str) -> XdsCluster {
    XdsCluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: None,
            service_name: name.into(),
        }),
        ..Default::default()
    }
}

pub(super) fn listener(name: &str, rds: &str) -> XdsListener {
    let hcm = HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: rds.into(),
        })),
        ..Default::default()
    };
    XdsListener {
        name: name.into(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: crate::listener::HCM_FILTER.into(),
                config_type: Some(filter::ConfigType::TypedConfig(weft_xds::pack(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(super) fn routes(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![VirtualHost {
            name: "v".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(Action::Route(RouteAction {
                    cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(super) fn response<M: prost::Message + prost::Name>(
    t: TypeUrl,
    version: &str,
    nonce: &str,
    items: &[M],
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources: items.iter().map(weft_xds::pack).collect(),
        type_url: t.as_str().into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

fn state() -> State {
    State::new(
        Node {
            id: "sidecar~127.0.0.1~a.ns~ns.svc.cluster.local".into(),
            ..Default::default()
        },
        Duration::from_secs(2),
    )
}

pub(super) fn types(reqs: &[Request]) -> Vec<(&str, &str, bool)> {
    reqs.iter()
        .map(|r| {
            let k = Kind::parse(r.type_url()).expect("type");
            (k.short_name(), r.nonce(), r.is_nack())
        })
        .collect()
}

/// The state-of-the-world request inside `r`.
fn sotw(r: &Request) -> &DiscoveryRequest {
    match r {
        Request::Sotw(r) => r,
        Request::Delta(r) => panic!("a delta request on a SotW stream: {r:?}"),
    }
}

/// Brings a state to a whole config: cluster c1, listener l on routes r.
fn synced(now: Instant) -> State {
    let mut s = state();
    let first = s.start_stream();
    assert_eq!(types(&first), vec![("CDS", "", false)]);
    assert!(
        sotw(&first[0]).node.is_some(),
        "the first request carries the node"
    );
    let o = s.on_response(
        response(TypeUrl::Cluster, "1", "n1", &[eds_cluster("c1")]),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("EDS", "", false), ("LDS", "", false)],
        "EDS for the clusters, then LDS"
    );
    assert_eq!(sotw(&o.requests[0]).resource_names, vec!["c1".to_string()]);
    assert!(
        o.snapshot.is_none(),
        "the cluster warms until its endpoints come"
    );
    let o = s.on_response(
        response(
            TypeUrl::ClusterLoadAssignment,
            "1",
            "n2",
            &[ClusterLoadAssignment {
                cluster_name: "c1".into(),
                ..Default::default()
            }],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("CDS", "n1", false), ("EDS", "n2", false)],
        "both ACKed together"
    );
    assert!(o.snapshot.is_some());
    assert!(!s.complete, "no listeners yet");
    let o = s.on_response(
        response(
            TypeUrl::Listener,
            "1",
            "n3",
            &[listener("0.0.0.0_80", "80")],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("RDS", "", false)]);
    let o = s.on_response(
        response(
            TypeUrl::RouteConfiguration,
            "1",
            "n4",
            &[routes("80", "c1")],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("LDS", "n3", false), ("RDS", "n4", false)]
    );
    assert!(
        o.snapshot
            .is_some_and(|snap| snap.outbound_routes(80).is_some())
    );
    assert!(s.complete);
    s
}

#[test]
fn subscribes_in_envoys_order_and_acks() {
    synced(Instant::now());
}

#[test]
fn a_bad_resource_is_nacked_and_the_last_good_config_stays() {
    let now = Instant::now();
    let mut s = synced(now);
    let mut bad = routes("80", "c1");
    bad.virtual_hosts[0].routes[0].r#match = Some(RouteMatch {
        path_specifier: Some(PathSpecifier::SafeRegex(
            weft_xds::pb::envoy::r#type::matcher::v3::RegexMatcher {
                regex: "([".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    });
    let o = s.on_response(
        response(TypeUrl::RouteConfiguration, "2", "n5", &[bad]),
        now,
    );
    assert!(o.snapshot.is_none());
    assert_eq!(types(&o.requests), vec![("RDS", "n5", true)]);
    let r = sotw(&o.requests[0]);
    assert_eq!(r.version_info, "1", "a NACK carries the version in force");
    let msg = &r.error_detail.as_ref().expect("error").message;
    assert!(msg.contains("route configuration 80"), "{msg}");
    assert_eq!(
        s.last_rejection.as_ref().map(|r| r.version.as_str()),
        Some("2")
    );
}

#[test]
fn routes_may_arrive_before_their_cluster() {
    let now = Instant::now();
    let mut s = synced(now);
    // The control plane pushes RDS first: held, not applied, not NACKed.
    let o = s.on_response(
        response(
            TypeUrl::RouteConfiguration,
            "2",
            "n5",
            &[routes("80", "c2")],
        ),
        now,
    );
    assert!(
        o.snapshot.is_none() && o.requests.is_empty(),
        "{:?}",
        types(&o.requests)
    );
    let o = s.on_response(
        response(
            TypeUrl::Cluster,
            "2",
            "n6",
            &[eds_cluster("c1"), eds_cluster("c2")],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("EDS", "n2", false)],
        "subscribes to c2's endpoints first"
    );
    assert!(o.snapshot.is_none(), "c2 warms");
    let o = s.on_response(
        response(
            TypeUrl::ClusterLoadAssignment,
            "2",
            "n7",
            &[
                ClusterLoadAssignment {
                    cluster_name: "c1".into(),
                    ..Default::default()
                },
                ClusterLoadAssignment {
                    cluster_name: "c2".into(),
                    ..Default::default()
                },
            ],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![
            ("CDS", "n6", false),
            ("EDS", "n7", false),
            ("RDS", "n5", false)
        ]
    );
    let snap = o.snapshot.expect("applied together");
    assert!(snap.cluster("c2").is_some());
}

#[test]
fn a_dangling_cluster_reference_is_nacked_after_the_warming_deadline() {
    let now = Instant::now();
    let mut s = synced(now);
    let o = s.on_response(
        response(
            TypeUrl::RouteConfiguration,
            "2",
            "n5",
            &[routes("80", "missing")],
        ),
        now,
    );
    assert!(o.requests.is_empty());
    assert!(s.deadline().is_some());
    let o = s.on_deadline(now + Duration::from_secs(3));
    assert!(o.snapshot.is_none(), "not half-applied");
    assert_eq!(types(&o.requests), vec![("RDS", "n5", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("cluster missing"), "{msg}");
    assert!(s.deadline().is_none());
}

#[test]
fn reconnecting_with_a_config_asks_for_everything_again() {
    let mut s = synced(Instant::now());
    let reqs = s.start_stream();
    assert_eq!(
        types(&reqs),
        vec![
            ("CDS", "", false),
            ("EDS", "", false),
            ("LDS", "", false),
            ("RDS", "", false)
        ]
    );
    assert_eq!(
        sotw(&reqs[0]).version_info,
        "1",
        "the versions in force are sent"
    );
    assert!(sotw(&reqs[0]).node.is_some() && sotw(&reqs[1]).node.is_none());
}

#[test]
fn an_eds_push_that_changes_nothing_keeps_counts_and_balancers() {
    let now = Instant::now();
    let mut s = synced(now);
    let cla = |port: u32| {
        ClusterLoadAssignment {
        cluster_name: "c1".into(),
        endpoints: vec![weft_xds::pb::envoy::config::endpoint::v3::LocalityLbEndpoints {
            lb_endpoints: vec![weft_xds::pb::envoy::config::endpoint::v3::LbEndpoint {
                host_identifier: Some(
                    weft_xds::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(
                        weft_xds::pb::envoy::config::endpoint::v3::Endpoint {
                            address: Some(weft_xds::pb::envoy::config::core::v3::Address {
                                address: Some(
                                    weft_xds::pb::envoy::config::core::v3::address::Address::SocketAddress(
                                        weft_xds::pb::envoy::config::core::v3::SocketAddress {
                                            address: "127.0.0.1".into(),
                                            port_specifier: Some(
                                                weft_xds::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port),
                                            ),
                                            ..Default::default()
                                        },
                                    ),
                                ),
                            }),
                            ..Default::default()
                        },
                    ),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
    };
    let push = |s: &mut State, version: &str, port: u32| {
        s.on_response(
            response(
                TypeUrl::ClusterLoadAssignment,
                version,
                version,
                &[cla(port)],
            ),
            now,
        )
        .snapshot
        .expect("applied")
    };
    let first = push(&mut s, "2", 7);
    let entry = first.cluster("c1").expect("c1");
    let _active = entry.pick().expect("an endpoint").start_request();
    let same = push(&mut s, "3", 7);
    let kept = same.cluster("c1").expect("c1");
    assert!(Arc::ptr_eq(&entry.assignment, &kept.assignment));
    assert!(Arc::ptr_eq(&entry.balancer(), &kept.balancer()));
    assert_eq!(
        kept.assignment.endpoints[0].active_requests(),
        1,
        "the count goes on"
    );
    let moved = push(&mut s, "4", 8);
    let rebuilt = moved.cluster("c1").expect("c1");
    assert!(!Arc::ptr_eq(&entry.balancer(), &rebuilt.balancer()));
    assert_eq!(
        rebuilt.assignment.endpoints[0].address.to_string(),
        "127.0.0.1:8"
    );
}
