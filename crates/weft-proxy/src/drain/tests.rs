use std::convert::Infallible;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::*;

const LIMIT: Duration = Duration::from_secs(5);

/// Serves one connection on a loopback listener with `drain`, answering
/// every request `200 hi`; the client's stream and the serving task.
async fn served(drain: &Drain) -> (TcpStream, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let d = drain.clone();
    let server = tokio::spawn(async move {
        let (io, _) = listener.accept().await.expect("accept");
        let service = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(http::Response::new(crate::forward::full("hi")))
        });
        d.serve_http(io, service).await;
    });
    let client = TcpStream::connect(addr).await.expect("connect");
    (client, server)
}

/// Reads one response with a `Content-Length` (within [`LIMIT`]).
async fn response(c: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
        let n = timeout(LIMIT, c.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn http1_connections_are_served_and_close_once_draining() {
    let (signal, watched) = watch::channel(false);
    let drain = Drain::new(watched);
    let (mut c, server) = served(&drain).await;
    for _ in 0..2 {
        c.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .expect("write");
        let r = response(&mut c).await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nhi"), "{r}");
    }
    assert_eq!(drain.open(), 1);
    signal.send(true).expect("drain");
    // Idle on keep-alive: the connection closes.
    let mut buf = [0u8; 64];
    let n = timeout(LIMIT, c.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(n, 0);
    timeout(LIMIT, server)
        .await
        .expect("served in time")
        .expect("serving task");
    assert_eq!(drain.open(), 0);
}

#[tokio::test]
async fn http1_connections_keep_the_header_limits() {
    let (_signal, watched) = watch::channel(false);
    let drain = Drain::new(watched).with_limits(HttpLimits {
        max_request_headers: 2,
        ..HttpLimits::default()
    });
    let (mut c, _server) = served(&drain).await;
    c.write_all(b"GET / HTTP/1.1\r\nhost: a\r\nx-one: 1\r\nx-two: 2\r\n\r\n")
        .await
        .expect("write");
    let r = response(&mut c).await;
    assert!(
        r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{r}"
    );
}

#[tokio::test]
async fn http2_connections_are_served_through_auto() {
    let (_signal, watched) = watch::channel(false);
    let drain = Drain::new(watched);
    let (c, _server) = served(&drain).await;
    let (mut h2, conn) = h2::client::handshake(c).await.expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get("http://a/").body(()).expect("request");
    let (resp, _) = h2.send_request(req, true).expect("send");
    let resp = timeout(LIMIT, resp)
        .await
        .expect("a response in time")
        .expect("response");
    assert_eq!(resp.status(), http::StatusCode::OK);
    let mut body = resp.into_body();
    let chunk = timeout(LIMIT, body.data())
        .await
        .expect("a body in time")
        .expect("a chunk")
        .expect("data");
    assert_eq!(&chunk[..], b"hi");
}
