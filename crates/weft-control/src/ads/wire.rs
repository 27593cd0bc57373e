//! xDS responses encoded straight into gRPC frames from the resources'
//! shared encodings ([`Segment`](super::held::Segment)).
//!
//! A `DiscoveryResponse` is a few head fields around its `resources`, and
//! each resource is already encoded, once per shared segment, as its
//! `resources` entry. So a response is the 5-byte gRPC header and the
//! head fields, written here, then slices of the shared buffers, then the
//! fields after `resources`: byte for byte what prost writes for the same
//! message (prost writes fields in tag order and skips empty scalars), in
//! chunks h2 can send as they are. Small pieces are copied into chunks of
//! [`CHUNK`] bytes so h2 doesn't get thousands of tiny frames; bigger ones
//! go through without a copy.
//!
//! Everything but the nonce is written once into a [`Body`] (the fields
//! before the nonce and those after it), which streams sending the same
//! response share ([`super::share`]); each frames it with its nonce.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tonic::Status;

use super::current::Item;
use super::held::{FIELD_2, Held, entry_len};
use super::throttle::Permit;

/// The gRPC frame header: a compressed flag and a big-endian length.
pub(crate) const HEADER: usize = 5;

/// Pieces at least this long are passed through as they are; shorter
/// ones are copied into a chunk.
const PASS_THROUGH: usize = 16 * 1024;

/// The size chunks of copied pieces are flushed at.
const CHUNK: usize = 64 * 1024;

/// One gRPC message frame (header and message) in chunks, ready to send.
#[derive(Clone, Debug, Default)]
pub struct Wire {
    chunks: Vec<Bytes>,
    len: usize,
    /// The push permit it holds until it has been written.
    permit: Option<Arc<Permit>>,
}

impl Wire {
    /// Holds `permit` until the frame has been written (or dropped).
    pub(crate) fn hold(&mut self, permit: Arc<Permit>) {
        self.permit = Some(permit);
    }

    /// The chunks, and the permit to drop once they are written.
    pub(crate) fn into_parts(self) -> (Vec<Bytes>, Option<Arc<Permit>>) {
        (self.chunks, self.permit)
    }

    /// The chunks, in order.
    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// The message's length (without the gRPC header).
    pub fn message_len(&self) -> usize {
        self.len - HEADER
    }

    /// The whole frame in one buffer (tests, the generated services).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.freeze()
    }

    /// The message, decoded (the generated services' streams).
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.to_bytes().slice(HEADER..))
    }
}

impl From<Bytes> for Wire {
    /// A whole frame, header included, in one buffer.
    fn from(frame: Bytes) -> Wire {
        Wire {
            len: frame.len(),
            chunks: vec![frame],
            permit: None,
        }
    }
}

/// Writes a frame (or a message body without the gRPC header) of a
/// known length.
struct Builder {
    chunks: Vec<Bytes>,
    pending: BytesMut,
    len: usize,
}

impl Builder {
    /// A frame: the gRPC header, then `message_len` bytes of message.
    fn new(message_len: usize) -> Result<Builder, Status> {
        let header = u32::try_from(message_len).map_err(|_| {
            Status::resource_exhausted(format!(
                "Cannot return body with more than 4GB of data but got {message_len} bytes"
            ))
        })?;
        let mut pending = BytesMut::with_capacity((HEADER + message_len).min(512));
        pending.put_u8(0);
        pending.put_u32(header);
        Ok(Builder {
            chunks: Vec::new(),
            pending,
            len: HEADER + message_len,
        })
    }

    /// Part of a message, `len` bytes, without a header.
    fn part(len: usize) -> Builder {
        Builder {
            chunks: Vec::new(),
            pending: BytesMut::with_capacity(len.min(512)),
            len,
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.chunks.push(self.pending.split().freeze());
        }
    }

    /// Room for `n` more bytes in the pending chunk.
    fn room(&mut self, n: usize) -> &mut BytesMut {
        if self.pending.len() + n > CHUNK && !self.pending.is_empty() {
            self.flush();
        }
        if self.pending.capacity() - self.pending.len() < n {
            self.pending.reserve(n.max(CHUNK.min(self.len)));
        }
        &mut self.pending
    }

    /// A string field, left out when empty (as prost does for proto3).
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.repeated_string(tag, s);
        }
    }

    /// One element of a repeated string field (written even when empty).
    fn repeated_string(&mut self, tag: u32, s: &str) {
        let buf = self.room(string_len(tag, s));
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }

    /// A key and a length.
    fn head(&mut self, key: u8, len: usize) {
        let buf = self.room(1 + encoded_len_varint(len as u64));
        buf.put_u8(key);
        encode_varint(len as u64, buf);
    }

    /// Encoded bytes, passed through when big, else copied.
    fn bytes(&mut self, b: Bytes) {
        if b.len() >= PASS_THROUGH {
            self.flush();
            self.chunks.push(b);
        } else {
            self.room(b.len()).extend_from_slice(&b);
        }
    }

    /// The chunks written.
    fn pieces(mut self) -> Vec<Bytes> {
        self.flush();
        debug_assert_eq!(
            self.chunks.iter().map(Bytes::len).sum::<usize>(),
            self.len,
            "the length announced"
        );
        self.chunks
    }

    fn finish(self) -> Wire {
        let len = self.len;
        Wire {
            chunks: self.pieces(),
            len,
            permit: None,
        }
    }
}

/// A response message without its nonce, encoded once: the fields before
/// the nonce and those after it (in field order, as prost writes them).
/// Streams sending the same response share it, each framing it with its
/// own nonce ([`Body::frame`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Body {
    before: Vec<Bytes>,
    after: Vec<Bytes>,
    /// Of both.
    len: usize,
}

impl Body {
    /// The response as a gRPC frame with `nonce`: the shared pieces of
    /// [`PASS_THROUGH`] bytes or more as they are, the rest copied.
    pub(crate) fn frame(&self, nonce: &str) -> Result<Wire, Status> {
        let mut b = Builder::new(self.len + optional_len(5, nonce))?;
        for piece in &self.before {
            b.bytes(piece.clone());
        }
        b.string(5, nonce);
        for piece in &self.after {
            b.bytes(piece.clone());
        }
        Ok(b.finish())
    }
}

/// Length of a string field `tag` holding `s` (not left out).
fn string_len(tag: u32, s: &str) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

/// Length of a string field, 0 when left out.
fn optional_len(tag: u32, s: &str) -> usize {
    if s.is_empty() { 0 } else { string_len(tag, s) }
}

/// The fields of a state-of-the-world response besides its resources
/// and nonce.
pub(crate) struct SotwHead<'a> {
    pub version_info: &'a str,
    pub type_url: &'a str,
}

/// A `DiscoveryResponse` of `resources`, without its nonce (the last
/// field).
pub(crate) fn sotw(head: &SotwHead<'_>, resources: &Held) -> Body {
    let len =
        optional_len(1, head.version_info) + resources.bytes_len() + optional_len(4, head.type_url);
    let mut b = Builder::part(len);
    b.string(1, head.version_info);
    for slice in resources.slices() {
        b.bytes(slice);
    }
    b.string(4, head.type_url);
    Body {
        before: b.pieces(),
        after: Vec::new(),
        len,
    }
}

/// The fields of a delta response besides its resources and nonce.
pub(crate) struct DeltaHead<'a> {
    pub system_version_info: &'a str,
    pub type_url: &'a str,
    pub removed_resources: &'a [String],
}

/// One resource of a delta response: its name, version and encoding.
pub(crate) struct DeltaResource<'a> {
    pub version: String,
    pub item: Item<'a>,
}

impl DeltaResource<'_> {
    /// The encoded `Resource` message's length.
    fn len(&self) -> usize {
        optional_len(1, &self.version)
            + entry_len(self.item.any_len())
            + optional_len(3, self.item.name)
    }
}

/// A `DeltaDiscoveryResponse` without its nonce: each `Resource`'s head
/// written here around the resource's shared encoding, then
/// `removed_resources` (the field after the nonce).
pub(crate) fn delta(head: &DeltaHead<'_>, resources: &[DeltaResource<'_>]) -> Body {
    let entries: usize = resources.iter().map(|r| entry_len(r.len())).sum();
    let before =
        optional_len(1, head.system_version_info) + entries + optional_len(4, head.type_url);
    let mut b = Builder::part(before);
    b.string(1, head.system_version_info);
    for r in resources {
        b.head(FIELD_2, r.len());
        b.string(1, &r.version);
        let any = r.item.any();
        b.head(FIELD_2, any.len());
        b.bytes(any);
        b.string(3, r.item.name);
    }
    b.string(4, head.type_url);
    let after: usize = head
        .removed_resources
        .iter()
        .map(|n| string_len(6, n))
        .sum();
    let mut a = Builder::part(after);
    for name in head.removed_resources {
        a.repeated_string(6, name);
    }
    Body {
        before: b.pieces(),
        after: a.pieces(),
        len: before + after,
    }
}

#[cfg(test)]
mod tests;
