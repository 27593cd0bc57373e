//! The one xDS stream engine behind every discovery service: ADS and the
//! per-type services, state of the world and delta alike.
//!
//! A stream reads who the proxy is from its first request's `Node`, then
//! keeps, per type, what the proxy subscribed to and what it holds. The
//! engine decides *when* to answer — a new or changed subscription, a new
//! generation — and the [`Protocol`] ([`super::sotw`], [`super::delta`])
//! decides *what* goes in the response.
//!
//! Consistency: a stream answers from one generation at a time and moves
//! to a newer one only once the proxy has answered (ACKed or NACKed) every
//! response it was sent, or after [`ANSWER_WAIT`] without an answer. So a
//! proxy's first round (its CDS, EDS, LDS and RDS) and every push round
//! come from one generation: it never gets an EDS or RDS that names a
//! cluster its CDS doesn't have. Pushes go in Envoy's order, CDS, EDS,
//! LDS, RDS, so a proxy can make before it breaks.
//!
//! A proxy asking to be auto-registered (`AUTO_REGISTER_GROUP`) is
//! registered before its first response and stays so while the stream
//! lives ([`super::register`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use weft_xds::TypeUrl;
use weft_xds::pb::envoy::config::core::v3::Node;
use weft_xds::pb::google::rpc;

use super::current::{Current, Listing, Selected};
use super::held::Held;
use super::holding::Holding;
use super::intern::{Interner, Names};
use super::requests::Requests;
use super::share;
use super::stats::{ProxyStatus, Sent};
use super::throttle::Permit;
use super::wire::{Body, Wire};
use super::{AdsServer, Generation};
use crate::translate::Proxy;
use crate::vhds::VHDS_FEATURE;

/// Responses a stream may have queued before its proxy reads them.
const STREAM_QUEUE: usize = 16;

/// How long a stream waits for the proxy to answer what it was sent
/// before it moves to a newer generation anyway (the default of
/// `AdsServer::answer_wait`).
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The gRPC service a stream came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// The Aggregated Discovery Service: every type.
    Ads,
    /// A per-type discovery service (CDS, EDS, LDS, RDS): that type only.
    Only(TypeUrl),
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Ads => "ADS",
            Service::Only(t) => t.short_name(),
        }
    }

    /// The type a request asks for on this service, or why it can't be
    /// served here.
    pub(crate) fn type_of(self, type_url: &str) -> Result<TypeUrl, Status> {
        if let (Service::Only(t), "") = (self, type_url) {
            return Ok(t); // a per-type service implies its type
        }
        let parsed: TypeUrl = type_url.parse().map_err(|e: weft_xds::UnknownTypeUrl| {
            Status::invalid_argument(format!("{e}; Weft serves {}", served()))
        })?;
        match self {
            Service::Only(t) if t != parsed => Err(Status::invalid_argument(format!(
                "this is the {} discovery service: it serves only {} resources, not {}; \
                 use the Aggregated Discovery Service for several types on one stream",
                t.short_name(),
                t.as_str(),
                parsed.as_str()
            ))),
            _ => Ok(parsed),
        }
    }
}

fn served() -> String {
    TypeUrl::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A request of either protocol, as the engine sees it.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub node: Option<Node>,
    pub type_url: String,
    /// The nonce of the response this answers; empty if none.
    pub nonce: String,
    /// Set on a NACK.
    pub error: Option<rpc::Status>,
    pub interest: Interest,
}

/// What a request says the proxy wants.
#[derive(Debug)]
pub(crate) enum Interest {
    /// State of the world: the whole list of names.
    Names(Vec<String>),
    /// Delta: changes to the subscription.
    Delta {
        subscribe: Vec<String>,
        unsubscribe: Vec<String>,
        /// What the proxy already holds (first request of a type only).
        initial: HashMap<String, String>,
    },
}

impl Interest {
    /// Whether it changes a delta subscription.
    fn changes(&self) -> bool {
        match self {
            Interest::Names(_) => false,
            Interest::Delta {
                subscribe,
                unsubscribe,
                ..
            } => !subscribe.is_empty() || !unsubscribe.is_empty(),
        }
    }
}

/// What a stream knows about one resource type.
#[derive(Debug, Default)]
pub(crate) struct TypeState {
    /// Whether the proxy asked for this type at all.
    pub subscribed: bool,
    /// All resources of the type, not just `names`.
    pub wildcard: bool,
    /// Names subscribed to explicitly (interned for state of the world:
    /// streams with equal subscriptions share them).
    pub names: Names,
    /// The nonce of the last response.
    nonce: String,
    /// The generation version of the last response.
    version: u64,
    /// Whether the proxy has answered the last response.
    answered: bool,
    /// What the proxy holds (encoded): for state of the world its last
    /// response, for delta everything its responses added up to. Shared
    /// with [`super::Stats::sent`].
    pub sent: Option<Held>,
    /// Delta: the name and version of each resource the proxy holds.
    pub held: Holding,
}

/// Why a response is being built.
#[derive(Debug, Default)]
pub(crate) struct Want {
    /// Answer even if nothing changed (a new subscription).
    pub answer: bool,
    /// Delta: names subscribed just now, sent even if the proxy holds them
    /// and reported removed if they don't exist.
    pub names: BTreeSet<String>,
}

/// A response but for its nonce: the same for every stream in the same
/// position (see [`super::share`]).
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The message without its nonce.
    pub body: Body,
    /// What the proxy holds of this type once it applies the response.
    pub holds: Held,
    /// The names and delta versions of the same.
    pub listing: Listing,
    /// Delta RDS: the route configurations in it (their virtual hosts
    /// follow, see [`crate::vhds`]).
    pub sent: Vec<String>,
}

/// The protocol-specific half of a stream: reading requests, updating
/// subscriptions, building responses.
pub(crate) trait Protocol: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    /// The response message (what [`Prepared::body`] encodes).
    type Response: prost::Message + Default + Send + 'static;
    /// Whether this is incremental (delta) xDS.
    const DELTA: bool;

    fn incoming(r: Self::Request) -> Incoming;

    /// Applies `interest` to `state` (sharing name sets through
    /// `interner`); says whether to answer now.
    fn interest(
        state: &mut TypeState,
        type_url: TypeUrl,
        interest: Interest,
        interner: &Interner,
    ) -> Want;

    /// The response for `selected` (the type's resources now in scope)
    /// to a proxy holding what `state` says, or `None` when there is
    /// nothing to say. A function of what [`super::share::Key`] holds
    /// for delta: `state`'s holding, subscription and wildcard, the
    /// resources, `want` and `version`.
    fn prepare(
        state: &TypeState,
        type_url: TypeUrl,
        selected: Selected<'_>,
        want: &Want,
        version: u64,
    ) -> Result<Option<Prepared>, Status>;
}

type Tx = mpsc::Sender<Result<Wire, Status>>;

impl AdsServer {
    /// Serves one stream of protocol `P` on `service` in its own task; the
    /// returned stream carries its responses (bounded: a slow proxy only
    /// slows itself).
    pub(crate) fn open<P: Protocol>(
        &self,
        service: Service,
        requests: impl Requests<P::Request>,
    ) -> ReceiverStream<Result<Wire, Status>> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let server = self.clone();
        tokio::spawn(async move {
            server.stats.connected.fetch_add(1, Ordering::Relaxed);
            let result = run::<P>(&server, service, requests, &tx).await;
            server.stats.connected.fetch_sub(1, Ordering::Relaxed);
            if let Err(status) = result {
                // The client may be gone already; nothing more to do then.
                let _ = tx.send(Err(status)).await;
            }
        });
        ReceiverStream::new(rx)
    }
}

/// One open stream.
struct Stream<'a, P: Protocol> {
    server: &'a AdsServer,
    service: Service,
    proxy: Proxy,
    /// The proxy resolved, kept across generations that don't change it.
    resolved: crate::cache::Resolved,
    conn: u64,
    generation: Arc<Generation>,
    current: Current,
    /// The proxy gets its virtual hosts through VHDS (see [`crate::vhds`]).
    vhds: bool,
    /// Route configurations sent whose virtual hosts are to follow.
    resend: BTreeSet<String>,
    types: BTreeMap<TypeUrl, TypeState>,
    /// Until when the stream holds its generation for unanswered responses.
    hold_until: Instant,
    /// The throttle's permit while a push is being sent.
    permit: Option<Arc<Permit>>,
    tx: &'a Tx,
    protocol: std::marker::PhantomData<P>,
}

async fn run<P: Protocol>(
    server: &AdsServer,
    service: Service,
    mut requests: impl Requests<P::Request>,
    tx: &Tx,
) -> Result<(), Status> {
    let Some(first) = requests.message().await? else {
        return Ok(());
    };
    let first = P::incoming(first);
    let mut proxy = Proxy::from_node(first.node.as_ref())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    tracing::info!(
        target: "weft::xds",
        proxy = %proxy.id,
        kind = ?proxy.kind,
        service = service.name(),
        delta = P::DELTA,
        "proxy connected"
    );
    let mut generations = server.generations.clone();
    // Held while the stream lives: dropping it is the disconnect.
    let _registration = super::register::register(
        server.autoregister.as_ref(),
        first.node.as_ref(),
        &mut proxy,
        &mut generations,
    )
    .await;
    let registered = server.stats.register(ProxyStatus {
        id: proxy.id.clone(),
        kind: format!("{:?}", proxy.kind),
        namespace: proxy.namespace.clone(),
        service: service.name().to_string(),
        delta: P::DELTA,
        connected_at: super::now(),
        last_push: None,
        types: BTreeMap::new(),
    });
    let generation = generations.borrow_and_update().clone();
    let vhds = P::DELTA
        && first
            .node
            .as_ref()
            .is_some_and(|n| n.client_features.iter().any(|f| f == VHDS_FEATURE));
    let mut resolved = crate::cache::Resolved::default();
    let current = Current::new(
        &server
            .translations
            .get_for(&generation, &proxy, &mut resolved),
        None,
        vhds,
    );
    let mut stream = Stream::<P> {
        server,
        service,
        current,
        resolved,
        vhds,
        resend: BTreeSet::new(),
        generation,
        proxy,
        conn: registered.conn,
        types: BTreeMap::new(),
        hold_until: Instant::now(),
        permit: None,
        tx,
        protocol: std::marker::PhantomData,
    };
    stream.handle(first).await?;
    // The newest generation, while the stream holds an older one.
    let mut pending: Option<Arc<Generation>> = None;
    loop {
        let hold = stream.unanswered() && Instant::now() < stream.hold_until;
        if !hold && let Some(next) = pending.take() {
            stream.take(next).await?;
            continue;
        }
        tokio::select! {
            biased;
            r = requests.message() => match r? {
                Some(r) => stream.handle(P::incoming(r)).await?,
                None => {
                    tracing::info!(target: "weft::xds", proxy = %stream.proxy.id, "proxy disconnected");
                    return Ok(());
                }
            },
            changed = generations.changed() => {
                if changed.is_err() {
                    return Err(Status::unavailable("control plane shutting down"));
                }
                let next = generations.borrow_and_update().clone();
                if hold {
                    pending = Some(next);
                } else {
                    stream.take(next).await?;
                }
            }
            () = tokio::time::sleep_until(stream.hold_until), if hold => {
                tracing::debug!(
                    target: "weft::xds",
                    proxy = %stream.proxy.id,
                    "no answer to the last response; moving on to newer config"
                );
            }
        }
    }
}

impl<P: Protocol> Stream<'_, P> {
    /// Whether a response is still waiting for the proxy's ACK or NACK.
    fn unanswered(&self) -> bool {
        self.types.values().any(|s| s.subscribed && !s.answered)
    }

    /// Moves to a newer generation under one of the server's push permits
    /// (see [`super::throttle`]).
    async fn take(&mut self, generation: Arc<Generation>) -> Result<(), Status> {
        // The permit goes with the responses until they are written.
        self.permit = Some(self.server.throttle.acquire().await);
        let pushed = self.push(generation).await;
        self.permit = None;
        pushed
    }

    /// Moves to a newer generation and pushes every subscribed type whose
    /// resources changed.
    async fn push(&mut self, generation: Arc<Generation>) -> Result<(), Status> {
        let translation =
            self.server
                .translations
                .get_for(&generation, &self.proxy, &mut self.resolved);
        let previous = std::mem::take(&mut self.current);
        self.current = Current::new(&translation, Some(&previous), self.vhds);
        self.generation = generation;
        let mut pushed = false;
        for type_url in TypeUrl::ALL {
            if !self.types.get(&type_url).is_some_and(|s| s.subscribed) {
                continue;
            }
            // A type kept as it was: the proxy holds what it was sent of
            // it (every request that changes a subscription is answered),
            // so there is nothing to select or compare — the usual case
            // for most types of a push.
            let resend = type_url == TypeUrl::VirtualHost && !self.resend.is_empty();
            if !resend && self.current.get(type_url).unchanged(previous.get(type_url)) {
                continue;
            }
            pushed |= self.respond(type_url, &Want::default()).await?;
        }
        if pushed {
            let waited = self.generation.published.elapsed();
            self.server.stats.convergence.observe(waited);
        }
        Ok(())
    }

    async fn handle(&mut self, request: Incoming) -> Result<(), Status> {
        let type_url = self.service.type_of(&request.type_url)?;
        let conn = self.conn;
        let stats = &self.server.stats;
        let state = self.types.entry(type_url).or_default();
        // A nonce from before this stream (a reconnecting proxy) answers
        // nothing: the request is then a plain subscription.
        let replies = !request.nonce.is_empty() && !state.nonce.is_empty();
        if replies && request.nonce != state.nonce {
            // A reply to an older response: superseded. Only a delta
            // subscription change in it still counts (it would be lost
            // otherwise; a state-of-the-world request is replaced by the
            // next one).
            if !request.interest.changes() {
                return Ok(());
            }
        } else if replies {
            state.answered = true;
            let version = state.version.to_string();
            let short = type_url.short_name();
            if let Some(error) = &request.error {
                stats.count_nack(type_url);
                stats.update(conn, |s| {
                    s.types.entry(short.to_string()).or_default().nacked =
                        Some((version.clone(), error.message.clone()));
                });
                tracing::warn!(
                    target: "weft::xds",
                    proxy = %self.proxy.id,
                    r#type = short,
                    version = %version,
                    error = %error.message,
                    "proxy rejected (NACKed) an update; it keeps its previous config"
                );
            } else {
                stats.update(conn, |s| {
                    let t = s.types.entry(short.to_string()).or_default();
                    t.acked = Some(version.clone());
                    t.nacked = None;
                });
            }
        }
        let want = P::interest(state, type_url, request.interest, &self.server.names);
        if want.answer || !want.names.is_empty() {
            self.respond(type_url, &want).await?;
            if type_url == TypeUrl::RouteConfiguration && !self.resend.is_empty() {
                // Their virtual hosts follow in the same round.
                self.respond(TypeUrl::VirtualHost, &Want::default()).await?;
            }
        }
        Ok(())
    }

    /// Sends the proxy what it should have of `type_url`, if anything;
    /// says whether a response went out.
    async fn respond(&mut self, type_url: TypeUrl, want: &Want) -> Result<bool, Status> {
        let Some(state) = self.types.get_mut(&type_url) else {
            return Ok(false);
        };
        let mut resend;
        let mut want = want;
        if type_url == TypeUrl::VirtualHost && !self.resend.is_empty() {
            // Route configurations just sent: all their virtual hosts go
            // again (a client clears them when it applies the head).
            resend = Want {
                answer: want.answer,
                names: want.names.clone(),
            };
            let names = &state.names;
            resend.names.extend(
                std::mem::take(&mut self.resend)
                    .into_iter()
                    .filter(|r| names.contains(r)),
            );
            want = &resend;
        }
        let version = self.generation.version;
        let packed = self.current.get(type_url);
        let state = &*state;
        let prepare = || {
            let selected = packed.select(state.wildcard, &state.names);
            P::prepare(state, type_url, selected, want, version)
        };
        let key = P::DELTA
            .then(|| share::Key::of(type_url, version, packed, state, want))
            .flatten();
        let prepared = match key {
            Some(key) => self.server.shares.get(key, prepare)?,
            None => prepare()?.map(Arc::new),
        };
        let Some(out) = prepared else {
            return Ok(false);
        };
        let nonce = self.server.next_nonce();
        let response = out.body.frame(&nonce)?;
        let Some(state) = self.types.get_mut(&type_url) else {
            return Ok(false);
        };
        if P::DELTA {
            state.held.set(out.listing.clone());
        }
        state.sent = Some(out.holds.clone());
        state.nonce = nonce;
        state.version = version;
        state.answered = false;
        self.hold_until = Instant::now() + self.server.answer_wait;
        let held = out.holds.len();
        let stats = &self.server.stats;
        let sent = Sent {
            version: version.to_string(),
            resources: out.holds.clone(),
            names: (type_url == TypeUrl::VirtualHost)
                .then(|| state.held.plain().cloned())
                .flatten(),
        };
        stats.count_push(type_url);
        stats.record_sent(self.conn, type_url, sent, |s| {
            s.last_push = Some(super::now());
            let t = s
                .types
                .entry(type_url.short_name().to_string())
                .or_default();
            t.sent = Some(version.to_string());
            t.resources = held;
        });
        tracing::debug!(
            target: "weft::xds",
            proxy = %self.proxy.id,
            r#type = type_url.short_name(),
            version,
            delta = P::DELTA,
            resources = held,
            bytes = response.message_len(),
            "push"
        );
        if self.vhds
            && type_url == TypeUrl::RouteConfiguration
            && let Some(v) = self.types.get(&TypeUrl::VirtualHost)
            && v.subscribed
        {
            // Subscribed to their virtual hosts already: those follow.
            self.resend
                .extend(out.sent.iter().filter(|r| v.names.contains(*r)).cloned());
        }
        let mut response = response;
        if let Some(permit) = &self.permit {
            response.hold(permit.clone());
        }
        self.tx
            .send(Ok(response))
            .await
            .map_err(|_| Status::cancelled("proxy went away"))?;
        Ok(true)
    }
}
