//! Outlier detection, as Envoy's: passive health checking that takes
//! failing endpoints out of load balancing for a while.
//!
//! - Each endpoint keeps its own state in atomics ([`HostOutlier`]): the
//!   request path records every attempt's outcome there
//!   ([`HostOutlier::record`]) — consecutive 5xx, consecutive gateway
//!   failures (502/503/504), consecutive local-origin failures (connect
//!   failures, resets, timeouts) when `split_external_local_origin_errors`
//!   is set, else those count as 503/504 — and the interval's request and
//!   failure counts.
//! - A counter reaching its threshold marks the endpoint as wanting
//!   ejection, and the request that reached it ejects it there and then,
//!   before it answers ([`Detector::eject_pending`], one decision at a time
//!   per cluster), so the next request is already balanced without it;
//!   subject to the `enforcing_*` percentage
//!   and `max_ejection_percent` (counted over the whole cluster; the first
//!   ejection is always allowed, as Envoy's).
//! - Every `interval` the task sweeps ([`Detector::sweep`]): an endpoint
//!   ejected for `base_ejection_time × ejections` (at most
//!   `max_ejection_time`) comes back, a healthy one's multiplier goes down
//!   by one, and success-rate and failure-percentage ejection run over the
//!   interval's counts.
//! - An ejected endpoint counts as unhealthy for the balancer (priority
//!   load, locality weights, panic threshold), which the snapshot rebuilds
//!   when ejections change.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;

mod config;
pub use config::OutlierConfig;

/// What one attempt to an endpoint came to, for outlier detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// Connecting failed (local origin).
    ConnectFailed,
    /// The connection closed or reset before an answer (local origin).
    Reset,
    /// No answer in time (local origin).
    Timeout,
}

impl Outcome {
    /// The outcome of a failed attempt, if it says anything of the
    /// endpoint (a local reply of the proxy's own doesn't).
    pub fn of_error(e: &crate::errors::ProxyError) -> Option<Outcome> {
        use crate::errors::ProxyError as E;
        match e {
            E::ConnectFailure { .. } => Some(Outcome::ConnectFailed),
            E::Terminated { .. } | E::Protocol { .. } => Some(Outcome::Reset),
            E::Timeout(_) => Some(Outcome::Timeout),
            _ => None,
        }
    }

    /// The outcome of an attempt's result.
    pub fn of<B>(result: &Result<http::Response<B>, crate::errors::ProxyError>) -> Option<Outcome> {
        match result {
            Ok(r) => Some(Outcome::Status(r.status().as_u16())),
            Err(e) => Outcome::of_error(e),
        }
    }
}

/// Why an endpoint is (to be) ejected; Envoy's stat names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `consecutive_5xx`.
    Consecutive5xx,
    /// `consecutive_gateway_failure`.
    ConsecutiveGatewayFailure,
    /// `consecutive_local_origin_failure`.
    ConsecutiveLocalOriginFailure,
    /// `success_rate`.
    SuccessRate,
    /// `failure_percentage`.
    FailurePercentage,
}

impl Reason {
    /// Every reason, in stats order.
    pub const ALL: [Reason; 5] = [
        Reason::Consecutive5xx,
        Reason::ConsecutiveGatewayFailure,
        Reason::ConsecutiveLocalOriginFailure,
        Reason::SuccessRate,
        Reason::FailurePercentage,
    ];

    /// Envoy's name in `ejections_enforced_<name>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive_5xx",
            Reason::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Reason::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Reason::SuccessRate => "success_rate",
            Reason::FailurePercentage => "failure_percentage",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn enforcing(self, c: &OutlierConfig) -> u32 {
        match self {
            Reason::Consecutive5xx => c.enforcing_consecutive_5xx,
            Reason::ConsecutiveGatewayFailure => c.enforcing_consecutive_gateway_failure,
            Reason::ConsecutiveLocalOriginFailure => c.enforcing_consecutive_local_origin_failure,
            Reason::SuccessRate => c.enforcing_success_rate,
            Reason::FailurePercentage => c.enforcing_failure_percentage,
        }
    }
}

/// One endpoint's outlier state: atomics written by the request path and
/// the cluster's detector task.
#[derive(Debug, Default)]
pub struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// Reasons the request path found, waiting for the detector.
    pending: AtomicU8,
    ejected: AtomicBool,
    /// When it was last ejected: read and written by the detector task
    /// only (and a new snapshot taking the state over), never by requests.
    ejected_at: Mutex<Option<Instant>>,
    /// Ejections so far, less one per healthy interval (the time multiplier).
    multiplier: AtomicU32,
    /// This interval's answers and failed answers from the upstream
    /// (with local-origin failures unless split).
    external: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    total: AtomicU32,
    failed: AtomicU32,
}

impl Counts {
    fn add(&self, failed: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (total, failed), reset.
    fn take(&self) -> (u32, u32) {
        (
            self.total.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        )
    }
}

impl HostOutlier {
    /// Whether it is ejected now.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// How many times it was ejected (less the healthy intervals since).
    pub fn multiplier(&self) -> u32 {
        self.multiplier.load(Ordering::Relaxed)
    }

    /// Takes over `old`'s state (the same endpoint in a new config).
    pub fn inherit(&self, old: &HostOutlier) {
        let copy =
            |a: &AtomicU32, b: &AtomicU32| a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        copy(&self.consecutive_5xx, &old.consecutive_5xx);
        copy(&self.consecutive_gateway, &old.consecutive_gateway);
        copy(&self.consecutive_local, &old.consecutive_local);
        copy(&self.multiplier, &old.multiplier);
        self.pending
            .store(old.pending.load(Ordering::Relaxed), Ordering::Relaxed);
        *lock(&self.ejected_at) = *lock(&old.ejected_at);
        self.ejected.store(old.is_ejected(), Ordering::Relaxed);
    }

    /// Records an attempt's outcome; true when a threshold was reached
    /// (the detector should look now).
    pub fn record(&self, c: &OutlierConfig, outcome: Outcome) -> bool {
        let status = match outcome {
            Outcome::Status(s) => {
                if c.split_external_local_origin_errors {
                    // An answer means the connection worked.
                    self.consecutive_local.store(0, Ordering::Relaxed);
                }
                s
            }
            local => {
                if c.split_external_local_origin_errors {
                    return self.bump(
                        &self.consecutive_local,
                        c.consecutive_local_origin_failure,
                        Reason::ConsecutiveLocalOriginFailure,
                    );
                }
                // Unsplit: as the status Envoy would answer with.
                if local == Outcome::Timeout { 504 } else { 503 }
            }
        };
        let failed = (500..600).contains(&status);
        self.external.add(failed);
        if !failed {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return false;
        }
        let mut wake = false;
        if matches!(status, 502..=504) {
            wake |= self.bump(
                &self.consecutive_gateway,
                c.consecutive_gateway_failure,
                Reason::ConsecutiveGatewayFailure,
            );
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        wake |= self.bump(
            &self.consecutive_5xx,
            c.consecutive_5xx,
            Reason::Consecutive5xx,
        );
        wake
    }

    /// Counts one more; at `threshold` starts over and marks `reason`.
    fn bump(&self, counter: &AtomicU32, threshold: u32, reason: Reason) -> bool {
        if threshold == 0 {
            return false;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if n < threshold {
            return false;
        }
        counter.store(0, Ordering::Relaxed);
        if self.is_ejected() {
            return false;
        }
        self.pending.fetch_or(reason.bit(), Ordering::Relaxed);
        true
    }

    fn eject(&self, now: Instant) {
        self.multiplier.fetch_add(1, Ordering::Relaxed);
        *lock(&self.ejected_at) = Some(now);
        self.ejected.store(true, Ordering::Relaxed);
    }

    /// Not ejected, no failures counted (outlier detection turned off).
    pub fn clear(&self) {
        self.uneject();
        self.multiplier.store(0, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
    }

    fn uneject(&self) {
        for c in [
            &self.consecutive_5xx,
            &self.consecutive_gateway,
            &self.consecutive_local,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.ejected.store(false, Ordering::Relaxed);
    }
}

/// The lock's value, whether or not a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cluster's outlier counters (Envoy's `outlier_detection.*` stats),
/// kept across config snapshots.
#[derive(Debug, Default)]
pub struct OutlierStats {
    /// Ejections carried out.
    pub enforced_total: AtomicU64,
    /// Ejections refused by `max_ejection_percent`.
    pub overflow: AtomicU64,
    /// Ejections carried out, by [`Reason`].
    pub enforced: [AtomicU64; Reason::ALL.len()],
    /// Outliers found (ejected or not), by [`Reason`].
    pub detected: [AtomicU64; Reason::ALL.len()],
}

/// The decisions of one cluster's outlier detection over its endpoints.
#[derive(Debug)]
pub struct Detector<'a> {
    /// The settings.
    pub config: &'a OutlierConfig,
    /// Every endpoint of the cluster.
    pub hosts: &'a [std::sync::Arc<Endpoint>],
    /// Where to count.
    pub stats: &'a OutlierStats,
}

impl Detector<'_> {
    /// Endpoints ejected now.
    pub fn ejected(&self) -> usize {
        self.hosts.iter().filter(|h| h.outlier.is_ejected()).count()
    }

    /// Ejects the endpoints the request path marked; true if any was.
    pub fn eject_pending(&self, now: Instant) -> bool {
        let mut changed = false;
        for h in self.hosts {
            let bits = h.outlier.pending.swap(0, Ordering::Relaxed);
            for reason in Reason::ALL {
                if bits & reason.bit() != 0 {
                    changed |= self.try_eject(h, reason, now);
                }
            }
        }
        changed
    }

    /// Ejects `host` for `reason` if enforcement and the cap allow.
    fn try_eject(&self, host: &Endpoint, reason: Reason, now: Instant) -> bool {
        if host.outlier.is_ejected() {
            return false;
        }
        self.stats.detected[reason as usize].fetch_add(1, Ordering::Relaxed);
        let enforcing = reason.enforcing(self.config);
        if enforcing == 0 || fastrand::u32(..100) >= enforcing {
            return false;
        }
        let active = self.ejected();
        let total = self.hosts.len().max(1);
        let under_cap = (100 * active / total) < self.config.max_ejection_percent as usize;
        if !(under_cap || (self.config.always_eject_one_host && active == 0)) {
            self.stats.overflow.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "weft::outlier", endpoint = %host.address, reason = reason.as_str(), "not ejected: max_ejection_percent reached");
            return false;
        }
        host.outlier.eject(now);
        self.stats.enforced_total.fetch_add(1, Ordering::Relaxed);
        self.stats.enforced[reason as usize].fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "weft::outlier", endpoint = %host.address, reason = reason.as_str(), ejections = host.outlier.multiplier(), "endpoint ejected");
        true
    }

    /// How long `host` stays out this time.
    fn ejection_time(&self, host: &HostOutlier) -> Duration {
        self.config
            .base_ejection_time
            .saturating_mul(host.multiplier().max(1))
            .min(self.config.max_ejection_time)
    }

    /// The interval's work: un-ejects endpoints whose time is up, lowers
    /// healthy ones' multipliers, then runs success-rate and
    /// failure-percentage ejection over the interval's counts (and any
    /// marked endpoint). True if any endpoint's ejection changed.
    pub fn sweep(&self, now: Instant) -> bool {
        let mut changed = false;
        for h in self.hosts {
            let o = &h.outlier;
            if o.is_ejected() {
                let since = lock(&o.ejected_at).unwrap_or(now);
                if now >= since + self.ejection_time(o) {
                    o.uneject();
                    changed = true;
                    tracing::info!(target: "weft::outlier", endpoint = %h.address, "endpoint returned to load balancing");
                }
            } else {
                let _ = o
                    .multiplier
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| m.checked_sub(1));
            }
        }
        let external: Vec<(u32, u32)> = self
            .hosts
            .iter()
            .map(|h| h.outlier.external.take())
            .collect();
        changed |= self.by_rates(&external, now);
        changed | self.eject_pending(now)
    }

    /// Success-rate and failure-percentage ejection over `(total,
    /// failed)` counts, one per host.
    fn by_rates(&self, counts: &[(u32, u32)], now: Instant) -> bool {
        let c = self.config;
        let mut changed = false;
        let rated = |volume: u32| -> Vec<(usize, f64)> {
            counts
                .iter()
                .enumerate()
                .filter(|(i, (total, _))| {
                    *total > 0 && *total >= volume && !self.hosts[*i].outlier.is_ejected()
                })
                .map(|(i, (total, failed))| {
                    (i, 100.0 * f64::from(total - failed) / f64::from(*total))
                })
                .collect()
        };
        let ok = rated(c.success_rate_request_volume);
        if !ok.is_empty() && ok.len() >= c.success_rate_minimum_hosts as usize {
            let n = ok.len() as f64;
            let mean = ok.iter().map(|(_, r)| r).sum::<f64>() / n;
            let var = ok.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
            let limit = mean - f64::from(c.success_rate_stdev_factor) / 1000.0 * var.sqrt();
            for (i, rate) in ok {
                if rate < limit {
                    changed |= self.try_eject(&self.hosts[i], Reason::SuccessRate, now);
                }
            }
        }
        let ok = rated(c.failure_percentage_request_volume);
        if !ok.is_empty() && ok.len() >= c.failure_percentage_minimum_hosts as usize {
            for (i, rate) in ok {
                if 100.0 - rate >= f64::from(c.failure_percentage_threshold) {
                    changed |= self.try_eject(&self.hosts[i], Reason::FailurePercentage, now);
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests;
