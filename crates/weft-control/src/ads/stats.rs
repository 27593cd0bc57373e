//! What the xDS server counts and remembers for the debug API and
//! `/metrics`: counters, the push latency histogram, and each connected
//! proxy's sync state and what it holds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use weft_xds::TypeUrl;

use super::current::Listing;
use super::held::Held;

/// Counters for the debug API and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Streams open now.
    pub connected: AtomicU64,
    /// Responses sent (state of the world and delta).
    pub pushes: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
    /// Responses sent, per type (indexed like [`TypeUrl::ALL`]).
    pub pushes_by_type: [AtomicU64; 6],
    /// NACKs received, per type (indexed like [`TypeUrl::ALL`]).
    pub nacks_by_type: [AtomicU64; 6],
    /// Seconds from a generation's publication to its push being sent to
    /// a proxy (Istio's `pilot_proxy_convergence_time`).
    pub convergence: Histogram,
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

/// The resources of one type a proxy holds from us: for state of the
/// world what it was last sent, for delta the whole set its responses
/// added up to.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The `version_info` (`system_version_info` for delta) of the last
    /// response of this type.
    pub version: String,
    /// The resources, packed as they went on the wire, in name order.
    pub resources: Held,
    /// Their names, when the resources don't say them (VHDS: `R/vhost`).
    pub(crate) names: Option<Listing>,
}

impl Sent {
    /// What was sent (for the debug API: VHDS resources don't carry the
    /// route configuration they belong to, so it remembers their names).
    pub fn new(version: String, resources: Held) -> Sent {
        Sent {
            version,
            resources,
            names: None,
        }
    }

    /// The resource names, when kept (VHDS), in the order of `resources`.
    pub fn names(&self) -> Option<Vec<String>> {
        self.names
            .as_ref()
            .map(|l| l.iter().map(|(n, _)| n.to_string()).collect())
    }
}

impl Stats {
    pub(crate) fn update(&self, conn: u64, f: impl FnOnce(&mut ProxyStatus)) {
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = proxies.get_mut(&conn) {
            f(&mut c.status);
        }
    }

    /// Adds a stream to the status table; it leaves when the guard drops.
    pub(crate) fn register(&self, status: ProxyStatus) -> Registered<'_> {
        let conn = self.connections.fetch_add(1, Ordering::Relaxed);
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        proxies.insert(
            conn,
            Connected {
                status,
                sent: BTreeMap::new(),
            },
        );
        Registered { stats: self, conn }
    }

    /// Records what a stream sent of `type_url` and updates its status,
    /// under one lock.
    pub(crate) fn record_sent(
        &self,
        conn: u64,
        type_url: TypeUrl,
        sent: Sent,
        f: impl FnOnce(&mut ProxyStatus),
    ) {
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = proxies.get_mut(&conn) {
            c.sent.insert(type_url, sent);
            f(&mut c.status);
        }
    }

    pub(crate) fn count_push(&self, type_url: TypeUrl) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        self.pushes_by_type[type_index(type_url)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_nack(&self, type_url: TypeUrl) {
        self.nacks.fetch_add(1, Ordering::Relaxed);
        self.nacks_by_type[type_index(type_url)].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every connected proxy's status, sorted by proxy id.
    pub fn proxy_statuses(&self) -> Vec<ProxyStatus> {
        let proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ProxyStatus> = proxies.values().map(|c| c.status.clone()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// What the proxy with xDS node id `id` holds from us, per type (the
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

/// Where `t` is in [`TypeUrl::ALL`] (the index of the per-type counters).
pub fn type_index(t: TypeUrl) -> usize {
    TypeUrl::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// Removes a proxy from the status table when its stream ends.
pub(crate) struct Registered<'a> {
    stats: &'a Stats,
    /// The stream's key in the table.
    pub conn: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut proxies = self.stats.proxies.lock().unwrap_or_else(|e| e.into_inner());
        proxies.remove(&self.conn);
    }
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
    /// The gRPC service of its stream: `ADS`, or `CDS`, `EDS`, `LDS`,
    /// `RDS` for the per-type discovery services.
    #[serde(default)]
    pub service: String,
    /// Whether the stream speaks incremental (delta) xDS.
    #[serde(default)]
    pub delta: bool,
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
    /// Resources the proxy holds of this type after it (for state of the
    /// world, those in the response).
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

/// Upper bounds (seconds) of [`Stats::convergence`]'s buckets: Istio's
/// for `pilot_proxy_convergence_time`.
pub const CONVERGENCE_BUCKETS: [f64; 8] = [0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];

/// A Prometheus histogram over [`CONVERGENCE_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most each bound (not cumulative; `+Inf` last).
    buckets: [AtomicU64; CONVERGENCE_BUCKETS.len() + 1],
    /// Sum of the observations, in microseconds.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = CONVERGENCE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(CONVERGENCE_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (the last is `+Inf`, equal to the
    /// count), the sum in seconds, and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum, self.count.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(700));
        h.observe(Duration::from_secs(40));
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(buckets, vec![1, 1, 2, 2, 2, 2, 2, 2, 3]);
        assert_eq!(count, 3);
        assert!((sum - 40.75).abs() < 1e-6, "{sum}");
    }
}
