use std::collections::HashMap;

use super::*;
use crate::endpoint::{Address, DEFAULT_OVERPROVISIONING};
use crate::hash::xxhash64;

/// An endpoint 127.0.0.1:(1000 + i).
fn ep(
    i: usize,
    weight: u32,
    healthy: bool,
    priority: u32,
    locality: &str,
    lw: u32,
) -> Arc<Endpoint> {
    let mut e = Endpoint::new(Address::Socket(
        format!("127.0.0.1:{}", 1000 + i).parse().expect("addr"),
    ));
    e.weight = weight;
    e.healthy = healthy;
    e.priority = priority;
    e.locality = locality.into();
    e.locality_weight = lw;
    Arc::new(e)
}

fn weighted(weights: &[u32]) -> Vec<Arc<Endpoint>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| ep(i, *w, true, 0, "", 0))
        .collect()
}

fn balancer(policy: LbPolicy, eps: &[Arc<Endpoint>]) -> Balancer {
    Balancer::new(
        policy,
        &LbSettings::default(),
        eps,
        DEFAULT_OVERPROVISIONING,
    )
}

/// Picks per endpoint (by position in `eps`) over `n` picks.
fn counts(
    b: &Balancer,
    eps: &[Arc<Endpoint>],
    n: usize,
    hash: impl Fn(usize) -> Option<u64>,
) -> Vec<usize> {
    let mut out = vec![0; eps.len()];
    for k in 0..n {
        let e = b.pick(hash(k)).expect("pick");
        let i = eps
            .iter()
            .position(|x| Arc::ptr_eq(x, e))
            .expect("one of them");
        out[i] += 1;
    }
    out
}

fn none(_: usize) -> Option<u64> {
    None
}

fn key(k: usize) -> Option<u64> {
    Some(xxhash64(format!("user-{k}").as_bytes(), 0))
}

/// `c[i] / n` is within `tolerance` of `share[i]` for each endpoint.
fn assert_shares(c: &[usize], share: &[f64], tolerance: f64) {
    let n: usize = c.iter().sum();
    for (got, want) in c.iter().zip(share) {
        let got = *got as f64 / n as f64;
        assert!((got - want).abs() <= tolerance, "{c:?} vs shares {share:?}");
    }
}

#[test]
fn round_robin_is_even_and_smoothly_weighted() {
    let eps = weighted(&[1, 1, 1]);
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_eq!(counts(&b, &eps, 300, none), vec![100, 100, 100]);
    let eps = weighted(&[1, 3]);
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_eq!(counts(&b, &eps, 400, none), vec![100, 300]);
    // Smooth: the light endpoints' turns fall among the heavy one's.
    let order = round_robin_order(&eps);
    assert_eq!(order.len(), 4);
    assert_eq!(order.iter().filter(|i| **i == 1).count(), 3);
    let eps = weighted(&[5, 1, 1]);
    assert_eq!(round_robin_order(&eps), vec![0, 0, 0, 1, 2, 0, 0]);
    // Huge weights are scaled to a bounded cycle, ratios kept.
    let eps = weighted(&[1_000_000, 3_000_000]);
    let order = round_robin_order(&eps);
    assert!(order.len() as u64 <= MAX_RR_CYCLE);
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_shares(&counts(&b, &eps, 4000, none), &[0.25, 0.75], 0.01);
}

#[test]
fn random_follows_weights() {
    let eps = weighted(&[1, 4]);
    let b = balancer(LbPolicy::Random, &eps);
    assert_shares(&counts(&b, &eps, 10_000, none), &[0.2, 0.8], 0.03);
    let eps = weighted(&[1, 1, 1, 1]);
    let b = balancer(LbPolicy::Random, &eps);
    assert_shares(&counts(&b, &eps, 10_000, none), &[0.25; 4], 0.03);
}

#[test]
fn least_request_avoids_busy_endpoints() {
    let eps = weighted(&[1, 1, 1]);
    let b = balancer(LbPolicy::LeastRequest, &eps);
    // Endpoint 0 is busy: of two distinct choices one is always idle.
    let busy: Vec<_> = (0..5).map(|_| eps[0].start_request()).collect();
    let c = counts(&b, &eps, 1000, none);
    assert_eq!(c[0], 0, "{c:?}");
    assert!(c[1] > 300 && c[2] > 300, "{c:?}");
    drop(busy);
    assert_eq!(eps[0].active_requests(), 0);
    assert_shares(&counts(&b, &eps, 6000, none), &[1.0 / 3.0; 3], 0.04);
}

#[test]
fn weighted_least_request_uses_envoys_formula() {
    // Idle: in proportion to weight.
    let eps = weighted(&[1, 3]);
    let b = balancer(LbPolicy::LeastRequest, &eps);
    assert_shares(&counts(&b, &eps, 10_000, none), &[0.25, 0.75], 0.03);
    // The heavy one has 5 in flight: 3 / 6 against 1 / 1, so 1:2 the other way.
    let busy: Vec<_> = (0..5).map(|_| eps[1].start_request()).collect();
    assert_shares(
        &counts(&b, &eps, 10_000, none),
        &[2.0 / 3.0, 1.0 / 3.0],
        0.03,
    );
    drop(busy);
    // Bias 0: weights only, load ignored.
    let s = LbSettings {
        active_request_bias: 0.0,
        ..LbSettings::default()
    };
    let b = Balancer::new(LbPolicy::LeastRequest, &s, &eps, DEFAULT_OVERPROVISIONING);
    let _busy: Vec<_> = (0..5).map(|_| eps[1].start_request()).collect();
    assert_shares(&counts(&b, &eps, 10_000, none), &[0.25, 0.75], 0.03);
}

/// Where each of `n` keys goes, by address.
fn placement(b: &Balancer, n: usize) -> Vec<String> {
    (0..n)
        .map(|k| b.pick(key(k)).expect("pick").address.to_string())
        .collect()
}

/// Sticky, spread, and on removing one of 10 endpoints at most
/// `moved_percent` of the other endpoints' keys move.
fn check_consistent_hashing(policy: LbPolicy, moved_percent: usize) {
    let eps = weighted(&[1; 10]);
    let b = balancer(policy, &eps);
    // Sticky: the same key, the same endpoint, every time and in a new
    // balancer (another proxy, or the next snapshot) too.
    let first = placement(&b, 2000);
    assert_eq!(first, placement(&b, 2000));
    assert_eq!(first, placement(&balancer(policy, &eps), 2000));
    // Spread: each endpoint gets its share of keys.
    let mut per: HashMap<&str, usize> = HashMap::new();
    for a in &first {
        *per.entry(a.as_str()).or_default() += 1;
    }
    assert_eq!(per.len(), 10);
    assert!(
        per.values().all(|n| (120..=290).contains(n)),
        "{policy:?} {per:?}"
    );
    // Minimal disruption: removing one endpoint moves its keys, and few others.
    let fewer: Vec<_> = eps
        .iter()
        .filter(|e| e.address.to_string() != "127.0.0.1:1003")
        .cloned()
        .collect();
    let after = placement(&balancer(policy, &fewer), 2000);
    let moved_others = first
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.as_str() != "127.0.0.1:1003" && a != b)
        .count();
    assert!(after.iter().all(|a| a != "127.0.0.1:1003"));
    eprintln!("{policy:?}: {moved_others} of 2000 keys of other endpoints moved");
    assert!(
        moved_others <= 2000 * moved_percent / 100,
        "{policy:?}: {moved_others} keys of other endpoints moved"
    );
    // No hash: a random endpoint, over all of them.
    let c = counts(&b, &eps, 5000, none);
    assert!(c.iter().all(|n| *n > 300), "{c:?}");
}

#[test]
fn ring_hash_is_sticky_spread_and_minimally_disrupted() {
    // Envoy's ring sizing gives each of 9 endpoints more points (114)
    // than each of 10 had (103): those new points take some keys.
    check_consistent_hashing(LbPolicy::RingHash, 10);
}

#[test]
fn maglev_is_sticky_spread_and_minimally_disrupted() {
    check_consistent_hashing(LbPolicy::Maglev, 5);
}

#[test]
fn consistent_hashing_honours_weights() {
    for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
        let eps = weighted(&[1, 3]);
        let b = balancer(policy, &eps);
        assert_shares(&counts(&b, &eps, 20_000, key), &[0.25, 0.75], 0.05);
    }
}

#[test]
fn ring_size_follows_envoy() {
    let keys: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{i}")).collect();
    // Equal thirds: ceil(1024 / 3) * 3 = 1026 points.
    let r = ring::Ring::build(&keys, &[1.0 / 3.0; 3], 1024, 8 << 20);
    assert_eq!(r.len(), 1026);
    // Capped by the maximum.
    let r = ring::Ring::build(&keys, &[1.0 / 3.0; 3], 1024, 100);
    assert_eq!(r.len(), 100);
    // Envoy's key format: the first point of "127.0.0.1:0" is its "_0".
    let r = ring::Ring::build(&keys[..1], &[1.0], 1, 1);
    assert_eq!(r.lookup(0), Some(0));
    assert_eq!(r.len(), 1);
    assert_eq!(xxhash64(b"", 0), 0xef46_db37_51d8_e999, "xxHash64 itself");
}

#[test]
fn maglev_fills_its_prime_table_by_weight() {
    let keys: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{i}")).collect();
    let t = maglev::Table::build(&keys, &[0.5, 0.25, 0.25], 65537);
    let mut per = [0usize; 3];
    for h in 0..65537u64 {
        per[t.lookup(h).expect("slot")] += 1;
    }
    assert_eq!(per.iter().sum::<usize>(), 65537);
    assert!((per[0] as f64 / 65537.0 - 0.5).abs() < 0.01, "{per:?}");
    assert!((per[1] as f64 / 65537.0 - 0.25).abs() < 0.01, "{per:?}");
    let small = LbSettings {
        maglev_table_size: 7,
        ..LbSettings::default()
    };
    let eps = weighted(&[1, 1]);
    let b = Balancer::new(LbPolicy::Maglev, &small, &eps, DEFAULT_OVERPROVISIONING);
    assert!(b.pick(Some(3)).is_some());
}

#[test]
fn priorities_fail_over_by_health() {
    // P0: 2 of 4 healthy (health 70); P1 healthy.
    let eps = vec![
        ep(0, 1, true, 0, "", 0),
        ep(1, 1, true, 0, "", 0),
        ep(2, 1, false, 0, "", 0),
        ep(3, 1, false, 0, "", 0),
        ep(4, 1, true, 1, "", 0),
    ];
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        LbPolicy::RingHash,
        LbPolicy::Maglev,
    ] {
        let b = balancer(policy, &eps);
        let levels = b.levels();
        assert_eq!((levels[0].load, levels[1].load), (70, 30), "{policy:?}");
        let c = counts(
            &b,
            &eps,
            10_000,
            if matches!(policy, LbPolicy::RingHash | LbPolicy::Maglev) {
                key
            } else {
                none
            },
        );
        assert_eq!(
            c[2] + c[3],
            0,
            "{policy:?}: unhealthy endpoints got traffic: {c:?}"
        );
        assert_shares(&c, &[0.35, 0.35, 0.0, 0.0, 0.30], 0.03);
    }
    // All of P0 healthy: P1 gets nothing.
    let eps = vec![ep(0, 1, true, 0, "", 0), ep(1, 1, true, 1, "", 0)];
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_eq!(counts(&b, &eps, 100, none), vec![100, 0]);
    // P0 all down: everything to P1.
    let eps = vec![ep(0, 1, false, 0, "", 0), ep(1, 1, true, 1, "", 0)];
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_eq!(counts(&b, &eps, 100, none), vec![0, 100]);
    assert_eq!(b.serving().count(), 1);
}

#[test]
fn panic_mode_uses_all_endpoints() {
    // 1 of 4 healthy in the only priority: below 50%, so all four.
    let eps = vec![
        ep(0, 1, true, 0, "", 0),
        ep(1, 1, false, 0, "", 0),
        ep(2, 1, false, 0, "", 0),
        ep(3, 1, false, 0, "", 0),
    ];
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert!(b.levels()[0].panic);
    assert_eq!(counts(&b, &eps, 400, none), vec![100; 4]);
    // With the threshold at 0 (panic off), only the healthy one.
    let off = LbSettings {
        panic_threshold: 0.0,
        ..LbSettings::default()
    };
    let b = Balancer::new(LbPolicy::RoundRobin, &off, &eps, DEFAULT_OVERPROVISIONING);
    assert_eq!(counts(&b, &eps, 400, none), vec![400, 0, 0, 0]);
    // 2 of 4 healthy is not below 50%: the healthy ones only.
    let eps = vec![
        ep(0, 1, true, 0, "", 0),
        ep(1, 1, true, 0, "", 0),
        ep(2, 1, false, 0, "", 0),
        ep(3, 1, false, 0, "", 0),
    ];
    let b = balancer(LbPolicy::RoundRobin, &eps);
    assert_eq!(counts(&b, &eps, 400, none), vec![200, 200, 0, 0]);
    // Nothing healthy and panic off: nothing to pick.
    let eps = vec![ep(0, 1, false, 0, "", 0)];
    let b = Balancer::new(LbPolicy::RoundRobin, &off, &eps, DEFAULT_OVERPROVISIONING);
    assert!(b.pick(None).is_none());
}

#[test]
fn localities_share_by_weight_and_health() {
    let settings = LbSettings {
        locality_weighted: true,
        ..LbSettings::default()
    };
    // Locality a weight 1, b weight 3, each two endpoints.
    let eps = vec![
        ep(0, 1, true, 0, "r/a/", 1),
        ep(1, 1, true, 0, "r/a/", 1),
        ep(2, 1, true, 0, "r/b/", 3),
        ep(3, 1, true, 0, "r/b/", 3),
    ];
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
    ] {
        let b = Balancer::new(policy, &settings, &eps, DEFAULT_OVERPROVISIONING);
        assert_shares(
            &counts(&b, &eps, 20_000, none),
            &[0.125, 0.125, 0.375, 0.375],
            0.03,
        );
    }
    for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
        let b = Balancer::new(policy, &settings, &eps, DEFAULT_OVERPROVISIONING);
        assert_shares(
            &counts(&b, &eps, 20_000, key),
            &[0.125, 0.125, 0.375, 0.375],
            0.05,
        );
    }
    // Without the setting, localities don't matter.
    let b = balancer(LbPolicy::Random, &eps);
    assert_shares(&counts(&b, &eps, 20_000, none), &[0.25; 4], 0.03);
    // Half of b unhealthy: b's weight 3 × 70% = 2.1 against a's 1.
    let eps = vec![
        ep(0, 1, true, 0, "r/a/", 1),
        ep(1, 1, true, 0, "r/b/", 3),
        ep(2, 1, false, 0, "r/b/", 3),
    ];
    let b = Balancer::new(LbPolicy::Random, &settings, &eps, DEFAULT_OVERPROVISIONING);
    assert_shares(
        &counts(&b, &eps, 20_000, none),
        &[1.0 / 3.1, 2.1 / 3.1, 0.0],
        0.03,
    );
}

#[test]
fn no_endpoints_no_pick() {
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        LbPolicy::RingHash,
        LbPolicy::Maglev,
    ] {
        let b = balancer(policy, &[]);
        assert!(b.pick(None).is_none());
        assert!(b.pick(Some(7)).is_none());
        let one = weighted(&[2]);
        let b = balancer(policy, &one);
        assert!(Arc::ptr_eq(b.pick(Some(7)).expect("one"), &one[0]));
    }
}

proptest::proptest! {
    /// Whatever EDS sends (weights, health, priorities, localities), every
    /// policy picks without panicking; outside panic mode only healthy
    /// endpoints; and priority loads add up to 100.
    #[test]
    fn any_endpoint_set_balances_sanely(
        shape in proptest::collection::vec(
            (1u32..5, proptest::bool::ANY, 0u32..3, 0usize..3, 0u32..4),
            0..12,
        ),
        locality_weighted in proptest::bool::ANY,
        hash in proptest::option::of(proptest::num::u64::ANY),
    ) {
        let eps: Vec<Arc<Endpoint>> = shape
            .iter()
            .enumerate()
            .map(|(i, (w, healthy, prio, loc, lw))| ep(i, *w, *healthy, *prio, ["a", "b", "c"][*loc], *lw))
            .collect();
        let settings = LbSettings {
            locality_weighted,
            maglev_table_size: 251,
            ..LbSettings::default()
        };
        for policy in [LbPolicy::RoundRobin, LbPolicy::LeastRequest, LbPolicy::Random, LbPolicy::RingHash, LbPolicy::Maglev] {
            let b = Balancer::new(policy, &settings, &eps, DEFAULT_OVERPROVISIONING);
            let levels = b.levels();
            if !levels.is_empty() {
                proptest::prop_assert_eq!(levels.iter().map(|l| l.load).sum::<u32>(), 100);
            }
            let any_panic = levels.iter().any(|l| l.panic);
            for _ in 0..20 {
                match b.pick(hash) {
                    Some(e) => proptest::prop_assert!(e.healthy || any_panic, "{policy:?} picked an unhealthy endpoint"),
                    None => proptest::prop_assert!(
                        !eps.iter().any(|e| e.healthy) || eps.is_empty(),
                        "{policy:?} found nothing among {shape:?}"
                    ),
                }
            }
        }
    }
}
