//! Load balancing: which endpoint of a cluster gets a request, as Envoy
//! decides it.
//!
//! A [`Balancer`] is built once per cluster per config snapshot from all
//! the cluster's endpoints and is immutable after: picks read it without
//! locks (round robin's position and the endpoints' request counts are
//! atomics). Each pick goes
//! 1. to a priority level, by the priority load ([`priority`]: health with
//!    overprovisioning, spill-over to the next priority, panic mode);
//!    consistent-hash policies choose it by `hash % 100`, others at random;
//! 2. within the level, when the cluster has `locality_weighted_lb_config`,
//!    to a locality by its EDS weight times its health (weighted random);
//! 3. to an endpoint by the cluster's policy, over the healthy endpoints
//!    (all of them in panic mode), honouring endpoint weights:
//!    - round robin: a smooth weighted order (earliest deadline first,
//!      `k / weight`), one cycle precomputed, walked by an atomic counter;
//!    - least request: equal weights, the least busy of `choice_count`
//!      random endpoints (two distinct ones by default); unequal weights,
//!      Envoy's `weight / (active + 1) ^ bias`, drawn at random in
//!      proportion to it;
//!    - random: weighted random;
//!    - ring hash ([`ring`]) and Maglev ([`maglev`]): looked up by the
//!      request's hash, a random one when it has none. Locality weights
//!      fold into the endpoint weights, as in Envoy's hashing balancers.

mod maglev;
pub mod priority;
mod ring;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::{LbPolicy, LbSettings};
use crate::endpoint::Endpoint;

/// The longest round-robin cycle precomputed; heavier weights are scaled
/// down to fit (keeping their ratios to within a rounding).
const MAX_RR_CYCLE: u64 = 4096;

/// A cluster's balancer; one per cluster per config snapshot.
#[derive(Debug)]
pub struct Balancer {
    levels: Vec<Level>,
    /// Each level's upper bound in 0..100 (cumulative priority load).
    bounds: Vec<u32>,
}

/// One priority level, ready for picks.
#[derive(Debug)]
struct Level {
    priority: u32,
    load: u32,
    panic: bool,
    /// Its localities (one group when not balancing by locality).
    groups: Vec<Group>,
    /// Cumulative effective locality weights.
    bounds: Vec<u64>,
}

/// Endpoints picked among by one policy.
#[derive(Debug)]
struct Group {
    hosts: Vec<Arc<Endpoint>>,
    picker: Picker,
}

#[derive(Debug)]
enum Picker {
    RoundRobin {
        /// A weighted cycle of host indexes; `None`: equal weights.
        order: Option<Vec<u32>>,
        next: AtomicUsize,
    },
    Random {
        /// Cumulative weights; `None`: equal weights.
        cumulative: Option<Vec<u64>>,
    },
    LeastRequest {
        weighted: bool,
        choices: u32,
        bias: f64,
    },
    Ring(ring::Ring),
    Maglev(maglev::Table),
}

/// What a priority level looks like now (for `/clusters` and tests).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LevelState {
    /// The EDS priority.
    pub priority: u32,
    /// Its share of traffic, in percent.
    pub load: u32,
    /// Whether it uses all its endpoints (too few are healthy).
    pub panic: bool,
    /// How many endpoints it picks among.
    pub endpoints: usize,
}

impl Balancer {
    /// A balancer over all of a cluster's `endpoints` (healthy or not);
    /// `overprovisioning` is the EDS factor in percent (140: 1.4).
    pub fn new(
        policy: LbPolicy,
        settings: &LbSettings,
        endpoints: &[Arc<Endpoint>],
        overprovisioning: u32,
    ) -> Self {
        let mut by_priority: BTreeMap<u32, Vec<Arc<Endpoint>>> = BTreeMap::new();
        for e in endpoints {
            by_priority.entry(e.priority).or_default().push(e.clone());
        }
        let counts: Vec<(usize, usize)> = by_priority
            .values()
            .map(|es| (es.iter().filter(|e| e.is_healthy()).count(), es.len()))
            .collect();
        let plan = priority::priority_load(&counts, overprovisioning, settings.panic_threshold);
        let mut levels = Vec::with_capacity(by_priority.len());
        let mut bounds = Vec::with_capacity(by_priority.len());
        let mut upto = 0;
        for (i, (priority, all)) in by_priority.into_iter().enumerate() {
            let (load, panic) = (plan.load[i], plan.panic[i]);
            upto += load;
            bounds.push(upto);
            let level = LevelPlan {
                priority,
                load,
                panic,
                overprovisioning,
            };
            levels.push(Level::new(level, all, policy, settings));
        }
        Balancer { levels, bounds }
    }

    /// Picks an endpoint for a request with `hash` (from the route's hash
    /// policy, for ring hash and Maglev); `None` if there is none.
    pub fn pick(&self, hash: Option<u64>) -> Option<&Arc<Endpoint>> {
        let level = match self.levels.as_slice() {
            [] => return None,
            [only] => only,
            levels => {
                let draw = match hash {
                    Some(h) => (h % 100) as u32,
                    None => fastrand::u32(..100),
                };
                let i = self.bounds.partition_point(|b| *b <= draw);
                levels.get(i).or(levels.last())?
            }
        };
        level.pick(hash)
    }

    /// The priority levels, in order.
    pub fn levels(&self) -> Vec<LevelState> {
        self.levels
            .iter()
            .map(|l| LevelState {
                priority: l.priority,
                load: l.load,
                panic: l.panic,
                endpoints: l.groups.iter().map(|g| g.hosts.len()).sum(),
            })
            .collect()
    }

    /// Every endpoint that can get traffic now.
    pub fn serving(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.levels
            .iter()
            .filter(|l| l.load > 0)
            .flat_map(|l| l.groups.iter())
            .flat_map(|g| g.hosts.iter())
    }
}

/// What the priority load decided for a level.
#[derive(Clone, Copy, Debug)]
struct LevelPlan {
    priority: u32,
    load: u32,
    panic: bool,
    overprovisioning: u32,
}

impl Level {
    /// A level over `all` the endpoints of its priority.
    fn new(plan: LevelPlan, all: Vec<Arc<Endpoint>>, policy: LbPolicy, s: &LbSettings) -> Level {
        let hashing = matches!(policy, LbPolicy::RingHash | LbPolicy::Maglev);
        let by_locality = s.locality_weighted && !plan.panic;
        let mut level = Level {
            priority: plan.priority,
            load: plan.load,
            panic: plan.panic,
            groups: Vec::new(),
            bounds: Vec::new(),
        };
        let whole = |hosts: Vec<Arc<Endpoint>>| {
            let weights: Vec<f64> = hosts.iter().map(|e| f64::from(e.weight.max(1))).collect();
            Group::new(hosts, &weights, policy, s)
        };
        if !by_locality {
            let hosts = if plan.panic {
                all
            } else {
                all.into_iter().filter(|e| e.is_healthy()).collect()
            };
            level.groups.push(whole(hosts));
            level.bounds.push(1);
            return level;
        }
        let mut localities: BTreeMap<&str, Vec<&Arc<Endpoint>>> = BTreeMap::new();
        for e in &all {
            localities.entry(&e.locality).or_default().push(e);
        }
        // Each locality's EDS weight times its health.
        let shape: Vec<(u32, usize, usize)> = localities
            .values()
            .map(|m| {
                (
                    m[0].locality_weight,
                    m.iter().filter(|e| e.is_healthy()).count(),
                    m.len(),
                )
            })
            .collect();
        let effective = priority::locality_weights(&shape, plan.overprovisioning);
        let healthy: Vec<Vec<Arc<Endpoint>>> = localities
            .values()
            .map(|m| {
                m.iter()
                    .filter(|e| e.is_healthy())
                    .map(|e| (*e).clone())
                    .collect()
            })
            .collect();
        if hashing {
            // One ring or table; endpoint weights carry the localities'.
            let mut hosts = Vec::new();
            let mut weights = Vec::new();
            let total: u64 = effective.iter().sum();
            for (members, w) in healthy.into_iter().zip(&effective) {
                let sum: u64 = members.iter().map(|e| u64::from(e.weight.max(1))).sum();
                for e in members {
                    if total > 0 {
                        weights.push(
                            f64::from(e.weight.max(1)) / sum as f64 * *w as f64 / total as f64,
                        );
                    } else {
                        weights.push(f64::from(e.weight.max(1)));
                    }
                    hosts.push(e);
                }
            }
            level.groups.push(Group::new(hosts, &weights, policy, s));
            level.bounds.push(1);
            return level;
        }
        let mut total = 0u64;
        for (members, w) in healthy.iter().zip(&effective) {
            if *w == 0 || members.is_empty() {
                continue;
            }
            total += w;
            level.bounds.push(total);
            level.groups.push(whole(members.clone()));
        }
        if level.groups.is_empty() {
            // No locality has weight and health: the level as a whole.
            level
                .groups
                .push(whole(healthy.into_iter().flatten().collect()));
            level.bounds.push(1);
        }
        level
    }

    fn pick(&self, hash: Option<u64>) -> Option<&Arc<Endpoint>> {
        let group = match self.groups.as_slice() {
            [] => return None,
            [only] => only,
            groups => {
                let total = self.bounds.last().copied().unwrap_or(1).max(1);
                let slot = fastrand::u64(..total);
                let i = self.bounds.partition_point(|b| *b <= slot);
                groups.get(i)?
            }
        };
        group.pick(hash)
    }
}

impl Group {
    fn new(hosts: Vec<Arc<Endpoint>>, weights: &[f64], policy: LbPolicy, s: &LbSettings) -> Group {
        let uniform = weights.windows(2).all(|w| w[0] == w[1]);
        let picker = match policy {
            LbPolicy::RoundRobin | LbPolicy::ClusterProvided => Picker::RoundRobin {
                order: (!uniform).then(|| round_robin_order(&hosts)),
                // Start at a random place, as Envoy does, so proxies
                // started together don't all hit the same endpoint.
                next: AtomicUsize::new(fastrand::usize(..=hosts.len())),
            },
            LbPolicy::Random => Picker::Random {
                cumulative: (!uniform).then(|| {
                    hosts
                        .iter()
                        .scan(0u64, |sum, e| {
                            *sum += u64::from(e.weight.max(1));
                            Some(*sum)
                        })
                        .collect()
                }),
            },
            LbPolicy::LeastRequest => Picker::LeastRequest {
                weighted: !uniform,
                choices: s.choice_count.max(2),
                bias: s.active_request_bias,
            },
            LbPolicy::RingHash | LbPolicy::Maglev => {
                let keys: Vec<String> = hosts.iter().map(|e| e.address.to_string()).collect();
                let sum: f64 = weights.iter().sum();
                let normalized: Vec<f64> = weights
                    .iter()
                    .map(|w| w / sum.max(f64::MIN_POSITIVE))
                    .collect();
                if policy == LbPolicy::RingHash {
                    Picker::Ring(ring::Ring::build(
                        &keys,
                        &normalized,
                        s.ring_min,
                        s.ring_max,
                    ))
                } else {
                    Picker::Maglev(maglev::Table::build(
                        &keys,
                        &normalized,
                        s.maglev_table_size,
                    ))
                }
            }
        };
        Group { hosts, picker }
    }

    fn pick(&self, hash: Option<u64>) -> Option<&Arc<Endpoint>> {
        let hosts = &self.hosts;
        let n = hosts.len();
        if n <= 1 {
            return hosts.first();
        }
        let i = match &self.picker {
            Picker::RoundRobin { order, next } => {
                let k = next.fetch_add(1, Ordering::Relaxed);
                match order {
                    Some(order) => order[k % order.len()] as usize,
                    None => k % n,
                }
            }
            Picker::Random { cumulative: None } => fastrand::usize(..n),
            Picker::Random {
                cumulative: Some(c),
            } => {
                let slot = fastrand::u64(..c[n - 1].max(1));
                c.partition_point(|b| *b <= slot)
            }
            Picker::LeastRequest {
                weighted: false,
                choices,
                ..
            } => least_of_choices(hosts, *choices),
            Picker::LeastRequest {
                weighted: true,
                bias,
                ..
            } => weighted_least_request(hosts, *bias),
            Picker::Ring(r) => r.lookup(hash.unwrap_or_else(|| fastrand::u64(..)))?,
            Picker::Maglev(t) => t.lookup(hash.unwrap_or_else(|| fastrand::u64(..)))?,
        };
        hosts.get(i.min(n - 1))
    }
}

/// One cycle of smooth weighted round robin: earliest deadline first,
/// endpoint `i`'s `k`-th turn due at `(k - ½) / weight_i` (ties by
/// position), so light endpoints' turns fall in the middle of the heavy
/// ones' rather than all at the end.
fn round_robin_order(hosts: &[Arc<Endpoint>]) -> Vec<u32> {
    let total: u64 = hosts.iter().map(|e| u64::from(e.weight.max(1))).sum();
    let cap = MAX_RR_CYCLE.max(hosts.len() as u64 * 2);
    let weights: Vec<u64> = hosts
        .iter()
        .map(|e| {
            let w = u64::from(e.weight.max(1));
            if total > cap {
                (w * cap / total).max(1)
            } else {
                w
            }
        })
        .collect();
    let cycle: u64 = weights.iter().sum();
    // (2k - 1, weight, index): compare (2k1 - 1) / w1 with (2k2 - 1) / w2.
    #[derive(PartialEq, Eq)]
    struct Due(u64, u64, u32);
    impl Ord for Due {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            // Reversed: BinaryHeap is a max-heap.
            (u128::from(o.0) * u128::from(self.1))
                .cmp(&(u128::from(self.0) * u128::from(o.1)))
                .then(o.2.cmp(&self.2))
        }
    }
    impl PartialOrd for Due {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    let mut heap: std::collections::BinaryHeap<Due> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Due(1, *w, i as u32))
        .collect();
    let mut order = Vec::with_capacity(cycle as usize);
    while (order.len() as u64) < cycle {
        let Some(Due(k, w, i)) = heap.pop() else {
            break;
        };
        order.push(i);
        if k < 2 * w - 1 {
            heap.push(Due(k + 2, w, i));
        }
    }
    order
}

/// Envoy's least request with equal weights: the endpoint with the fewest
/// requests in flight of `choices` random ones (two distinct ones when
/// `choices` is 2).
fn least_of_choices(hosts: &[Arc<Endpoint>], choices: u32) -> usize {
    let n = hosts.len();
    let a = fastrand::usize(..n);
    if choices == 2 {
        let b = (a + 1 + fastrand::usize(..n - 1)) % n;
        return if hosts[b].active_requests() < hosts[a].active_requests() {
            b
        } else {
            a
        };
    }
    let mut best = a;
    for _ in 1..choices {
        let c = fastrand::usize(..n);
        if hosts[c].active_requests() < hosts[best].active_requests() {
            best = c;
        }
    }
    best
}

/// Envoy's weighted least request: each endpoint's weight is
/// `weight / (active + 1) ^ bias`; one is drawn in proportion to it.
fn weighted_least_request(hosts: &[Arc<Endpoint>], bias: f64) -> usize {
    let effective = |e: &Endpoint| {
        let w = f64::from(e.weight.max(1));
        let active = f64::from(e.active_requests()) + 1.0;
        if bias == 1.0 {
            w / active
        } else if bias == 0.0 {
            w
        } else {
            w / active.powf(bias)
        }
    };
    let total: f64 = hosts.iter().map(|e| effective(e)).sum();
    let mut slot = fastrand::f64() * total;
    for (i, e) in hosts.iter().enumerate() {
        slot -= effective(e);
        if slot < 0.0 {
            return i;
        }
    }
    hosts.len() - 1
}

#[cfg(test)]
mod tests;
