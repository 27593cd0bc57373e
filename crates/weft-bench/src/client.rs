//! A simulated sidecar: one gRPC connection to the control plane and one
//! state-of-the-world ADS stream over it, driven the way Envoy drives it —
//! CDS (wildcard) with the node, then EDS for the EDS clusters it got, LDS
//! (wildcard), then RDS for the route configurations its listeners name —
//! ACKing every response.
//!
//! Clients are cheap so ten thousand fit in one process: each is one task
//! driving its own HTTP/2 connection (the `h2` crate, no channel or
//! buffer layers) with Envoy's default flow-control windows; responses are
//! read as a byte stream by [`crate::wire::Reader`] and never held whole;
//! subscription name lists are shared between the clients that have equal
//! ones ([`intern`]). What the harness measures lives in a few atomics per
//! client ([`ClientState`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::google::protobuf::{Struct, Value, value};

use crate::wire::{self, Reader};

mod delta;

/// The types a sidecar subscribes to, in the order of [`ClientState`]'s
/// arrays (VHDS only with [`Protocol::Vhds`]).
pub const TYPES: [TypeUrl; 5] = [
    TypeUrl::Cluster,
    TypeUrl::ClusterLoadAssignment,
    TypeUrl::Listener,
    TypeUrl::RouteConfiguration,
    TypeUrl::VirtualHost,
];

/// How a simulated proxy speaks xDS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// State of the world (`StreamAggregatedResources`), as Envoy by default.
    #[default]
    Sotw,
    /// Incremental (`DeltaAggregatedResources`), whole route configurations.
    Delta,
    /// Delta with `weft.vhds`: virtual hosts as their own resources (what
    /// `weft proxy` does).
    Vhds,
}

impl Protocol {
    /// `sotw`, `delta`, `vhds`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sotw => "sotw",
            Protocol::Delta => "delta",
            Protocol::Vhds => "vhds",
        }
    }

    /// The type a route change arrives as.
    pub fn route_type(self) -> TypeUrl {
        match self {
            Protocol::Vhds => TypeUrl::VirtualHost,
            _ => TypeUrl::RouteConfiguration,
        }
    }

    /// How many of [`TYPES`] it subscribes to.
    fn types(self) -> usize {
        match self {
            Protocol::Vhds => 5,
            _ => 4,
        }
    }
}

/// Index of `t` in [`TYPES`].
pub fn index(t: TypeUrl) -> Option<usize> {
    TYPES.iter().position(|x| *x == t)
}

/// What one client has done, for the harness to read.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Per type ([`TYPES`]): the version last ACKed (0: none yet).
    pub acked: [AtomicU64; 5],
    /// Per type: when that ACK was sent (ns since [`Fleet::epoch`]).
    pub acked_at: [AtomicU64; 5],
    /// Per type: resources in the last response.
    pub resources: [AtomicU64; 5],
    /// Per type: encoded bytes of the resources in the last response.
    pub bytes: [AtomicU64; 5],
    /// How many of [`TYPES`] it subscribes to.
    pub types: usize,
    /// Why the client stopped, if it did.
    pub error: OnceLock<String>,
}

impl ClientState {
    /// Whether every type has been ACKed at least once.
    pub fn synced(&self) -> bool {
        self.acked[..self.types]
            .iter()
            .all(|a| a.load(Ordering::Acquire) > 0)
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
    /// How they speak xDS.
    pub protocol: Protocol,
}

impl Fleet {
    /// `n` clients speaking `protocol` that have done nothing yet.
    pub fn new(n: usize, protocol: Protocol) -> Self {
        Fleet {
            epoch: Instant::now(),
            clients: (0..n)
                .map(|_| ClientState {
                    types: protocol.types(),
                    ..ClientState::default()
                })
                .collect(),
            protocol,
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

/// Envoy's default HTTP/2 windows (`Http2ProtocolOptions`
/// `initial_stream_window_size` and `initial_connection_window_size`, both
/// 256 MiB): Istio's bootstrap leaves them unset for its `xds-grpc` cluster.
pub const ENVOY_WINDOW: u32 = 256 << 20;

pub(crate) const ADS_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// Runs client `i` of `fleet` against `127.0.0.1:port` on a connection of
/// its own (as each real proxy has) until the stream ends or the task is
/// aborted; `permit` is released once the client is synced (every type
/// ACKed). Errors are recorded in the client's state.
pub async fn run(
    port: u16,
    identity: Identity,
    fleet: Arc<Fleet>,
    i: usize,
    permit: OwnedSemaphorePermit,
) {
    let result = session(port, identity, &fleet, i, permit).await;
    let message = match result {
        Ok(()) => "the control plane closed the stream".to_string(),
        Err(e) => format!("{e:#}"),
    };
    if let Some(state) = fleet.clients.get(i) {
        let _ = state.error.set(message);
    }
}

/// Connects, then drives the connection and the ADS stream in this one task.
async fn session(
    port: u16,
    identity: Identity,
    fleet: &Fleet,
    i: usize,
    permit: OwnedSemaphorePermit,
) -> Result<()> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .context("connect: timed out")?
    .context("connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(ENVOY_WINDOW)
        .initial_connection_window_size(ENVOY_WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await
        .context("HTTP/2 handshake")?;
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = &mut conn => {
            r.context("HTTP/2 connection")?;
            bail!("the control plane closed the connection")
        }
        r = async move {
            if fleet.protocol == Protocol::Sotw {
                ads(send, port, identity, fleet, i, permit).await
            } else {
                delta::ads(send, port, identity, fleet, i, permit).await
            }
        } => r,
    }
}

/// Interns a sorted name list: clients with equal subscriptions (all the
/// proxies of one namespace, say) share one copy. Lists are kept for the
/// life of the process (a benchmark has a handful of distinct ones).
pub fn intern(names: Vec<String>) -> Arc<[String]> {
    static SETS: OnceLock<Mutex<HashSet<Arc<[String]>>>> = OnceLock::new();
    let mut sets = SETS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = sets.get(names.as_slice()) {
        return found.clone();
    }
    let set: Arc<[String]> = names.into();
    sets.insert(set.clone());
    set
}

/// What the client holds per type: its subscription and the last response.
#[derive(Debug)]
struct Subscription {
    names: Arc<[String]>,
    version: String,
    nonce: String,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            names: intern(Vec::new()),
            version: String::new(),
            nonce: String::new(),
        }
    }
}

async fn ads(
    send: h2::client::SendRequest<Bytes>,
    port: u16,
    identity: Identity,
    fleet: &Fleet,
    i: usize,
    permit: OwnedSemaphorePermit,
) -> Result<()> {
    let state = fleet.clients.get(i).context("no such client")?;
    let mut permit = Some(permit);
    let mut subs: [Subscription; 4] = Default::default();
    let request = |t: TypeUrl, sub: &Subscription, node: Option<&Node>| {
        wire::request(node, &sub.version, &sub.names, t.as_str(), &sub.nonce)
    };
    let mut send = send.ready().await.context("HTTP/2 connection not ready")?;
    let head = http::Request::post(format!("http://127.0.0.1:{port}{ADS_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .context("ADS request")?;
    let (response, mut tx) = send
        .send_request(head, false)
        .context("open the ADS stream")?;
    // Envoy: CDS first, carrying the node; LDS right after.
    let node = identity.node();
    tx.send_data(request(TypeUrl::Cluster, &subs[0], Some(&node)), false)?;
    tx.send_data(request(TypeUrl::Listener, &subs[2], None), false)?;
    drop(node);

    let response = response.await.context("ADS response headers")?;
    check_head(&response, "ADS stream")?;
    let mut body = Reader::new(response.into_body());
    while let Some(response) = body.next().await.context("ADS stream")? {
        let (type_url, t, version) = received(state, &response)?;
        // A new set of clusters or listeners: (re)subscribe to their
        // endpoints or routes before ACKing, as Envoy does.
        let dep = match type_url {
            TypeUrl::Cluster => Some(1),
            TypeUrl::Listener => Some(3),
            _ => None,
        };
        if let Some(dep) = dep
            && (response.follow.as_slice() != &*subs[dep].names || subs[dep].nonce.is_empty())
        {
            let sub = &mut subs[dep];
            sub.names = intern(response.follow);
            tx.send_data(request(TYPES[dep], sub, None), false)?;
        }
        let sub = &mut subs[t];
        sub.version = response.version;
        sub.nonce = response.nonce;
        tx.send_data(request(type_url, sub, None), false)?;
        state.acked_at[t].store(fleet.now(), Ordering::Release);
        state.acked[t].store(version, Ordering::Release);
        if permit.is_some() && state.synced() {
            permit = None;
        }
    }
    if let Some(trailers) = body.source_mut().trailers().await.context("ADS trailers")?
        && trailers.get("grpc-status").is_some_and(|c| c != "0")
    {
        bail!("ADS stream: {}", grpc_error(&trailers));
    }
    Ok(())
}

/// Fails unless an ADS stream's response head is HTTP 200 without a
/// `grpc-status` error (a trailers-only answer).
pub(crate) fn check_head<B>(response: &http::Response<B>, stream: &str) -> Result<()> {
    let status = response.status();
    if status != http::StatusCode::OK {
        bail!("{stream}: HTTP status {status}");
    }
    if let Some(code) = response.headers().get("grpc-status")
        && code != "0"
    {
        bail!("{stream}: {}", grpc_error(response.headers()));
    }
    Ok(())
}

/// A response's type, its index in `state` and its version, with its
/// resource and byte counts stored in `state`.
pub(crate) fn received(
    state: &ClientState,
    response: &wire::Response,
) -> Result<(TypeUrl, usize, u64)> {
    let type_url: TypeUrl = response
        .type_url
        .parse()
        .map_err(|e| anyhow::anyhow!("response of an unexpected type: {e}"))?;
    let Some(t) = index(type_url).filter(|t| *t < state.types) else {
        bail!("response of an unsubscribed type {type_url}")
    };
    let version: u64 = response
        .version
        .parse()
        .with_context(|| format!("non-numeric version {:?}", response.version))?;
    state.resources[t].store(response.resources, Ordering::Relaxed);
    state.bytes[t].store(response.bytes, Ordering::Relaxed);
    Ok((type_url, t, version))
}

/// `grpc-status` and `grpc-message` of a trailers-only response, for errors.
pub(crate) fn grpc_error(headers: &http::HeaderMap) -> String {
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    format!("grpc-status {} {}", get("grpc-status"), get("grpc-message"))
}
