//! The delta protocol: wildcards and subscriptions as clusters and
//! listeners come and go, `removed_resources`, NACKs that change nothing,
//! `initial_resource_versions` on reconnect.

use super::super::*;
use super::{eds_cluster, listener, routes, types};
use std::collections::HashMap;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::route::v3::RouteMatch;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

/// A delta response of `k` with `resources` (name, version, message) and
/// `removed` names.
pub(in crate::xds::state) fn delta_response(
    k: Kind,
    nonce: &str,
    resources: Vec<(String, &str, weft_xds::pb::google::protobuf::Any)>,
    removed: &[&str],
) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: format!("sys-{nonce}"),
        resources: resources
            .into_iter()
            .map(|(name, version, any)| Resource {
                name,
                version: version.into(),
                resource: Some(any),
                ..Default::default()
            })
            .collect(),
        type_url: k.type_url().into(),
        removed_resources: removed.iter().map(|s| s.to_string()).collect(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// One resource of a delta response, named as its message.
pub(in crate::xds::state) fn res<M: prost::Message + prost::Name>(
    name: &str,
    version: &'static str,
    m: &M,
) -> (String, &'static str, weft_xds::pb::google::protobuf::Any) {
    (name.to_string(), version, weft_xds::pack(m))
}

pub(in crate::xds::state) fn cla(name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        ..Default::default()
    }
}

/// The delta request inside `r`.
pub(in crate::xds::state) fn delta(r: &Request) -> &DeltaDiscoveryRequest {
    match r {
        Request::Delta(r) => r,
        Request::Sotw(r) => panic!("a SotW request on a delta stream: {r:?}"),
    }
}

/// (subscribe, unsubscribe) of a delta request, sorted.
pub(in crate::xds::state) fn subs(r: &Request) -> (Vec<&str>, Vec<&str>) {
    let r = delta(r);
    let mut s: Vec<&str> = r
        .resource_names_subscribe
        .iter()
        .map(String::as_str)
        .collect();
    let mut u: Vec<&str> = r
        .resource_names_unsubscribe
        .iter()
        .map(String::as_str)
        .collect();
    s.sort_unstable();
    u.sort_unstable();
    (s, u)
}

pub(in crate::xds::state) fn delta_state() -> State {
    State::with_protocol(
        Node {
            id: "sidecar~127.0.0.1~a.ns~ns.svc.cluster.local".into(),
            ..Default::default()
        },
        Duration::from_secs(2),
        Protocol::Delta,
    )
}

/// A delta state with cluster c1, listener 0.0.0.0_80 on routes 80 → c1.
pub(in crate::xds::state) fn delta_synced(now: Instant) -> State {
    let mut s = delta_state();
    let first = s.start_stream();
    assert_eq!(types(&first), vec![("CDS", "", false)]);
    let node = delta(&first[0])
        .node
        .as_ref()
        .expect("the first request carries the node");
    assert!(
        node.client_features.iter().any(|f| f == "weft.vhds"),
        "{node:?}"
    );
    assert_eq!(
        subs(&first[0]),
        (vec![], vec![]),
        "CDS: the legacy wildcard"
    );
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n1",
            vec![res("c1", "c1v1", &eds_cluster("c1"))],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("EDS", "", false), ("LDS", "", false)]
    );
    assert_eq!(subs(&o.requests[0]), (vec!["c1"], vec![]));
    assert_eq!(
        subs(&o.requests[1]),
        (vec![], vec![]),
        "LDS: the legacy wildcard"
    );
    assert!(o.snapshot.is_none(), "c1 warms until its endpoints come");
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n2",
            vec![res("c1", "e1v1", &cla("c1"))],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("CDS", "n1", false), ("EDS", "n2", false)],
        "both ACKed together"
    );
    assert!(o.snapshot.is_some());
    let o = s.on_delta_response(
        delta_response(
            Kind::Listener,
            "n3",
            vec![res("0.0.0.0_80", "l1v1", &listener("0.0.0.0_80", "80"))],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("RDS", "", false)]);
    assert_eq!(subs(&o.requests[0]), (vec!["80"], vec![]));
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "n4",
            vec![res("80", "r1v1", &routes("80", "c1"))],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("LDS", "n3", false), ("RDS", "n4", false)]
    );
    let snap = o.snapshot.expect("applied");
    assert!(snap.outbound_routes(80).is_some());
    assert_eq!(
        snap.parts.versions.get("RDS").map(String::as_str),
        Some("sys-n4")
    );
    assert!(s.complete);
    s
}

#[test]
fn wildcards_then_names_as_they_come_and_acks() {
    delta_synced(Instant::now());
}

#[test]
fn clusters_that_come_and_go_subscribe_and_unsubscribe_their_endpoints() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    // c2 comes, c1 goes (its routes move to c2 in the same push).
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &["c1"],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("EDS", "n2", false)]);
    assert_eq!(subs(&o.requests[0]), (vec!["c2"], vec!["c1"]));
    assert!(o.snapshot.is_none(), "c2 warms; routes still name c1");
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n6",
            vec![res("c2", "e2v1", &cla("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none(), "routes 80 still name c1: held");
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "n7",
            vec![res("80", "r1v2", &routes("80", "c2"))],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![
            ("CDS", "n5", false),
            ("EDS", "n6", false),
            ("RDS", "n7", false)
        ]
    );
    let snap = o.snapshot.expect("applied together");
    assert!(snap.cluster("c1").is_none() && snap.cluster("c2").is_some());
    assert_eq!(
        snap.parts.assignments.keys().collect::<Vec<_>>(),
        vec!["c2"],
        "c1's endpoints went with it"
    );
    // A reconnect says so too.
    let reqs = s.start_stream();
    let eds = reqs
        .iter()
        .find(|r| r.type_url() == Kind::Endpoints.type_url())
        .expect("EDS");
    assert_eq!(
        delta(eds).initial_resource_versions,
        HashMap::from([("c2".to_string(), "e2v1".to_string())])
    );
}

#[test]
fn listeners_that_come_and_go_subscribe_and_unsubscribe_their_routes() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Listener,
            "n5",
            vec![res("0.0.0.0_81", "l2v1", &listener("0.0.0.0_81", "81"))],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("RDS", "n4", false)]);
    assert_eq!(
        subs(&o.requests[0]),
        (vec!["81"], vec![]),
        "only the new name"
    );
    assert!(o.snapshot.is_none(), "the new listener warms");
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "n6",
            vec![res("81", "r2v1", &routes("81", "c1"))],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert!(snap.outbound_routes(80).is_some() && snap.outbound_routes(81).is_some());
    let o = s.on_delta_response(
        delta_response(Kind::Listener, "n7", vec![], &["0.0.0.0_81"]),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("RDS", "n6", false), ("LDS", "n7", false)]
    );
    assert_eq!(subs(&o.requests[0]), (vec![], vec!["81"]));
    let snap = o.snapshot.expect("applied");
    assert!(snap.outbound_routes(81).is_none());
    assert!(snap.parts.listeners.contains_key("0.0.0.0_80"));
}

#[test]
fn a_name_the_server_says_is_absent_does_not_wait() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none(), "c2 warms");
    // The server has no endpoints for c2: "does not exist".
    let o = s.on_delta_response(delta_response(Kind::Endpoints, "n6", vec![], &["c2"]), now);
    let snap = o
        .snapshot
        .expect("applied without waiting for the deadline");
    assert!(snap.cluster("c2").is_some());
    assert!(s.deadline().is_none());
}

fn bad_routes() -> weft_xds::pb::envoy::config::route::v3::RouteConfiguration {
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
    bad
}

#[test]
fn a_nacked_delta_response_changes_nothing() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    // c2 arrives and warms; then a bad CDS response is NACKed.
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none());
    let mut broken = eds_cluster("c3");
    broken.cluster_discovery_type = None;
    broken.load_assignment = None;
    broken.eds_cluster_config = None;
    broken.lb_policy = 99;
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n6",
            vec![res("c3", "c3v1", &broken)],
            &["c1"],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("CDS", "n6", true)]);
    assert!(o.snapshot.is_none());
    assert_eq!(
        s.last_rejection.as_ref().map(|r| r.version.as_str()),
        Some("sys-n6")
    );
    // c2's endpoints: c2 applies; c1 stays (its removal was NACKed), c3 never came.
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n7",
            vec![res("c2", "e2v1", &cla("c2"))],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert!(snap.cluster("c1").is_some() && snap.cluster("c2").is_some());
    assert!(snap.cluster("c3").is_none());
    // A bad route update: the last good routes stay, and their version.
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "n8",
            vec![res("80", "r1v2", &bad_routes())],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("RDS", "n8", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("route configuration 80"), "{msg}");
    assert!(o.snapshot.is_none());
    let reqs = s.start_stream();
    let rds = reqs
        .iter()
        .find(|r| r.type_url() == Kind::Routes.type_url())
        .expect("RDS");
    assert_eq!(
        delta(rds).initial_resource_versions,
        HashMap::from([("80".to_string(), "r1v1".to_string())]),
        "the version held, not the NACKed one"
    );
}

#[test]
fn a_resource_named_otherwise_than_its_message_is_nacked() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c9", "v", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("CDS", "n5", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("c9") && msg.contains("c2"), "{msg}");
}

#[test]
fn reconnecting_sends_the_versions_held() {
    let mut s = delta_synced(Instant::now());
    let reqs = s.start_stream();
    assert_eq!(
        types(&reqs),
        vec![
            ("CDS", "", false),
            ("EDS", "", false),
            ("LDS", "", false),
            ("RDS", "", false)
        ],
        "no VHDS: nothing uses it"
    );
    assert!(delta(&reqs[0]).node.is_some() && delta(&reqs[1]).node.is_none());
    let initial = |i: usize| delta(&reqs[i]).initial_resource_versions.clone();
    let one = |n: &str, v: &str| HashMap::from([(n.to_string(), v.to_string())]);
    assert_eq!(initial(0), one("c1", "c1v1"));
    assert_eq!(initial(1), one("c1", "e1v1"));
    assert_eq!(initial(2), one("0.0.0.0_80", "l1v1"));
    assert_eq!(initial(3), one("80", "r1v1"));
    assert_eq!(subs(&reqs[0]), (vec![], vec![]), "CDS: wildcard again");
    assert_eq!(subs(&reqs[1]), (vec!["c1"], vec![]), "names again");
    assert_eq!(subs(&reqs[3]), (vec!["80"], vec![]));
    // Later requests on the stream carry no initial versions.
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "m1",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        Instant::now(),
    );
    assert_eq!(subs(&o.requests[0]), (vec!["c2"], vec![]));
    assert!(delta(&o.requests[0]).initial_resource_versions.is_empty());
}

#[test]
fn an_eds_response_changing_one_cluster_keeps_the_others() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none());
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n6",
            vec![res("c2", "e2v1", &cla("c2"))],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    let c1 = snap.cluster("c1").expect("c1").assignment.clone();
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n7",
            vec![res("c2", "e2v2", &cla("c2"))],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert!(
        Arc::ptr_eq(&c1, &snap.cluster("c1").expect("c1").assignment),
        "c1 was not sent, so it is the same"
    );
}

#[test]
fn responses_held_while_warming_compose() {
    let now = Instant::now();
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n5",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none(), "c2 warms");
    // The next CDS response changes c3 only: c2 must not be lost.
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "n6",
            vec![res("c3", "c3v1", &eds_cluster("c3"))],
            &[],
        ),
        now,
    );
    assert_eq!(subs(&o.requests[0]), (vec!["c3"], vec![]));
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "n7",
            vec![res("c2", "e2v1", &cla("c2")), res("c3", "e3v1", &cla("c3"))],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("CDS", "n6", false), ("EDS", "n7", false)],
        "the last CDS nonce ACKs both"
    );
    let snap = o.snapshot.expect("applied");
    for c in ["c1", "c2", "c3"] {
        assert!(snap.cluster(c).is_some(), "{c}");
    }
    let reqs = s.start_stream();
    let cds = delta(&reqs[0]).initial_resource_versions.clone();
    assert_eq!(cds.len(), 3, "{cds:?}");
    assert_eq!(cds.get("c2").map(String::as_str), Some("c2v1"));
}
