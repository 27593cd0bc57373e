//! Ring hash (Ketama) as Envoy builds it: every endpoint gets points on
//! a 64-bit ring in proportion to its weight, each point the xxHash64 of
//! `"<address>_<i>"`; a request goes to the first point at or after its
//! hash, wrapping around. Removing an endpoint only moves the requests
//! that were on its points.
//!
//! The ring size follows Envoy: scaled so that the lightest endpoint gets
//! at least `min × its share` points (`ceil(min_weight × min) /
//! min_weight` in all), at most `max`.

use crate::hash::xxhash64;

/// A built ring: `(hash, endpoint index)`, sorted by hash.
#[derive(Debug)]
pub struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// A ring over endpoints with these hash keys and normalized weights
    /// (each in 0..=1, adding up to 1).
    pub fn build(keys: &[String], weights: &[f64], min: u64, max: u64) -> Ring {
        let Some(lightest) = weights
            .iter()
            .copied()
            .filter(|w| *w > 0.0)
            .min_by(f64::total_cmp)
        else {
            return Ring { points: Vec::new() };
        };
        let scale = ((lightest * min as f64).ceil() / lightest).min(max as f64);
        let mut points = Vec::with_capacity(scale.ceil() as usize);
        let (mut current, mut target) = (0.0f64, 0.0f64);
        let mut key = String::new();
        for (index, (k, w)) in keys.iter().zip(weights).enumerate() {
            target += scale * w;
            let mut i = 0u64;
            while current < target {
                key.clear();
                key.push_str(k);
                key.push('_');
                key.push_str(&i.to_string());
                points.push((xxhash64(key.as_bytes(), 0), index as u32));
                i += 1;
                current += 1.0;
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The endpoint index for `hash`; `None` on an empty ring.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let i = self.points.partition_point(|(h, _)| *h < hash);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|(_, e)| *e as usize)
    }

    /// How many points it has.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }
}
