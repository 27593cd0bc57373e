//! A fixed-rate HTTP/1.1 load with evenly spaced arrivals (wrk2's
//! constant-throughput model): `rate` requests a second over `conns`
//! keep-alive connections, connection `i` sending at `t0 + i/rate +
//! k·conns/rate`, so the whole load is one request every `1/rate` s.
//!
//! `h2load --rps` paces each client on its own timer and starts the
//! timers together, so its "1 000 rps over 10 connections" arrives as a
//! burst of 10 requests every 10 ms; both are measured (the harness
//! reports each), this one being what a fixed rate means.
//!
//! Latency runs from when a request was due: if the connection was
//! still busy then, the wait counts (no coordinated omission); else from
//! when it was sent (tokio's timer wheel has 1 ms ticks, so a request may
//! leave up to a tick after it was due, without that counting).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One paced load.
#[derive(Clone, Debug)]
pub struct Paced {
    /// The loopback port to connect to.
    pub port: u16,
    /// The request target: origin-form (`/bytes/1024`), or absolute-form
    /// when `port` is an HTTP proxy.
    pub target: String,
    /// The `Host` header.
    pub host: String,
    /// Requests a second over all connections.
    pub rate: u32,
    /// Keep-alive connections.
    pub conns: u32,
    /// How long requests are sent for (after a warm-up request on each
    /// connection).
    pub duration: Duration,
}

/// What a paced load measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Latency of each successful request, µs, in completion order.
    pub latencies_us: Vec<u64>,
    /// Requests that failed or got a status other than 2xx.
    pub failed: u64,
}

/// When request `k` of connection `i` is due, from the start.
fn due(i: u32, k: u64, rate: u32, conns: u32) -> Duration {
    let step = 1e9 / f64::from(rate.max(1));
    Duration::from_nanos((step * (f64::from(i) + k as f64 * f64::from(conns))) as u64)
}

/// How many requests connection `i` sends in `duration`.
fn count(i: u32, rate: u32, conns: u32, duration: Duration) -> u64 {
    let mut k = 0;
    while due(i, k, rate, conns) < duration {
        k += 1;
    }
    k
}

/// Runs `p` on a runtime of its own (one thread) and returns every latency.
pub fn run(p: &Paced) -> Result<Outcome> {
    if p.rate == 0 || p.conns == 0 {
        bail!("a paced load needs a rate and connections");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("paced load runtime")?;
    rt.block_on(async {
        let mut senders = Vec::new();
        for _ in 0..p.conns {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", p.port))
                .await
                .with_context(|| format!("connect to 127.0.0.1:{}", p.port))?;
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(conn);
            // Warm-up: the connection and every pool behind it are open.
            if !exchange(&mut send, p).await {
                bail!("the warm-up request to 127.0.0.1:{} failed", p.port);
            }
            senders.push(send);
        }
        let t0 = Instant::now() + Duration::from_millis(10);
        let mut tasks = Vec::new();
        for (i, mut send) in (0u32..).zip(senders) {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let n = count(i, p.rate, p.conns, p.duration);
                let mut out = Outcome {
                    latencies_us: Vec::with_capacity(n as usize),
                    failed: 0,
                };
                for k in 0..n {
                    let due = t0 + due(i, k, p.rate, p.conns);
                    let start = if Instant::now() >= due {
                        due
                    } else {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    };
                    if exchange(&mut send, &p).await {
                        out.latencies_us.push(start.elapsed().as_micros() as u64);
                    } else {
                        out.failed += 1;
                    }
                }
                out
            }));
        }
        let mut all = Outcome::default();
        for t in tasks {
            let o = t.await.context("paced connection task")?;
            all.latencies_us.extend(o.latencies_us);
            all.failed += o.failed;
        }
        Ok(all)
    })
}

/// One GET and its whole body: whether it got a 2xx.
async fn exchange(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    p: &Paced,
) -> bool {
    if send.ready().await.is_err() {
        return false;
    }
    let req = match http::Request::get(p.target.as_str())
        .header(http::header::HOST, p.host.as_str())
        .body(Empty::new())
    {
        Ok(r) => r,
        Err(_) => return false,
    };
    let Ok(resp) = send.send_request(req).await else {
        return false;
    };
    let ok = resp.status().is_success();
    ok && resp.into_body().collect().await.is_ok()
}

/// Percentiles (ms) of latencies in µs.
pub fn percentiles(us: &[u64], qs: &[f64; 3]) -> [f64; 3] {
    let mut v = us.to_vec();
    v.sort_unstable();
    qs.map(|q| {
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced_over_all_connections() {
        // 1 000 rps over 10 connections: one request a millisecond, in
        // turn, none at the same time.
        let mut at: Vec<Duration> = (0..10)
            .flat_map(|i| (0..5).map(move |k| due(i, k, 1000, 10)))
            .collect();
        at.sort();
        for (n, t) in at.iter().enumerate() {
            assert_eq!(t.as_micros(), n as u128 * 1000);
        }
        assert_eq!(count(0, 1000, 10, Duration::from_secs(1)), 100);
        assert_eq!(count(9, 1000, 10, Duration::from_secs(1)), 100);
        assert_eq!(count(3, 1000, 10, Duration::from_millis(5)), 1);
    }

    #[test]
    fn percentiles_of_microseconds() {
        let v: Vec<u64> = (1..=1000).rev().collect();
        assert_eq!(percentiles(&v, &[0.5, 0.99, 0.999]), [0.5, 0.99, 0.999]);
        assert!(percentiles(&[], &[0.5, 0.99, 0.999])[0].is_nan());
    }

    #[test]
    fn a_paced_load_against_a_local_server() -> Result<()> {
        // A real HTTP/1.1 server on loopback: 200 requests at 1 000 rps
        // over 4 connections, every one answered and timed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let server = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let stop = tokio::time::sleep(Duration::from_secs(10));
                tokio::pin!(stop);
                loop {
                    tokio::select! {
                        _ = &mut stop => return Ok(()),
                        a = listener.accept() => {
                            let (s, _) = a?;
                            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                                TokioIo::new(s),
                                hyper::service::service_fn(|_req| async {
                                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                        http_body_util::Full::new(Bytes::from_static(b"hello")),
                                    ))
                                }),
                            ));
                        }
                    }
                }
            })
        });
        let out = run(&Paced {
            port,
            target: "/".into(),
            host: "local".into(),
            rate: 1000,
            conns: 4,
            duration: Duration::from_millis(200),
        })?;
        assert_eq!(out.failed, 0);
        assert_eq!(out.latencies_us.len(), 200);
        assert!(out.latencies_us.iter().all(|&us| us < 1_000_000));
        drop(server);
        Ok(())
    }
}
