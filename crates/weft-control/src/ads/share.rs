//! Delta responses shared between streams: at a push every proxy of a
//! shape holds the same listing (the previous response's, itself shared),
//! subscribes to the same names (interned) and is offered the same
//! resources (the cache's arrays), so what it is sent — which resources
//! changed, which went, their encoding — is the same for all of them but
//! for the nonce. The first streams in that position work it out (select,
//! diff, encode: O(resources)); the rest take it from here and only frame
//! it with their nonce ([`super::wire::Body::frame`]).
//!
//! A [`Key`] is everything [`super::stream::Protocol::prepare`] reads,
//! compared by pointer where the cache and the interner share arrays.
//! Streams whose position can't be keyed cheaply (a holding with
//! exceptions, a long list of names just subscribed that isn't the whole
//! subscription) don't share. A key seen once is only remembered; the
//! second stream to come with it makes the shared response, so a position
//! only one stream is in (a workload's own clusters) costs no memory. The
//! memo is for one generation: the first key of a newer one clears it, and
//! streams still on an older one don't use it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tonic::Status;
use weft_xds::TypeUrl;

use super::current::{Packed, Source};
use super::held::Run;
use super::intern::Names;
use super::stream::{Prepared, TypeState, Want};

/// The most keys remembered; past it, keys seen only once are forgotten.
const MAX_KEYS: usize = 4096;

/// Names subscribed just now, as a key holds them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Wanted {
    /// None (a push).
    Nothing,
    /// The whole subscription (a first request).
    All,
    /// These few.
    Few(Vec<String>),
}

/// At most this many names just subscribed are keyed one by one.
const FEW: usize = 16;

/// Everything a delta response is made from, but the nonce.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    type_url: TypeUrl,
    version: u64,
    /// The resources in scope come from these arrays.
    offered: Source,
    names: Names,
    wildcard: bool,
    /// What the proxy holds: nothing, or a listing of these arrays.
    held: Option<(Source, Arc<[Run]>)>,
    answer: bool,
    wanted: Wanted,
}

impl Key {
    /// The key of the response a stream in `state` would get of
    /// `packed`, or `None` if its position is not worth keying.
    pub(crate) fn of(
        type_url: TypeUrl,
        version: u64,
        packed: &Packed,
        state: &TypeState,
        want: &Want,
    ) -> Option<Key> {
        let held = state.held.exact()?.map(|l| l.source());
        let wanted = if want.names.is_empty() {
            Wanted::Nothing
        } else if want.names.len() == state.names.len() && want.names == *state.names {
            Wanted::All
        } else if want.names.len() <= FEW {
            Wanted::Few(want.names.iter().cloned().collect())
        } else {
            return None;
        };
        Some(Key {
            type_url,
            version,
            offered: packed.source(),
            names: state.names.clone(),
            wildcard: state.wildcard,
            held,
            answer: want.answer,
            wanted,
        })
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        let names = Arc::ptr_eq(&self.names, &other.names)
            || (self.names.is_empty() && other.names.is_empty());
        let held = match (&self.held, &other.held) {
            (None, None) => true,
            (Some((a, ra)), Some((b, rb))) => a == b && ra[..] == rb[..],
            _ => false,
        };
        self.type_url == other.type_url
            && self.version == other.version
            && self.wildcard == other.wildcard
            && self.answer == other.answer
            && names
            && held
            && self.offered == other.offered
            && self.wanted == other.wanted
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.type_url.as_str().hash(state);
        self.version.hash(state);
        self.offered.hash(state);
        if self.names.is_empty() {
            0usize.hash(state);
        } else {
            (Arc::as_ptr(&self.names) as usize).hash(state);
        }
        self.wildcard.hash(state);
        match &self.held {
            None => 0u8.hash(state),
            Some((source, runs)) => {
                source.hash(state);
                runs[..].hash(state);
            }
        }
        self.answer.hash(state);
        self.wanted.hash(state);
    }
}

type Made = Result<Option<Arc<Prepared>>, Status>;

/// What the memo knows of a key.
enum Entry {
    /// One stream came with it.
    Seen,
    /// Shared: made by the second, or being made.
    Shared(Arc<OnceLock<Made>>),
}

/// One generation's keys.
#[derive(Default)]
struct Memo {
    version: u64,
    entries: HashMap<Key, Entry>,
}

/// The responses shared between a server's delta streams.
#[derive(Default)]
pub(crate) struct Shares {
    memo: Mutex<Memo>,
    /// Responses made to be shared.
    made: AtomicU64,
    /// Responses taken from the memo made by another stream.
    taken: AtomicU64,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shares")
            .field("made", &self.made)
            .field("taken", &self.taken)
            .finish_non_exhaustive()
    }
}

impl Shares {
    /// The response at `key`: `make`'s, shared with the other streams at
    /// the same key (made by one of them if it came first).
    pub(crate) fn get(
        &self,
        key: Key,
        make: impl FnOnce() -> Result<Option<Prepared>, Status>,
    ) -> Made {
        let cell = {
            let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            if key.version < memo.version {
                None // a stream lagging behind
            } else {
                if key.version > memo.version {
                    memo.entries.clear();
                    memo.version = key.version;
                }
                if memo.entries.len() >= MAX_KEYS && !memo.entries.contains_key(&key) {
                    memo.entries.retain(|_, e| matches!(e, Entry::Shared(_)));
                    if memo.entries.len() >= MAX_KEYS {
                        memo.entries.clear();
                    }
                }
                match memo.entries.get_mut(&key) {
                    None => {
                        memo.entries.insert(key, Entry::Seen);
                        None
                    }
                    Some(e @ Entry::Seen) => {
                        let cell = Arc::new(OnceLock::new());
                        *e = Entry::Shared(cell.clone());
                        Some(cell)
                    }
                    Some(Entry::Shared(cell)) => Some(cell.clone()),
                }
            }
        };
        let Some(cell) = cell else {
            return make().map(|p| p.map(Arc::new));
        };
        let mut made_here = false;
        let made = cell.get_or_init(|| {
            made_here = true;
            self.made.fetch_add(1, Ordering::Relaxed);
            make().map(|p| p.map(Arc::new))
        });
        if !made_here {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        made.clone()
    }

    /// Responses made to be shared, and taken shared.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.made.load(Ordering::Relaxed),
            self.taken.load(Ordering::Relaxed),
        )
    }
}
