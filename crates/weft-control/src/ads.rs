//! The xDS server: the Aggregated Discovery Service and the per-type
//! discovery services (CDS, EDS, LDS, RDS), each in both variants of the
//! protocol — state of the world and incremental (delta) — plus the
//! unary `Fetch*` calls.
//!
//! Every stream runs the one engine in `stream`: it reads who the proxy
//! is from its first request's `Node`, answers subscriptions per type with
//! the current [`Generation`] (version and nonce on every response), takes
//! the proxy's next request with that nonce as its ACK (or, with
//! `error_detail`, its NACK: logged, counted, and the proxy keeps what it
//! had — nothing is resent until the config changes), ignores requests
//! with an old nonce, and on each new generation recomputes the proxy's
//! resources and pushes only what changed. `sotw` and `delta` say what
//! goes in a response. A slow proxy only slows its own stream: each stream
//! has its own task and bounded queue, and the generation is read from a
//! `watch` channel that never blocks the publisher. `grpc` writes the
//! streams' HTTP/2 bodies (mount the services with [`routes`]); `wire`
//! encodes each response as its head fields around slices of the shared,
//! once-encoded resources (`held`), so a push copies no resource; `intern`
//! shares equal subscriptions between streams, `share` the delta responses
//! of streams in the same position; `register` auto-registers proxies
//! that ask for it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use weft_config::store::Snapshot;
use weft_registry::RegistrySnapshot;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};

mod current;
mod delta;
mod grpc;
mod held;
mod holding;
mod intern;
pub mod register;
mod requests;
mod services;
mod share;
mod sotw;
mod stats;
mod stream;
mod throttle;
mod wire;

pub(crate) use delta::resource_version;
pub use grpc::{ResponseBody, Xds, frame, routes};
pub use held::{Held, Segment};
pub use stats::{CONVERGENCE_BUCKETS, Histogram, ProxyStatus, Sent, Stats, TypeStatus, type_index};
pub use throttle::{DEFAULT_PUSH_THROTTLE, Throttle};
pub use wire::Wire;

use stream::Service;

/// What translation runs on: a config snapshot and a registry snapshot,
/// numbered.
#[derive(Debug)]
pub struct Generation {
    /// Increases with every change of either input; sent as `version_info`
    /// (`system_version_info` in delta).
    pub version: u64,
    /// The config in force.
    pub config: Arc<Snapshot>,
    /// The registry.
    pub registry: Arc<RegistrySnapshot>,
    /// When it was published (the start of `pilot_proxy_convergence_time`).
    pub published: Instant,
}

impl Generation {
    /// Generation `version` of these inputs, published now.
    pub fn new(version: u64, config: Arc<Snapshot>, registry: Arc<RegistrySnapshot>) -> Self {
        Generation {
            version,
            config,
            registry,
            published: Instant::now(),
        }
    }

    /// What translation reads from it.
    pub fn inputs(&self) -> crate::translate::Inputs<'_> {
        crate::translate::Inputs {
            config: &self.config,
            registry: &self.registry,
        }
    }
}

impl Default for Generation {
    fn default() -> Self {
        Generation::new(0, Arc::default(), Arc::default())
    }
}

/// The xDS server. Clone it freely; all clones serve the same generations
/// and share one [`Stats`].
#[derive(Clone, Debug)]
pub struct AdsServer {
    generations: watch::Receiver<Arc<Generation>>,
    nonces: Arc<AtomicU64>,
    stats: Arc<Stats>,
    /// Translations shared by the streams of proxies of one shape.
    translations: Arc<crate::cache::Translations>,
    /// How long a stream holds its generation for an unanswered response.
    answer_wait: std::time::Duration,
    /// The streams' state-of-the-world subscriptions, shared when equal.
    names: Arc<intern::Interner>,
    /// The bound on concurrent pushes.
    throttle: Arc<Throttle>,
    /// Delta responses shared by streams in the same position.
    shares: Arc<share::Shares>,
    /// Where proxies asking for it are auto-registered (`None`: they are
    /// served without, and told so in the log).
    autoregister: Option<weft_registry::AutoRegistry>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AdsServer {
    /// A server answering from the generations published on `generations`.
    pub fn new(generations: watch::Receiver<Arc<Generation>>) -> Self {
        AdsServer {
            generations,
            nonces: Arc::new(AtomicU64::new(0)),
            stats: Arc::new(Stats::default()),
            translations: Arc::default(),
            answer_wait: stream::ANSWER_WAIT,
            names: Arc::default(),
            throttle: Arc::default(),
            shares: Arc::default(),
            autoregister: None,
        }
    }

    /// The same server, registering the proxies whose node asks for it
    /// (`AUTO_REGISTER_GROUP`) with `registry` while their streams are
    /// open. Its snapshots should be what the generations are made of.
    pub fn with_auto_registration(mut self, registry: weft_registry::AutoRegistry) -> Self {
        self.autoregister = Some(registry);
        self
    }

    /// The same server, with at most `limit` pushes at a time (Istio's
    /// `PILOT_PUSH_THROTTLE`; [`DEFAULT_PUSH_THROTTLE`] by default).
    pub fn with_push_throttle(mut self, limit: usize) -> Self {
        self.throttle = Arc::new(Throttle::new(limit));
        self
    }

    /// The bound on concurrent pushes.
    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// The same server, holding a generation for an unanswered response
    /// at most `wait` (tests).
    #[cfg(test)]
    pub(crate) fn with_answer_wait(mut self, wait: std::time::Duration) -> Self {
        self.answer_wait = wait;
        self
    }

    /// The server's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn next_nonce(&self) -> String {
        self.nonces
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .to_string()
    }
}

impl AdsServer {
    /// A stream of protocol `P` whose responses are decoded back into
    /// messages, for the generated services mounted without [`routes`]
    /// (which sends the encoded frames as they are).
    fn open_decoded<P: stream::Protocol>(
        &self,
        service: Service,
        requests: Streaming<P::Request>,
    ) -> Pin<Box<dyn Stream<Item = Result<P::Response, Status>> + Send>> {
        use tokio_stream::StreamExt;
        let responses = self.open::<P>(service, requests).map(|r| {
            r.and_then(|wire| {
                wire.decode::<P::Response>()
                    .map_err(|e| Status::internal(format!("decoding a response: {e}")))
            })
        });
        Box::pin(responses)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponseStream =
    Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaResponseStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.open_decoded::<sotw::Sotw>(
            Service::Ads,
            request.into_inner(),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.open_decoded::<delta::Delta>(
            Service::Ads,
            request.into_inner(),
        )))
    }
}

#[cfg(test)]
mod tests;
