//! Transparent mode: iptables (`weft iptables`) redirects the workload's
//! outbound TCP to the outbound port (15001) and inbound TCP to the
//! inbound port (15006); each connection's original destination says
//! where it was going.
//!
//! - **Original destination**: `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`
//!   for REDIRECT (conntrack's NAT record); for TPROXY, which doesn't
//!   NAT, the accepted socket's own local address.
//! - **Outbound** (`virtualOutbound`, `use_original_dst`): the listener
//!   of the original destination — `<ip>_<port>`, else `0.0.0.0_<port>` —
//!   serves the connection, else `virtualOutbound`'s own chains
//!   (`PassthroughCluster` to the original destination, or
//!   `BlackHoleCluster`), as Envoy hands a connection to the listener
//!   its original destination names.
//! - **Inbound** (`virtualInbound`): its chains by destination port,
//!   transport and application protocol; `inbound|<port>||` to the app,
//!   `InboundPassthroughCluster` to the original destination from
//!   127.0.0.6 / `::6`, which the iptables rules let through uncaptured.
//!
//! A connection whose original destination is the capture port itself
//! (a client dialling 15001 or 15006 directly) would loop through the
//! passthrough back into the proxy; it is closed, as Istio's
//! `virtualOutbound-blackhole` / `virtualInbound-blackhole` chains do.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;
use crate::listener::serve::{Bound, Connection, serve_connection};

/// The outbound capture listener's name in LDS.
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// The inbound capture listener's name in LDS.
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
/// The source of inbound passthrough connections (Istio's
/// `InboundPassthroughBindIpv4`), excluded from capture by the rules.
pub const PASSTHROUGH_SOURCE_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// Its IPv6 twin (`::6`, which `weft iptables --ipv6` puts on `lo`).
pub const PASSTHROUGH_SOURCE_V6: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 6);

/// Which capture port a listener is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// 15001: the workload's connections to others.
    Outbound,
    /// 15006: others' connections to the workload.
    Inbound,
}

/// Binds a capture listener; `transparent` sets `IP_TRANSPARENT` (TPROXY
/// inbound: the socket accepts connections to addresses that aren't the
/// host's). An IPv6 wildcard address listens dual-stack.
pub fn bind(addr: SocketAddr, transparent: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if transparent {
        match addr {
            SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            SocketAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Accepts on a capture listener until draining starts.
pub async fn serve(listener: TcpListener, side: Side, bound: Arc<Bound>, drain: Drain) {
    let capture_port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = drain.started() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(target: "weft::proxy", ?side, error = %e, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (bound, drain) = (bound.clone(), drain.clone());
        tokio::spawn(async move { connection(stream, side, capture_port, bound, drain).await });
    }
}

/// Where a captured connection was going: its NAT original destination,
/// else (TPROXY, or not redirected) its local address; IPv4-mapped
/// addresses as IPv4.
pub fn original_dst(stream: &TcpStream) -> std::io::Result<SocketAddr> {
    let addr = match weft_iptables::original_dst(stream) {
        Ok(a) => a,
        Err(_) => stream.local_addr()?,
    };
    Ok(unmapped(addr))
}

fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

async fn connection(
    stream: TcpStream,
    side: Side,
    capture_port: u16,
    bound: Arc<Bound>,
    drain: Drain,
) {
    let (original, local) = match (original_dst(&stream), stream.local_addr()) {
        (Ok(o), Ok(l)) => (o, unmapped(l)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(target: "weft::proxy", ?side, error = %e, "no original destination; closed");
            return;
        }
    };
    if original.port() == capture_port && is_own(original.ip(), local.ip()) {
        tracing::debug!(target: "weft::proxy", ?side, %original, "a connection to the capture port itself (not redirected); closed to avoid a loop");
        return;
    }
    let snapshot = bound.config.load_full();
    let listener = match side {
        Side::Outbound => snapshot
            .outbound_listener(Some(original.ip()), original.port())
            .or_else(|| snapshot.parts.listeners.get(VIRTUAL_OUTBOUND)),
        Side::Inbound => snapshot.parts.listeners.get(VIRTUAL_INBOUND),
    }
    .cloned();
    let Some(listener) = listener else {
        tracing::debug!(target: "weft::proxy", ?side, %original, "no listener for the connection (no config yet?); closed");
        return;
    };
    let upstream_source = (side == Side::Inbound).then(|| match original.ip() {
        IpAddr::V4(_) => IpAddr::V4(PASSTHROUGH_SOURCE_V4),
        IpAddr::V6(_) => IpAddr::V6(PASSTHROUGH_SOURCE_V6),
    });
    let conn = Connection {
        listener,
        snapshot,
        destination_port: original.port(),
        original_dst: Some(original),
        upstream_source,
    };
    serve_connection(stream, conn, bound, drain).await;
}

/// Whether `ip` is the capture listener's own address (or it listens on
/// every address and `ip` is loopback).
fn is_own(ip: IpAddr, listener: IpAddr) -> bool {
    ip == listener || ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let a: SocketAddr = "[::ffff:10.1.2.3]:80".parse().expect("addr");
        assert_eq!(
            unmapped(a),
            "10.1.2.3:80".parse::<SocketAddr>().expect("addr")
        );
        let b: SocketAddr = "[fd00::1]:80".parse().expect("addr");
        assert_eq!(unmapped(b), b);
    }

    /// Not redirected (a client dialling the capture port on loopback):
    /// the original destination is the listener itself, which the proxy
    /// refuses rather than loop.
    #[tokio::test]
    async fn a_direct_connection_is_its_own_destination() {
        let l = bind("127.0.0.1:0".parse().expect("addr"), false).expect("bind");
        let addr = l.local_addr().expect("addr");
        let _c = TcpStream::connect(addr).await.expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        assert_eq!(original_dst(&s).expect("original"), addr);
    }
}
