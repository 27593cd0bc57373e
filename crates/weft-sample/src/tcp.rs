//! TCP echo: every byte is sent back as it comes, nothing added. When the
//! client shuts down its write side, the rest is flushed and ours is shut
//! down too (half-close), so `printf x | nc -N HOST PORT` prints `x`.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{DRAIN_TIMEOUT, Error, stopped};

/// Accepts connections until `stop`, then gives open ones up to
/// [`DRAIN_TIMEOUT`] before dropping them.
pub(crate) async fn serve(listener: TcpListener, stop: watch::Receiver<bool>) -> Result<(), Error> {
    let mut conns = JoinSet::new();
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(async move {
                        match echo(tcp).await {
                            Ok(n) => tracing::debug!(%peer, bytes = n, "tcp echo done"),
                            Err(e) => tracing::debug!(%peer, error = %e, "tcp echo failed"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tcp: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            "tcp: connections still open after the drain timeout"
        );
        conns.abort_all();
    }
    Ok(())
}

/// Echoes until the client's end of stream, then shuts down our side.
/// Returns the number of bytes echoed.
async fn echo(mut tcp: TcpStream) -> std::io::Result<u64> {
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.split();
    let n = tokio::io::copy(&mut rd, &mut wr).await?;
    wr.shutdown().await?;
    Ok(n)
}
