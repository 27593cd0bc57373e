//! What an HTTP/2 upstream says of its own limits: the
//! `SETTINGS_MAX_CONCURRENT_STREAMS` of the SETTINGS frames it sends.
//! hyper obeys them (it queues streams past the limit on the connection)
//! but doesn't tell; the pool needs the number to open another
//! connection when one is full, as Envoy's HTTP/2 pool does. So the
//! socket's read side is watched ([`Watched`]): a small state machine
//! steps over the frames as the bytes go by to hyper — 9-byte headers,
//! payloads skipped without a copy — and reads the settings of SETTINGS
//! frames only. Bounded state, no allocation; a malformed stream is
//! hyper's to reject, the watcher merely stops learning from it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// SETTINGS frame type.
const SETTINGS: u8 = 0x4;
/// SETTINGS flag: an acknowledgement (no settings in it).
const ACK: u8 = 0x1;
/// `SETTINGS_MAX_CONCURRENT_STREAMS`.
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// The peer's settings as read so far.
#[derive(Debug)]
pub(super) struct Peer {
    /// Its `SETTINGS_MAX_CONCURRENT_STREAMS` (unlimited until it says).
    max_streams: AtomicU32,
    /// Whether its first SETTINGS frame has been read.
    known: AtomicBool,
    /// Told when it is.
    told: Notify,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            max_streams: AtomicU32::new(u32::MAX),
            known: AtomicBool::new(false),
            told: Notify::new(),
        }
    }
}

impl Peer {
    /// Streams the peer lets us have in flight at once (at least one).
    pub(super) fn max_streams(&self) -> u32 {
        self.max_streams.load(Ordering::Relaxed).max(1)
    }

    /// Ready once the peer's first SETTINGS frame has been read.
    pub(super) async fn known(&self) {
        let told = self.told.notified();
        tokio::pin!(told);
        told.as_mut().enable();
        if self.known.load(Ordering::SeqCst) {
            return;
        }
        told.await;
    }

    fn learn(&self, id: u16, value: u32) {
        if id == MAX_CONCURRENT_STREAMS {
            self.max_streams.store(value, Ordering::Relaxed);
        }
    }

    fn settled(&self) {
        if !self.known.swap(true, Ordering::SeqCst) {
            self.told.notify_waiters();
        }
    }
}

/// Where the scanner is in the peer's frames.
#[derive(Debug, Default)]
struct Scan {
    /// The frame header read so far.
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes of the current frame still to come (after a whole
    /// header).
    left: u32,
    /// Whether the current frame is a SETTINGS frame with settings.
    settings: bool,
    /// The setting read so far (6 bytes: id, value).
    entry: [u8; 6],
    entry_len: usize,
}

impl Scan {
    /// Steps over `bytes`, telling `peer` each setting and each SETTINGS
    /// frame's end.
    fn feed(&mut self, mut bytes: &[u8], peer: &Peer) {
        while !bytes.is_empty() {
            if self.left == 0 {
                let n = (9 - self.head_len).min(bytes.len());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[..n]);
                self.head_len += n;
                bytes = &bytes[n..];
                if self.head_len < 9 {
                    return;
                }
                self.head_len = 0;
                let [l0, l1, l2, kind, flags, ..] = self.head;
                self.left = u32::from_be_bytes([0, l0, l1, l2]);
                self.settings = kind == SETTINGS && flags & ACK == 0;
                self.entry_len = 0;
                if self.left == 0 && self.settings {
                    peer.settled();
                }
                continue;
            }
            let n = (self.left as usize).min(bytes.len());
            if self.settings {
                for &b in &bytes[..n] {
                    self.entry[self.entry_len] = b;
                    self.entry_len += 1;
                    if self.entry_len == 6 {
                        self.entry_len = 0;
                        let [i0, i1, v0, v1, v2, v3] = self.entry;
                        peer.learn(
                            u16::from_be_bytes([i0, i1]),
                            u32::from_be_bytes([v0, v1, v2, v3]),
                        );
                    }
                }
            }
            bytes = &bytes[n..];
            // `n` is at most `left`, a u32.
            self.left -= n as u32;
            if self.left == 0 && self.settings {
                peer.settled();
            }
        }
    }
}

/// A connection whose incoming bytes are scanned for the peer's
/// settings on their way through.
#[derive(Debug)]
pub(super) struct Watched<T> {
    inner: T,
    scan: Scan,
    peer: Arc<Peer>,
}

impl<T> Watched<T> {
    /// Watches `inner`'s reads for `peer`.
    pub(super) fn new(inner: T, peer: Arc<Peer>) -> Self {
        Watched {
            inner,
            scan: Scan::default(),
            peer,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.scan.feed(&buf.filled()[before..], &this.peer);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    fn setting(id: u16, value: u32) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&value.to_be_bytes());
        s
    }

    /// A server's preface (SETTINGS: window 65535, max streams 7), its
    /// ACK, a DATA frame holding bytes that look like a SETTINGS frame,
    /// then a later SETTINGS lowering the limit to 2.
    fn stream() -> Vec<u8> {
        let mut first = setting(0x4, 65535);
        first.extend(setting(MAX_CONCURRENT_STREAMS, 7));
        let mut bytes = frame(SETTINGS, 0, &first);
        bytes.extend(frame(SETTINGS, ACK, &[]));
        let fake = frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 99));
        bytes.extend(frame(0x0, 0, &fake));
        bytes.extend(frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 2)));
        bytes
    }

    #[test]
    fn settings_are_read_and_other_frames_skipped() {
        let bytes = stream();
        let first_len = 9 + 12;
        let (peer, mut scan) = (Peer::default(), Scan::default());
        assert_eq!(peer.max_streams(), u32::MAX);
        scan.feed(&bytes[..first_len - 1], &peer);
        assert!(!peer.known.load(Ordering::SeqCst), "not whole yet");
        scan.feed(&bytes[first_len - 1..first_len], &peer);
        assert!(peer.known.load(Ordering::SeqCst));
        assert_eq!(peer.max_streams(), 7);
        scan.feed(&bytes[first_len..], &peer);
        assert_eq!(peer.max_streams(), 2, "the DATA frame's look-alike skipped");
    }

    #[test]
    fn zero_streams_still_lets_one_go() {
        let (peer, mut scan) = (Peer::default(), Scan::default());
        scan.feed(
            &frame(SETTINGS, 0, &setting(MAX_CONCURRENT_STREAMS, 0)),
            &peer,
        );
        assert_eq!(peer.max_streams(), 1);
    }

    proptest! {
        /// However the bytes are split across reads, the same settings
        /// are read.
        #[test]
        fn any_split_reads_the_same(cuts in proptest::collection::vec(0usize..80, 0..12)) {
            let bytes = stream();
            let (peer, mut scan) = (Peer::default(), Scan::default());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                scan.feed(&bytes[at..c], &peer);
                at = c;
            }
            prop_assert!(peer.known.load(Ordering::SeqCst));
            prop_assert_eq!(peer.max_streams(), 2);
        }

        /// Garbage never panics.
        #[test]
        fn garbage_is_harmless(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (peer, mut scan) = (Peer::default(), Scan::default());
            scan.feed(&bytes, &peer);
            prop_assert!(peer.max_streams() >= 1);
        }
    }
}
