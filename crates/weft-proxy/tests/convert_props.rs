//! Property tests of the border: whatever bytes a control plane sends,
//! decoding and converting them never panics — they convert, or they are
//! an error naming what is wrong.

use proptest::prelude::*;
use prost::Message;
use weft_proxy::cluster::Cluster;
use weft_proxy::endpoint::LoadAssignment;
use weft_proxy::listener::Listener;
use weft_proxy::route::{RequestView, RouteTable};
use weft_xds::pb::envoy::config::cluster::v3::Cluster as XdsCluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener as XdsListener;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
};
use weft_xds::pb::envoy::r#type::matcher::v3::RegexMatcher;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(c) = XdsCluster::decode(bytes.as_slice()) {
            let _ = Cluster::try_from(&c);
        }
        if let Ok(c) = ClusterLoadAssignment::decode(bytes.as_slice()) {
            let _ = LoadAssignment::try_from(&c);
        }
        if let Ok(l) = XdsListener::decode(bytes.as_slice()) {
            let _ = Listener::try_from(&l);
        }
        if let Ok(r) = RouteConfiguration::decode(bytes.as_slice()) {
            let _ = RouteTable::try_from(&r);
        }
    }

    #[test]
    fn arbitrary_domains_and_regexes_convert_or_fail_cleanly(
        domains in proptest::collection::vec("[*a-z.:-]{0,12}", 0..6),
        regex in ".{0,16}",
        host in "[A-Za-z.:-]{0,16}",
        path in "/[a-z/]{0,12}",
    ) {
        let rc = RouteConfiguration {
            name: "p".into(),
            virtual_hosts: vec![VirtualHost {
                name: "v".into(),
                domains,
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::SafeRegex(RegexMatcher { regex, ..Default::default() })),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        match RouteTable::try_from(&rc) {
            Ok(t) => {
                let headers = http::HeaderMap::new();
                let view = RequestView { method: "GET", scheme: "http", authority: &host, path: &path, query: None, headers: &headers };
                let _ = t.find(&view);
            }
            Err(e) => prop_assert!(e.to_string().contains("route configuration p"), "{e}"),
        }
    }
}
