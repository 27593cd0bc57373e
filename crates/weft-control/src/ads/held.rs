//! What a proxy holds of one type, encoded: runs of the shared segment of
//! its shape and of its own, interleaved by name, without copying either.
//!
//! A [`Segment`] keeps a list of resources encoded once, back to back,
//! each already as the `resources` entry of a `DiscoveryResponse` (field
//! key, length, the `google.protobuf.Any`), so a response is its few head
//! fields and slices of these buffers ([`super::wire`]).

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{decode_varint, encode_varint, encoded_len_varint};
use weft_xds::pb::google::protobuf::Any;

/// The key of field 2, length-delimited: `resources` in
/// `DiscoveryResponse` and `DeltaDiscoveryResponse`, `resource` in
/// `Resource`.
pub(crate) const FIELD_2: u8 = 0x12;

/// Resources of one type, each encoded once as a `resources` entry, in
/// one buffer.
#[derive(Clone, Debug, Default)]
pub struct Segment {
    bytes: Bytes,
    /// Where each entry ends in `bytes`.
    ends: Arc<[usize]>,
}

impl Segment {
    /// `anys`, encoded.
    pub fn encode<'a>(anys: impl IntoIterator<Item = &'a Any>) -> Segment {
        let anys: Vec<&Any> = anys.into_iter().collect();
        let total: usize = anys.iter().map(|a| entry_len(a.encoded_len())).sum();
        let mut buf = BytesMut::with_capacity(total);
        let mut ends = Vec::with_capacity(anys.len());
        for any in anys {
            buf.put_u8(FIELD_2);
            encode_varint(any.encoded_len() as u64, &mut buf);
            any.encode_raw(&mut buf);
            ends.push(buf.len());
        }
        Segment {
            bytes: buf.freeze(),
            ends: ends.into(),
        }
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of entries `entries`.
    fn span(&self, entries: Range<usize>) -> Range<usize> {
        let start = match entries.start {
            0 => 0,
            i => self.ends[i - 1],
        };
        let end = match entries.end {
            0 => 0,
            i => self.ends[i - 1],
        };
        start..end
    }

    /// Entry `i`: key, length and the `Any`.
    pub fn entry(&self, i: usize) -> &[u8] {
        &self.bytes[self.span(i..i + 1)]
    }

    /// Entries `entries`, back to back, sharing this buffer.
    pub fn slice(&self, entries: Range<usize>) -> Bytes {
        self.bytes.slice(self.span(entries))
    }

    /// The encoded `Any` of resource `i` (its entry without key and
    /// length), sharing this buffer.
    pub fn any(&self, i: usize) -> Bytes {
        let span = self.span(i..i + 1);
        let mut rest = &self.bytes[span.start + 1..span.end];
        // Our own encoding: the length is there and right.
        let len = decode_varint(&mut rest).unwrap_or(0) as usize;
        self.bytes.slice(span.end - len..span.end)
    }

    /// Resource `i`, decoded.
    pub fn decode(&self, i: usize) -> Result<Any, prost::DecodeError> {
        Any::decode(self.any(i))
    }

    /// Entries `indices` (in that order), copied into a new segment.
    pub fn pick(&self, indices: &[usize]) -> Segment {
        let mut buf = BytesMut::with_capacity(indices.iter().map(|i| self.entry(*i).len()).sum());
        let mut ends = Vec::with_capacity(indices.len());
        for i in indices {
            buf.extend_from_slice(self.entry(*i));
            ends.push(buf.len());
        }
        Segment {
            bytes: buf.freeze(),
            ends: ends.into(),
        }
    }

    /// Whether both are the same buffer.
    pub fn same_buffer(&self, other: &Segment) -> bool {
        self.bytes.as_ptr() == other.bytes.as_ptr()
            && self.bytes.len() == other.bytes.len()
            && Arc::ptr_eq(&self.ends, &other.ends)
    }

    /// Encoded size of every entry.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }
}

impl PartialEq for Segment {
    fn eq(&self, other: &Segment) -> bool {
        self.same_buffer(other) || (self.ends == other.ends && self.bytes == other.bytes)
    }
}

impl Eq for Segment {}

/// How long the entry of an `Any` of `len` bytes is.
pub(crate) fn entry_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Consecutive entries of one of a [`Held`]'s two segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Run {
    /// Of the own segment, else of the shared one.
    pub own: bool,
    /// The entries.
    pub start: usize,
    pub end: usize,
}

/// Adds entry `i` of segment `own` to `runs`, extending the last run when
/// it is the next entry of the same segment.
pub(crate) fn push_entry(runs: &mut Vec<Run>, own: bool, i: usize) {
    match runs.last_mut() {
        Some(r) if r.own == own && r.end == i => r.end += 1,
        _ => runs.push(Run {
            own,
            start: i,
            end: i + 1,
        }),
    }
}

/// A proxy's resources of one type, encoded, in name order: runs of the
/// segment every proxy of its shape shares and of its workload's own.
#[derive(Clone, Debug, Default)]
pub struct Held {
    shared: Segment,
    own: Segment,
    runs: Arc<[Run]>,
}

impl Held {
    /// The entries `runs` names of `shared` and `own`, in that order.
    pub(crate) fn new(shared: Segment, own: Segment, runs: Arc<[Run]>) -> Held {
        debug_assert!(runs.iter().all(|r| {
            let seg = if r.own { &own } else { &shared };
            r.start < r.end && r.end <= seg.len()
        }));
        Held { shared, own, runs }
    }

    /// All of `shared` with all of `own` interleaved: `own[j]` goes after
    /// the first `at[j]` of `shared` (`at` non-decreasing).
    pub(crate) fn merged(shared: Segment, own: Segment, at: &[usize]) -> Held {
        debug_assert_eq!(own.len(), at.len());
        // Whole runs at a time: O(own resources), not O(all).
        let mut runs: Vec<Run> = Vec::new();
        let mut i = 0;
        let shared_up_to = |runs: &mut Vec<Run>, i: &mut usize, end: usize| {
            if *i < end {
                runs.push(Run {
                    own: false,
                    start: *i,
                    end,
                });
                *i = end;
            }
        };
        for (j, &before) in at.iter().enumerate() {
            shared_up_to(&mut runs, &mut i, before.min(shared.len()));
            push_entry(&mut runs, true, j);
        }
        shared_up_to(&mut runs, &mut i, shared.len());
        Held::new(shared, own, runs.into())
    }

    /// Which entries of the two segments, in order.
    pub(crate) fn runs(&self) -> &Arc<[Run]> {
        &self.runs
    }

    fn segment(&self, run: &Run) -> &Segment {
        if run.own { &self.own } else { &self.shared }
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Every resource's entry, in name order.
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.runs.iter().flat_map(move |r| {
            let seg = self.segment(r);
            (r.start..r.end).map(move |i| seg.entry(i))
        })
    }

    /// Each run's entries as one slice of its segment, in order: the
    /// `resources` of a response, back to back.
    pub fn slices(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.runs
            .iter()
            .map(move |r| self.segment(r).slice(r.start..r.end))
    }

    /// How many bytes the entries are.
    pub fn bytes_len(&self) -> usize {
        self.runs
            .iter()
            .map(|r| self.segment(r).span(r.start..r.end).len())
            .sum()
    }

    /// The resources, decoded (the debug API, unary fetches, tests).
    pub fn to_vec(&self) -> Result<Vec<Any>, prost::DecodeError> {
        self.runs
            .iter()
            .flat_map(|r| {
                let seg = self.segment(r);
                (r.start..r.end).map(move |i| seg.decode(i))
            })
            .collect()
    }

    /// Whether both hold the same resources: by pointer when both are
    /// the same runs of the same segments (the usual case), else by
    /// content.
    pub fn same(&self, other: &Held) -> bool {
        let segments = self.shared.same_buffer(&other.shared)
            && self.own.same_buffer(&other.own)
            && self.runs[..] == other.runs[..];
        segments || (self.len() == other.len() && self.entries().eq(other.entries()))
    }
}

impl From<Vec<Any>> for Held {
    fn from(all: Vec<Any>) -> Held {
        let shared = Segment::encode(&all);
        let runs: Arc<[Run]> = if shared.is_empty() {
            Arc::new([])
        } else {
            Arc::new([Run {
                own: false,
                start: 0,
                end: shared.len(),
            }])
        };
        Held::new(shared, Segment::default(), runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(name: &str) -> Any {
        Any {
            type_url: "t".into(),
            value: name.as_bytes().to_vec(),
        }
    }

    fn names(h: &Held) -> Vec<String> {
        h.to_vec()
            .expect("decode")
            .iter()
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .collect()
    }

    #[test]
    fn a_segment_entry_is_the_resources_field_of_a_response() {
        let big = any(&"x".repeat(300));
        let seg = Segment::encode([&any("a"), &big]);
        assert_eq!(seg.len(), 2);
        let response = weft_xds::pb::envoy::service::discovery::v3::DiscoveryResponse {
            resources: vec![any("a"), big.clone()],
            ..Default::default()
        };
        assert_eq!(seg.slice(0..2), response.encode_to_vec());
        assert_eq!(seg.bytes_len(), response.encoded_len());
        assert_eq!(seg.decode(1).expect("decode"), big);
        assert_eq!(seg.any(1), big.encode_to_vec());
        assert_eq!(seg.entry(0).len(), entry_len(any("a").encoded_len()));
    }

    #[test]
    fn own_resources_go_between_the_shared_ones() {
        let shared = Segment::encode(&[any("b"), any("d"), any("f")]);
        let own = Segment::encode(&[any("a"), any("c"), any("e"), any("g")]);
        let held = Held::merged(shared.clone(), own.clone(), &[0, 1, 2, 3]);
        assert_eq!(names(&held), ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(held.len(), 7);
        assert_eq!(
            held.slices().count(),
            7,
            "no two neighbours share a segment"
        );
        let two_at_end = Held::merged(shared.clone(), own.clone(), &[3, 3, 3, 3]);
        assert_eq!(names(&two_at_end), ["b", "d", "f", "a", "c", "e", "g"]);
        assert_eq!(two_at_end.slices().count(), 2, "one run per segment");
        let joined: Vec<u8> = two_at_end.slices().flatten().collect();
        assert_eq!(joined.len(), two_at_end.bytes_len());
        assert_eq!(names(&Held::from(vec![any("x")])), ["x"]);
        assert!(Held::default().is_empty());
        assert!(Held::from(Vec::new()).is_empty());

        // Same segments: the same; equal content from other buffers too.
        let again = Held::merged(shared.clone(), own, &[0, 1, 2, 3]);
        assert!(held.same(&again));
        let copied = Held::from(held.to_vec().expect("decode"));
        assert!(held.same(&copied) && copied.same(&held));
        assert!(!held.same(&two_at_end));
        assert!(
            !held.same(&Held::from(
                (0..3)
                    .map(|i| shared.decode(i).expect("decode"))
                    .collect::<Vec<_>>()
            ))
        );
    }
}
