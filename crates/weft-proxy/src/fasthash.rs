//! A fast hasher for the maps the request path looks names up in: the
//! snapshot's clusters, a route table's exact domains, the upstream
//! pools by cluster and endpoint.
//!
//! std's `HashMap` hashes with SipHash-1-3 (~300 instructions for a
//! 45-byte cluster name such as `outbound|8080||echo.bench.svc.cluster.local`),
//! xxHash64 costs about half of that; this one takes a word at a time
//! into a 128-bit multiply folded back to 64 bits (foldhash's step: the
//! high half carries a difference in any bit down to the low bits, where
//! FxHash's plain multiply only carries it up, and names of digits that
//! differ across a word boundary collided), so that the low bits hashbrown
//! indexes with and the high bits it keeps as tags both depend on every
//! input bit. It is not keyed: the keys of these maps come from the
//! config, so a request can only look names up, never add colliding ones.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The multiplier of each word (rustc-hash's, odd, bits well spread).
const K: u64 = 0xf135_7aea_2e62_a9c5;
/// The multiplier of the finish, and the starting state (the golden
/// ratio's: a zero word must still move the state).
const FOLD: u64 = 0x9e37_79b9_7f4a_7c15;

/// See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher {
    hash: u64,
}

impl Default for FastHasher {
    fn default() -> Self {
        FastHasher { hash: FOLD }
    }
}

/// `a * b` in 128 bits, its halves xor-ed.
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = fold(self.hash ^ word, K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        // The length tells `ab` + `c` from `a` + `bc` in the last word.
        self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        fold(self.hash, FOLD)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    fn hash(s: &str) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(s)
    }

    #[test]
    fn names_that_differ_hash_apart() {
        let names: Vec<String> = (0..2000)
            .flat_map(|i| {
                [
                    format!("outbound|{i}||echo.bench.svc.cluster.local"),
                    format!("inbound|{i}||"),
                    format!("10.0.{}.{}:8080", i / 256, i % 256),
                    format!("svc-{i}.ns.svc.cluster.local"),
                ]
            })
            .collect();
        let hashes: HashSet<u64> = names.iter().map(|n| hash(n)).collect();
        assert_eq!(hashes.len(), names.len());
        // hashbrown's bucket index is the low bits, its tag the top 7:
        // both must spread, not just the whole word.
        let low: HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        assert!(low.len() > 3000, "{} distinct low 12-bit values", low.len());
        let top: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(top.len(), 128);
    }

    #[test]
    fn the_split_of_the_last_word_counts() {
        assert_ne!(hash("ab"), hash("a"));
        assert_ne!(hash(""), hash("\0"));
        assert_ne!(hash("abcdefgh"), hash("abcdefgh\0"));
        assert_ne!(hash("\0\0\0\0\0\0\0\0ab"), hash("ab"));
        let mut a = FastHasher::default();
        a.write(b"ab");
        a.write(b"c");
        let mut b = FastHasher::default();
        b.write(b"a");
        b.write(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn maps_find_what_they_hold() {
        let mut m: FastMap<String, usize> = FastMap::default();
        for i in 0..500 {
            m.insert(format!("outbound|{i}||svc"), i);
        }
        for i in 0..500 {
            assert_eq!(m.get(format!("outbound|{i}||svc").as_str()), Some(&i));
        }
        assert_eq!(m.get("outbound|500||svc"), None);
    }
}
