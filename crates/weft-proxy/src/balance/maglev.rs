//! Maglev (Google's consistent hashing with a lookup table), as Envoy
//! builds it: each endpoint has a permutation of the table's slots
//! (`offset = xxHash64(address, 0) % M`, `skip = xxHash64(address, 1) %
//! (M - 1) + 1`, slot `j` is `(offset + j × skip) % M`); endpoints take
//! turns claiming their next free slot, a lighter endpoint skipping turns
//! in proportion to its weight, until the table is full. A request goes
//! to `table[hash % M]`. With `M` prime every permutation visits every
//! slot; removing an endpoint moves little more than its own slots.

use crate::hash::xxhash64;

/// A built table of endpoint indexes.
#[derive(Debug)]
pub struct Table {
    slots: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

impl Table {
    /// A table of `size` (a prime) slots over endpoints with these hash
    /// keys and normalized weights.
    pub fn build(keys: &[String], weights: &[f64], size: u64) -> Table {
        let Some(heaviest) = weights
            .iter()
            .copied()
            .filter(|w| *w > 0.0)
            .max_by(f64::total_cmp)
        else {
            return Table { slots: Vec::new() };
        };
        struct Entry {
            index: u32,
            offset: u64,
            skip: u64,
            weight: f64,
            target: f64,
            next: u64,
        }
        let mut entries: Vec<Entry> = keys
            .iter()
            .zip(weights)
            .enumerate()
            .filter(|(_, (_, w))| **w > 0.0)
            .map(|(i, (k, w))| Entry {
                index: i as u32,
                offset: xxhash64(k.as_bytes(), 0) % size,
                skip: xxhash64(k.as_bytes(), 1) % (size - 1) + 1,
                weight: *w,
                target: 0.0,
                next: 0,
            })
            .collect();
        let mut slots = vec![EMPTY; size as usize];
        let mut filled = 0u64;
        let mut iteration = 1u64;
        while filled < size {
            for e in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                // An endpoint of the heaviest weight claims a slot every
                // turn; one of a third of it every third turn.
                if (iteration as f64) * e.weight < e.target {
                    continue;
                }
                e.target += heaviest;
                let mut slot = (e.offset + e.skip * e.next) % size;
                while slots[slot as usize] != EMPTY {
                    e.next += 1;
                    slot = (e.offset + e.skip * (e.next % size)) % size;
                }
                slots[slot as usize] = e.index;
                e.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Table { slots }
    }

    /// The endpoint index for `hash`; `None` for an empty table.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[(hash % self.slots.len() as u64) as usize] as usize)
    }
}
