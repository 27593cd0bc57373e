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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Responses sent, per type (indexed like [`TypeUrl::ALL`]).
    pub pushes_by_type: [AtomicU64; 5],
    /// NACKs received, per type (indexed like [`TypeUrl::ALL`]).
    pub nacks_by_type: [AtomicU64; 5],
    /// Every connected proxy's sync state and what it was sent, by
    /// connection.
    proxies: Mutex<BTreeMap<u64, Connected>>,
    connections: AtomicU64,
}

/// One open stream, as the debug API sees it.
#[derive(Debug)]
struct Connected {
    status: ProxyStatus,
    sent: BTreeMap<TypeUrl, Sent>,
}

/// The resources of one type last sent to a proxy, with their version.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The `version_info` they were sent with.
    pub version: String,
    /// The resources, packed as they went on the wire.
    pub resources: Arc<[Any]>,
}

impl Stats {
    fn update(&self, conn: u64, f: impl FnOnce(&mut ProxyStatus)) {
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = proxies.get_mut(&conn) {
            f(&mut c.status);
        }
    }

    fn register(&self, conn: u64, status: ProxyStatus) {
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        proxies.insert(
            conn,
            Connected {
                status,
                sent: BTreeMap::new(),
            },
        );
    }

    fn record_sent(&self, conn: u64, type_url: TypeUrl, sent: Sent) {
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = proxies.get_mut(&conn) {
            c.sent.insert(type_url, sent);
        }
    }

    /// A copy of every connected proxy's status, sorted by proxy id.
    pub fn proxy_statuses(&self) -> Vec<ProxyStatus> {
        let proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ProxyStatus> = proxies.values().map(|c| c.status.clone()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// What the proxy with xDS node id `id` was last sent, per type (the
    /// newest of its streams if it has several); `None` when no proxy of
    /// that id is connected.
    pub fn sent(&self, id: &str) -> Option<BTreeMap<TypeUrl, Sent>> {
        let proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        proxies
            .values()
            .rev()
            .find(|c| c.status.id == id)
            .map(|c| c.sent.clone())
    }
}

fn type_index(t: TypeUrl) -> usize {
    TypeUrl::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// What `/debug/syncz` shows of one connected proxy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStatus {
    /// xDS node id.
    pub id: String,
    /// Sidecar, gateway or proxyless gRPC.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// When it connected (seconds since the Unix epoch).
    pub connected_at: u64,
    /// When it was last sent anything (seconds since the Unix epoch).
    pub last_push: Option<u64>,
    /// Per type (`CDS`, `EDS`, `LDS`, `RDS`): what was sent and answered.
    pub types: BTreeMap<String, TypeStatus>,
}

/// The sync state of one resource type for one proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypeStatus {
    /// Version last sent.
    pub sent: Option<String>,
    /// Resources in it.
    pub resources: usize,
    /// Version last ACKed.
    pub acked: Option<String>,
    /// Version last NACKed, and the proxy's error.
    pub nacked: Option<(String, String)>,
}

impl TypeStatus {
    /// Whether the proxy has accepted what it was last sent.
    pub fn in_sync(&self) -> bool {
        self.sent.is_some() && self.sent == self.acked
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes a proxy from the status table when its stream ends.
struct Registered<'a> {
    stats: &'a Stats,
    conn: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut proxies = self.stats.proxies.lock().unwrap_or_else(|e| e.into_inner());
        proxies.remove(&self.conn);
    }
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
    sent: Option<Arc<[Any]>>,
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
        let conn = self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.stats.register(
            conn,
            ProxyStatus {
                id: proxy.id.clone(),
                kind: format!("{:?}", proxy.kind),
                namespace: proxy.namespace.clone(),
                connected_at: now(),
                last_push: None,
                types: BTreeMap::new(),
            },
        );
        let _registered = Registered {
            stats: &self.stats,
            conn,
        };
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
                            self.push(tx, conn, &proxy, &generation, &resources, *type_url, state, false).await?;
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
                self.stats.nacks_by_type[type_index(type_url)].fetch_add(1, Ordering::Relaxed);
                self.stats.update(conn, |s| {
                    s.types
                        .entry(type_url.short_name().to_string())
                        .or_default()
                        .nacked = Some((request.version_info.clone(), error.message.clone()));
                });
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
                self.stats.update(conn, |s| {
                    let t = s
                        .types
                        .entry(type_url.short_name().to_string())
                        .or_default();
                    t.acked = Some(request.version_info.clone());
                    t.nacked = None;
                });
            }
            state.subscribed = true;
            state.names = names;
            if first_request || names_changed {
                self.push(
                    tx,
                    conn,
                    &proxy,
                    &generation,
                    &resources,
                    type_url,
                    state,
                    true,
                )
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
        conn: u64,
        proxy: &Proxy,
        generation: &Generation,
        resources: &Resources,
        type_url: TypeUrl,
        state: &mut TypeState,
        force: bool,
    ) -> Result<(), Status> {
        let wildcard = state.names.is_empty() && !type_url.subscribed_by_name();
        let selected = select(resources, type_url, &state.names, wildcard);
        if !force && state.sent.as_deref() == Some(&selected[..]) {
            return Ok(());
        }
        state.nonce = self.next_nonce();
        let sent: Arc<[Any]> = selected.clone().into();
        state.sent = Some(sent.clone());
        self.stats.record_sent(
            conn,
            type_url,
            Sent {
                version: generation.version.to_string(),
                resources: sent,
            },
        );
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
        self.stats.pushes_by_type[type_index(type_url)].fetch_add(1, Ordering::Relaxed);
        self.stats.update(conn, |s| {
            s.last_push = Some(now());
            let t = s
                .types
                .entry(type_url.short_name().to_string())
                .or_default();
            t.sent = Some(generation.version.to_string());
            t.resources = response.resources.len();
        });
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
