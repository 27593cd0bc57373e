use std::collections::VecDeque;

use prost::Message;
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use weft_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
};
use weft_xds::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use weft_xds::pb::google::protobuf::Any;
use weft_xds::{TypeUrl, pack};

use super::*;

/// Chunks given up front, as a stream's DATA frames.
struct Chunks(VecDeque<Bytes>);

impl Source for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.pop_front())
    }
}

/// `messages` gRPC-framed one after the other, cut into `size`-byte chunks.
fn chunked(messages: &[DiscoveryResponse], size: usize) -> Chunks {
    let mut all = Vec::new();
    for m in messages {
        let body = m.encode_to_vec();
        all.push(0u8);
        all.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
        all.extend_from_slice(&body);
    }
    Chunks(
        all.chunks(size)
            .map(Bytes::copy_from_slice)
            .collect::<VecDeque<_>>(),
    )
}

fn cluster(name: &str, eds: bool) -> Any {
    let t = if eds {
        cluster::DiscoveryType::Eds
    } else {
        cluster::DiscoveryType::Static
    };
    pack(&Cluster {
        name: name.to_string(),
        alt_stat_name: "x".repeat(100),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(t as i32)),
        ..Cluster::default()
    })
}

fn listener(route: &str) -> Any {
    let hcm = HttpConnectionManager {
        stat_prefix: "outbound_0.0.0.0_9080".to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            route_config_name: route.to_string(),
            ..Rds::default()
        })),
        ..HttpConnectionManager::default()
    };
    pack(&Listener {
        name: format!("0.0.0.0_{route}"),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    })
}

fn response(version: &str, t: TypeUrl, resources: Vec<Any>) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.to_string(),
        resources,
        type_url: t.as_str().to_string(),
        nonce: format!("n{version}"),
        ..DiscoveryResponse::default()
    }
}

async fn read_all(chunks: Chunks) -> Vec<Response> {
    let mut reader = Reader::new(chunks);
    let mut out = Vec::new();
    while let Some(r) = reader.next().await.expect("well-formed stream") {
        out.push(r);
    }
    out
}

#[tokio::test]
async fn reads_what_a_client_needs_from_any_chunking() {
    let cds = response(
        "3",
        TypeUrl::Cluster,
        vec![
            cluster("outbound|9080||b", true),
            cluster("BlackHoleCluster", false),
            cluster("outbound|9080||a", true),
        ],
    );
    let lds = response(
        "4",
        TypeUrl::Listener,
        vec![listener("9080"), listener("9080")],
    );
    let eds = response(
        "5",
        TypeUrl::ClusterLoadAssignment,
        vec![pack(&ClusterLoadAssignment {
            cluster_name: "outbound|9080||a".to_string(),
            ..ClusterLoadAssignment::default()
        })],
    );
    let bytes = |r: &DiscoveryResponse| r.resources.iter().map(|a| a.value.len() as u64).sum();
    let want = vec![
        Response {
            version: "3".to_string(),
            nonce: "n3".to_string(),
            type_url: TypeUrl::Cluster.as_str().to_string(),
            resources: 3,
            bytes: bytes(&cds),
            follow: vec![
                "outbound|9080||a".to_string(),
                "outbound|9080||b".to_string(),
            ],
            removed: vec![],
        },
        Response {
            version: "4".to_string(),
            nonce: "n4".to_string(),
            type_url: TypeUrl::Listener.as_str().to_string(),
            resources: 2,
            bytes: bytes(&lds),
            follow: vec!["9080".to_string()],
            removed: vec![],
        },
        Response {
            version: "5".to_string(),
            nonce: "n5".to_string(),
            type_url: TypeUrl::ClusterLoadAssignment.as_str().to_string(),
            resources: 1,
            bytes: bytes(&eds),
            follow: vec![],
            removed: vec![],
        },
    ];
    let messages = [cds, lds, eds];
    for size in [1, 3, 7, 64, 100_000] {
        assert_eq!(
            read_all(chunked(&messages, size)).await,
            want,
            "chunks of {size}"
        );
    }
}

#[tokio::test]
async fn a_stream_cut_inside_a_message_is_an_error() {
    let cds = response("1", TypeUrl::Cluster, vec![cluster("c", true)]);
    let mut chunks = chunked(&[cds], 1);
    chunks.0.truncate(chunks.0.len() - 3);
    let err = Reader::new(chunks).next().await.expect_err("truncated");
    assert!(format!("{err:#}").contains("ended inside"), "{err:#}");
}

#[tokio::test]
async fn a_compressed_message_is_refused() {
    let chunks = Chunks(VecDeque::from([Bytes::from_static(&[1, 0, 0, 0, 0])]));
    let err = Reader::new(chunks).next().await.expect_err("compressed");
    assert!(format!("{err:#}").contains("compressed"), "{err:#}");
}

#[test]
fn requests_encode_as_prost_does() {
    let node = Node {
        id: "sidecar~10.0.0.1~pod-0.ns-0~ns-0.svc.cluster.local".to_string(),
        ..Node::default()
    };
    let names = ["a".to_string(), "b".to_string()];
    let cases = [
        (Some(&node), "", &names[..0], ""),
        (None, "7", &names[..], "n7"),
    ];
    for (node, version, names, nonce) in cases {
        let framed = request(node, version, names, TypeUrl::Cluster.as_str(), nonce);
        assert_eq!(framed[0], 0);
        let len = u32::from_be_bytes(framed[1..5].try_into().expect("4 bytes")) as usize;
        assert_eq!(len, framed.len() - 5);
        let want = DiscoveryRequest {
            version_info: version.to_string(),
            node: node.cloned(),
            resource_names: names.to_vec(),
            type_url: TypeUrl::Cluster.as_str().to_string(),
            response_nonce: nonce.to_string(),
            ..DiscoveryRequest::default()
        };
        assert_eq!(&framed[5..], &want.encode_to_vec()[..]);
    }
}

#[tokio::test]
async fn delta_responses_are_read_and_delta_requests_are_prosts_encoding() {
    use weft_xds::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
    };
    let response = DeltaDiscoveryResponse {
        system_version_info: "7".into(),
        resources: ["a", "b"]
            .iter()
            .map(|n| Resource {
                name: n.to_string(),
                version: "00000000000000ff".into(),
                resource: Some(cluster(n, true)),
                ..Resource::default()
            })
            .collect(),
        type_url: TypeUrl::Cluster.as_str().into(),
        removed_resources: vec!["gone".into()],
        nonce: "9".into(),
        ..DeltaDiscoveryResponse::default()
    };
    let body = response.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(body.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&body);
    for size in [1, 7, framed.len()] {
        let chunks = Chunks(framed.chunks(size).map(Bytes::copy_from_slice).collect());
        let mut reader = Reader::delta(chunks);
        let r = reader.next().await.expect("read").expect("a response");
        assert_eq!(r.version, "7");
        assert_eq!(r.nonce, "9");
        assert_eq!(r.resources, 2);
        assert_eq!(r.follow, ["a", "b"], "EDS clusters to subscribe");
        assert_eq!(r.removed, ["gone"]);
        assert!(reader.next().await.expect("end").is_none());
    }

    let node = Node {
        id: "sidecar~10.0.0.1~p.ns~ns.svc.cluster.local".into(),
        ..Node::default()
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let frame = delta_request(
        Some(&node),
        TypeUrl::VirtualHost.as_str(),
        &names(&["80", "9080"]),
        &names(&["old"]),
        "12",
    );
    let expected = DeltaDiscoveryRequest {
        node: Some(node),
        type_url: TypeUrl::VirtualHost.as_str().into(),
        resource_names_subscribe: names(&["80", "9080"]),
        resource_names_unsubscribe: names(&["old"]),
        response_nonce: "12".into(),
        ..DeltaDiscoveryRequest::default()
    };
    assert_eq!(&frame[5..], expected.encode_to_vec().as_slice());
    assert_eq!(
        u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize,
        frame.len() - 5
    );
}
