//! One endpoint's connection count and the requests waiting for one of
//! its connections, shared by the HTTP/1.1 and HTTP/2 pools: Envoy's
//! `ConnPoolImplBase` rules for `max_connections`.
//!
//! Every connection (idle, busy, opening or draining) holds one of the
//! cluster's `max_connections` slots while it lives ([`Held`]). A request
//! finding no connection to use takes a free slot and opens one; past the
//! limit it counts `upstream_cx_overflow` and, if its endpoint has no
//! connection at all, opens one anyway (so no request waits on an
//! endpoint that has no way to serve it) — else it waits as one of
//! `max_pending_requests` ([`wait`]) until one of the endpoint's
//! connections can take it, a slot frees, the endpoint's last connection
//! ends, or the route's deadline passes. Idle connections of other
//! endpoints are not closed to make room (nor are they in Envoy).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Target;
use crate::breaker::{Breakers, ConnectionSlot};
use crate::errors::ProxyError;

/// One endpoint's connections, counted, and who waits for them.
#[derive(Debug, Default)]
pub(super) struct Live {
    /// Connections open (or opening, or draining).
    open: AtomicUsize,
    /// Requests waiting for a connection of this endpoint.
    waiting: AtomicUsize,
    /// Told when a connection ends, or can take a request again.
    changed: Notify,
}

impl Live {
    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Wakes the requests waiting, if there are any (one atomic load
    /// otherwise: this runs each time a connection is given back).
    pub(super) fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }
}

/// What a connection holds while it lives: its `max_connections` slot
/// (none when unlimited or opened past the limit) and its place in its
/// endpoint's count, with when it was opened and the breakers its
/// `upstream_cx_max_duration_reached` is counted in. Dropping it frees
/// the slot and the place and wakes the waiters.
#[derive(Debug)]
pub(super) struct Held {
    // The slot goes first: a waiter woken by the count takes it rather
    // than one past the limit.
    slot: Option<ConnectionSlot>,
    live: Arc<Live>,
    born: Instant,
    breakers: Arc<Breakers>,
}

impl Held {
    /// Counts one more connection of `target`'s endpoint (`live`),
    /// holding `slot`.
    pub(super) fn new(target: &Target<'_>, live: &Arc<Live>, slot: ConnectionSlot) -> Self {
        live.open.fetch_add(1, Ordering::SeqCst);
        Held {
            slot: Some(slot),
            live: live.clone(),
            born: Instant::now(),
            breakers: target.breakers.clone(),
        }
    }

    /// When the connection was opened (its slot taken, just before it
    /// is dialled).
    pub(super) fn born(&self) -> Instant {
        self.born
    }

    /// The breakers of the cluster the connection was opened for.
    pub(super) fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// Whether the connection has lived `max` (`None`: no limit); counts
    /// `upstream_cx_max_duration_reached` when it has. Ask once per
    /// connection that is then closed or drained for it.
    pub(super) fn reached(&self, max: Option<Duration>) -> bool {
        let past = max.is_some_and(|m| self.born.elapsed() >= m);
        if past {
            self.breakers
                .cx_max_duration_reached
                .fetch_add(1, Ordering::Relaxed);
        }
        past
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.slot.take());
        self.live.open.fetch_sub(1, Ordering::SeqCst);
        self.live.wake();
    }
}

/// How a request gets a connection when none of its endpoint's could
/// take it right away.
#[derive(Debug)]
pub(super) enum Got<T> {
    /// One of the endpoint's connections (what `take` returned).
    Reused(T),
    /// A new connection is to be opened, holding this.
    Open(Held),
}

/// A slot to open a connection with, or a wait for one: `take` is
/// asked for one of the endpoint's connections each time something
/// changes. Past `max_pending_requests`: [`ProxyError::Overflow`];
/// past the target's deadline: [`ProxyError::Timeout`].
pub(super) async fn connection<T>(
    target: &Target<'_>,
    live: &Arc<Live>,
    take: impl FnMut() -> Option<T>,
) -> Result<Got<T>, ProxyError> {
    match now(target, live) {
        Some(held) => Ok(Got::Open(held)),
        None => wait(target, live, take).await,
    }
}

/// A free slot for a new connection, or one past the limit when the
/// endpoint has no connection; `None` (`upstream_cx_overflow` counted)
/// when the request has to [`wait`].
pub(super) fn now(target: &Target<'_>, live: &Arc<Live>) -> Option<Held> {
    match target.breakers.connection() {
        Ok(slot) => Some(Held::new(target, live, slot)),
        Err(_) if live.open() == 0 => Some(Held::new(target, live, ConnectionSlot::default())),
        Err(_) => None,
    }
}

/// Waits, as a pending request, for `take` to find one of the
/// endpoint's connections able to take the request, or for a slot (or
/// the endpoint's last connection to end: then one past the limit).
pub(super) async fn wait<T>(
    target: &Target<'_>,
    live: &Arc<Live>,
    mut take: impl FnMut() -> Option<T>,
) -> Result<Got<T>, ProxyError> {
    let breakers = target.breakers;
    as_pending(target, async {
        let _waiting = Waiting::new(live);
        loop {
            let changed = live.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(t) = take() {
                return Got::Reused(t);
            }
            if live.open() == 0 {
                return Got::Open(Held::new(target, live, ConnectionSlot::default()));
            }
            tokio::select! {
                // A slot first: when one frees as the endpoint's last
                // connection ends (both at once), it is taken, not left
                // for the next request beside a connection past the limit.
                biased;
                slot = breakers.slot() => {
                    return match take() {
                        Some(t) => Got::Reused(t),
                        None => Got::Open(Held::new(target, live, slot)),
                    };
                }
                () = changed => {}
            }
        }
    })
    .await
}

/// Runs `wait` as one of the cluster's `max_pending_requests` — past
/// the limit [`ProxyError::Overflow`] at once (503 `UO`) — until the
/// target's deadline at most (then [`ProxyError::Timeout`]): for a
/// request that found no connection able to take it and waits for one
/// (a slot, room on a connection, or the endpoint's next connection
/// being opened, HTTP/2).
pub(super) async fn as_pending<F: std::future::Future>(
    target: &Target<'_>,
    wait: F,
) -> Result<F::Output, ProxyError> {
    let overflow = |why| ProxyError::overflow(target.cluster, why);
    let _pending = target.breakers.pending().map_err(overflow)?;
    match target.deadline {
        Some(d) => tokio::time::timeout_at(d.into(), wait)
            .await
            .map_err(|_| overflow(crate::breaker::Overflow::Timeout)),
        None => Ok(wait.await),
    }
}

/// A request counted as waiting on an endpoint while it lives.
struct Waiting<'a>(&'a Live);

impl<'a> Waiting<'a> {
    fn new(live: &'a Live) -> Self {
        live.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(live)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
