//! The original destination of a connection that `REDIRECT` (or `TPROXY`)
//! sent to the proxy: `SO_ORIGINAL_DST` for IPv4, `IP6T_SO_ORIGINAL_DST`
//! for IPv6, read through socket2 (no unsafe code here).

use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::AsFd;

/// Where the client meant to connect before iptables redirected the
/// connection to the proxy's listener.
///
/// Takes any connected TCP socket: `&std::net::TcpStream`,
/// `&tokio::net::TcpStream`, `&socket2::Socket`. The family is the
/// socket's own; an IPv4 connection accepted on a dual-stack (`[::]`)
/// listener is asked as IPv4, as the kernel tracks it.
///
/// A connection that was not redirected has no original destination in
/// conntrack: the error is `NotFound` (`ENOENT`), or the address is the
/// socket's own local address when conntrack saw it without NAT.
#[cfg(target_os = "linux")]
pub fn original_dst<S: AsFd>(stream: &S) -> io::Result<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let local = socket.local_addr()?.as_socket();
    let original = match local {
        Some(SocketAddr::V6(a)) if a.ip().to_ipv4_mapped().is_none() => socket.original_dst_v6(),
        Some(_) => socket.original_dst_v4(),
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "original destination of a socket that is not IPv4 or IPv6",
            ));
        }
    }?;
    original.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the kernel returned an original destination that is not IPv4 or IPv6",
        )
    })
}

/// Where the client meant to connect; only Linux has `SO_ORIGINAL_DST`.
#[cfg(not(target_os = "linux"))]
pub fn original_dst<S>(_stream: &S) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_ORIGINAL_DST (transparent interception) needs Linux",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::original_dst;

    /// Without a redirect there is no original destination to find; the
    /// call must say so (or, when conntrack tracked the connection without
    /// NAT, return the address itself), for both families.
    #[test]
    fn not_redirected() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = TcpListener::bind(addr) else {
                continue; // no IPv6 on this host
            };
            let local = listener.local_addr().expect("local addr");
            let client = TcpStream::connect(local).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            for s in [&server, &client] {
                match original_dst(s) {
                    Ok(a) => {
                        assert_eq!(a, s.local_addr().expect("local"), "{addr}: not redirected")
                    }
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{addr}: {e}"),
                }
            }
        }
    }
}
