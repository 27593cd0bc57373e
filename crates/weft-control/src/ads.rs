//! The Aggregated Discovery Service (state of the world): one stream per
//! proxy, every resource type over it.
//!
//! Each stream reads who the proxy is from its first request's `Node`,
//! then answers subscriptions per type. A response carries the current
//! [`Generation`]'s version and a fresh nonce; the proxy's next request
//! for that type with that nonce is its ACK (or, with `error_detail`, its
//! NACK: logged, counted, and the proxy keeps what it had — nothing is
//! resent until the config changes). Requests with an old nonce are
//! stale and ignored. When a new generation is published, every stream
//! recomputes its proxy's resources and pushes the types whose content
//! changed. A slow proxy only slows its own stream: each stream has its
//! own task and bounded queue, and the generation is read from a `watch`
//! channel that never blocks the publisher.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use weft_config::store::Snapshot;
use weft_registry::RegistrySnapshot;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use weft_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use weft_xds::pb::google::protobuf::Any;

use crate::translate::{Inputs, Proxy, Resources, translate};

/// What translation runs on: a config snapshot and a registry snapshot,
/// numbered.
#[derive(Debug, Default)]
pub struct Generation {
    /// Increases with every change of either input; sent as `version_info`.
    pub version: u64,
    /// The config in force.
    pub config: Arc<Snapshot>,
    /// The registry.
    pub registry: Arc<RegistrySnapshot>,
}

/// The ADS server. Clone it freely; all clones serve the same generations.
#[derive(Clone, Debug)]
pub struct AdsServer {
    generations: watch::Receiver<Arc<Generation>>,
    nonces: Arc<AtomicU64>,
    stats: Arc<Stats>,
}

/// Counters for the debug API and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Streams open now.
    pub connected: AtomicU64,
    /// Responses sent.
    pub pushes: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
}

/// Responses a stream may have queued before its proxy reads them.
const STREAM_QUEUE: usize = 16;

impl AdsServer {
    /// A server answering from the generations published on `generations`.
    pub fn new(generations: watch::Receiver<Arc<Generation>>) -> Self {
        AdsServer {
            generations,
            nonces: Arc::new(AtomicU64::new(0)),
            stats: Arc::new(Stats::default()),
        }
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
        let requests = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let server = self.clone();
        tokio::spawn(async move {
            server.stats.connected.fetch_add(1, Ordering::Relaxed);
            let result = server.serve_stream(requests, &tx).await;
            server.stats.connected.fetch_sub(1, Ordering::Relaxed);
            if let Err(status) = result {
                // The client may be gone already; nothing more to do then.
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) xDS is not served yet: use state-of-the-world ADS (StreamAggregatedResources)",
        ))
    }
}

/// What a stream knows about one resource type.
#[derive(Debug, Default)]
struct TypeState {
    /// Names subscribed to; empty means all (wildcard) for LDS/CDS.
    names: BTreeSet<String>,
    /// Whether the proxy asked for this type at all.
    subscribed: bool,
    /// The nonce of the last response sent.
    nonce: String,
    /// What was last sent (encoded), to push only changes.
    sent: Option<Vec<Any>>,
    /// The last version the proxy ACKed.
    acked: Option<String>,
}

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

impl AdsServer {
    async fn serve_stream(
        &self,
        mut requests: Streaming<DiscoveryRequest>,
        tx: &Tx,
    ) -> Result<(), Status> {
        let Some(first) = requests.message().await? else {
            return Ok(());
        };
        let proxy = Proxy::from_node(first.node.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        tracing::info!(target: "weft::xds", proxy = %proxy.id, kind = ?proxy.kind, "proxy connected");
        let mut generations = self.generations.clone();
        let mut generation = generations.borrow_and_update().clone();
        let mut resources = translate(inputs(&generation), &proxy);
        let mut types: BTreeMap<TypeUrl, TypeState> = BTreeMap::new();
        let mut pending = Some(first);
        loop {
            let request = match pending.take() {
                Some(r) => Some(r),
                None => tokio::select! {
                    r = requests.message() => match r? {
                        Some(r) => Some(r),
                        None => {
                            tracing::info!(target: "weft::xds", proxy = %proxy.id, "proxy disconnected");
                            return Ok(());
                        }
                    },
                    changed = generations.changed() => {
                        if changed.is_err() {
                            return Err(Status::unavailable("control plane shutting down"));
                        }
                        generation = generations.borrow_and_update().clone();
                        resources = translate(inputs(&generation), &proxy);
                        for (type_url, state) in types.iter_mut().filter(|(_, s)| s.subscribed) {
                            self.push(tx, &proxy, &generation, &resources, *type_url, state, false).await?;
                        }
                        None
                    }
                },
            };
            let Some(request) = request else { continue };
            let type_url: TypeUrl =
                request
                    .type_url
                    .parse()
                    .map_err(|e: weft_xds::UnknownTypeUrl| {
                        Status::invalid_argument(format!("{e}; Weft serves {}", served()))
                    })?;
            let state = types.entry(type_url).or_default();
            if !request.response_nonce.is_empty() && request.response_nonce != state.nonce {
                continue; // a reply to an older response: superseded
            }
            if let Some(error) = &request.error_detail {
                self.stats.nacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "weft::xds",
                    proxy = %proxy.id,
                    r#type = type_url.short_name(),
                    version = %request.version_info,
                    error = %error.message,
                    "proxy rejected (NACKed) an update; it keeps its previous config"
                );
                continue;
            }
            let names: BTreeSet<String> = request.resource_names.iter().cloned().collect();
            let first_request = !state.subscribed;
            let names_changed = names != state.names;
            if !request.response_nonce.is_empty() {
                state.acked = Some(request.version_info.clone());
            }
            state.subscribed = true;
            state.names = names;
            if first_request || names_changed {
                self.push(tx, &proxy, &generation, &resources, type_url, state, true)
                    .await?;
            }
        }
    }

    /// Sends `proxy` the resources of `type_url` if they differ from what
    /// it was last sent (or always, when `force`).
    #[allow(clippy::too_many_arguments)]
    async fn push(
        &self,
        tx: &Tx,
        proxy: &Proxy,
        generation: &Generation,
        resources: &Resources,
        type_url: TypeUrl,
        state: &mut TypeState,
        force: bool,
    ) -> Result<(), Status> {
        let wildcard = state.names.is_empty() && !type_url.subscribed_by_name();
        let selected = select(resources, type_url, &state.names, wildcard);
        if !force && state.sent.as_ref() == Some(&selected) {
            return Ok(());
        }
        state.nonce = self.next_nonce();
        state.sent = Some(selected.clone());
        let response = DiscoveryResponse {
            version_info: generation.version.to_string(),
            resources: selected,
            type_url: type_url.as_str().to_string(),
            nonce: state.nonce.clone(),
            ..DiscoveryResponse::default()
        };
        tracing::debug!(
            target: "weft::xds",
            proxy = %proxy.id,
            r#type = type_url.short_name(),
            version = generation.version,
            resources = response.resources.len(),
            bytes = response.encoded_len(),
            "push"
        );
        self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        tx.send(Ok(response))
            .await
            .map_err(|_| Status::cancelled("proxy went away"))
    }
}

fn inputs(g: &Generation) -> Inputs<'_> {
    Inputs {
        config: &g.config,
        registry: &g.registry,
    }
}

fn served() -> String {
    TypeUrl::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The resources of one type, packed, limited to `names` unless `wildcard`.
fn select(
    resources: &Resources,
    type_url: TypeUrl,
    names: &BTreeSet<String>,
    wildcard: bool,
) -> Vec<Any> {
    fn pick<R: weft_xds::Resource>(
        items: &[R],
        names: &BTreeSet<String>,
        wildcard: bool,
    ) -> Vec<Any> {
        items
            .iter()
            .filter(|r| wildcard || names.contains(r.resource_name()))
            .map(weft_xds::pack)
            .collect()
    }
    match type_url {
        TypeUrl::Cluster => pick(&resources.clusters, names, wildcard),
        TypeUrl::ClusterLoadAssignment => pick(&resources.endpoints, names, wildcard),
        TypeUrl::Listener => pick(&resources.listeners, names, wildcard),
        TypeUrl::RouteConfiguration => pick(&resources.routes, names, wildcard),
        TypeUrl::Secret => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
