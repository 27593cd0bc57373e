//! Envoy's priority load and locality weights: how much traffic each
//! priority level gets from its health, when a level is in panic, and
//! how a level's localities share its traffic.
//!
//! A level's health is `overprovisioning × healthy / total`, in whole
//! percent, capped at 100 (with the default factor 1.4, a level is fully
//! healthy down to ~72% healthy endpoints). Levels take traffic in order
//! of priority, each as much as its health allows of what is left; if
//! the health of all levels adds up to less than 100 the shares are
//! scaled up to fill 100 ("normalized total health"). Only then may a
//! level be in panic: fewer healthy endpoints than the panic threshold
//! (percent, without overprovisioning) means it uses all of its
//! endpoints, healthy or not. When every level is in panic, traffic is
//! shared by the levels' endpoint counts instead.

/// How traffic is shared between priority levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityLoad {
    /// Each level's share of traffic in percent; they add up to 100.
    pub load: Vec<u32>,
    /// Whether each level uses all its endpoints (too few healthy).
    pub panic: Vec<bool>,
}

/// A level's or locality's health in percent, with overprovisioning.
fn health(healthy: usize, total: usize, overprovisioning: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    let h = u64::from(overprovisioning) * healthy as u64 / total as u64;
    h.min(100) as u32
}

/// The priority load of levels given as `(healthy, total)` endpoint
/// counts, in priority order.
pub fn priority_load(
    levels: &[(usize, usize)],
    overprovisioning: u32,
    panic_threshold: f64,
) -> PriorityLoad {
    let n = levels.len();
    let mut load = vec![0u32; n];
    let mut panic = vec![false; n];
    if n == 0 {
        return PriorityLoad { load, panic };
    }
    let healths: Vec<u32> = levels
        .iter()
        .map(|(h, t)| health(*h, *t, overprovisioning))
        .collect();
    let normalized_total = healths.iter().sum::<u32>().min(100);
    match std::num::NonZeroU32::new(normalized_total) {
        // Nothing healthy: with panic mode off, nothing to send to.
        None => load[0] = 100,
        Some(normalized) => {
            let mut left = 100u32;
            for (i, h) in healths.iter().enumerate() {
                let share = (h * 100 / normalized).min(left);
                load[i] = share;
                left -= share;
            }
            // Rounding leftovers go to the first level with health.
            if let Some(first) = healths.iter().position(|h| *h > 0) {
                load[first] += left;
            }
        }
    }
    if normalized_total < 100 && panic_threshold > 0.0 {
        for (i, (healthy, total)) in levels.iter().enumerate() {
            let percent = if *total == 0 {
                100.0
            } else {
                100.0 * *healthy as f64 / *total as f64
            };
            panic[i] = percent < panic_threshold;
        }
        if panic.iter().all(|p| *p) {
            // Total panic: by endpoint counts, leftovers to the first.
            let all: usize = levels.iter().map(|(_, t)| t).sum();
            if let Some(all) = std::num::NonZeroUsize::new(all) {
                let mut left = 100u32;
                for (i, (_, total)) in levels.iter().enumerate() {
                    load[i] = (100 * total / all) as u32;
                    left -= load[i];
                }
                load[0] += left;
            }
        }
    }
    PriorityLoad { load, panic }
}

/// The effective weights of a level's localities, given as `(weight,
/// healthy, total)`: `weight × min(1, overprovisioning × healthy /
/// total)`, scaled by 100 to stay in integers. A locality with no weight
/// or no healthy endpoint gets 0.
pub fn locality_weights(localities: &[(u32, usize, usize)], overprovisioning: u32) -> Vec<u64> {
    localities
        .iter()
        .map(|(w, h, t)| u64::from(*w) * u64::from(health(*h, *t, overprovisioning)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(levels: &[(usize, usize)]) -> Vec<u32> {
        priority_load(levels, 140, 50.0).load
    }

    #[test]
    fn envoys_priority_load_table() {
        // The examples of Envoy's "Priority levels" page (P=1 healthy).
        assert_eq!(load(&[(100, 100), (10, 10)]), vec![100, 0]);
        assert_eq!(load(&[(72, 100), (10, 10)]), vec![100, 0]);
        assert_eq!(load(&[(71, 100), (10, 10)]), vec![99, 1]);
        assert_eq!(load(&[(50, 100), (10, 10)]), vec![70, 30]);
        assert_eq!(load(&[(25, 100), (10, 10)]), vec![35, 65]);
        assert_eq!(load(&[(0, 100), (10, 10)]), vec![0, 100]);
        // Three levels: what P=0 and P=1 can't take goes to P=2.
        assert_eq!(load(&[(20, 100), (20, 100), (10, 10)]), vec![28, 28, 44]);
    }

    #[test]
    fn shares_are_normalized_and_panic_only_when_short() {
        // 50% + 10% healthy: health 70 + 14 = 84 < 100, scaled to 100.
        let p = priority_load(&[(5, 10), (1, 10)], 140, 50.0);
        assert_eq!(p.load, vec![84, 16]);
        assert_eq!(p.panic, vec![false, true]);
        // Plenty of health overall: no panic even for a level at 40%.
        let p = priority_load(&[(4, 10), (10, 10)], 140, 50.0);
        assert_eq!(p.load, vec![56, 44]);
        assert_eq!(p.panic, vec![false, false]);
        // Nothing healthy: every level in panic, shared by endpoint counts.
        let p = priority_load(&[(0, 3), (0, 2)], 140, 50.0);
        assert_eq!(p.load, vec![60, 40]);
        assert_eq!(p.panic, vec![true, true]);
        // A panic threshold of 0 turns panic mode off.
        let p = priority_load(&[(0, 3)], 140, 0.0);
        assert_eq!(p.panic, vec![false]);
        // One level at 40%: scaled to 100% of traffic, and in panic.
        let p = priority_load(&[(2, 5)], 140, 50.0);
        assert_eq!(p.load, vec![100]);
        assert_eq!(p.panic, vec![true]);
    }

    #[test]
    fn overprovisioning_factor_is_honoured() {
        // Factor 1.0: 90% healthy is 90% health.
        assert_eq!(
            priority_load(&[(9, 10), (1, 1)], 100, 50.0).load,
            vec![90, 10]
        );
    }

    #[test]
    fn locality_weights_follow_health() {
        assert_eq!(
            locality_weights(&[(1, 10, 10), (2, 5, 10), (3, 0, 10), (0, 10, 10)], 140),
            vec![100, 140, 0, 0]
        );
    }
}
