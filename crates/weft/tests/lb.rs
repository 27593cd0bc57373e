//! Load balancing in `weft proxy` as a user sees it: a real `weft
//! control`, weft-sample backends (in-process, dialled directly: their
//! WorkloadEntries have no sidecar), and one client `weft proxy` that curl
//! goes through with `-x`. Each DestinationRule `loadBalancer` setting is
//! a service of its own over the same three backends.

mod common;

use common::{Proxy, eventually};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

impl Proxy {
    /// Starts the client proxy for `lb/client` and waits until it is ready.
    fn client(xds: u16) -> Proxy {
        Proxy::ready(xds, "lb/client", &[])
    }

    /// `n` GETs of `path` on `service` in one curl (one connection), with
    /// `extra` curl arguments: each response's status, `x-sample-version`
    /// and `set-cookie`.
    fn many(&self, service: &str, path: &str, n: usize, extra: &[&str]) -> Vec<Reply> {
        let url = format!("http://{service}.lb.svc.cluster.local:9080{path}");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "60", "-x"])
            .arg(format!("http://127.0.0.1:{}", self.outbound))
            .args([
                "-w",
                "%{http_code}|%header{x-sample-version}|%header{set-cookie}\n",
            ])
            .args(extra);
        for _ in 0..n {
            cmd.args(["-o", "/dev/null", &url]);
        }
        let out = cmd.output().expect("run curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let mut parts = l.splitn(3, '|');
                Reply {
                    status: parts.next().and_then(|s| s.parse().ok()).unwrap_or(0),
                    version: parts.next().unwrap_or("").to_string(),
                    set_cookie: parts.next().unwrap_or("").to_string(),
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    version: String,
    set_cookie: String,
}

/// Replies per version; asserts all `n` arrived and succeeded.
fn tally(replies: &[Reply], n: usize) -> BTreeMap<String, usize> {
    assert_eq!(replies.len(), n, "{replies:?}");
    let failed: Vec<&Reply> = replies.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let mut out = BTreeMap::new();
    for r in replies {
        *out.entry(r.version.clone()).or_default() += 1;
    }
    out
}

/// The one version all `replies` came from.
fn sticky(replies: &[Reply], n: usize) -> String {
    let t = tally(replies, n);
    assert_eq!(t.len(), 1, "not sticky: {t:?}");
    t.into_keys().next().unwrap_or_default()
}

/// weft-sample HTTP apps served in-process until the runtime drops.
fn backend(rt: &tokio::runtime::Runtime, version: &str) -> SocketAddr {
    let mut config = weft_sample::Config::new("pool");
    config.version = version.into();
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let addr = sample.http_addr().expect("address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending::<()>()).await;
    });
    addr
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn rule(name: &str, load_balancer: &str) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: lb}}
spec:
  host: {name}.lb.svc.cluster.local
  trafficPolicy:
    loadBalancer: {load_balancer}
---
"#
    )
}

const CLIENT: &str = r#"apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: lb}
spec: {address: 127.0.0.1, labels: {app: client}, locality: r1/z1}
"#;

/// The services of the policy test: one per `loadBalancer` setting, all
/// over the `pool` backends a, b and c; and `weighted` over w1 and w3.
const POLICIES: [(&str, &str); 9] = [
    ("rr", "{simple: ROUND_ROBIN}"),
    ("random", "{simple: RANDOM}"),
    ("lr", "{simple: LEAST_REQUEST}"),
    ("ring", "{consistentHash: {httpHeaderName: x-user}}"),
    (
        "maglev",
        "{consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1031}}}",
    ),
    (
        "cookie",
        "{consistentHash: {httpCookie: {name: sticky, path: /, ttl: 60s}}}",
    ),
    ("query", "{consistentHash: {httpQueryParameterName: user}}"),
    ("source", "{consistentHash: {useSourceIp: true}}"),
    ("weighted", "{simple: ROUND_ROBIN}"),
];

fn write_policies(dir: &Path, pool: &[(&str, SocketAddr)], w1: SocketAddr, w3: SocketAddr) {
    let mut yaml = String::new();
    for (name, lb) in POLICIES {
        let app = if name == "weighted" {
            "weighted"
        } else {
            "pool"
        };
        yaml.push_str(&common::service_entry("lb", name, app));
        yaml.push_str(&rule(name, lb));
    }
    for (version, addr) in pool {
        yaml.push_str(&common::workload_entry(
            "lb",
            &format!("pool-{version}"),
            "pool",
            addr.port(),
            "",
        ));
    }
    yaml.push_str(&common::workload_entry(
        "lb",
        "w1",
        "weighted",
        w1.port(),
        ", weight: 1",
    ));
    yaml.push_str(&common::workload_entry(
        "lb",
        "w3",
        "weighted",
        w3.port(),
        ", weight: 3",
    ));
    yaml.push_str(CLIENT);
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

#[test]
fn each_policy_distributes_and_consistent_hashing_sticks() {
    let rt = runtime();
    let pool: Vec<(&str, SocketAddr)> = ["a", "b", "c"]
        .into_iter()
        .map(|v| (v, backend(&rt, v)))
        .collect();
    let (w1, w3) = (backend(&rt, "w1"), backend(&rt, "w3"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_policies(dir.path(), &pool, w1, w3);
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::client(xds);
    eventually(Duration::from_secs(20), "every cluster's endpoints", || {
        let (_, clusters) = client.admin_get("/clusters");
        POLICIES.iter().all(|(name, _)| {
            let prefix = format!("outbound|9080||{name}.lb.svc.cluster.local::127.0.0.1:");
            clusters
                .lines()
                .filter(|l| l.starts_with(&prefix) && l.ends_with("::health_flags::healthy"))
                .count()
                == if *name == "weighted" { 2 } else { 3 }
        })
    });
    let (_, dump) = client.admin_get("/config_dump");
    for policy in ["RoundRobin", "Random", "LeastRequest", "RingHash", "Maglev"] {
        assert!(
            dump.contains(&format!("\"lb_policy\":\"{policy}\"")),
            "{policy} in {dump}"
        );
    }

    // Round robin: exactly even, give or take a snapshot's restart.
    let t = tally(&client.many("rr", "/", 300, &[]), 300);
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(
        t.values().all(|n| (95..=105).contains(n)),
        "round robin: {t:?}"
    );
    // Random and least request (sequential requests: all idle, so two
    // random choices): about even.
    for name in ["random", "lr"] {
        let t = tally(&client.many(name, "/", 600, &[]), 600);
        assert_eq!(t.len(), 3, "{name}: {t:?}");
        assert!(t.values().all(|n| (130..=270).contains(n)), "{name}: {t:?}");
    }
    // Endpoint weights 1 and 3 under round robin: 1:3.
    let t = tally(&client.many("weighted", "/", 400, &[]), 400);
    let w3_share = t.get("w3").copied().unwrap_or(0);
    assert!((290..=310).contains(&w3_share), "weighted: {t:?}");

    // Consistent hashing by header: each user always lands on the same
    // backend; users spread over backends.
    for name in ["ring", "maglev"] {
        let mut seen = BTreeSet::new();
        for user in 0..12 {
            let header = format!("x-user: user-{user}");
            let v = sticky(&client.many(name, "/", 6, &["-H", &header]), 6);
            assert_eq!(
                v,
                sticky(&client.many(name, "/", 3, &["-H", &header]), 3),
                "{name}: user-{user} moved between connections"
            );
            seen.insert(v);
        }
        assert!(seen.len() >= 2, "{name}: every user on {seen:?}");
        // No header: no hash, so spread at random.
        let t = tally(&client.many(name, "/", 300, &[]), 300);
        assert_eq!(t.len(), 3, "{name} without a hash: {t:?}");
    }
    // By query parameter.
    let mut seen = BTreeSet::new();
    for user in 0..12 {
        seen.insert(sticky(
            &client.many("query", &format!("/?user={user}&x=1"), 5, &[]),
            5,
        ));
    }
    assert!(seen.len() >= 2, "query: every user on {seen:?}");

    // By cookie: the first response sets one (Envoy's format), the
    // session sends it back and sticks; sessions spread.
    let mut seen = BTreeSet::new();
    for session in 0..10 {
        let jar = dir.path().join(format!("jar-{session}"));
        let jar = jar.to_str().expect("utf-8 path");
        let replies = client.many("cookie", "/", 5, &["-c", jar, "-b", jar]);
        let first = &replies.first().expect("a reply").set_cookie;
        assert!(
            first.starts_with("sticky=\"") && first.ends_with("; Max-Age=60; Path=/; HttpOnly"),
            "set-cookie: {first:?}"
        );
        assert!(
            replies[1..].iter().all(|r| r.set_cookie.is_empty()),
            "{replies:?}"
        );
        seen.insert(sticky(&replies, 5));
    }
    assert!(seen.len() >= 2, "cookie: every session on {seen:?}");

    // By source IP: each client address of 127/8 sticks to one backend.
    let mut seen = BTreeSet::new();
    for last in 2..14 {
        let ip = format!("127.0.0.{last}");
        let v = sticky(&client.many("source", "/", 4, &["--interface", &ip]), 4);
        assert_eq!(
            v,
            sticky(&client.many("source", "/", 2, &["--interface", &ip]), 2)
        );
        seen.insert(v);
    }
    assert!(seen.len() >= 2, "source ip: every client on {seen:?}");
}

const FAILOVER_RULE: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: failover, namespace: lb}
spec:
  host: failover.lb.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 30s}
---
"#;

/// Locality weights: clients in r1/z1 send a quarter to their own
/// locality and three quarters to r2/z2.
const DISTRIBUTE_RULE: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: spread, namespace: lb}
spec:
  host: spread.lb.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        distribute:
        - from: r1/z1/*
          to: {"r1/z1/*": 25, "r2/z2/*": 75}
---
"#;

const UNHEALTHY: &str = "\nstatus:\n  conditions:\n  - {type: Healthy, status: \"False\"}\n---\n";

fn write_failover(dir: &Path, near: SocketAddr, far: SocketAddr, near_healthy: bool) {
    let mut yaml = common::service_entry("lb", "failover", "failover");
    yaml.push_str(FAILOVER_RULE);
    let mut near_entry =
        common::workload_entry("lb", "near", "failover", near.port(), ", locality: r1/z1");
    if !near_healthy {
        near_entry = near_entry.trim_end_matches("---\n").trim_end().to_string() + UNHEALTHY;
    }
    yaml.push_str(&near_entry);
    yaml.push_str(&common::workload_entry(
        "lb",
        "far",
        "failover",
        far.port(),
        ", locality: r2/z2",
    ));
    yaml.push_str(&common::service_entry("lb", "spread", "spread"));
    yaml.push_str(DISTRIBUTE_RULE);
    yaml.push_str(&common::workload_entry(
        "lb",
        "spread-near",
        "spread",
        near.port(),
        ", locality: r1/z1",
    ));
    yaml.push_str(&common::workload_entry(
        "lb",
        "spread-far",
        "spread",
        far.port(),
        ", locality: r2/z2",
    ));
    yaml.push_str(CLIENT);
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

#[test]
fn locality_weights_and_failover_to_the_next_priority_and_back() {
    let rt = runtime();
    let (near, far) = (backend(&rt, "near"), backend(&rt, "far"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_failover(dir.path(), near, far, true);
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::client(xds);
    let cluster = "outbound|9080||failover.lb.svc.cluster.local";
    let line = |addr: SocketAddr, what: &str| format!("{cluster}::{addr}::{what}");
    eventually(
        Duration::from_secs(20),
        "near at priority 0, far at 1",
        || {
            let (_, c) = client.admin_get("/clusters");
            c.contains(&line(near, "priority::0")) && c.contains(&line(far, "priority::1"))
        },
    );
    // Healthy and local: all traffic stays in the client's locality.
    assert_eq!(sticky(&client.many("failover", "/", 50, &[]), 50), "near");

    // Locality weights (distribute): a quarter stays local.
    let t = tally(&client.many("spread", "/", 400, &[]), 400);
    let local = t.get("near").copied().unwrap_or(0);
    assert!((65..=135).contains(&local), "distribute 25/75: {t:?}");

    // The local endpoint turns unhealthy: priority 0 has no health left,
    // so everything spills over to priority 1.
    write_failover(dir.path(), near, far, false);
    eventually(Duration::from_secs(20), "near marked unhealthy", || {
        client
            .admin_get("/clusters")
            .1
            .contains(&line(near, "health_flags::/failed_eds_health"))
    });
    assert_eq!(sticky(&client.many("failover", "/", 50, &[]), 50), "far");

    // Healthy again: back home.
    write_failover(dir.path(), near, far, true);
    eventually(Duration::from_secs(20), "near healthy again", || {
        client
            .admin_get("/clusters")
            .1
            .contains(&line(near, "health_flags::healthy"))
    });
    assert_eq!(sticky(&client.many("failover", "/", 50, &[]), 50), "near");
}

/// A weft-sample HTTP app that answers every request after `delay`.
fn slow_backend(rt: &tokio::runtime::Runtime, version: &str, delay: Duration) -> SocketAddr {
    let mut config = weft_sample::Config::new("pool");
    config.version = version.into();
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.flaky = weft_sample::Flaky {
        stall_first: u64::MAX,
        stall: delay,
        ..weft_sample::Flaky::default()
    };
    let sample = rt
        .block_on(weft_sample::Sample::bind(config))
        .expect("bind sample");
    let addr = sample.http_addr().expect("address");
    rt.spawn(async move {
        let _ = sample.serve(std::future::pending::<()>()).await;
    });
    addr
}

/// Least request under concurrent load: with one of three endpoints slow
/// (100 ms a request), six clients each sending 40 requests one after
/// another, round robin still gives the slow one a third of them, and
/// least request (two random choices, the one with fewer requests in
/// flight) clearly fewer: the slow endpoint's requests pile up, so it
/// loses almost every comparison. (Sequential requests, as in the test
/// above, can't tell least request from random.)
#[test]
fn least_request_spares_a_slow_endpoint_under_concurrency() {
    const CLIENTS: usize = 6;
    const EACH: usize = 40;
    let rt = runtime();
    let (a, b) = (backend(&rt, "a"), backend(&rt, "b"));
    let slow = slow_backend(&rt, "slow", Duration::from_millis(100));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::new();
    for (name, lb) in [
        ("rr-slow", "{simple: ROUND_ROBIN}"),
        ("lr-slow", "{simple: LEAST_REQUEST}"),
    ] {
        yaml.push_str(&common::service_entry("lb", name, "slowpool"));
        yaml.push_str(&rule(name, lb));
    }
    for (version, addr) in [("a", a), ("b", b), ("slow", slow)] {
        yaml.push_str(&common::workload_entry(
            "lb",
            &format!("slowpool-{version}"),
            "slowpool",
            addr.port(),
            "",
        ));
    }
    yaml.push_str(CLIENT);
    std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write mesh");
    let (_control, xds, _debug) = common::start(dir.path());
    let client = Proxy::client(xds);
    eventually(Duration::from_secs(20), "both clusters' endpoints", || {
        let (_, clusters) = client.admin_get("/clusters");
        ["rr-slow", "lr-slow"].iter().all(|name| {
            let prefix = format!("outbound|9080||{name}.lb.svc.cluster.local::127.0.0.1:");
            clusters
                .lines()
                .filter(|l| l.starts_with(&prefix) && l.ends_with("::health_flags::healthy"))
                .count()
                == 3
        })
    });
    let client = std::sync::Arc::new(client);
    // Each policy in turn, `CLIENTS` curls at once: the slow endpoint's share.
    let slow_share = |service: &'static str| {
        let started = std::time::Instant::now();
        let loads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let client = client.clone();
                std::thread::spawn(move || client.many(service, "/", EACH, &[]))
            })
            .collect();
        let replies: Vec<Reply> = loads
            .into_iter()
            .flat_map(|l| l.join().expect("load"))
            .collect();
        let t = tally(&replies, CLIENTS * EACH);
        let slow = t.get("slow").copied().unwrap_or(0);
        eprintln!(
            "measured: {service}: {t:?} in {:?} ({slow} of {} to the slow endpoint)",
            started.elapsed(),
            CLIENTS * EACH
        );
        slow
    };
    let rr = slow_share("rr-slow");
    let lr = slow_share("lr-slow");
    // Round robin: a third (80), give or take a snapshot's restart.
    assert!(
        (70..=90).contains(&rr),
        "round robin sent {rr} of 240 to the slow endpoint"
    );
    // Least request: a few percent on an idle machine (the slow endpoint
    // keeps about as many requests in flight as each fast one, and answers
    // 20 times fewer); even with fast requests only 5 times faster it is
    // under a fifth, and always under half of round robin's.
    assert!(
        lr <= 48 && lr * 2 <= rr,
        "least request sent {lr} of 240 to the slow endpoint (round robin: {rr})"
    );
}
