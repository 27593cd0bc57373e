//! Request bodies kept for a second use: a retry sends the body again,
//! a mirror sends a copy. [`Replay`] passes the downstream body through
//! to the upstream frame by frame (it never waits for the whole body, so
//! streaming requests are not delayed) and keeps the frames (`Bytes` are
//! shared, not copied) up to [`BUFFER_LIMIT`]:
//!
//! - when the body ends within the limit, each mirror gets the whole
//!   body, and so does a retry;
//! - when the attempt is dropped before the body ended (a connect
//!   failure, a reset), a retry gets what was kept plus the rest of the
//!   downstream body, still unread;
//! - past the limit nothing is kept: no retry, no mirror (Envoy's
//!   behaviour with its per-request buffer limit).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use crate::forward::Body;

/// Most request body bytes kept for retries and mirrors (Envoy keeps up
/// to its per-request buffer limit; Istio's sidecars use 64 KiB-sized
/// buffers).
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// A whole body, kept.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    data: Vec<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Kept {
    /// The body again.
    pub fn into_body(self) -> Body {
        Chain {
            frames: self.frames(),
            rest: None,
        }
        .boxed_unsync()
    }

    fn frames(self) -> VecDeque<Frame<Bytes>> {
        let mut frames: VecDeque<_> = self.data.into_iter().map(Frame::data).collect();
        if let Some(t) = self.trailers {
            frames.push_back(Frame::trailers(t));
        }
        frames
    }
}

/// What a retry gets back from an attempt's body.
#[derive(Debug)]
pub enum Leftover {
    /// The body ended within the limit: all of it.
    Complete(Kept),
    /// The attempt was dropped before the end: what it read, the rest
    /// unread, and the mirrors still waiting for the whole body.
    Partial {
        /// Frames read so far.
        kept: Kept,
        /// The rest of the downstream body.
        rest: Body,
        /// Mirrors waiting for the whole body.
        mirrors: Vec<oneshot::Sender<Kept>>,
    },
}

/// Where a [`Replay`] sends what it kept.
#[derive(Debug, Default)]
pub struct Wanted {
    /// A retry (gets a [`Leftover`] when the body ends or is dropped).
    pub retry: Option<oneshot::Sender<Leftover>>,
    /// Mirrors (get the whole body if it ends within the limit).
    pub mirrors: Vec<oneshot::Sender<Kept>>,
}

impl Leftover {
    /// The body for the next attempt, kept again for `wanted`.
    pub fn into_replay(self, mut wanted: Wanted) -> Replay {
        match self {
            Leftover::Complete(kept) => Replay {
                pending: Some(kept.clone().frames()),
                // Nothing left to read: it is complete already.
                inner: None,
                size: kept.data.iter().map(Bytes::len).sum(),
                kept,
                wanted,
            },
            Leftover::Partial {
                kept,
                rest,
                mirrors,
            } => {
                wanted.mirrors.extend(mirrors);
                let size = kept.data.iter().map(Bytes::len).sum();
                let mut r = Replay::new(rest, wanted);
                r.pending = Some(kept.clone().frames());
                r.kept = kept;
                r.size = size;
                r
            }
        }
    }
}

/// A body passed through and kept (see the module docs).
#[derive(Debug)]
pub struct Replay {
    /// Frames already kept, sent first (a replayed prefix).
    pending: Option<VecDeque<Frame<Bytes>>>,
    inner: Option<Body>,
    kept: Kept,
    size: usize,
    wanted: Wanted,
}

impl Replay {
    /// Passes `body` through, keeping it for `wanted`.
    pub fn new(body: Body, wanted: Wanted) -> Self {
        Replay {
            pending: None,
            inner: Some(body),
            kept: Kept::default(),
            size: 0,
            wanted,
        }
    }

    /// Gives up keeping (past the limit, or the body failed).
    fn give_up(&mut self) {
        self.kept = Kept::default();
        self.wanted = Wanted::default();
    }

    fn keep(&mut self, frame: &Frame<Bytes>) {
        if self.wanted.retry.is_none() && self.wanted.mirrors.is_empty() {
            return;
        }
        if let Some(d) = frame.data_ref() {
            self.size += d.len();
            if self.size > BUFFER_LIMIT {
                self.give_up();
            } else if !d.is_empty() {
                self.kept.data.push(d.clone());
            }
        } else if let Some(t) = frame.trailers_ref() {
            self.kept.trailers = Some(t.clone());
        }
    }

    fn finish(&mut self) {
        for m in self.wanted.mirrors.drain(..) {
            let _ = m.send(self.kept.clone());
        }
        if let Some(r) = self.wanted.retry.take() {
            let _ = r.send(Leftover::Complete(std::mem::take(&mut self.kept)));
        }
    }
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.pending.as_mut().and_then(VecDeque::pop_front) {
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(inner) = this.inner.as_mut() else {
            this.finish();
            return Poll::Ready(None);
        };
        match ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                this.keep(&frame);
                // The caller may stop polling once the body says it ended.
                if this.inner.as_ref().is_some_and(|b| b.is_end_stream()) {
                    this.inner = None;
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                this.give_up();
                this.inner = None;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.inner = None;
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.as_ref().is_none_or(VecDeque::is_empty)
            && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let pending: u64 = self
            .pending
            .iter()
            .flatten()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let inner = self.inner.as_ref().map(|b| b.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(pending + inner.as_ref().map_or(0, SizeHint::lower));
        if let Some(upper) = inner.map_or(Some(0), |h| h.upper()) {
            hint.set_upper(pending + upper);
        }
        hint
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        if self
            .inner
            .as_ref()
            .is_some_and(http_body::Body::is_end_stream)
        {
            self.inner = None;
            self.finish();
        }
        let Some(retry) = self.wanted.retry.take() else {
            return;
        };
        let leftover = match self.inner.take() {
            None => Leftover::Complete(std::mem::take(&mut self.kept)),
            // `kept` holds every frame ahead of `rest`, replayed or read.
            Some(rest) => Leftover::Partial {
                kept: std::mem::take(&mut self.kept),
                rest,
                mirrors: std::mem::take(&mut self.wanted.mirrors),
            },
        };
        let _ = retry.send(leftover);
    }
}

/// Frames, then the rest of a body.
struct Chain {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl http_body::Body for Chain {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(f) = this.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        match this.rest.as_mut() {
            Some(r) => Pin::new(r).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(|b| b.is_end_stream())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::full;

    async fn collect(b: impl http_body::Body<Data = Bytes, Error = hyper::Error>) -> Vec<u8> {
        b.collect().await.expect("body").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_read_body_is_kept_for_the_retry_and_the_mirror() {
        let (rtx, rrx) = oneshot::channel();
        let (mtx, mrx) = oneshot::channel();
        let r = Replay::new(
            full("hello"),
            Wanted {
                retry: Some(rtx),
                mirrors: vec![mtx],
            },
        );
        assert_eq!(collect(r).await, b"hello");
        let mirrored = mrx.await.expect("the mirror gets the body");
        assert_eq!(collect(mirrored.into_body()).await, b"hello");
        let Ok(Leftover::Complete(k)) = rrx.await else {
            panic!("the retry gets the whole body");
        };
        // And a second retry of the replayed body still gets it.
        let (rtx2, rrx2) = oneshot::channel();
        let again = Leftover::Complete(k).into_replay(Wanted {
            retry: Some(rtx2),
            mirrors: Vec::new(),
        });
        assert_eq!(collect(again).await, b"hello");
        assert!(matches!(rrx2.await, Ok(Leftover::Complete(_))));
    }

    #[tokio::test]
    async fn a_body_that_says_it_ended_is_complete_without_a_last_poll() {
        let (mtx, mrx) = oneshot::channel();
        let mut r = Replay::new(
            full("once"),
            Wanted {
                retry: None,
                mirrors: vec![mtx],
            },
        );
        // Read the data frame only, as hyper does when the body reports
        // its end, then drop it.
        let frame = r.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), "once");
        assert!(http_body::Body::is_end_stream(&r));
        drop(r);
        let kept = mrx.await.expect("the mirror gets the body");
        assert_eq!(collect(kept.into_body()).await, b"once");
    }

    #[tokio::test]
    async fn an_unread_body_comes_back_whole() {
        let (rtx, rrx) = oneshot::channel();
        let r = Replay::new(
            full("unread"),
            Wanted {
                retry: Some(rtx),
                mirrors: Vec::new(),
            },
        );
        drop(r);
        let left = rrx.await.expect("a leftover");
        assert!(matches!(left, Leftover::Partial { .. }));
        let next = left.into_replay(Wanted::default());
        assert_eq!(collect(next).await, b"unread");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_passed_through_not_kept() {
        let (rtx, rrx) = oneshot::channel();
        let (mtx, mrx) = oneshot::channel();
        let big = vec![b'x'; BUFFER_LIMIT + 1];
        let r = Replay::new(
            full(big.clone()),
            Wanted {
                retry: Some(rtx),
                mirrors: vec![mtx],
            },
        );
        assert_eq!(collect(r).await, big);
        assert!(rrx.await.is_err(), "no retry");
        assert!(mrx.await.is_err(), "no mirror");
    }
}
