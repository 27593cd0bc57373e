//! Circuit breakers, as Envoy's (CDS `circuit_breakers.thresholds` of
//! the DEFAULT priority): limits per cluster on upstream connections,
//! requests waiting for one, requests in flight and retries in flight.
//! Past a limit a request fails at once with 503 and the `UO` flag
//! (`x-envoy-overloaded: true`), a retry is not made.
//!
//! The counts are atomics (and, for connections, a semaphore only when
//! a limit is set), shared by every snapshot of the cluster while its
//! limits stay the same. Every upstream connection holds one of the
//! cluster's `max_connections` slots while it is open — an idle pooled
//! HTTP/1.1 connection as well as a busy one, an HTTP/2 connection, a
//! proxied TCP connection. A request that needs a new connection past
//! the limit waits as one of `max_pending_requests` for the route's
//! timeout at most (the pools' `wait` module) — unless its endpoint has
//! no connection at all, which always gets one (Envoy's rule, so no
//! request waits on an endpoint with no way to serve it). Requests
//! themselves count against `max_requests` from admission to the end of
//! their response.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_xds::pb::envoy::config::cluster::v3::CircuitBreakers;
use weft_xds::pb::envoy::config::core::v3::RoutingPriority;

/// A cluster's limits, with Envoy's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Upstream connections (default 1024).
    pub max_connections: u32,
    /// Requests waiting for a connection (default 1024).
    pub max_pending_requests: u32,
    /// Requests in flight (default 1024).
    pub max_requests: u32,
    /// Retries in flight (default 3).
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

impl From<&CircuitBreakers> for Limits {
    fn from(c: &CircuitBreakers) -> Self {
        let mut out = Limits::default();
        let Some(t) = c
            .thresholds
            .iter()
            .find(|t| t.priority == RoutingPriority::Default as i32)
        else {
            return out;
        };
        let get = |v: Option<u32>, d: u32| v.unwrap_or(d);
        out.max_connections = get(t.max_connections.map(|v| v.value), out.max_connections);
        out.max_pending_requests = get(
            t.max_pending_requests.map(|v| v.value),
            out.max_pending_requests,
        );
        out.max_requests = get(t.max_requests.map(|v| v.value), out.max_requests);
        out.max_retries = get(t.max_retries.map(|v| v.value), out.max_retries);
        out
    }
}

/// A cluster's live counts against its limits (and the overflow stats,
/// Envoy's names).
#[derive(Debug)]
pub struct Breakers {
    /// The limits.
    pub limits: Limits,
    /// Connection slots (HTTP/1.1 requests in flight), when limited.
    connections: Option<Arc<Semaphore>>,
    pending: AtomicU32,
    requests: AtomicU32,
    retries: AtomicU32,
    /// `upstream_cx_overflow`: a connection was wanted past `max_connections`.
    pub cx_overflow: AtomicU64,
    /// `upstream_rq_pending_overflow`: requests failed by `max_pending_requests`
    /// or `max_requests`.
    pub rq_pending_overflow: AtomicU64,
    /// `upstream_rq_retry_overflow`: retries not made for `max_retries`.
    pub rq_retry_overflow: AtomicU64,
    /// `upstream_rq_retry`: retries made (attempts after the first).
    pub rq_retry: AtomicU64,
    /// `upstream_rq_retry_success`: retried requests whose last attempt
    /// got a response (one the policy does not retry).
    pub rq_retry_success: AtomicU64,
    /// `upstream_rq_retry_limit_exceeded`: requests whose attempts ran out
    /// while the policy would have retried (`URX`).
    pub rq_retry_limit_exceeded: AtomicU64,
    /// `upstream_cx_max_duration_reached`: upstream connections drained
    /// (HTTP/2) or closed (HTTP/1.1) for reaching the cluster's
    /// `max_connection_duration`.
    pub cx_max_duration_reached: AtomicU64,
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// `max_requests` reached.
    #[error("max_requests reached")]
    Requests,
    /// No connection free and `max_pending_requests` reached.
    #[error("max_pending_requests reached")]
    Pending,
    /// Waited for a connection until the route's timeout.
    #[error("no connection became free in time")]
    Timeout,
    /// `max_connections` reached (TCP proxying: no waiting).
    #[error("max_connections reached")]
    Connections,
}

/// What an admitted request holds until its response ends.
#[derive(Debug)]
pub struct Admitted {
    breakers: Arc<Breakers>,
}

/// A request waiting for a connection, one of `max_pending_requests`
/// while it lives.
#[derive(Debug)]
pub struct Pending<'a>(&'a Breakers);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.breakers.requests.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upstream connection's slot of `max_connections` (none held when
/// the limit can't be reached, or for a connection opened past it).
#[derive(Debug, Default)]
pub struct ConnectionSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

/// A retry in flight.
#[derive(Debug)]
pub struct RetrySlot(Arc<Breakers>);

impl Drop for RetrySlot {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Takes one of `limit` from `count`, or nothing.
fn take(count: &AtomicU32, limit: u32) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl Breakers {
    /// Counts at zero against `limits`.
    pub fn new(limits: Limits) -> Self {
        // A semaphore only when the limit can be reached.
        let connections = (limits.max_connections < u32::MAX)
            .then(|| Arc::new(Semaphore::new(limits.max_connections as usize)));
        Breakers {
            limits,
            connections,
            pending: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            cx_overflow: AtomicU64::new(0),
            rq_pending_overflow: AtomicU64::new(0),
            rq_retry_overflow: AtomicU64::new(0),
            rq_retry: AtomicU64::new(0),
            rq_retry_success: AtomicU64::new(0),
            rq_retry_limit_exceeded: AtomicU64::new(0),
            cx_max_duration_reached: AtomicU64::new(0),
        }
    }

    /// Requests in flight now.
    pub fn active_requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests waiting for a connection now.
    pub fn pending_requests(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Admits a request, or refuses it (counted) past `max_requests`.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, Overflow> {
        if !take(&self.requests, self.limits.max_requests) {
            self.rq_pending_overflow.fetch_add(1, Ordering::Relaxed);
            return Err(Overflow::Requests);
        }
        Ok(Admitted {
            breakers: self.clone(),
        })
    }

    /// A place among the requests waiting for a connection, or
    /// [`Overflow::Pending`] (counted) past `max_pending_requests`.
    pub fn pending(&self) -> Result<Pending<'_>, Overflow> {
        if take(&self.pending, self.limits.max_pending_requests) {
            Ok(Pending(self))
        } else {
            self.rq_pending_overflow.fetch_add(1, Ordering::Relaxed);
            Err(Overflow::Pending)
        }
    }

    /// Waits for a connection slot (at once when unlimited). Call it when
    /// [`Breakers::connection`] found none, holding a [`Pending`].
    pub async fn slot(&self) -> ConnectionSlot {
        let Some(slots) = &self.connections else {
            return ConnectionSlot { _permit: None };
        };
        match slots.clone().acquire_owned().await {
            Ok(p) => ConnectionSlot { _permit: Some(p) },
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// A connection slot if one is free; past `max_connections` it
    /// overflows (counted as `upstream_cx_overflow`).
    pub fn connection(&self) -> Result<ConnectionSlot, Overflow> {
        let Some(slots) = &self.connections else {
            return Ok(ConnectionSlot { _permit: None });
        };
        match slots.clone().try_acquire_owned() {
            Ok(p) => Ok(ConnectionSlot { _permit: Some(p) }),
            Err(_) => {
                self.cx_overflow.fetch_add(1, Ordering::Relaxed);
                Err(Overflow::Connections)
            }
        }
    }

    /// A retry slot, or `None` (counted) past `max_retries`.
    pub fn retry(self: &Arc<Self>) -> Option<RetrySlot> {
        if take(&self.retries, self.limits.max_retries) {
            Some(RetrySlot(self.clone()))
        } else {
            self.rq_retry_overflow.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Keeps `old`'s overflow counts (the same cluster in a new config
    /// with other limits).
    pub fn inherit_stats(&self, old: &Breakers) {
        for (a, b) in [
            (&self.cx_overflow, &old.cx_overflow),
            (&self.rq_pending_overflow, &old.rq_pending_overflow),
            (&self.rq_retry_overflow, &old.rq_retry_overflow),
            (&self.rq_retry, &old.rq_retry),
            (&self.rq_retry_success, &old.rq_retry_success),
            (&self.rq_retry_limit_exceeded, &old.rq_retry_limit_exceeded),
            (&self.cx_max_duration_reached, &old.cx_max_duration_reached),
        ] {
            a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: u32, pending: u32, requests: u32, retries: u32) -> Limits {
        Limits {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: requests,
            max_retries: retries,
        }
    }

    #[tokio::test]
    async fn one_connection_one_pending_the_rest_overflow() {
        let b = Arc::new(Breakers::new(limits(1, 1, 100, 3)));
        let first = b.connection().expect("a connection");
        assert_eq!(b.connection().err(), Some(Overflow::Connections));
        // The second waits for the first's slot.
        let pending = b.pending().expect("a place in the queue");
        assert_eq!(b.pending_requests(), 1);
        // A third has neither a connection nor a place in the queue.
        assert_eq!(b.pending().err(), Some(Overflow::Pending));
        assert_eq!(b.rq_pending_overflow.load(Ordering::Relaxed), 1);
        assert_eq!(b.cx_overflow.load(Ordering::Relaxed), 1);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.slot().await });
        drop(first);
        let second = waiter.await.expect("joins");
        assert!(second._permit.is_some(), "the freed slot");
        drop(pending);
        assert_eq!(b.pending_requests(), 0);
        assert_eq!(b.connection().err(), Some(Overflow::Connections));
        drop(second);
        assert!(b.connection().is_ok());
    }

    #[tokio::test]
    async fn requests_and_retries_are_capped() {
        let b = Arc::new(Breakers::new(limits(u32::MAX, 0, 2, 1)));
        let a = b.admit().expect("one");
        let _c = b.admit().expect("two");
        assert_eq!(b.admit().err(), Some(Overflow::Requests));
        assert_eq!(b.active_requests(), 2);
        drop(a);
        assert!(b.admit().is_ok());
        // Unlimited connections: a slot at once, nothing held.
        assert!(b.slot().await._permit.is_none());
        let tcp = Breakers::new(limits(1, 0, 1, 0));
        let slot = tcp.connection().expect("one");
        assert_eq!(tcp.connection().err(), Some(Overflow::Connections));
        assert_eq!(tcp.pending().err(), Some(Overflow::Pending));
        drop(slot);
        assert!(tcp.connection().is_ok());
        assert_eq!(tcp.cx_overflow.load(Ordering::Relaxed), 1);
        let r = b.retry().expect("one retry");
        assert!(b.retry().is_none());
        assert_eq!(b.rq_retry_overflow.load(Ordering::Relaxed), 1);
        drop(r);
        assert!(b.retry().is_some());
    }

    #[test]
    fn limits_come_from_the_default_priority() {
        use weft_xds::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
        use weft_xds::pb::google::protobuf::UInt32Value;
        let v = |value| Some(UInt32Value { value });
        let c = CircuitBreakers {
            thresholds: vec![
                Thresholds {
                    priority: RoutingPriority::High as i32,
                    max_connections: v(9),
                    ..Default::default()
                },
                Thresholds {
                    priority: RoutingPriority::Default as i32,
                    max_connections: v(1),
                    max_pending_requests: v(2),
                    max_retries: v(u32::MAX),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(Limits::from(&c), limits(1, 2, 1024, u32::MAX));
        assert_eq!(Limits::from(&CircuitBreakers::default()), Limits::default());
    }
}
