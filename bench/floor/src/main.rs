//! The floor of an HTTP/1.1 reverse proxy on tokio + httparse: keep-alive,
//! Content-Length bodies only, one upstream connection per downstream one.
//! An experiment, not a product: how little a tokio proxy on httparse
//! costs per request, measured against nginx in bench/README.md
//! ("The floor of a Rust HTTP/1.1 proxy"). Not for real traffic: no
//! chunked bodies, no limits, no error answers.
//!
//!     cargo run --release -- LISTEN_ADDR UPSTREAM_ADDR
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(upstream)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("floor: no runtime");
        std::process::exit(1);
    };
    rt.block_on(async move {
        let l = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("floor: bind {listen}: {e}");
                std::process::exit(1);
            }
        };
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = conn(s, upstream).await;
            });
        }
    });
}

/// Parses a message head into the head to send on: where the head ends
/// and the body's length.
type Parse = fn(&[u8], &mut Vec<u8>) -> Option<(usize, usize)>;

/// Copies the headers but the connection's own; the body's length.
fn copy_headers(headers: &[httparse::Header], out: &mut Vec<u8>) -> Option<usize> {
    let mut len = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
        if h.name.eq_ignore_ascii_case("connection")
            || h.name.eq_ignore_ascii_case("proxy-connection")
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    Some(len)
}

/// A request head, rewritten to origin form.
fn parse_req(buf: &[u8], out: &mut Vec<u8>) -> Option<(usize, usize)> {
    let mut h = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Request::new(&mut h);
    let n = match r.parse(buf).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    out.clear();
    out.extend_from_slice(r.method?.as_bytes());
    out.push(b' ');
    let path = r.path?;
    // absolute-form → origin-form
    let path = path
        .strip_prefix("http://")
        .map(|p| &p[p.find('/').unwrap_or(p.len())..])
        .unwrap_or(path);
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let len = copy_headers(r.headers, out)?;
    out.extend_from_slice(b"x-request-id: 00000000-0000-4000-8000-000000000000\r\n\r\n");
    Some((n, len))
}

/// A response head.
fn parse_resp(buf: &[u8], out: &mut Vec<u8>) -> Option<(usize, usize)> {
    let mut h = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut h);
    let n = match r.parse(buf).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = r.code?;
    out.extend_from_slice(code.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let len = copy_headers(r.headers, out)?;
    out.extend_from_slice(b"server: floor\r\n\r\n");
    Some((n, len))
}

async fn read_message(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    parse: Parse,
) -> std::io::Result<bool> {
    loop {
        if !buf.is_empty()
            && let Some((n, len)) = parse(buf, out)
        {
            while buf.len() < n + len {
                if s.read_buf(buf).await? == 0 {
                    return Ok(false);
                }
            }
            out.extend_from_slice(&buf[n..n + len]);
            buf.advance(n + len);
            return Ok(true);
        }
        if buf.len() > 64 * 1024 {
            return Ok(false);
        }
        if s.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
}

async fn conn(mut down: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let mut up: Option<TcpStream> = None;
    let (mut dbuf, mut ubuf) = (BytesMut::with_capacity(8192), BytesMut::with_capacity(8192));
    let mut out = Vec::with_capacity(4096);
    loop {
        if !read_message(&mut down, &mut dbuf, &mut out, parse_req).await? {
            return Ok(());
        }
        if up.is_none() {
            let u = TcpStream::connect(upstream).await?;
            u.set_nodelay(true)?;
            up = Some(u);
        }
        let Some(u) = up.as_mut() else {
            return Ok(());
        };
        u.write_all(&out).await?;
        if !read_message(u, &mut ubuf, &mut out, parse_resp).await? {
            return Ok(());
        }
        down.write_all(&out).await?;
    }
}
