//! The streams' own response body (`ads::grpc`) seen from tonic's
//! clients: large responses arrive whole and equal to what the unary
//! `Fetch*` (still tonic's encoder) gives, on every streaming method, and
//! an error after them still ends the stream with its status.

use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_client::ClusterDiscoveryServiceClient;
use weft_xds::pb::google::protobuf::Any;

use super::*;

/// Larger than tonic's default 4 MiB limit for decoding a message.
const LARGE: usize = 16 << 20;

/// The resources' encoded bytes, in order.
fn values<'a>(resources: impl IntoIterator<Item = &'a Any>) -> Vec<&'a [u8]> {
    resources.into_iter().map(|a| &a.value[..]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_round_trip_on_every_streaming_method() {
    let mut h = start(generation(3, &many_services(400, 7000))).await;
    let mut cds =
        ClusterDiscoveryServiceClient::new(h.channel.clone()).max_decoding_message_size(LARGE);
    let fetched = cds
        .fetch_clusters(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await
        .expect("fetch")
        .into_inner();
    // Many 16 KiB HTTP/2 frames, past the 64 KiB initial windows.
    assert!(
        fetched.encoded_len() > 128 << 10,
        "want a response of more than 128 KiB, have {}",
        fetched.encoded_len()
    );

    // ADS, state of the world.
    h.client =
        AggregatedDiscoveryServiceClient::new(h.channel.clone()).max_decoding_message_size(LARGE);
    let mut ads = h.sotw().await;
    ads.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let sotw = ads.recv().await.expect("ads cds");
    assert_eq!(sotw.version_info, "3");
    assert_eq!(values(&sotw.resources), values(&fetched.resources));

    // ADS, delta.
    let mut delta = h.delta().await;
    delta
        .send(DeltaDiscoveryRequest {
            node: Some(grpc_node()),
            type_url: TypeUrl::Cluster.as_str().into(),
            ..DeltaDiscoveryRequest::default()
        })
        .await;
    let incremental = delta.recv().await.expect("delta cds");
    let mut got: Vec<&[u8]> = incremental
        .resources
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .map(|a| &a.value[..])
        .collect();
    let mut want = values(&fetched.resources);
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got.len(), incremental.resources.len());
    assert_eq!(got, want);

    // The per-type CDS stream; then a wrong type ends it with the status
    // the engine gave, message and all.
    let (tx, rx) = mpsc::channel(8);
    let mut per_type = Stream {
        tx,
        rx: cds
            .stream_clusters(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner(),
    };
    per_type
        .send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let first = per_type.recv().await.expect("cds");
    assert_eq!(values(&first.resources), values(&fetched.resources));
    per_type.send(ack(&first, TypeUrl::Cluster, &[])).await;
    per_type
        .send(request(TypeUrl::Listener, &[LISTENER], None))
        .await;
    let err = per_type.recv().await.expect_err("wrong type");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "this is the CDS discovery service: it serves only \
         type.googleapis.com/envoy.config.cluster.v3.Cluster resources, not \
         type.googleapis.com/envoy.config.listener.v3.Listener; use the Aggregated \
         Discovery Service for several types on one stream"
    );
    // The other streams are still served.
    ads.send(ack(&sotw, TypeUrl::Cluster, &[])).await;
    h.publish
        .send_replace(generation(4, &many_services(401, 7000)));
    let push = ads.recv().await.expect("push");
    assert_eq!(push.version_info, "4");
    assert_eq!(push.resources.len(), sotw.resources.len() + 1);
}

#[tokio::test]
async fn a_response_over_the_clients_limit_is_the_clients_error() {
    // tonic's client refuses a message over its 4 MiB default: the frame
    // header carries the true length.
    let h = start(generation(1, &many_services(400, 7000))).await;
    let mut small =
        ClusterDiscoveryServiceClient::new(h.channel.clone()).max_decoding_message_size(64 * 1024);
    let (tx, rx) = mpsc::channel(8);
    let mut s = Stream {
        tx,
        rx: small
            .stream_clusters(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner(),
    };
    s.send(request(TypeUrl::Cluster, &[], Some(grpc_node())))
        .await;
    let err = s.recv().await.expect_err("too large for the client");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
}
