//! The delta (incremental) side of a simulated sidecar, as Envoy drives
//! `DeltaAggregatedResources`: CDS and LDS as legacy wildcards (a first
//! request naming nothing) with the node, EDS subscribed to the EDS
//! clusters as CDS adds and removes them, RDS to the route configurations
//! the listeners name, and with VHDS (`weft.vhds` in the node's client
//! features) the virtual hosts of each of those route configurations
//! (subscribed by the route configuration's name, as Envoy's
//! `VhdsSubscription` does). Every response is ACKed with its nonce. The
//! client keeps its subscribed names (interned) and nothing of the
//! resources.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use weft_xds::TypeUrl;
use weft_xds::names::VHDS_FEATURE;

use super::{Fleet, Identity, Protocol, TYPES, check_head, grpc_error, intern, received};
use crate::wire::{self, Reader};

const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// `from` with `add` added and `remove` taken out, sorted; and what was
/// added and removed.
fn changed(
    from: &[String],
    add: &[String],
    remove: &[String],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut next: Vec<String> = from
        .iter()
        .filter(|n| !remove.contains(n))
        .cloned()
        .chain(add.iter().cloned())
        .collect();
    next.sort();
    next.dedup();
    let added = next
        .iter()
        .filter(|n| from.binary_search(n).is_err())
        .cloned()
        .collect();
    let gone = from
        .iter()
        .filter(|n| next.binary_search(n).is_err())
        .cloned()
        .collect();
    (next, added, gone)
}

/// Runs the delta ADS stream of client `i` on `send`.
pub(super) async fn ads(
    send: h2::client::SendRequest<Bytes>,
    port: u16,
    identity: Identity,
    fleet: &Fleet,
    i: usize,
    permit: OwnedSemaphorePermit,
) -> Result<()> {
    let state = fleet.clients.get(i).context("no such client")?;
    let vhds = fleet.protocol == Protocol::Vhds;
    let mut permit = Some(permit);
    // Subscribed EDS and RDS names (VHDS follows RDS), sorted.
    let mut eds: Arc<[String]> = intern(Vec::new());
    let mut rds: Arc<[String]> = intern(Vec::new());
    let mut eds_sent = false;
    let mut rds_sent = false;
    let mut send = send.ready().await.context("HTTP/2 connection not ready")?;
    let head = http::Request::post(format!("http://127.0.0.1:{port}{DELTA_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .context("delta ADS request")?;
    let (response, mut tx) = send
        .send_request(head, false)
        .context("open the delta ADS stream")?;
    let mut node = identity.node();
    if vhds {
        node.client_features.push(VHDS_FEATURE.to_string());
    }
    let none: &[String] = &[];
    tx.send_data(
        wire::delta_request(Some(&node), TypeUrl::Cluster.as_str(), none, none, ""),
        false,
    )?;
    tx.send_data(
        wire::delta_request(None, TypeUrl::Listener.as_str(), none, none, ""),
        false,
    )?;
    drop(node);

    let response = response.await.context("delta ADS response headers")?;
    check_head(&response, "delta ADS stream")?;
    let mut body = Reader::delta(response.into_body());
    while let Some(response) = body.next().await.context("delta ADS stream")? {
        let (type_url, t, version) = received(state, &response)?;
        // Clusters or listeners came or went: change the EDS or RDS (and
        // VHDS) subscriptions before ACKing, as Envoy does.
        match type_url {
            TypeUrl::Cluster => {
                let (next, add, remove) = changed(&eds, &response.follow, &response.removed);
                if !add.is_empty() || !remove.is_empty() || !eds_sent {
                    let t = TYPES[1].as_str();
                    tx.send_data(wire::delta_request(None, t, &add, &remove, ""), false)?;
                    eds = intern(next);
                    eds_sent = true;
                }
            }
            TypeUrl::Listener => {
                // Route configurations of removed listeners are kept (a
                // lean client doesn't remember which listener named which).
                let (next, add, _) = changed(&rds, &response.follow, none);
                if !add.is_empty() || !rds_sent {
                    let t = TYPES[3].as_str();
                    tx.send_data(wire::delta_request(None, t, &add, none, ""), false)?;
                    if vhds {
                        let t = TYPES[4].as_str();
                        tx.send_data(wire::delta_request(None, t, &add, none, ""), false)?;
                    }
                    rds = intern(next);
                    rds_sent = true;
                }
            }
            _ => {}
        }
        let ack = wire::delta_request(None, type_url.as_str(), none, none, &response.nonce);
        tx.send_data(ack, false)?;
        state.acked_at[t].store(fleet.now(), Ordering::Release);
        state.acked[t].store(version, Ordering::Release);
        if permit.is_some() && state.synced() {
            permit = None;
        }
    }
    if let Some(trailers) = body.source_mut().trailers().await.context("ADS trailers")?
        && trailers.get("grpc-status").is_some_and(|c| c != "0")
    {
        bail!("delta ADS stream: {}", grpc_error(&trailers));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_change_by_what_came_and_went() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (next, add, gone) = changed(&s(&["a", "c"]), &s(&["b", "c"]), &s(&["a"]));
        assert_eq!(next, s(&["b", "c"]));
        assert_eq!(add, s(&["b"]));
        assert_eq!(gone, s(&["a"]));
        let (next, add, gone) = changed(&s(&["a"]), &[], &[]);
        assert_eq!((next, add, gone), (s(&["a"]), vec![], vec![]));
    }
}
