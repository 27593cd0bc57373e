use proptest::prelude::*;

use super::*;

/// A ClientHello record as a TLS 1.3 client sends it, with SNI and ALPN.
pub(crate) fn hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let mut list = vec![0u8];
        list.extend((name.len() as u16).to_be_bytes());
        list.extend(name.as_bytes());
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend(list);
        exts.extend(0u16.to_be_bytes());
        exts.extend((data.len() as u16).to_be_bytes());
        exts.extend(data);
    }
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend(p.as_bytes());
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend(list);
        exts.extend(16u16.to_be_bytes());
        exts.extend((data.len() as u16).to_be_bytes());
        exts.extend(data);
    }
    // supported_versions (TLS 1.3), an extension the parser skips.
    exts.extend([0, 43, 0, 3, 2, 3, 4]);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(32);
    body.extend([9u8; 32]);
    body.extend([0, 4, 0x13, 0x01, 0x13, 0x02]);
    body.extend([1, 0]);
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut rec = vec![22, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

#[test]
fn a_client_hello_gives_sni_and_alpn() {
    let h = hello(Some("Reviews.Shop.svc.cluster.local"), &["h2", "http/1.1"]);
    assert_eq!(
        client_hello(&h),
        Tls::Hello {
            server_name: Some("reviews.shop.svc.cluster.local".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
        }
    );
    assert_eq!(
        client_hello(&hello(None, &[])),
        Tls::Hello {
            server_name: None,
            alpn: vec![]
        }
    );
}

#[test]
fn a_truncated_hello_needs_more_and_garbage_is_not_tls() {
    let h = hello(Some("a.example.com"), &["h2"]);
    for n in 0..h.len() {
        assert_eq!(client_hello(&h[..n]), Tls::NeedMore, "prefix of {n} bytes");
    }
    assert_eq!(client_hello(b"GET / HTTP/1.1\r\n"), Tls::NotTls);
    assert_eq!(client_hello(&[22, 4, 0]), Tls::NotTls);
    // A record header that says the hello is shorter than it is.
    let mut short = h.clone();
    short[3..5].copy_from_slice(&20u16.to_be_bytes());
    assert_eq!(client_hello(&short), Tls::NotTls);
    // Not a ClientHello (a ServerHello, type 2).
    let mut server = h;
    server[5] = 2;
    assert_eq!(client_hello(&server), Tls::NotTls);
}

#[test]
fn http_request_lines_and_the_h2_preface() {
    assert_eq!(
        http(b"GET /x HTTP/1.1\r\nHost: a\r\n"),
        Http::Protocol("http/1.1")
    );
    assert_eq!(http(b"POST / HTTP/1.0\r\n"), Http::Protocol("http/1.0"));
    assert_eq!(http(H2_PREFACE), Http::Protocol("h2c"));
    assert_eq!(http(&H2_PREFACE[..10]), Http::NeedMore);
    assert_eq!(http(b"GE"), Http::NeedMore);
    assert_eq!(http(b"GET /very/long"), Http::NeedMore);
    assert_eq!(http(b"SSH-2.0-OpenSSH_9.2\r\n"), Http::NotHttp);
    assert_eq!(http(b"get / HTTP/1.1\r\n"), Http::NotHttp);
    assert_eq!(http(b"GET / HTTP/3\r\n"), Http::NotHttp);
    assert_eq!(http(b"GET /\n"), Http::NotHttp);
    assert_eq!(http(b"\x00\x01\x02"), Http::NotHttp);
}

#[test]
fn decide_waits_for_what_it_needs_and_gives_up_at_eof() {
    let both = Wanted {
        tls: true,
        http: true,
    };
    let h = hello(Some("a.example.com"), &["h2"]);
    assert_eq!(decide(&h[..10], both, false), None);
    let d = decide(&h, both, false).expect("decided");
    assert_eq!(d.transport, "tls");
    assert_eq!(d.server_name.as_deref(), Some("a.example.com"));
    assert_eq!(d.application_protocols, vec!["h2".to_string()]);
    let d = decide(b"GET / HTTP/1.1\r\n", both, false).expect("decided");
    assert_eq!(
        (d.transport, d.application_protocols),
        ("raw_buffer", vec!["http/1.1".to_string()])
    );
    assert_eq!(decide(b"GET /", both, false), None);
    let d = decide(b"GET /", both, true).expect("eof decides");
    assert!(d.application_protocols.is_empty());
    // Only TLS wanted: plain HTTP is just raw bytes.
    let tls_only = Wanted {
        tls: true,
        http: false,
    };
    let d = decide(b"GET / HTTP/1.1\r\n", tls_only, false).expect("decided");
    assert!(d.application_protocols.is_empty());
}

#[tokio::test]
async fn inspect_peeks_without_consuming_and_times_out_to_plain_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let wanted = Wanted {
        tls: true,
        http: true,
    };
    // Sent in two pieces: the inspector waits for the whole hello.
    let h = hello(Some("split.example.com"), &[]);
    let (first, rest) = h.split_at(20);
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    client.write_all(first).await.expect("write");
    let rest = rest.to_vec();
    let writer = tokio::spawn(async move {
        tokio::task::yield_now().await;
        client.write_all(&rest).await.expect("write rest");
        client
    });
    let d = inspect(&server, wanted, Some(Duration::from_secs(5))).await;
    assert_eq!(d.server_name.as_deref(), Some("split.example.com"));
    let mut got = vec![0u8; h.len()];
    let mut server = server;
    server
        .read_exact(&mut got)
        .await
        .expect("bytes still there");
    assert_eq!(got, h);
    let _client = writer.await.expect("writer");

    // A server-first protocol: the client says nothing, detection times out.
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let d = inspect(&server, wanted, Some(Duration::from_millis(50))).await;
    assert_eq!(d.transport, "raw_buffer");
    assert!(d.application_protocols.is_empty() && d.server_name.is_none());
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = client_hello(&bytes);
        let _ = http(&bytes);
        let _ = decide(&bytes, Wanted { tls: true, http: true }, true);
    }

    #[test]
    fn a_hello_with_any_name_round_trips(name in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}", cut in 0usize..400) {
        let h = hello(Some(&name), &["h2"]);
        match client_hello(&h) {
            Tls::Hello { server_name, .. } => prop_assert_eq!(server_name, Some(name)),
            other => prop_assert!(false, "{:?}", other),
        }
        let cut = cut.min(h.len() - 1);
        prop_assert_eq!(client_hello(&h[..cut]), Tls::NeedMore);
        // Corrupting the hello's bytes never panics.
        let mut bad = h;
        if let Some(b) = bad.get_mut(cut.max(5)) { *b ^= 0xff; }
        let _ = client_hello(&bad);
    }
}
