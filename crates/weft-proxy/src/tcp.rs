//! TCP proxying: connect to an endpoint of a cluster, then copy both
//! ways until each side has closed (half-close is passed on).

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::cluster::Discovery;
use crate::endpoint::ActiveRequest;
use crate::errors::ProxyError;
use crate::snapshot::Snapshot;

/// Connects to an endpoint of `cluster` (for an original-destination
/// cluster, to `original`), within the cluster's connect timeout.
pub async fn connect(
    snapshot: &Snapshot,
    cluster: &str,
    original: &str,
) -> Result<(TcpStream, Option<ActiveRequest>), ProxyError> {
    connect_from(snapshot, cluster, original, None).await
}

/// [`connect`], from `source` when given (Envoy's `upstream_bind_config`).
pub async fn connect_from(
    snapshot: &Snapshot,
    cluster: &str,
    original: &str,
    source: Option<IpAddr>,
) -> Result<(TcpStream, Option<ActiveRequest>), ProxyError> {
    let entry = snapshot
        .cluster(cluster)
        .ok_or_else(|| ProxyError::NoCluster(cluster.to_string()))?;
    let (address, active) = if entry.cluster.discovery == Discovery::OriginalDst {
        (original.to_string(), None)
    } else {
        let e = entry
            .pick()
            .ok_or_else(|| ProxyError::NoHealthyUpstream(cluster.to_string()))?;
        (e.address.to_string(), Some(e.start_request()))
    };
    let fail = |reason: String| ProxyError::ConnectFailure {
        endpoint: address.clone(),
        reason,
    };
    let dial = async {
        let Some(source) = source else {
            return TcpStream::connect(&address).await;
        };
        let target: SocketAddr = address
            .parse()
            .map_err(|_| std::io::Error::other("a source address needs an IP destination"))?;
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(target).await
    };
    let stream = tokio::time::timeout(entry.cluster.connect_timeout, dial)
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    Ok((stream, active))
}

/// Copies both ways until both sides are done.
pub async fn splice(mut downstream: TcpStream, mut upstream: TcpStream) {
    if let Err(e) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(target: "weft::proxy", error = %e, "TCP connection ended with an error");
    }
}
