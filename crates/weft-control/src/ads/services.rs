//! The per-type discovery services — `ClusterDiscoveryService`,
//! `EndpointDiscoveryService`, `ListenerDiscoveryService`,
//! `RouteDiscoveryService` — for clients configured with a separate
//! `api_config_source` per type instead of ADS. Their `Stream*` and
//! `Delta*` streams run the same engine as ADS, limited to the service's
//! type; `Fetch*` answers once with the proxy's current resources.
//! Mounted through [`super::routes`], the `Stream*` and `Delta*` methods
//! are served by `grpc::Xds` with its own response body; these trait
//! methods serve them when the generated service is mounted directly.

use tonic::{Request, Response, Status, Streaming};
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::cluster::v3::cluster_discovery_service_server::ClusterDiscoveryService;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use weft_xds::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::EndpointDiscoveryService;
use weft_xds::pb::envoy::service::listener::v3::listener_discovery_service_server::ListenerDiscoveryService;
use weft_xds::pb::envoy::service::route::v3::route_discovery_service_server::RouteDiscoveryService;

use super::current::Current;
use super::delta::Delta;
use super::sotw::{Sotw, subscription};
use super::stream::Service;
use super::{AdsServer, DeltaResponseStream, ResponseStream};
use crate::translate::Proxy;

impl AdsServer {
    /// A unary (REST-style) request: the resources of `type_url` the node
    /// is sent now, by name (all, for an LDS or CDS request naming none).
    fn fetch(
        &self,
        type_url: TypeUrl,
        request: DiscoveryRequest,
    ) -> Result<DiscoveryResponse, Status> {
        let type_url = Service::Only(type_url).type_of(&request.type_url)?;
        let proxy = Proxy::from_node(request.node.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let generation = self.generations.borrow().clone();
        let current = Current::new(&self.translations.get(&generation, &proxy), None, false);
        let (names, wildcard) = subscription(type_url, request.resource_names);
        let selected = current.get(type_url).select(wildcard, &names);
        tracing::debug!(
            target: "weft::xds",
            proxy = %proxy.id,
            r#type = type_url.short_name(),
            version = generation.version,
            resources = selected.items.len(),
            "fetch"
        );
        Ok(DiscoveryResponse {
            version_info: generation.version.to_string(),
            resources: selected
                .holds
                .to_vec()
                .map_err(|e| Status::internal(format!("decoding a resource: {e}")))?,
            type_url: type_url.as_str().to_string(),
            ..DiscoveryResponse::default()
        })
    }
}

/// Implements one per-type service's three methods on [`AdsServer`].
macro_rules! per_type_service {
    ($service:ident, $type_url:expr,
     $stream_ty:ident, $stream:ident, $delta_ty:ident, $delta:ident, $fetch:ident) => {
        #[tonic::async_trait]
        impl $service for AdsServer {
            type $stream_ty = ResponseStream;
            type $delta_ty = DeltaResponseStream;

            async fn $stream(
                &self,
                request: Request<Streaming<DiscoveryRequest>>,
            ) -> Result<Response<Self::$stream_ty>, Status> {
                Ok(Response::new(self.open_decoded::<Sotw>(
                    Service::Only($type_url),
                    request.into_inner(),
                )))
            }

            async fn $delta(
                &self,
                request: Request<Streaming<DeltaDiscoveryRequest>>,
            ) -> Result<Response<Self::$delta_ty>, Status> {
                Ok(Response::new(self.open_decoded::<Delta>(
                    Service::Only($type_url),
                    request.into_inner(),
                )))
            }

            async fn $fetch(
                &self,
                request: Request<DiscoveryRequest>,
            ) -> Result<Response<DiscoveryResponse>, Status> {
                self.fetch($type_url, request.into_inner())
                    .map(Response::new)
            }
        }
    };
}

per_type_service!(
    ClusterDiscoveryService,
    TypeUrl::Cluster,
    StreamClustersStream,
    stream_clusters,
    DeltaClustersStream,
    delta_clusters,
    fetch_clusters
);
per_type_service!(
    EndpointDiscoveryService,
    TypeUrl::ClusterLoadAssignment,
    StreamEndpointsStream,
    stream_endpoints,
    DeltaEndpointsStream,
    delta_endpoints,
    fetch_endpoints
);
per_type_service!(
    ListenerDiscoveryService,
    TypeUrl::Listener,
    StreamListenersStream,
    stream_listeners,
    DeltaListenersStream,
    delta_listeners,
    fetch_listeners
);
per_type_service!(
    RouteDiscoveryService,
    TypeUrl::RouteConfiguration,
    StreamRoutesStream,
    stream_routes,
    DeltaRoutesStream,
    delta_routes,
    fetch_routes
);
