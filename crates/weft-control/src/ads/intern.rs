//! Equal subscriptions shared between streams.
//!
//! Proxies of one shape subscribe to the same names (every sidecar of a
//! namespace asks EDS for the same ≈ 2 250 clusters in a 1 000-service
//! mesh), and a name set that size is ≈ 200 KiB. A state-of-the-world
//! subscription is replaced whole by each request, so streams keep it
//! interned: one `Arc` per distinct set, shared by every stream that
//! holds an equal one, dropped with the last of them.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

/// A subscription: names, sorted.
pub(crate) type Names = Arc<BTreeSet<String>>;

/// The distinct subscriptions streams hold now.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    inner: Mutex<Sets>,
}

#[derive(Debug, Default)]
struct Sets {
    /// By hash of the names: the sets alive (or dead, until swept).
    by_hash: HashMap<u64, Vec<Weak<BTreeSet<String>>>>,
    /// Buckets when dead ones were last swept.
    swept_at: usize,
}

impl Interner {
    /// The shared set equal to `names` (made the shared one if none is).
    pub(crate) fn intern(&self, names: BTreeSet<String>) -> Names {
        if names.is_empty() {
            return Names::default();
        }
        let mut hasher = DefaultHasher::new();
        names.hash(&mut hasher);
        let hash = hasher.finish();
        let mut sets = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = sets.by_hash.entry(hash).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        if let Some(found) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| **s == names)
        {
            return found;
        }
        let set = Arc::new(names);
        bucket.push(Arc::downgrade(&set));
        if sets.by_hash.len() > 2 * sets.swept_at.max(64) {
            sets.by_hash.retain(|_, b| {
                b.retain(|w| w.strong_count() > 0);
                !b.is_empty()
            });
            sets.swept_at = sets.by_hash.len();
        }
        set
    }

    /// Distinct sets alive (tests).
    #[cfg(test)]
    pub(crate) fn alive(&self) -> usize {
        let sets = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        sets.by_hash
            .values()
            .flatten()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn equal_sets_share_one_allocation_while_held() {
        let interner = Interner::default();
        let a = interner.intern(set(&["x", "y"]));
        let b = interner.intern(set(&["y", "x"]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = interner.intern(set(&["x"]));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(interner.alive(), 2);
        drop((a, b));
        assert_eq!(interner.alive(), 1);
        let again = interner.intern(set(&["x", "y"]));
        assert_eq!(*again, set(&["x", "y"]));
        assert!(interner.intern(BTreeSet::new()).is_empty());
    }

    #[test]
    fn dead_sets_are_swept() {
        let interner = Interner::default();
        for i in 0..1000 {
            drop(interner.intern(set(&[&i.to_string()])));
        }
        let kept = interner.intern(set(&["kept"]));
        let buckets = interner.inner.lock().expect("lock").by_hash.len();
        assert!(buckets <= 200, "{buckets} buckets for 1 live set");
        assert_eq!(interner.alive(), 1);
        drop(kept);
    }
}
