//! The timer of one downstream HTTP/1 connection.
//!
//! hyper arms the header-read timeout ([`HttpLimits`]'s
//! `request_headers_timeout`) for every request with
//! [`Timer::sleep_until`] and drops it once the head is read. With
//! hyper-util's `TokioTimer` that is a new boxed tokio `Sleep` per
//! request, entered into tokio's timer wheel when first polled and
//! removed when dropped. [`ConnTimer`] keeps the connection's tokio
//! `Sleep` instead: each timeout borrows it and gives it back when
//! dropped, and arming it again only moves its deadline later, which
//! tokio does without touching the wheel (the entry is moved when its
//! old deadline comes up).
//!
//! [`HttpLimits`]: super::HttpLimits

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hyper::rt::{Sleep, Timer};

/// A tokio `Sleep`, boxed so it stays put while it moves between lenders.
type Kept = Pin<Box<tokio::time::Sleep>>;

/// hyper's timer for one connection: reuses one tokio `Sleep` for the
/// timeouts it arms one after another.
#[derive(Clone, Debug)]
pub struct ConnTimer {
    /// The `Sleep` while no timeout has it (at most one is kept).
    spare: Arc<ArrayQueue<Kept>>,
}

impl ConnTimer {
    /// A timer with nothing kept yet.
    pub fn new() -> Self {
        ConnTimer {
            spare: Arc::new(ArrayQueue::new(1)),
        }
    }
}

impl Default for ConnTimer {
    fn default() -> Self {
        ConnTimer::new()
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.lend(tokio::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.lend(deadline.into())
    }

    /// tokio's clock, as hyper-util's `TokioTimer` (so a paused test clock
    /// applies to hyper's deadlines too).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

impl ConnTimer {
    /// A timeout at `deadline` on the kept `Sleep`, or a new one.
    fn lend(&self, deadline: tokio::time::Instant) -> Pin<Box<dyn Sleep>> {
        let sleep = match self.spare.pop() {
            Some(mut kept) => {
                kept.as_mut().reset(deadline);
                kept
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Box::pin(Lent {
            sleep: Some(sleep),
            home: self.spare.clone(),
        })
    }
}

/// One timeout: the connection's `Sleep`, returned when dropped.
#[derive(Debug)]
struct Lent {
    sleep: Option<Kept>,
    home: Arc<ArrayQueue<Kept>>,
}

impl Future for Lent {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Sleep for Lent {}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(s) = self.sleep.take() {
            // Full only if two timeouts were out at once: drop this one.
            let _ = self.home.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once(s: Pin<&mut dyn Sleep>) -> Poll<()> {
        s.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn each_timeout_fires_at_its_own_deadline_on_the_kept_sleep() {
        let t = ConnTimer::new();
        let start = tokio::time::Instant::now();
        t.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // Dropped before its deadline: it goes back, and the next one
        // (re-armed from it) keeps its own deadline.
        let early = t.sleep(Duration::from_secs(5));
        drop(early);
        assert_eq!(t.spare.len(), 1);
        let start = tokio::time::Instant::now();
        t.sleep(Duration::from_secs(3)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        t.sleep_until((start + Duration::from_secs(7)).into_std())
            .await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_timeout_is_not_ready_before_its_deadline() {
        let t = ConnTimer::new();
        drop(t.sleep(Duration::from_secs(1)));
        let mut s = t.sleep(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(poll_once(s.as_mut()).is_pending());
        // Two out at once: each has its own sleep.
        let other = t.sleep(Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(poll_once(s.as_mut()).is_ready());
        let start = tokio::time::Instant::now();
        other.await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
