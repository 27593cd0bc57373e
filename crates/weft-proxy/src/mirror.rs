//! Request mirroring (Envoy's `request_mirror_policies`, Istio's
//! `mirror`/`mirrors` with their percentages): a copy of the request goes
//! to the mirror cluster with `-shadow` appended to its host, fire and
//! forget. The main request never waits for it and never fails because
//! of it: the copy runs in its own task, its response is read and
//! dropped, and a body is copied only when it ends within
//! [`crate::replay::BUFFER_LIMIT`] (a longer one is not mirrored).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

use crate::cluster::{Discovery, UpstreamProtocol};
use crate::forward::{Body, Upstreams, full};
use crate::pool::Target;
use crate::replay::Kept;
use crate::route::Mirror;
use crate::snapshot::Snapshot;

/// The host a mirror sees: `-shadow` after the host name, before any
/// port (`reviews:9080` → `reviews-shadow:9080`), as Envoy writes it.
pub fn shadow_host(authority: &str) -> String {
    // An IPv6 literal's colons are inside its brackets.
    let port_at = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => Some(i),
        _ => None,
    };
    match port_at {
        Some(i) => format!("{}-shadow{}", &authority[..i], &authority[i..]),
        None => format!("{authority}-shadow"),
    }
}

/// The request being mirrored, as it goes upstream (after rewrites and
/// header changes).
#[derive(Clone, Copy, Debug)]
pub struct Copy<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its path and query.
    pub uri: &'a Uri,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// Its authority upstream.
    pub authority: &'a str,
    /// Whether the downstream spoke HTTP/2.
    pub downstream_http2: bool,
    /// Whether it has a body to wait for.
    pub has_body: bool,
    /// The most the copy may take, response included.
    pub timeout: Duration,
}

/// Starts mirroring `copy` to `mirror`'s cluster when its draw says so.
/// Returns where to send the body when the copy waits for one; `None`
/// when nothing is mirrored or no body is needed.
pub fn start(
    snapshot: &Snapshot,
    upstreams: &Upstreams,
    mirror: &Mirror,
    copy: Copy<'_>,
) -> Option<oneshot::Sender<Kept>> {
    if !mirror.fraction.hit() {
        return None;
    }
    let Some(entry) = snapshot.clusters.get(&mirror.cluster).cloned() else {
        tracing::debug!(target: "weft::proxy", cluster = mirror.cluster, "mirror cluster not found; not mirrored");
        return None;
    };
    let shadow = shadow_host(copy.authority);
    let (endpoint, active) = if entry.cluster.discovery == Discovery::OriginalDst {
        (copy.authority.to_string(), None)
    } else {
        let Some(e) = entry.pick() else {
            tracing::debug!(target: "weft::proxy", cluster = mirror.cluster, "mirror cluster has no healthy endpoint; not mirrored");
            return None;
        };
        (e.key().to_string(), Some(e.start_request()))
    };
    let http2 = match entry.cluster.protocol {
        UpstreamProtocol::Http2 => true,
        UpstreamProtocol::Downstream => copy.downstream_http2,
        UpstreamProtocol::Http1 => false,
    };
    let mut req = Request::new(());
    *req.method_mut() = copy.method.clone();
    *req.uri_mut() = copy.uri.clone();
    *req.headers_mut() = copy.headers.clone();
    if let Ok(h) = HeaderValue::from_str(&shadow) {
        req.headers_mut().insert(header::HOST, h);
    }
    let (body_tx, body_rx) = if copy.has_body {
        let (tx, rx) = oneshot::channel::<Kept>();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let upstreams = upstreams.clone();
    let timeout = copy.timeout;
    tokio::spawn(async move {
        let cluster = entry.cluster.name.as_str();
        let deadline = Instant::now() + timeout;
        // The mirror cluster's breakers admit it as any request of its
        // own (counted as its overflow when they don't).
        let admitted = match entry.breakers.admit() {
            Ok(a) => a,
            Err(why) => {
                tracing::debug!(target: "weft::access", cluster, %why, "mirror cluster overflowed; not mirrored");
                return;
            }
        };
        let body: Body = match body_rx {
            None => full(Bytes::new()),
            Some(rx) => match rx.await {
                Ok(kept) => kept.into_body(),
                Err(_) => {
                    tracing::debug!(target: "weft::proxy", cluster, "request body not kept (too long, or not read); not mirrored");
                    return;
                }
            },
        };
        let req = req.map(|()| body);
        let target = Target {
            cluster,
            endpoint: &endpoint,
            settings: entry.cluster.pool_settings(),
            breakers: &entry.breakers,
            deadline: Some(deadline),
        };
        let send = async {
            let resp = if http2 {
                upstreams.http2(&target, &shadow, req).await
            } else {
                upstreams.http1(&target, req).await
            };
            // Its endpoint's outlier detection counts it as any answer.
            entry.record(active.as_ref(), crate::outlier::Outcome::of(&resp));
            match resp {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // Read to the end (so the connection is reused), drop it.
                    let _ = r.into_body().collect().await;
                    tracing::debug!(target: "weft::access", cluster, %endpoint, status, "mirrored");
                }
                Err(e) => {
                    tracing::debug!(target: "weft::access", cluster, %endpoint, error = %e, "mirror failed");
                }
            }
        };
        if tokio::time::timeout_at(deadline.into(), send)
            .await
            .is_err()
        {
            entry.record(active.as_ref(), Some(crate::outlier::Outcome::Timeout));
            tracing::debug!(target: "weft::access", cluster, "mirror timed out");
        }
        drop(admitted);
    });
    body_tx
}

#[cfg(test)]
mod tests;
