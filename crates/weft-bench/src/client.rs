//! A simulated sidecar: one gRPC connection to the control plane and one
//! state-of-the-world ADS stream over it, driven the way Envoy drives it —
//! CDS (wildcard) with the node, then EDS for the EDS clusters it got, LDS
//! (wildcard), then RDS for the route configurations its listeners name —
//! ACKing every response.
//!
//! Clients are cheap so thousands fit in one process: responses are read
//! into a lean message that keeps each resource as a slice of the receive
//! buffer, names are taken out, and the resources are dropped. What the
//! harness measures lives in a few atomics per client ([`ClientState`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use weft_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
use weft_xds::pb::google::protobuf::{Struct, Value, value};

/// The four types a sidecar subscribes to, in the order of [`ClientState`]'s arrays.
pub const TYPES: [TypeUrl; 4] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
];

/// Index of `t` in [`TYPES`].
pub fn index(t: TypeUrl) -> Option<usize> {
    TYPES.iter().position(|x| *x == t)
}

/// A `DiscoveryResponse` as the client reads it: resources stay encoded.
#[derive(Clone, PartialEq, Message)]
struct LeanResponse {
    #[prost(string, tag = "1")]
    version_info: String,
    #[prost(message, repeated, tag = "2")]
    resources: Vec<LeanAny>,
    #[prost(string, tag = "4")]
    type_url: String,
    #[prost(string, tag = "5")]
    nonce: String,
}

/// A `google.protobuf.Any`'s value only.
#[derive(Clone, PartialEq, Message)]
struct LeanAny {
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

/// A `Cluster`'s name and discovery type only.
#[derive(Clone, PartialEq, Message)]
struct LeanCluster {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, optional, tag = "2")]
    discovery_type: Option<i32>,
}

/// `Cluster.DiscoveryType.EDS`.
const EDS: i32 = 3;

/// What one client has done, for the harness to read.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Per type ([`TYPES`]): the version last ACKed (0: none yet).
    pub acked: [AtomicU64; 4],
    /// Per type: when that ACK was sent (ns since [`Fleet::epoch`]).
    pub acked_at: [AtomicU64; 4],
    /// Per type: resources in the last response.
    pub resources: [AtomicU64; 4],
    /// Per type: encoded bytes of the resources in the last response.
    pub bytes: [AtomicU64; 4],
    /// Why the client stopped, if it did.
    pub error: OnceLock<String>,
}

impl ClientState {
    /// Whether every type has been ACKed at least once.
    pub fn synced(&self) -> bool {
        self.acked.iter().all(|a| a.load(Ordering::Acquire) > 0)
    }

    /// The version of `t` last ACKed and when.
    pub fn ack(&self, t: TypeUrl) -> (u64, u64) {
        let i = index(t).unwrap_or(0);
        (
            self.acked[i].load(Ordering::Acquire),
            self.acked_at[i].load(Ordering::Acquire),
        )
    }
}

/// All clients of a run, and the clock their timestamps count from.
#[derive(Debug)]
pub struct Fleet {
    /// Time zero of every `acked_at`.
    pub epoch: Instant,
    /// One state per client.
    pub clients: Vec<ClientState>,
}

impl Fleet {
    /// `n` clients that have done nothing yet.
    pub fn new(n: usize) -> Self {
        Fleet {
            epoch: Instant::now(),
            clients: (0..n).map(|_| ClientState::default()).collect(),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Who a simulated proxy says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Pod name (`pod-N`).
    pub pod: String,
    /// Namespace.
    pub namespace: String,
    /// Its IP (config only).
    pub ip: String,
}

impl Identity {
    /// The node of its first request, as an Istio sidecar sends it:
    /// id `sidecar~IP~POD.NS~NS.svc.cluster.local` and metadata NAMESPACE,
    /// INSTANCE_IPS, INTERCEPTION_MODE, CLUSTER_ID.
    pub fn node(&self) -> Node {
        let s = |v: &str| Value {
            kind: Some(value::Kind::StringValue(v.to_string())),
        };
        let fields: HashMap<String, Value> = [
            ("NAMESPACE", s(&self.namespace)),
            ("INSTANCE_IPS", s(&self.ip)),
            ("INTERCEPTION_MODE", s("REDIRECT")),
            ("CLUSTER_ID", s("Kubernetes")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Node {
            id: format!(
                "sidecar~{}~{}.{ns}~{ns}.svc.cluster.local",
                self.ip,
                self.pod,
                ns = self.namespace
            ),
            cluster: format!("{}.{}", self.pod, self.namespace),
            metadata: Some(Struct { fields }),
            ..Node::default()
        }
    }
}

/// Opens a connection of its own to `127.0.0.1:port` (as each real proxy has).
pub async fn connect(port: u16) -> Result<Channel> {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(8 << 20))
        .connect()
        .await
        .context("connect")
}

const ADS_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// Runs client `i` of `fleet` on `channel` until the stream ends or the
/// task is aborted; `permit` is released once the client is synced (every
/// type ACKed). Errors are recorded in the client's state.
pub async fn run(
    channel: Channel,
    identity: Identity,
    fleet: Arc<Fleet>,
    i: usize,
    permit: OwnedSemaphorePermit,
) {
    let result = stream(channel, identity, &fleet, i, permit).await;
    let message = match result {
        Ok(()) => "the control plane closed the stream".to_string(),
        Err(e) => format!("{e:#}"),
    };
    if let Some(state) = fleet.clients.get(i) {
        let _ = state.error.set(message);
    }
}

/// What the client holds per type: its subscription and the last response.
#[derive(Debug, Default)]
struct Subscription {
    names: Vec<String>,
    version: String,
    nonce: String,
}

async fn stream(
    channel: Channel,
    identity: Identity,
    fleet: &Fleet,
    i: usize,
    permit: OwnedSemaphorePermit,
) -> Result<()> {
    let state = fleet.clients.get(i).context("no such client")?;
    let mut permit = Some(permit);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(8);
    let mut subs: [Subscription; 4] = Default::default();
    let request = |t: TypeUrl, sub: &Subscription| DiscoveryRequest {
        version_info: sub.version.clone(),
        resource_names: sub.names.clone(),
        type_url: t.as_str().to_string(),
        response_nonce: sub.nonce.clone(),
        ..DiscoveryRequest::default()
    };
    // Envoy: CDS first, carrying the node; LDS right after.
    tx.send(DiscoveryRequest {
        node: Some(identity.node()),
        ..request(TypeUrl::Cluster, &subs[0])
    })
    .await?;
    tx.send(request(TypeUrl::Listener, &subs[2])).await?;

    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(512 << 20);
    grpc.ready().await.context("channel not ready")?;
    let codec = tonic_prost::ProstCodec::<DiscoveryRequest, LeanResponse>::default();
    let mut responses = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static(ADS_PATH),
            codec,
        )
        .await
        .context("open the ADS stream")?
        .into_inner();

    while let Some(response) = responses.message().await.context("ADS stream")? {
        let type_url: TypeUrl = response
            .type_url
            .parse()
            .map_err(|e| anyhow::anyhow!("response of an unexpected type: {e}"))?;
        let Some(t) = index(type_url) else {
            bail!("response of an unsubscribed type {type_url}")
        };
        let version: u64 = response
            .version_info
            .parse()
            .with_context(|| format!("non-numeric version {:?}", response.version_info))?;
        let bytes: usize = response.resources.iter().map(|r| r.value.len()).sum();
        state.resources[t].store(response.resources.len() as u64, Ordering::Relaxed);
        state.bytes[t].store(bytes as u64, Ordering::Relaxed);
        // A new set of clusters or listeners: (re)subscribe to their
        // endpoints or routes before ACKing, as Envoy does.
        let follow = match type_url {
            TypeUrl::Cluster => Some((1, eds_clusters(&response.resources)?)),
            TypeUrl::Listener => Some((3, route_names(&response.resources)?)),
            _ => None,
        };
        if let Some((dep, names)) = follow
            && (names != subs[dep].names || subs[dep].nonce.is_empty())
        {
            let sub = &mut subs[dep];
            sub.names = names;
            tx.send(request(TYPES[dep], sub)).await?;
        }
        let sub = &mut subs[t];
        sub.version = response.version_info;
        sub.nonce = response.nonce;
        tx.send(request(type_url, sub)).await?;
        state.acked_at[t].store(fleet.now(), Ordering::Release);
        state.acked[t].store(version, Ordering::Release);
        if permit.is_some() && state.synced() {
            permit = None;
        }
    }
    Ok(())
}

/// Names of the EDS clusters among packed `Cluster`s.
fn eds_clusters(resources: &[LeanAny]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for r in resources {
        let c = LeanCluster::decode(r.value.clone()).context("decode a Cluster")?;
        if c.discovery_type == Some(EDS) {
            names.push(c.name);
        }
    }
    names.sort();
    Ok(names)
}

/// The RDS route configuration names that packed `Listener`s refer to.
fn route_names(resources: &[LeanAny]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut visit = |f: &Filter| -> Result<()> {
        if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
            && any.type_url.ends_with("HttpConnectionManager")
        {
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .context("decode an HttpConnectionManager")?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.push(rds.route_config_name);
            }
        }
        Ok(())
    };
    for r in resources {
        let l = Listener::decode(r.value.clone()).context("decode a Listener")?;
        for chain in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
            for f in &chain.filters {
                visit(f)?;
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}
