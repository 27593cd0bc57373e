//! A client connecting while generations are being published as fast as
//! the server can take them gets one generation's snapshot in its first
//! round: one version across CDS, EDS, LDS and RDS, every EDS cluster and
//! every cluster a route names in its CDS.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64};

use weft_xds::pb::envoy::config::cluster::v3::Cluster;
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::Listener;
use weft_xds::pb::envoy::config::route::v3::RouteConfiguration;
use weft_xds::pb::envoy::config::route::v3::route::Action;
use weft_xds::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use weft_xds::pb::google::protobuf::Any;

use super::*;

/// Distinct meshes the publisher cycles through: mesh `i` has services
/// `s<i>` and `s<i+1>`, so consecutive generations differ in every type.
const MESHES: usize = 6;
/// Clients connecting during the race (half delta, half state of the world).
const CLIENTS: usize = 40;
/// The most generations the publisher publishes.
const MAX_GENERATIONS: u64 = 200_000;

fn service(i: usize) -> String {
    GREETER.replace("greeter", &format!("s{i}"))
}

fn mesh(i: usize) -> String {
    format!("{}---\n{}", service(i), service(i + 1))
}

fn cluster_name(i: usize) -> String {
    GREETER_CLUSTER.replace("greeter", &format!("s{i}"))
}

fn listener_name(i: usize) -> String {
    LISTENER.replace("greeter", &format!("s{i}"))
}

/// What a client holds after its first response of each type.
#[derive(Debug, Default)]
struct Round {
    versions: BTreeMap<TypeUrl, String>,
    clusters: BTreeSet<String>,
    endpoints: BTreeSet<String>,
    listeners: BTreeSet<String>,
    routed: BTreeSet<String>,
}

use std::collections::BTreeMap;

impl Round {
    fn add(&mut self, type_url: TypeUrl, version: String, resources: &[Any]) {
        self.versions.insert(type_url, version);
        for any in resources {
            match type_url {
                TypeUrl::Cluster => {
                    let c: Cluster = weft_xds::unpack(any).expect("cluster");
                    self.clusters.insert(c.name);
                }
                TypeUrl::ClusterLoadAssignment => {
                    let e: ClusterLoadAssignment = weft_xds::unpack(any).expect("eds");
                    self.endpoints.insert(e.cluster_name);
                }
                TypeUrl::Listener => {
                    let l: Listener = weft_xds::unpack(any).expect("listener");
                    self.listeners.insert(l.name);
                }
                TypeUrl::RouteConfiguration => {
                    let r: RouteConfiguration = weft_xds::unpack(any).expect("rds");
                    for route in r.virtual_hosts.iter().flat_map(|v| &v.routes) {
                        let Some(Action::Route(a)) = &route.action else {
                            continue;
                        };
                        match &a.cluster_specifier {
                            Some(ClusterSpecifier::Cluster(c)) => {
                                self.routed.insert(c.clone());
                            }
                            Some(ClusterSpecifier::WeightedClusters(w)) => {
                                self.routed
                                    .extend(w.clusters.iter().map(|c| c.name.clone()));
                            }
                            _ => {}
                        }
                    }
                }
                TypeUrl::Secret | TypeUrl::VirtualHost => {}
            }
        }
    }

    fn check(&self) -> u64 {
        let versions: BTreeSet<&String> = self.versions.values().collect();
        assert_eq!(versions.len(), 1, "one generation per round: {self:#?}");
        assert!(
            self.endpoints.is_subset(&self.clusters),
            "EDS for clusters not in CDS: {self:#?}"
        );
        assert!(
            self.routed.is_subset(&self.clusters),
            "routes to clusters not in CDS: {self:#?}"
        );
        assert_eq!(self.endpoints.len(), 2, "{self:#?}");
        assert_eq!(self.listeners.len(), 2, "{self:#?}");
        assert!(!self.routed.is_empty(), "{self:#?}");
        versions
            .into_iter()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("numeric version")
    }
}

/// Like Envoy: CDS and LDS first; EDS and RDS once those arrived (before
/// ACKing them: cluster and listener warming), so the round spans a
/// round trip during which the publisher keeps publishing.
const WAVES: [[TypeUrl; 2]; 2] = [
    [TypeUrl::Cluster, TypeUrl::Listener],
    [TypeUrl::ClusterLoadAssignment, TypeUrl::RouteConfiguration],
];

async fn delta_round(h: &mut Harness) -> Round {
    let mut s = h.delta().await;
    let mut round = Round::default();
    for (wave, types) in WAVES.into_iter().enumerate() {
        for (i, t) in types.into_iter().enumerate() {
            s.send(DeltaDiscoveryRequest {
                node: (wave == 0 && i == 0).then(grpc_node),
                type_url: t.as_str().into(),
                resource_names_subscribe: vec!["*".into()],
                ..DeltaDiscoveryRequest::default()
            })
            .await;
        }
        while types.iter().any(|t| !round.versions.contains_key(t)) {
            let r = s.recv().await.expect("response");
            let t: TypeUrl = r.type_url.parse().expect("type");
            if round.versions.contains_key(&t) {
                continue; // a push: not part of the first round
            }
            let resources: Vec<Any> = r.resources.into_iter().filter_map(|r| r.resource).collect();
            round.add(t, r.system_version_info, &resources);
        }
    }
    round
}

async fn sotw_round(h: &mut Harness) -> Round {
    let clusters: Vec<String> = (0..=MESHES).map(cluster_name).collect();
    let listeners: Vec<String> = (0..=MESHES).map(listener_name).collect();
    let mut s = h.sotw().await;
    let mut round = Round::default();
    for (wave, types) in WAVES.into_iter().enumerate() {
        for (i, t) in types.into_iter().enumerate() {
            let names = match t {
                TypeUrl::ClusterLoadAssignment => clusters.clone(),
                TypeUrl::RouteConfiguration => listeners.clone(),
                _ => Vec::new(),
            };
            s.send(DiscoveryRequest {
                node: (wave == 0 && i == 0).then(grpc_node),
                type_url: t.as_str().into(),
                resource_names: names,
                ..DiscoveryRequest::default()
            })
            .await;
        }
        while types.iter().any(|t| !round.versions.contains_key(t)) {
            let r = s.recv().await.expect("response");
            let t: TypeUrl = r.type_url.parse().expect("type");
            if round.versions.contains_key(&t) {
                continue; // a push: not part of the first round
            }
            round.add(t, r.version_info, &r.resources);
        }
    }
    round
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connecting_mid_push_gets_one_generation() {
    let meshes: Vec<Arc<Generation>> = (0..MESHES).map(|i| generation(0, &mesh(i))).collect();
    let mut h = start(generation(1, &mesh(0))).await;

    // The publisher: a new generation as often as the runtime lets it.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(1));
    let publisher = {
        let (stop, published, publish) = (stop.clone(), published.clone(), h.publish.clone());
        tokio::spawn(async move {
            for version in 2..MAX_GENERATIONS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let m = &meshes[version as usize % MESHES];
                publish.send_replace(Arc::new(Generation::new(
                    version,
                    m.config.clone(),
                    m.registry.clone(),
                )));
                published.store(version, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    let mut seen = BTreeSet::new();
    for i in 0..CLIENTS {
        let round = if i % 2 == 0 {
            delta_round(&mut h).await
        } else {
            sotw_round(&mut h).await
        };
        seen.insert(round.check());
    }
    stop.store(true, Ordering::Relaxed);
    publisher.await.expect("publisher");
    // The race was real: the generations moved under the clients.
    assert!(
        seen.len() > CLIENTS / 2,
        "clients saw only {} generations of {}",
        seen.len(),
        published.load(Ordering::Relaxed)
    );
}
