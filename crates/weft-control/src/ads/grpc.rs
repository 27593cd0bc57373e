//! The xDS streams' own gRPC bodies, mounted in front of the generated
//! services.
//!
//! tonic's generated servers encode a stream's responses into one
//! `BytesMut` per stream and hand out `split_to(..).freeze()` slices of
//! it; once h2 has written and dropped a slice, that buffer owns the whole
//! allocation again and keeps it for the stream's life, so every stream
//! held on to its largest response (a CDS of ≈ 2 MiB at 1 000 services).
//! Its request decoder does the same with the largest request. Here each
//! response is a frame written from the shared encodings
//! ([`super::wire`]): its chunks are handed to h2 as they are and freed
//! once written, and the stream ends with the same trailers tonic writes
//! (`grpc-status`, `grpc-message`); requests are decoded by
//! [`super::requests`], which keeps no buffer between messages.
//!
//! [`Xds`] wraps a generated service: the streaming methods (ADS's, and
//! the per-type `Stream*` and `Delta*`) run here; everything else (the
//! unary `Fetch*`, unknown methods) goes to the generated service
//! unchanged.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Frame;
use prost::Message;
use tokio_stream::Stream;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service as TowerService;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tonic::service::Routes;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryServiceServer;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use weft_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use weft_xds::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryServiceServer;
use weft_xds::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryServiceServer;
use weft_xds::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryServiceServer;

use super::AdsServer;
use super::delta::Delta;
use super::requests::RequestBody;
use super::sotw::Sotw;
use super::stream::Service;
use super::throttle::Permit;
use super::wire::{HEADER, Wire};

/// The largest request message decoded (tonic's default for servers).
const MAX_DECODING_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// One streaming method of a service: its name in the path, the service
/// it serves and whether it is delta xDS.
#[derive(Clone, Copy, Debug)]
struct Method {
    name: &'static str,
    service: Service,
    delta: bool,
}

const ADS: &[Method] = &[
    Method {
        name: "StreamAggregatedResources",
        service: Service::Ads,
        delta: false,
    },
    Method {
        name: "DeltaAggregatedResources",
        service: Service::Ads,
        delta: true,
    },
];

/// The `Stream*` and `Delta*` methods of a per-type service.
const fn per_type(stream: &'static str, delta: &'static str, t: TypeUrl) -> [Method; 2] {
    [
        Method {
            name: stream,
            service: Service::Only(t),
            delta: false,
        },
        Method {
            name: delta,
            service: Service::Only(t),
            delta: true,
        },
    ]
}

const CDS: &[Method] = &per_type("StreamClusters", "DeltaClusters", TypeUrl::Cluster);
const EDS: &[Method] = &per_type(
    "StreamEndpoints",
    "DeltaEndpoints",
    TypeUrl::ClusterLoadAssignment,
);
const LDS: &[Method] = &per_type("StreamListeners", "DeltaListeners", TypeUrl::Listener);
const RDS: &[Method] = &per_type("StreamRoutes", "DeltaRoutes", TypeUrl::RouteConfiguration);

/// Every discovery service Weft serves (ADS, CDS, EDS, LDS, RDS), with
/// their streams on [`Xds`], as routes for tonic's server.
pub fn routes(ads: &AdsServer) -> Routes {
    Routes::new(Xds::new(
        ads,
        AggregatedDiscoveryServiceServer::new(ads.clone()),
        ADS,
    ))
    .add_service(Xds::new(
        ads,
        ClusterDiscoveryServiceServer::new(ads.clone()),
        CDS,
    ))
    .add_service(Xds::new(
        ads,
        EndpointDiscoveryServiceServer::new(ads.clone()),
        EDS,
    ))
    .add_service(Xds::new(
        ads,
        ListenerDiscoveryServiceServer::new(ads.clone()),
        LDS,
    ))
    .add_service(Xds::new(
        ads,
        RouteDiscoveryServiceServer::new(ads.clone()),
        RDS,
    ))
}

/// A generated discovery service `G` whose streaming methods are served
/// with [`ResponseBody`]; it keeps `G`'s name (so tonic routes the same
/// paths to it) and passes every other method to `G`.
#[derive(Clone, Debug)]
pub struct Xds<G> {
    server: AdsServer,
    generated: G,
    methods: &'static [Method],
}

impl<G> Xds<G> {
    fn new(server: &AdsServer, generated: G, methods: &'static [Method]) -> Xds<G> {
        Xds {
            server: server.clone(),
            generated,
            methods,
        }
    }
}

impl<G: NamedService> NamedService for Xds<G> {
    const NAME: &'static str = G::NAME;
}

/// The method of `methods` that `path` names on service `service`, if
/// it is one of them.
fn find(service: &str, methods: &[Method], path: &str) -> Option<Method> {
    let name = path
        .strip_prefix('/')?
        .strip_prefix(service)?
        .strip_prefix('/')?;
    methods.iter().find(|m| m.name == name).copied()
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<G> TowerService<http::Request<Body>> for Xds<G>
where
    G: TowerService<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService,
    G::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.generated.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match find(G::NAME, self.methods, request.uri().path()) {
            Some(method) => {
                let response = open(&self.server, method, request);
                Box::pin(std::future::ready(Ok(response)))
            }
            None => Box::pin(self.generated.call(request)),
        }
    }
}

/// Starts the stream `method` names: its requests decoded by tonic, its
/// responses framed by [`ResponseBody`].
fn open(server: &AdsServer, method: Method, request: http::Request<Body>) -> http::Response<Body> {
    if let Err(status) = identity_only(request.headers()) {
        return status.into_http();
    }
    let requests = request.into_body();
    let body = if method.delta {
        let requests =
            RequestBody::<DeltaDiscoveryRequest>::new(requests, MAX_DECODING_MESSAGE_SIZE);
        Body::new(ResponseBody::new(
            server.open::<Delta>(method.service, requests),
        ))
    } else {
        let requests = RequestBody::<DiscoveryRequest>::new(requests, MAX_DECODING_MESSAGE_SIZE);
        Body::new(ResponseBody::new(
            server.open::<Sotw>(method.service, requests),
        ))
    };
    let mut response = http::Response::new(body);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Refuses compressed requests as tonic does when no compression is
/// enabled: UNIMPLEMENTED, naming the only encoding accepted.
fn identity_only(headers: &http::HeaderMap) -> Result<(), Status> {
    let Some(encoding) = headers.get("grpc-encoding") else {
        return Ok(());
    };
    if encoding.as_bytes() == b"identity" {
        return Ok(());
    }
    let name = match std::str::from_utf8(encoding.as_bytes()) {
        Ok(s) => s.to_string(),
        Err(_) => format!("{:?}", encoding.as_bytes()),
    };
    let mut status = Status::unimplemented(format!(
        "Content is compressed with `{name}` which isn't supported"
    ));
    status.metadata_mut().insert(
        "grpc-accept-encoding",
        MetadataValue::from_static("identity"),
    );
    Err(status)
}

/// A stream of responses as a gRPC response body: each message's frame
/// in its chunks, then the trailers (`grpc-status` 0, or the stream's
/// error status).
#[derive(Debug)]
pub struct ResponseBody<S> {
    responses: S,
    /// What is left of the message being sent.
    chunks: std::vec::IntoIter<Bytes>,
    /// Its push permit, released with its last chunk.
    permit: Option<Arc<Permit>>,
    done: bool,
}

impl<S> ResponseBody<S> {
    /// The body of `responses`.
    pub fn new(responses: S) -> ResponseBody<S> {
        ResponseBody {
            responses,
            chunks: Vec::new().into_iter(),
            permit: None,
            done: false,
        }
    }
}

impl<S> http_body::Body for ResponseBody<S>
where
    S: Stream<Item = Result<Wire, Status>> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if let Some(chunk) = self.chunks.next() {
                if self.chunks.len() == 0 {
                    // Handed over whole: h2 has room for it.
                    self.permit = None;
                }
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let status = match ready!(Pin::new(&mut self.responses).poll_next(cx)) {
                Some(Ok(wire)) => {
                    let (chunks, permit) = wire.into_parts();
                    self.chunks = chunks.into_iter();
                    self.permit = permit;
                    continue;
                }
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            self.done = true;
            return Poll::Ready(Some(trailers(&status).map(Frame::trailers)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.chunks.len() == 0
    }
}

/// The trailers that end a stream with `status`, as tonic writes them.
fn trailers(status: &Status) -> Result<http::HeaderMap, Status> {
    let mut headers = http::HeaderMap::with_capacity(3 + status.metadata().len());
    status.add_header(&mut headers)?;
    Ok(headers)
}

/// `message` as one uncompressed gRPC frame, in a buffer of exactly its
/// size.
pub fn frame(message: &impl Message) -> Result<Wire, Status> {
    let len = message.encoded_len();
    let header = u32::try_from(len).map_err(|_| {
        Status::resource_exhausted(format!(
            "Cannot return body with more than 4GB of data but got {len} bytes"
        ))
    })?;
    let mut buf = Vec::with_capacity(HEADER + len);
    buf.push(0);
    buf.extend_from_slice(&header.to_be_bytes());
    message
        .encode(&mut buf)
        .map_err(|e| Status::internal(format!("encoding a response: {e}")))?;
    Ok(Wire::from(Bytes::from(buf)))
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use weft_xds::pb::envoy::service::discovery::v3::DiscoveryResponse;
    use weft_xds::pb::google::protobuf::Any;

    use super::*;

    fn response(bytes: usize) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: "7".into(),
            resources: vec![Any {
                type_url: TypeUrl::Cluster.as_str().into(),
                value: vec![0xab; bytes],
            }],
            type_url: TypeUrl::Cluster.as_str().into(),
            nonce: "3".into(),
            ..DiscoveryResponse::default()
        }
    }

    #[test]
    fn a_frame_is_the_header_and_the_message() {
        let message = response(3 << 20);
        let data = frame(&message).expect("frame").to_bytes();
        assert_eq!(data.len(), HEADER + message.encoded_len());
        assert_eq!(data[0], 0, "not compressed");
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        assert_eq!(len as usize, message.encoded_len());
        let decoded = DiscoveryResponse::decode(&data[HEADER..]).expect("decode");
        assert_eq!(decoded, message);
    }

    async fn frames(items: Vec<Result<DiscoveryResponse, Status>>) -> Vec<Frame<Bytes>> {
        let items = items.into_iter().map(|r| r.and_then(|m| frame(&m)));
        let mut body = ResponseBody::new(tokio_stream::iter(items));
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            out.push(f.expect("frame"));
        }
        assert!(body.is_end_stream());
        out
    }

    #[tokio::test]
    async fn messages_then_ok_trailers() {
        let frames = frames(vec![Ok(response(10)), Ok(response(20))]).await;
        assert_eq!(frames.len(), 3);
        for (f, n) in frames.iter().zip([10, 20]) {
            let data = f.data_ref().expect("data");
            assert_eq!(data.len(), HEADER + response(n).encoded_len());
        }
        let trailers = frames[2].trailers_ref().expect("trailers");
        assert_eq!(trailers.get("grpc-status").expect("status"), "0");
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_its_status() {
        let frames = frames(vec![
            Ok(response(1)),
            Err(Status::invalid_argument("wrong type")),
            Ok(response(2)),
        ])
        .await;
        assert_eq!(frames.len(), 2, "nothing after the error");
        let trailers = frames[1].trailers_ref().expect("trailers");
        assert_eq!(trailers.get("grpc-status").expect("status"), "3");
        assert_eq!(
            trailers.get("grpc-message").expect("message"),
            "wrong%20type"
        );
    }

    #[test]
    fn only_identity_requests_are_decoded() {
        let mut headers = http::HeaderMap::new();
        assert!(identity_only(&headers).is_ok());
        headers.insert("grpc-encoding", http::HeaderValue::from_static("identity"));
        assert!(identity_only(&headers).is_ok());
        headers.insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
        let status = identity_only(&headers).expect_err("gzip refused");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status
                .metadata()
                .get("grpc-accept-encoding")
                .expect("accepted"),
            "identity"
        );
    }

    #[test]
    fn streaming_methods_are_routed_here_and_the_rest_to_tonic() {
        let cds = "envoy.service.cluster.v3.ClusterDiscoveryService";
        let path = |m: &str| format!("/{cds}/{m}");
        let stream = find(cds, CDS, &path("StreamClusters")).expect("stream");
        assert!(!stream.delta && stream.service == Service::Only(TypeUrl::Cluster));
        assert!(find(cds, CDS, &path("DeltaClusters")).expect("delta").delta);
        assert!(find(cds, CDS, &path("FetchClusters")).is_none());
        assert!(
            find(
                cds,
                CDS,
                "/envoy.service.cluster.v3.ClusterDiscoveryServiceX/StreamClusters"
            )
            .is_none()
        );
        let ads = AggregatedDiscoveryServiceServer::<AdsServer>::NAME;
        assert_eq!(ads, "envoy.service.discovery.v3.AggregatedDiscoveryService");
        let sotw = find(ads, ADS, &format!("/{ads}/StreamAggregatedResources"));
        assert_eq!(
            sotw.map(|m| (m.service, m.delta)),
            Some((Service::Ads, false))
        );
        let delta = find(ads, ADS, &format!("/{ads}/DeltaAggregatedResources"));
        assert_eq!(
            delta.map(|m| (m.service, m.delta)),
            Some((Service::Ads, true))
        );
        assert_eq!(
            ClusterDiscoveryServiceServer::<AdsServer>::NAME,
            cds,
            "the generated service's name"
        );
    }
}
