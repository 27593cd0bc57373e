//! Response bodies: whole buffers, and `/bytes/N`'s generated stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

/// The body of every HTTP response the sample sends.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// Size of the chunks `/bytes/N` is sent in.
const CHUNK_LEN: usize = 64 * 1024;

/// One chunk of the repeating pattern `abc…xyz` `0…9` `\n` (37 bytes):
/// readable in a terminal, and a shifted or dropped byte shows.
static CHUNK: [u8; CHUNK_LEN] = {
    const PATTERN: &[u8; 37] = b"abcdefghijklmnopqrstuvwxyz0123456789\n";
    let mut chunk = [0u8; CHUNK_LEN];
    let mut i = 0;
    while i < CHUNK_LEN {
        chunk[i] = PATTERN[i % PATTERN.len()];
        i += 1;
    }
    chunk
};

/// `len` bytes of the pattern, sent in [`CHUNK_LEN`] chunks that are slices
/// of one static buffer (no allocation per request; the pattern restarts at
/// each chunk).
#[derive(Debug)]
pub(crate) struct Repeat {
    remaining: u64,
}

impl Repeat {
    /// A body of exactly `len` bytes.
    pub(crate) fn new(len: u64) -> Self {
        Repeat { remaining: len }
    }
}

impl http_body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.remaining).map_or(CHUNK_LEN, |r| r.min(CHUNK_LEN));
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn repeat_sends_exactly_the_length_asked_for() {
        for len in [0u64, 1, 37, CHUNK_LEN as u64, CHUNK_LEN as u64 * 2 + 5] {
            let body = Repeat::new(len).collect().await.unwrap().to_bytes();
            assert_eq!(body.len() as u64, len);
            assert!(
                body.iter()
                    .take(37)
                    .eq(CHUNK.iter().take(len.min(37) as usize))
            );
        }
    }
}
