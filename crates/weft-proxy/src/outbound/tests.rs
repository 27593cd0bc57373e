//! `CONNECT` tunnels through the explicit proxy port follow their
//! chain's TCP proxy settings.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Outbound, serve};
use crate::breaker::Limits;
use crate::cluster::{Cluster, Discovery, LbPolicy, LbSettings, UpstreamProtocol, UpstreamTls};
use crate::drain::Drain;
use crate::endpoint::{Address, Endpoint, LoadAssignment};
use crate::listener::{Direction, FilterChain, Listener, NetworkFilter};
use crate::route::Target;
use crate::snapshot::{Parts, Snapshot};

/// A TCP server that reads and never answers; it counts the closes it sees.
async fn silent() -> (String, Arc<tokio::sync::Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let closed = Arc::new(tokio::sync::Notify::new());
    let told = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let told = told.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                told.notify_one();
            });
        }
    });
    (addr, closed)
}

/// Port 9000's outbound listener: one TCP chain to cluster `db` (at
/// `endpoint`) whose proxy closes after `idle`.
fn snapshot(endpoint: &str, idle: Duration) -> Snapshot {
    let c = Cluster {
        name: "db".into(),
        discovery: Discovery::Static,
        lb_policy: LbPolicy::RoundRobin,
        lb: LbSettings::default(),
        connect_timeout: Duration::from_secs(2),
        protocol: UpstreamProtocol::Http1,
        idle_timeout: None,
        max_requests_per_connection: None,
        max_concurrent_streams: None,
        max_connection_duration: None,
        limits: Limits::default(),
        outlier: None,
        load_assignment: Some(LoadAssignment {
            cluster: "db".into(),
            endpoints: vec![Arc::new(Endpoint::new(Address::Socket(
                endpoint.parse().expect("addr"),
            )))],
            ..LoadAssignment::default()
        }),
        tls_not_originated: UpstreamTls::None,
    };
    let l = Listener {
        name: "0.0.0.0_9000".into(),
        address: None,
        bind: false,
        direction: Direction::Outbound,
        chains: vec![FilterChain {
            name: "db".into(),
            destination_port: None,
            server_names: Vec::new(),
            transport_protocol: String::new(),
            application_protocols: Vec::new(),
            filter: NetworkFilter::Tcp(Target::Cluster("db".into())),
            tcp_idle_timeout: idle,
            tcp_max_duration: None,
            forwarded: Default::default(),
        }],
        default_chain: None,
    };
    let parts = Parts {
        clusters: [(c.name.clone(), Arc::new(c))].into_iter().collect(),
        listeners: [(l.name.clone(), Arc::new(l))].into_iter().collect(),
        ..Parts::default()
    };
    Snapshot::build(parts).expect("builds")
}

#[tokio::test]
async fn a_connect_tunnel_closes_after_its_chains_idle_timeout() {
    let (db, closed) = silent().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = listener.local_addr().expect("addr");
    let outbound = Arc::new(Outbound {
        config: Arc::new(ArcSwap::from_pointee(snapshot(
            &db,
            Duration::from_millis(200),
        ))),
        upstreams: crate::forward::Upstreams::new(),
        stats: Arc::default(),
        detect_timeout: None,
        local_ip: None,
    });
    let (_stop, signal) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(listener, outbound, Drain::new(signal)));
    let mut client = TcpStream::connect(proxy).await.expect("connect");
    client
        .write_all(b"CONNECT db.shop.svc:9000 HTTP/1.1\r\nHost: db.shop.svc:9000\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the answer");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    client.write_all(b"hello").await.expect("write");
    // Then silence: the tunnel closes after 200 ms (not Envoy's default
    // hour), both ways.
    tokio::time::timeout(Duration::from_secs(5), closed.notified())
        .await
        .expect("the upstream sees the close");
    let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .expect("the client sees the close")
        .unwrap_or(0);
    assert_eq!(n, 0);
}
