//! Which protocol a downstream connection opens with, and the service
//! form each gets.
//!
//! A request's future (route, forward, pool) is large, and hyper moves
//! what the service returns: the HTTP/1 dispatcher into its slot once a
//! request, HTTP/2 into each stream's task and through the task's stages
//! (that was ~7 000 instructions of `memcpy` a
//! request, ~11 % of an HTTP/2 request's). HTTP/2 connections therefore
//! get the service's futures boxed ([`Boxed`]: a pointer moves), HTTP/1
//! ones unboxed (one move a request costs less than the allocation).
//! [`opens_http1`] tells them apart by the connection's first bytes, as
//! hyper-util's `auto` server does after it (the HTTP/2 preface or not).

use std::future::Future;
use std::pin::Pin;

use hyper::service::Service;
use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `stream`'s first bytes (peeked, not taken) can't begin the
/// HTTP/2 preface: an HTTP/1 request. `false` when they are (a part of)
/// the preface, or when none could be read (closed, error).
pub(super) async fn opens_http1(stream: &TcpStream) -> bool {
    let mut first = [0u8; PREFACE.len()];
    match stream.peek(&mut first).await {
        Ok(n) if n > 0 => first[..n] != PREFACE[..n],
        _ => false,
    }
}

/// A service whose futures are boxed.
#[derive(Clone, Debug)]
pub(super) struct Boxed<S>(pub(super) S);

impl<S, R> Service<R> for Boxed<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: R) -> Self::Future {
        Box::pin(self.0.call(req))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// What `opens_http1` says of a connection whose client wrote `first`
    /// (then closed its side when `close`).
    async fn verdict(first: &'static [u8], close: bool) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (done, looked) = tokio::sync::oneshot::channel::<()>();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.expect("connect");
            c.write_all(first).await.expect("write");
            if close {
                c.shutdown().await.expect("shutdown");
            }
            // Held open until the server side has looked.
            let _ = looked.await;
        });
        let (server, _) = listener.accept().await.expect("accept");
        let h1 = opens_http1(&server).await;
        let mut again = [0u8; 4];
        if !first.is_empty() {
            // Peeked, not taken: the bytes are still there for hyper.
            let n = server.peek(&mut again).await.expect("peek");
            assert_eq!(&again[..n], &first[..n.min(first.len())]);
        }
        let _ = done.send(());
        client.await.expect("client");
        h1
    }

    #[tokio::test]
    async fn http1_requests_and_the_http2_preface_are_told_apart() {
        assert!(verdict(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", false).await);
        assert!(verdict(b"POST /x HTTP/1.1\r\n", false).await);
        // "PRI" alone could still become the preface; a 'P' then 'O' can't.
        assert!(verdict(b"PO", false).await);
        assert!(!verdict(PREFACE, false).await);
        assert!(!verdict(b"PRI * HT", false).await);
        // Nothing to read: not known to be HTTP/1 (the boxed form serves
        // both).
        assert!(!verdict(b"", true).await);
    }

    /// Adds one.
    #[derive(Clone, Debug)]
    struct PlusOne;

    impl Service<u32> for PlusOne {
        type Response = u32;
        type Error = ();
        type Future = std::future::Ready<Result<u32, ()>>;

        fn call(&self, n: u32) -> Self::Future {
            std::future::ready(Ok(n + 1))
        }
    }

    #[tokio::test]
    async fn boxed_services_answer_as_the_inner_one() {
        assert_eq!(Boxed(PlusOne).call(41).await, Ok(42));
    }
}
