//! TCP proxying: connect to an endpoint of a cluster, then copy both
//! ways until each side has closed (half-close is passed on).

use tokio::net::TcpStream;

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
    let stream = tokio::time::timeout(entry.cluster.connect_timeout, TcpStream::connect(&address))
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
