//! A global bound on concurrent pushes (Istio's `PILOT_PUSH_THROTTLE`,
//! default 100).
//!
//! When a generation is published every stream wants to push at once;
//! each push translates (shared, mostly cached), then builds and sends
//! responses of up to a few MiB. A stream takes a permit before it starts
//! a push, and the permit goes with the push's responses until the last
//! of their bytes has been handed to HTTP/2 (or the stream ends), so at
//! most `limit` pushes have response buffers in flight. Permits are handed
//! out first come, first served: a waiting stream is never overtaken by
//! streams that asked after it. A push holds its permit at most
//! [`MAX_HOLD`]: a proxy that stops reading (its queue or its HTTP/2
//! window full) then slows only itself, not every push behind it. A
//! proxy's first responses (its initial subscriptions) are not throttled,
//! as in Istio. One task per throttle takes back permits held too long:
//! they all hold for the same `max_hold`, so their leases end in the
//! order they began, and a queue replaces a timer per push.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Istio's default for `PILOT_PUSH_THROTTLE`.
pub const DEFAULT_PUSH_THROTTLE: usize = 100;

/// The longest a push holds its permit.
pub const MAX_HOLD: Duration = Duration::from_secs(5);

/// The permits for concurrent pushes.
#[derive(Debug)]
pub struct Throttle {
    semaphore: Arc<Semaphore>,
    limit: usize,
    max_hold: Duration,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    /// Each permit's lease, by when it ends (the order they began).
    leases: Mutex<VecDeque<(Instant, Weak<Permit>)>>,
    /// Wakes the reaper: a first lease in an empty queue, or the end.
    wake: Arc<Notify>,
    reaping: AtomicBool,
}

impl Throttle {
    /// At most `limit` pushes at a time (at least 1).
    pub fn new(limit: usize) -> Throttle {
        Throttle::with_max_hold(limit, MAX_HOLD)
    }

    /// At most `limit` pushes at a time, each holding its permit at most
    /// `max_hold`.
    pub fn with_max_hold(limit: usize, max_hold: Duration) -> Throttle {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Throttle {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            max_hold,
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            leases: Mutex::new(VecDeque::new()),
            wake: Arc::new(Notify::new()),
            reaping: AtomicBool::new(false),
        }
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Pushes holding a permit now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The most pushes that held a permit at once.
    pub fn most(&self) -> usize {
        self.most.load(Ordering::Relaxed)
    }

    /// Waits for a permit (in order of asking); it is given back when the
    /// last clone drops, or after `max_hold`.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Arc<Permit> {
        // Never closed; if it were, push unthrottled rather than stall.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.most.fetch_max(now, Ordering::Relaxed);
        let permit = Arc::new(Permit {
            held: Mutex::new(Some(permit)),
            throttle: self.clone(),
        });
        let first = {
            let mut leases = lock(&self.leases);
            leases.push_back((Instant::now() + self.max_hold, Arc::downgrade(&permit)));
            leases.len() == 1
        };
        if !self.reaping.swap(true, Ordering::AcqRel) {
            tokio::spawn(reap(Arc::downgrade(self), self.wake.clone()));
        }
        if first {
            self.wake.notify_one();
        }
        permit
    }

    /// Leases over by `now` taken off the queue (with those whose permit
    /// is gone already); when the next live one ends.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut leases = lock(&self.leases);
        while let Some((end, lease)) = leases.front() {
            match lease.upgrade() {
                None => {}
                Some(permit) if *end <= now => permit.release(),
                Some(_) => return Some(*end),
            }
            leases.pop_front();
        }
        None
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        // The reaper finds the throttle gone and ends.
        self.wake.notify_one();
    }
}

/// Gives back the permits of `throttle` held past their lease; ends with it.
async fn reap(throttle: Weak<Throttle>, wake: Arc<Notify>) {
    loop {
        let next = match throttle.upgrade() {
            Some(t) => t.expire(Instant::now()),
            None => return,
        };
        match next {
            Some(end) => tokio::time::sleep_until(end).await,
            None => wake.notified().await,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(DEFAULT_PUSH_THROTTLE)
    }
}

/// One push's permit; released when the last clone drops, or earlier by
/// the throttle's `max_hold`.
#[derive(Debug)]
pub struct Permit {
    /// `None` once released (the inner `None`: the semaphore was closed).
    held: Mutex<Option<Option<OwnedSemaphorePermit>>>,
    throttle: Arc<Throttle>,
}

impl Permit {
    fn release(&self) {
        let taken = lock(&self.held).take();
        if taken.is_some() {
            self.throttle.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_at_once_and_everyone_gets_one() {
        let throttle = Arc::new(Throttle::new(3));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let t = throttle.clone();
            tasks.push(tokio::spawn(async move {
                let permit = t.acquire().await;
                assert!(t.in_flight() <= 3);
                tokio::task::yield_now().await;
                drop(permit);
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("every task got a permit")
                .expect("task");
        }
        assert!(throttle.most() <= 3, "{}", throttle.most());
        assert!(throttle.most() >= 1);
        assert_eq!(throttle.in_flight(), 0);
        assert_eq!(Throttle::new(0).limit(), 1);
    }

    #[tokio::test]
    async fn waiters_are_served_in_order() {
        let throttle = Arc::new(Throttle::new(1));
        let first = throttle.acquire().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..5 {
            let (t, tx) = (throttle.clone(), tx.clone());
            tokio::spawn(async move {
                let p = t.acquire().await;
                let _ = tx.send(i);
                tokio::task::yield_now().await;
                drop(p);
            });
            // Let it queue before the next one asks.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        // A permit held by a clone keeps the others waiting.
        let clone = first.clone();
        drop(first);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(rx.try_recv().is_err(), "released only with the last clone");
        drop(clone);
        let mut order = Vec::new();
        for _ in 0..5 {
            let i = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("served")
                .expect("sent");
            order.push(i);
        }
        assert_eq!(order, [0, 1, 2, 3, 4], "first come, first served");
    }

    #[tokio::test]
    async fn leases_end_in_order_and_dropped_permits_leave_the_queue() {
        let hold = Duration::from_millis(300);
        let throttle = Arc::new(Throttle::with_max_hold(3, hold));
        let until = |n: usize| {
            let t = throttle.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    while t.in_flight() > n {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await
                .expect("permits given back");
            }
        };
        let start = Instant::now();
        let a = throttle.acquire().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let b = throttle.acquire().await;
        let c = throttle.acquire().await;
        drop(c);
        assert_eq!(throttle.in_flight(), 2);
        // a's lease ends first, b's 150 ms later.
        until(1).await;
        assert!(start.elapsed() >= hold, "a held its whole lease");
        assert_eq!(throttle.in_flight(), 1, "b still held");
        until(0).await;
        assert!(start.elapsed() >= hold + Duration::from_millis(150));
        assert!(lock(&throttle.leases).is_empty());
        // The reaper waits for the next lease and serves it.
        let d = throttle.acquire().await;
        until(0).await;
        drop((a, b, d));
        // The throttle gone, its reaper ends.
        let wake = throttle.wake.clone();
        drop(throttle);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(Arc::strong_count(&wake), 1, "the reaper task ended");
    }

    #[tokio::test]
    async fn a_permit_held_too_long_is_given_back() {
        let throttle = Arc::new(Throttle::with_max_hold(1, Duration::from_millis(50)));
        let stuck = throttle.acquire().await;
        let next = tokio::time::timeout(Duration::from_secs(5), throttle.acquire())
            .await
            .expect("the stuck push's permit came back");
        assert_eq!(throttle.in_flight(), 1, "only the new one counts");
        drop((stuck, next));
        assert_eq!(throttle.in_flight(), 0);
    }
}
