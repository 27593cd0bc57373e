//! The xDS client: one ADS stream to the control plane, carrying CDS,
//! EDS, LDS and RDS — delta (`DeltaAggregatedResources`, the default, with
//! VHDS's virtual hosts too) or state of the world
//! (`StreamAggregatedResources`), as [`XdsConfig::protocol`] says.
//!
//! The proxy introduces itself as an Istio sidecar does: node id
//! `sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local`, metadata
//! `NAMESPACE`, `WORKLOAD_NAME`, `INTERCEPTION_MODE` (`NONE` in explicit
//! mode), when the app's address is given, `APP_ADDRESS`, and for a VM
//! that registers itself from a WorkloadGroup, `AUTO_REGISTER_GROUP`
//! (istio-agent's `ISTIO_META_AUTO_REGISTER_GROUP`). What the
//! stream does with each response is [`state`]'s job; this module keeps
//! the stream up: it reconnects with jittered exponential backoff, and the
//! proxy goes on serving its last config while the control plane is away.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use weft_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use weft_xds::pb::google::protobuf::{Struct, Value, value};

use crate::snapshot::Snapshot;

pub mod state;

pub use state::{Protocol, Rejection, Request, State};

/// Who the proxy says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// `sidecar` or `router` (a gateway).
    pub kind: &'static str,
    /// Its IP (the node id's second field).
    pub ip: String,
    /// All its IPs (`INSTANCE_IPS`; empty: `ip` alone).
    pub ips: Vec<String>,
    /// The WorkloadEntry it serves.
    pub workload: String,
    /// Its namespace.
    pub namespace: String,
    /// Istio's `INTERCEPTION_MODE`: `NONE` (explicit) or `REDIRECT`.
    pub interception: String,
    /// Where the app listens (`APP_ADDRESS`), if said.
    pub app_address: Option<String>,
    /// The WorkloadGroup to auto-register from (`AUTO_REGISTER_GROUP`),
    /// if any.
    pub auto_register_group: Option<String>,
}

impl NodeInfo {
    /// The xDS node id.
    pub fn id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}.svc.cluster.local",
            self.kind, self.ip, self.workload, self.namespace, self.namespace
        )
    }

    /// The xDS node.
    pub fn node(&self) -> Node {
        let s = |v: &str| Value {
            kind: Some(value::Kind::StringValue(v.to_string())),
        };
        let mut fields = HashMap::new();
        fields.insert("NAMESPACE".to_string(), s(&self.namespace));
        fields.insert("WORKLOAD_NAME".to_string(), s(&self.workload));
        fields.insert("INTERCEPTION_MODE".to_string(), s(&self.interception));
        let ips = if self.ips.is_empty() {
            self.ip.clone()
        } else {
            self.ips.join(",")
        };
        fields.insert("INSTANCE_IPS".to_string(), s(&ips));
        if let Some(app) = &self.app_address {
            fields.insert("APP_ADDRESS".to_string(), s(app));
        }
        if let Some(group) = &self.auto_register_group {
            fields.insert("AUTO_REGISTER_GROUP".to_string(), s(group));
        }
        Node {
            id: self.id(),
            cluster: format!("{}.{}", self.workload, self.namespace),
            metadata: Some(Struct { fields }),
            user_agent_name: "weft".to_string(),
            ..Node::default()
        }
    }
}

/// Counters and state the admin API shows.
#[derive(Debug, Default)]
pub struct XdsStatus {
    /// Whether a stream is up now.
    pub connected: std::sync::atomic::AtomicBool,
    /// Streams opened.
    pub connects: AtomicU64,
    /// Snapshots applied.
    pub applied: AtomicU64,
    /// Updates rejected.
    pub rejected: AtomicU64,
    /// The last rejection.
    pub last_rejection: ArcSwap<Option<Rejection>>,
}

/// The xDS client's settings.
#[derive(Clone, Debug)]
pub struct XdsConfig {
    /// The control plane, `HOST:PORT`.
    pub address: String,
    /// Who the proxy is.
    pub node: NodeInfo,
    /// How long an update may wait for what it references (default 2 s).
    pub warm_timeout: Duration,
    /// First reconnect delay (default 250 ms); doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest reconnect delay (default 15 s).
    pub max_backoff: Duration,
    /// Delta (default, with VHDS) or state of the world.
    pub protocol: Protocol,
}

/// Runs the client until `shutdown` fires: applies snapshots to `config`,
/// counts each on `applied`, sets `ready` once a whole config is in.
pub async fn run(
    settings: XdsConfig,
    config: Arc<ArcSwap<Snapshot>>,
    ready: watch::Sender<bool>,
    applied: watch::Sender<u64>,
    status: Arc<XdsStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = State::with_protocol(
        settings.node.node(),
        settings.warm_timeout,
        settings.protocol,
    );
    let mut backoff = settings.initial_backoff;
    loop {
        let started = tokio::time::Instant::now();
        let result = tokio::select! {
            r = stream(&settings, &mut state, &config, &ready, &applied, &status) => r,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        status.connected.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => {
                tracing::warn!(target: "weft::xds", xds = %settings.address, "control plane closed the stream; reconnecting (serving the last config meanwhile)")
            }
            Err(e) => {
                tracing::warn!(target: "weft::xds", xds = %settings.address, error = %e, "control plane unreachable; retrying (serving the last config meanwhile)")
            }
        }
        if started.elapsed() > settings.max_backoff {
            backoff = settings.initial_backoff; // it was up a good while
        }
        // Equal jitter: half the current backoff, plus a random part of
        // the other half (so reconnecting proxies spread out, none at once).
        let delay = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
        backoff = (backoff * 2).min(settings.max_backoff);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("request queue closed")]
    Closed,
}

async fn stream(
    settings: &XdsConfig,
    state: &mut State,
    config: &ArcSwap<Snapshot>,
    ready: &watch::Sender<bool>,
    applied: &watch::Sender<u64>,
    status: &XdsStatus,
) -> Result<(), StreamError> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", settings.address))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let channel = endpoint.connect().await?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let first = state.start_stream();
    let up = Up {
        settings,
        config,
        ready,
        applied,
        status,
    };
    match state.protocol() {
        Protocol::Sotw => {
            let (tx, rx) = mpsc::channel(16);
            send_all(&tx, first, sotw).await?;
            let responses = client
                .stream_aggregated_resources(ReceiverStream::new(rx))
                .await?
                .into_inner();
            up.drive(state, responses, tx, State::on_response, sotw)
                .await
        }
        Protocol::Delta => {
            let (tx, rx) = mpsc::channel(16);
            send_all(&tx, first, delta).await?;
            let responses = client
                .delta_aggregated_resources(ReceiverStream::new(rx))
                .await?
                .into_inner();
            up.drive(state, responses, tx, State::on_delta_response, delta)
                .await
        }
    }
}

fn sotw(r: Request) -> Option<DiscoveryRequest> {
    match r {
        Request::Sotw(r) => Some(r),
        Request::Delta(_) => None,
    }
}

fn delta(r: Request) -> Option<DeltaDiscoveryRequest> {
    match r {
        Request::Delta(r) => Some(r),
        Request::Sotw(_) => None,
    }
}

async fn send_all<M>(
    tx: &mpsc::Sender<M>,
    requests: Vec<Request>,
    wire: fn(Request) -> Option<M>,
) -> Result<(), StreamError> {
    for r in requests.into_iter().filter_map(wire) {
        tx.send(r).await.map_err(|_| StreamError::Closed)?;
    }
    Ok(())
}

/// What a stream that is up reports to.
struct Up<'a> {
    settings: &'a XdsConfig,
    config: &'a ArcSwap<Snapshot>,
    ready: &'a watch::Sender<bool>,
    applied: &'a watch::Sender<u64>,
    status: &'a XdsStatus,
}

impl Up<'_> {
    /// Feeds the state responses and deadlines until the stream ends,
    /// applying the snapshots and sending the requests it makes.
    async fn drive<Req, Resp>(
        &self,
        state: &mut State,
        mut responses: tonic::Streaming<Resp>,
        tx: mpsc::Sender<Req>,
        handle: fn(&mut State, Resp, tokio::time::Instant) -> state::Outcome,
        wire: fn(Request) -> Option<Req>,
    ) -> Result<(), StreamError> {
        let status = self.status;
        status.connected.store(true, Ordering::Relaxed);
        status.connects.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "weft::xds", xds = %self.settings.address, node = %self.settings.node.id(), protocol = ?state.protocol(), "connected to the control plane");
        loop {
            let deadline = state.deadline();
            let outcome = tokio::select! {
                r = responses.message() => match r? {
                    Some(r) => handle(state, r, tokio::time::Instant::now()),
                    None => return Ok(()),
                },
                _ = sleep_until(deadline) => state.on_deadline(tokio::time::Instant::now()),
            };
            if let Some(snapshot) = outcome.snapshot {
                self.config.store(Arc::new(snapshot));
                let n = status.applied.fetch_add(1, Ordering::Relaxed) + 1;
                self.applied.send_replace(n);
                tracing::debug!(target: "weft::xds", "config applied");
                if state.complete {
                    self.ready.send_if_modified(|r| !std::mem::replace(r, true));
                }
            }
            let rejected = outcome.requests.iter().filter(|r| r.is_nack()).count();
            status
                .rejected
                .fetch_add(rejected as u64, Ordering::Relaxed);
            send_all(&tx, outcome.requests, wire).await?;
            status
                .last_rejection
                .store(Arc::new(state.last_rejection.clone()));
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod node_tests {
    use super::*;

    fn metadata(node: &Node, key: &str) -> Option<String> {
        match &node.metadata.as_ref()?.fields.get(key)?.kind {
            Some(value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    }

    #[test]
    fn an_auto_registering_node_names_its_group() {
        let mut info = NodeInfo {
            kind: "sidecar",
            ip: "10.0.0.5".into(),
            ips: Vec::new(),
            workload: "vm-10.0.0.5".into(),
            namespace: "shop".into(),
            interception: "NONE".into(),
            app_address: None,
            auto_register_group: None,
        };
        let node = info.node();
        assert_eq!(
            node.id,
            "sidecar~10.0.0.5~vm-10.0.0.5.shop~shop.svc.cluster.local"
        );
        assert_eq!(metadata(&node, "INSTANCE_IPS").as_deref(), Some("10.0.0.5"));
        assert_eq!(metadata(&node, "AUTO_REGISTER_GROUP"), None);
        info.auto_register_group = Some("vm".into());
        assert_eq!(
            metadata(&info.node(), "AUTO_REGISTER_GROUP").as_deref(),
            Some("vm")
        );
    }
}
