//! Load balancing: which endpoint of a cluster gets a request.
//!
//! The endpoints handed in are already the serving set (healthy, lowest
//! priority with any; see [`crate::endpoint::LoadAssignment::serving`]),
//! computed once per config, not per request. Policies: weighted round
//! robin, least request with two random choices (Envoy's default
//! `choice_count` 2, comparing requests in flight per unit of weight),
//! weighted random. Ring hash and Maglev balance by least request until
//! consistent hashing lands.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::LbPolicy;
use crate::endpoint::Endpoint;

/// A cluster's balancer; one per cluster per config snapshot.
#[derive(Debug)]
pub struct Balancer {
    policy: LbPolicy,
    next: AtomicUsize,
    /// Sum of the endpoints' weights, and whether they are all equal.
    total_weight: u64,
    uniform: bool,
}

impl Balancer {
    /// A balancer over `endpoints` (the serving set it will be asked about).
    pub fn new(policy: LbPolicy, endpoints: &[Arc<Endpoint>]) -> Self {
        let total_weight = endpoints.iter().map(|e| u64::from(e.weight)).sum();
        let uniform = endpoints.windows(2).all(|w| w[0].weight == w[1].weight);
        Balancer {
            policy,
            // Start round robin at a random place, as Envoy does, so
            // proxies started together don't all hit the same endpoint.
            next: AtomicUsize::new(fastrand::usize(..=endpoints.len())),
            total_weight,
            uniform,
        }
    }

    /// Picks an endpoint; `None` if there is none.
    pub fn pick<'a>(&self, endpoints: &'a [Arc<Endpoint>]) -> Option<&'a Arc<Endpoint>> {
        match endpoints {
            [] => None,
            [only] => Some(only),
            _ => Some(match self.policy {
                LbPolicy::RoundRobin => self.round_robin(endpoints),
                LbPolicy::Random => self.random(endpoints),
                LbPolicy::LeastRequest
                | LbPolicy::RingHash
                | LbPolicy::Maglev
                | LbPolicy::ClusterProvided => least_request(endpoints),
            }),
        }
    }

    fn round_robin<'a>(&self, endpoints: &'a [Arc<Endpoint>]) -> &'a Arc<Endpoint> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if self.uniform {
            return &endpoints[n % endpoints.len()];
        }
        let slot = (n as u64) % self.total_weight.max(1);
        by_weight(endpoints, slot)
    }

    fn random<'a>(&self, endpoints: &'a [Arc<Endpoint>]) -> &'a Arc<Endpoint> {
        if self.uniform {
            return &endpoints[fastrand::usize(..endpoints.len())];
        }
        by_weight(endpoints, fastrand::u64(..self.total_weight.max(1)))
    }
}

/// The endpoint whose cumulative weight range holds `slot`.
fn by_weight(endpoints: &[Arc<Endpoint>], mut slot: u64) -> &Arc<Endpoint> {
    for e in endpoints {
        let w = u64::from(e.weight);
        if slot < w {
            return e;
        }
        slot -= w;
    }
    &endpoints[endpoints.len() - 1]
}

/// Power of two choices: of two distinct random endpoints, the one with
/// fewer requests in flight per unit of weight.
fn least_request(endpoints: &[Arc<Endpoint>]) -> &Arc<Endpoint> {
    let n = endpoints.len();
    let a = fastrand::usize(..n);
    let b = (a + 1 + fastrand::usize(..n - 1)) % n;
    let (ea, eb) = (&endpoints[a], &endpoints[b]);
    let load = |e: &Endpoint, other: &Endpoint| {
        u64::from(e.active_requests()) * u64::from(other.weight.max(1))
    };
    if load(ea, eb) <= load(eb, ea) { ea } else { eb }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Address;

    fn endpoints(weights: &[u32]) -> Vec<Arc<Endpoint>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut e = Endpoint::new(Address::Socket(
                    format!("127.0.0.1:{}", 1000 + i).parse().expect("addr"),
                ));
                e.weight = *w;
                Arc::new(e)
            })
            .collect()
    }

    fn counts(b: &Balancer, eps: &[Arc<Endpoint>], n: usize) -> Vec<usize> {
        let mut out = vec![0; eps.len()];
        for _ in 0..n {
            let e = b.pick(eps).expect("pick");
            let i = eps
                .iter()
                .position(|x| Arc::ptr_eq(x, e))
                .expect("one of them");
            out[i] += 1;
        }
        out
    }

    #[test]
    fn round_robin_is_even_and_weighted() {
        let eps = endpoints(&[1, 1, 1]);
        let b = Balancer::new(LbPolicy::RoundRobin, &eps);
        assert_eq!(counts(&b, &eps, 300), vec![100, 100, 100]);
        let eps = endpoints(&[1, 3]);
        let b = Balancer::new(LbPolicy::RoundRobin, &eps);
        assert_eq!(counts(&b, &eps, 400), vec![100, 300]);
    }

    #[test]
    fn random_follows_weights() {
        let eps = endpoints(&[1, 4]);
        let b = Balancer::new(LbPolicy::Random, &eps);
        let c = counts(&b, &eps, 5000);
        assert!((800..1200).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn least_request_avoids_busy_endpoints() {
        let eps = endpoints(&[1, 1, 1]);
        let b = Balancer::new(LbPolicy::LeastRequest, &eps);
        // Endpoint 0 is busy: it only wins when both choices... never, as
        // the two choices are distinct and one of them is idle.
        let _busy: Vec<_> = (0..5).map(|_| eps[0].start_request()).collect();
        let c = counts(&b, &eps, 1000);
        assert_eq!(c[0], 0, "{c:?}");
        assert!(c[1] > 300 && c[2] > 300, "{c:?}");
        drop(_busy);
        assert_eq!(eps[0].active_requests(), 0);
        let c = counts(&b, &eps, 3000);
        assert!(c.iter().all(|n| (800..1200).contains(n)), "{c:?}");
    }

    #[test]
    fn no_endpoints_no_pick() {
        let b = Balancer::new(LbPolicy::RoundRobin, &[]);
        assert!(b.pick(&[]).is_none());
    }
}
