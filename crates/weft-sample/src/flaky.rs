//! Misbehaving on purpose, for tests of retries and timeouts: the first
//! `fail_first` requests (HTTP and gRPC counted apart) fail — HTTP 503,
//! gRPC `UNAVAILABLE` — and the `stall_first` after them answer only
//! after `stall`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the sample misbehaves; the default is never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flaky {
    /// The first this many requests fail.
    pub fail_first: u64,
    /// The next this many answer after `stall`.
    pub stall_first: u64,
    /// How long a stalled request waits.
    pub stall: Duration,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Fail it.
    Fail,
    /// Wait this long, then answer.
    Stall(Duration),
    /// Answer.
    Serve,
}

/// Counts requests against a [`Flaky`].
#[derive(Debug, Default)]
pub(crate) struct Counter {
    flaky: Flaky,
    seen: AtomicU64,
}

impl Counter {
    pub(crate) fn new(flaky: Flaky) -> Self {
        Counter {
            flaky,
            seen: AtomicU64::new(0),
        }
    }

    /// The next request's turn.
    pub(crate) fn next(&self) -> Turn {
        let f = &self.flaky;
        if f.fail_first == 0 && f.stall_first == 0 {
            return Turn::Serve;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n < f.fail_first {
            Turn::Fail
        } else if n < f.fail_first.saturating_add(f.stall_first) {
            Turn::Stall(f.stall)
        } else {
            Turn::Serve
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_then_stalls_then_serves() {
        let c = Counter::new(Flaky {
            fail_first: 2,
            stall_first: 1,
            stall: Duration::from_millis(5),
        });
        let turns: Vec<Turn> = (0..4).map(|_| c.next()).collect();
        assert_eq!(
            turns,
            [
                Turn::Fail,
                Turn::Fail,
                Turn::Stall(Duration::from_millis(5)),
                Turn::Serve
            ]
        );
        assert_eq!(Counter::new(Flaky::default()).next(), Turn::Serve);
    }
}
