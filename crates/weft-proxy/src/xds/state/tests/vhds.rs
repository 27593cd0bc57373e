//! VHDS: virtual hosts added, changed and removed; a route configuration
//! updated (its set replaced by what follows) or gone (unsubscribed);
//! warming; NACKs. Real protobuf messages throughout.

use super::super::*;
use super::delta::{delta, delta_response, delta_synced, res, subs};
use super::{eds_cluster, listener, types};
use std::collections::HashMap;
use weft_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ConfigSource, HeaderValue, HeaderValueOption, config_source,
};
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::envoy::config::route::v3::route_match::PathSpecifier;
use weft_xds::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, Vhds, VirtualHost as XdsVhost,
};

use crate::route::Action as RouteAct;

/// A route configuration whose virtual hosts come by VHDS.
fn vhds_routes(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        vhds: Some(Vhds {
            config_source: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
        }),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

fn vhost(name: &str, domain: &str, cluster: &str) -> XdsVhost {
    XdsVhost {
        name: name.into(),
        domains: vec![domain.into()],
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
    }
}

fn vh(
    r: &str,
    name: &str,
    version: &'static str,
    domain: &str,
    cluster: &str,
) -> (String, &'static str, weft_xds::pb::google::protobuf::Any) {
    res(
        &format!("{r}/{name}"),
        version,
        &vhost(name, domain, cluster),
    )
}

/// The cluster `host` is routed to by `table`.
fn cluster_of(table: &RouteTable, host: &str) -> Option<String> {
    let vh = table.virtual_host(host)?;
    match &vh.routes.first()?.action {
        RouteAct::Forward(f) => Some(f.target.clusters().next()?.to_string()),
        _ => None,
    }
}

fn names(table: &RouteTable) -> Vec<&str> {
    table
        .virtual_hosts
        .iter()
        .map(|v| v.name.as_str())
        .collect()
}

/// A delta state with clusters c1, c2, listeners on 80 and 81 whose
/// route configurations (80, 81) have vhds: 80/a (a → c1), 80/b (b → c2),
/// 81/x (x → c1).
fn vhds_synced(now: Instant) -> State {
    let mut s = delta_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Cluster,
            "v1",
            vec![res("c2", "c2v1", &eds_cluster("c2"))],
            &[],
        ),
        now,
    );
    assert_eq!(subs(&o.requests[0]), (vec!["c2"], vec![]));
    let o = s.on_delta_response(
        delta_response(
            Kind::Endpoints,
            "v2",
            vec![res("c2", "e2v1", &super::delta::cla("c2"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_some());
    let o = s.on_delta_response(
        delta_response(
            Kind::Listener,
            "v3",
            vec![res("0.0.0.0_81", "l2v1", &listener("0.0.0.0_81", "81"))],
            &[],
        ),
        now,
    );
    assert_eq!(subs(&o.requests[0]), (vec!["81"], vec![]));
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "v4",
            vec![
                res("80", "r80v1", &vhds_routes("80")),
                res("81", "r81v1", &vhds_routes("81")),
            ],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("VHDS", "", false)],
        "subscribes to the virtual hosts of both, by the configurations' names"
    );
    assert_eq!(subs(&o.requests[0]), (vec!["80", "81"], vec![]));
    assert!(
        o.snapshot.is_none(),
        "the configurations warm until their virtual hosts come"
    );
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v5",
            vec![
                vh("80", "a", "a1", "a", "c1"),
                vh("80", "b", "b1", "b", "c2"),
                vh("81", "x", "x1", "x", "c1"),
            ],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![
            ("LDS", "v3", false),
            ("RDS", "v4", false),
            ("VHDS", "v5", false)
        ],
        "ACKed together, VHDS last"
    );
    let snap = o.snapshot.expect("applied");
    let t80 = snap.outbound_routes(80).expect("80");
    assert_eq!(names(t80), vec!["a", "b"]);
    assert_eq!(
        cluster_of(t80, "a:80").as_deref(),
        Some("c1"),
        "ports ignored as R says"
    );
    assert_eq!(cluster_of(t80, "b").as_deref(), Some("c2"));
    assert_eq!(
        cluster_of(snap.outbound_routes(81).expect("81"), "x").as_deref(),
        Some("c1")
    );
    assert!(s.complete);
    s
}

#[test]
fn virtual_hosts_arrive_and_make_the_route_table() {
    vhds_synced(Instant::now());
}

#[test]
fn a_changed_virtual_host_rebuilds_only_its_configuration() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let before = s.applied.routes.clone();
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v6",
            vec![vh("80", "b", "b2", "b", "c1")],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("VHDS", "v6", false)]);
    let snap = o.snapshot.expect("applied");
    let t80 = snap.outbound_routes(80).expect("80");
    assert_eq!(cluster_of(t80, "b").as_deref(), Some("c1"), "b moved");
    assert!(
        Arc::ptr_eq(&t80.virtual_hosts[0], &before["80"].virtual_hosts[0]),
        "a was not converted again"
    );
    assert!(
        Arc::ptr_eq(&snap.parts.routes["81"], &before["81"]),
        "81's table is the same"
    );
    // A virtual host added beside them.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v7",
            vec![vh("80", "c", "c1", "c", "c2")],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert_eq!(names(&snap.parts.routes["80"]), vec!["a", "b", "c"]);
}

#[test]
fn a_removed_virtual_host_goes() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let o = s.on_delta_response(
        delta_response(Kind::VirtualHosts, "v6", vec![], &["80/a"]),
        now,
    );
    let snap = o.snapshot.expect("applied");
    let t80 = snap.outbound_routes(80).expect("80");
    assert_eq!(names(t80), vec!["b"]);
    assert!(t80.virtual_host("a").is_none());
    let reqs = s.start_stream();
    let vhds = reqs
        .iter()
        .find(|r| r.type_url() == vhds::TYPE_URL)
        .expect("VHDS asked for again on reconnect");
    assert_eq!(subs(vhds), (vec!["80", "81"], vec![]));
    assert_eq!(
        delta(vhds).initial_resource_versions,
        HashMap::from([
            ("80/b".to_string(), "b1".to_string()),
            ("81/x".to_string(), "x1".to_string())
        ])
    );
}

#[test]
fn an_updated_configuration_keeps_its_virtual_hosts_until_the_new_set_comes() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let mut updated = vhds_routes("80");
    updated.ignore_port_in_host_matching = false;
    updated.response_headers_to_add = vec![HeaderValueOption {
        header: Some(HeaderValue {
            key: "x-r".into(),
            value: "2".into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let o = s.on_delta_response(
        delta_response(Kind::Routes, "v6", vec![res("80", "r80v2", &updated)], &[]),
        now,
    );
    assert!(
        o.snapshot.is_none() && o.requests.is_empty(),
        "held until the virtual hosts follow: {:?}",
        types(&o.requests)
    );
    assert!(s.deadline().is_some());
    assert_eq!(
        names(&s.applied.routes["80"]),
        vec!["a", "b"],
        "the old table serves"
    );
    // The server sends all of 80's virtual hosts again: b is no longer among them.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v7",
            vec![vh("80", "a", "a1", "a", "c2")],
            &[],
        ),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![("RDS", "v6", false), ("VHDS", "v7", false)]
    );
    let snap = o.snapshot.expect("applied");
    let t80 = snap.outbound_routes(80).expect("80");
    assert_eq!(names(t80), vec!["a"], "the set is what came");
    assert_eq!(cluster_of(t80, "a").as_deref(), Some("c2"));
    assert!(t80.virtual_host("a:80").is_none(), "ports count now");
    let headers = &t80.virtual_hosts[0].routes[0].response_headers;
    let mut h = http::HeaderMap::new();
    headers.apply(&mut h);
    assert_eq!(
        h.get("x-r").map(|v| v.as_bytes()),
        Some(&b"2"[..]),
        "R's headers on its virtual hosts"
    );
    assert_eq!(names(&snap.parts.routes["81"]), vec!["x"], "81 untouched");
    let reqs = s.start_stream();
    let vhds = reqs
        .iter()
        .find(|r| r.type_url() == vhds::TYPE_URL)
        .expect("VHDS");
    assert_eq!(
        delta(vhds).initial_resource_versions,
        HashMap::from([
            ("80/a".to_string(), "a1".to_string()),
            ("81/x".to_string(), "x1".to_string())
        ]),
        "80/b is not held any more"
    );
}

#[test]
fn a_configuration_whose_virtual_hosts_never_come_applies_at_the_deadline() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::Listener,
            "v6",
            vec![res("0.0.0.0_82", "l3v1", &listener("0.0.0.0_82", "82"))],
            &[],
        ),
        now,
    );
    assert_eq!(subs(&o.requests[0]), (vec!["82"], vec![]));
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "v7",
            vec![res("82", "r82v1", &vhds_routes("82"))],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("VHDS", "v5", false)]);
    assert_eq!(subs(&o.requests[0]), (vec!["82"], vec![]));
    // A VHDS response for others doesn't answer 82.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v8",
            vec![vh("81", "y", "y1", "y", "c2")],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none(), "82 still warms");
    let o = s.on_deadline(now + Duration::from_secs(3));
    let snap = o.snapshot.expect("applied as it is");
    assert!(names(snap.outbound_routes(82).expect("82")).is_empty());
    assert_eq!(names(&snap.parts.routes["81"]), vec!["x", "y"]);
    assert!(s.complete && s.deadline().is_none());
    // What comes later updates it, without waiting.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v9",
            vec![vh("82", "z", "z1", "z", "c1")],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert_eq!(names(snap.outbound_routes(82).expect("82")), vec!["z"]);
}

#[test]
fn a_configuration_the_server_names_removed_has_no_virtual_hosts_and_does_not_wait() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    s.on_delta_response(
        delta_response(
            Kind::Listener,
            "v6",
            vec![res("0.0.0.0_82", "l3v1", &listener("0.0.0.0_82", "82"))],
            &[],
        ),
        now,
    );
    let o = s.on_delta_response(
        delta_response(
            Kind::Routes,
            "v7",
            vec![res("82", "r82v1", &vhds_routes("82"))],
            &[],
        ),
        now,
    );
    assert!(o.snapshot.is_none(), "82 warms");
    assert!(s.deadline().is_some());
    // The server's answer for a configuration with no virtual hosts: its
    // own name removed. Applied now, not at the deadline.
    let o = s.on_delta_response(
        delta_response(Kind::VirtualHosts, "v8", vec![], &["82"]),
        now,
    );
    let snap = o.snapshot.expect("applied without waiting");
    assert!(names(snap.outbound_routes(82).expect("82")).is_empty());
    assert_eq!(
        names(&snap.parts.routes["80"]),
        vec!["a", "b"],
        "80 as it was"
    );
    assert!(s.complete && s.deadline().is_none());
    assert_eq!(
        types(&o.requests),
        vec![
            ("LDS", "v6", false),
            ("RDS", "v7", false),
            ("VHDS", "v8", false)
        ],
        "ACKed"
    );
    // Its virtual hosts still come when they appear.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v9",
            vec![vh("82", "z", "z1", "z", "c1")],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert_eq!(names(snap.outbound_routes(82).expect("82")), vec!["z"]);
}

#[test]
fn a_configuration_that_goes_is_unsubscribed() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    // Its listener goes: RDS and VHDS both drop 81.
    let o = s.on_delta_response(
        delta_response(Kind::Listener, "v6", vec![], &["0.0.0.0_81"]),
        now,
    );
    assert_eq!(
        types(&o.requests),
        vec![
            ("RDS", "v4", false),
            ("VHDS", "v5", false),
            ("LDS", "v6", false)
        ]
    );
    assert_eq!(subs(&o.requests[0]), (vec![], vec!["81"]));
    assert_eq!(subs(&o.requests[1]), (vec![], vec!["81"]));
    assert!(o.snapshot.expect("applied").outbound_routes(81).is_none());
    // The server removes 80 itself: its virtual hosts go too.
    let o = s.on_delta_response(delta_response(Kind::Routes, "v7", vec![], &["80"]), now);
    assert_eq!(
        types(&o.requests),
        vec![("VHDS", "v5", false), ("RDS", "v7", false)]
    );
    assert_eq!(subs(&o.requests[0]), (vec![], vec!["80"]));
    let snap = o
        .snapshot
        .expect("applied: the server says 80 doesn't exist, nothing to wait for");
    assert!(snap.parts.routes.is_empty());
    assert!(s.vhosts.is_empty(), "its virtual hosts are forgotten");
    let reqs = s.start_stream();
    assert!(
        reqs.iter().all(|r| r.type_url() != vhds::TYPE_URL),
        "nothing to ask VHDS for"
    );
}

#[test]
fn a_domain_claimed_twice_nacks_the_virtual_hosts() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v6",
            vec![vh("80", "c", "c1", "a", "c2")],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("VHDS", "v6", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("claimed by two virtual hosts"), "{msg}");
    assert!(o.snapshot.is_none());
    // The next response applies onto the set held before the NACK.
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v7",
            vec![vh("80", "d", "d1", "d", "c2")],
            &[],
        ),
        now,
    );
    let snap = o.snapshot.expect("applied");
    assert_eq!(names(&snap.parts.routes["80"]), vec!["a", "b", "d"]);
}

#[test]
fn a_virtual_host_named_otherwise_or_naming_a_missing_cluster_is_refused() {
    let now = Instant::now();
    let mut s = vhds_synced(now);
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v6",
            vec![res("80/e", "e1", &vhost("f", "e", "c1"))],
            &[],
        ),
        now,
    );
    assert_eq!(types(&o.requests), vec![("VHDS", "v6", true)]);
    let o = s.on_delta_response(
        delta_response(
            Kind::VirtualHosts,
            "v7",
            vec![vh("80", "e", "e1", "e", "missing")],
            &[],
        ),
        now,
    );
    assert!(
        o.snapshot.is_none() && o.requests.is_empty(),
        "waits for CDS"
    );
    let o = s.on_deadline(now + Duration::from_secs(3));
    assert_eq!(types(&o.requests), vec![("VHDS", "v7", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("cluster missing"), "{msg}");
    assert_eq!(names(&s.applied.routes["80"]), vec!["a", "b"]);
}

#[test]
fn vhds_needs_the_delta_protocol() {
    let mut s = State::new(Node::default(), Duration::from_secs(2));
    s.start_stream();
    let o = s.on_response(
        super::response(
            Kind::Routes.type_url().parse().expect("RDS"),
            "1",
            "n1",
            &[vhds_routes("80")],
        ),
        Instant::now(),
    );
    assert_eq!(types(&o.requests), vec![("RDS", "n1", true)]);
    let msg = o.requests[0].error().expect("error");
    assert!(msg.contains("delta"), "{msg}");
}

/// The virtual hosts of the property test (a and b are there at first).
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// What a control plane does to route configuration 80's virtual hosts.
#[derive(Clone, Debug)]
enum Op {
    /// Adds or changes one (name, cluster).
    Put(u8, bool),
    /// Removes one.
    Remove(u8),
    /// Updates 80 itself, then sends all of its virtual hosts again —
    /// without this one, if it had it (no `removed_resources`: the set
    /// sent is the set).
    Update(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..6, any::<bool>()).prop_map(|(n, c)| Op::Put(n, c)),
        2 => (0u8..6).prop_map(Op::Remove),
        2 => (0u8..6).prop_map(Op::Update),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever sequence of changes comes, the table in force is the set
    /// the control plane holds — the same as converting it whole.
    #[test]
    fn any_sequence_of_changes_gives_the_set_the_server_holds(
        ops in proptest::collection::vec(op(), 1..24)
    ) {
        let now = Instant::now();
        let mut s = vhds_synced(now);
        let mut model: BTreeMap<String, &str> =
            BTreeMap::from([("a".to_string(), "c1"), ("b".to_string(), "c2")]);
        for (i, op) in ops.into_iter().enumerate() {
            let nonce = format!("p{i}");
            let vhosts = |m: &BTreeMap<String, &str>| {
                m.iter()
                    .map(|(n, c)| vh("80", n, "v", n, c))
                    .collect::<Vec<_>>()
            };
            let snap = match op {
                Op::Put(n, c) => {
                    let name = NAMES[usize::from(n)].to_string();
                    let cluster = if c { "c1" } else { "c2" };
                    model.insert(name.clone(), cluster);
                    let r = delta_response(
                        Kind::VirtualHosts,
                        &nonce,
                        vec![vh("80", &name, "v", &name, cluster)],
                        &[],
                    );
                    s.on_delta_response(r, now).snapshot
                }
                Op::Remove(n) => {
                    let name = NAMES[usize::from(n)].to_string();
                    let held = model.remove(&name).is_some();
                    let removed = format!("80/{name}");
                    let r = delta_response(Kind::VirtualHosts, &nonce, vec![], &[removed.as_str()]);
                    let snap = s.on_delta_response(r, now).snapshot;
                    proptest::prop_assert!(snap.is_some() || !held);
                    snap
                }
                Op::Update(n) => {
                    model.remove(NAMES[usize::from(n)]);
                    let mut r80 = vhds_routes("80");
                    r80.ignore_port_in_host_matching = i % 2 == 0;
                    let rds = delta_response(Kind::Routes, &nonce, vec![res("80", "r", &r80)], &[]);
                    let o = s.on_delta_response(rds, now);
                    proptest::prop_assert!(o.snapshot.is_none(), "held for its virtual hosts");
                    // All of them again; none: the server says 80 has nothing.
                    let none: &[&str] = if model.is_empty() { &["80"] } else { &[] };
                    let r = delta_response(Kind::VirtualHosts, &format!("{nonce}v"), vhosts(&model), none);
                    s.on_delta_response(r, now).snapshot
                }
            };
            if let Some(snap) = snap {
                let t = snap.outbound_routes(80).expect("80");
                let names: Vec<&str> = t.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
                let want: Vec<&str> = model.keys().map(String::as_str).collect();
                proptest::prop_assert_eq!(names, want);
                for (n, c) in &model {
                    let got = cluster_of(t, n);
                    proptest::prop_assert_eq!(got.as_deref(), Some(*c));
                }
            }
            proptest::prop_assert!(s.deadline().is_none(), "nothing left waiting");
        }
        let t = &s.applied.routes["80"];
        let want: Vec<&str> = model.keys().map(String::as_str).collect();
        proptest::prop_assert_eq!(names(t), want);
        proptest::prop_assert_eq!(names(&s.applied.routes["81"]), vec!["x"]);
    }
}
