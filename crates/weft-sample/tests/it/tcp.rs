//! The TCP echo and its half-close.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use crate::Sample;

fn connect(s: &Sample) -> TcpStream {
    let conn = TcpStream::connect(s.addr("tcp")).expect("connect to the tcp echo");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    conn
}

#[test]
fn echoes_as_it_comes_and_half_closes_after_the_client() {
    let s = Sample::start(&["--tcp", "127.0.0.1:0"]);
    let mut conn = connect(&s);
    // Echoed at once, while our side is still open.
    conn.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // Then a burst larger than socket buffers, our write side shut: all of
    // it comes back, followed by the server's end of stream.
    let burst: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let writer = {
        let mut w = conn.try_clone().unwrap();
        let burst = burst.clone();
        std::thread::spawn(move || {
            w.write_all(&burst).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), burst.len());
    assert!(back == burst, "bytes echoed in order, nothing added");
}

#[test]
fn an_empty_connection_gets_end_of_stream_back() {
    let s = Sample::start(&["--tcp", "127.0.0.1:0"]);
    let mut conn = connect(&s);
    conn.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    assert!(back.is_empty());
}

#[test]
fn sigterm_drains_open_connections() {
    let mut s = Sample::start(&["--tcp", "127.0.0.1:0"]);
    let mut conn = connect(&s);
    conn.write_all(b"one").unwrap();
    let mut buf = [0u8; 3];
    conn.read_exact(&mut buf).unwrap();
    s.terminate();
    // The open connection keeps working until the client is done.
    conn.write_all(b"two").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    conn.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"two");
    let status = s.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status}");
}
