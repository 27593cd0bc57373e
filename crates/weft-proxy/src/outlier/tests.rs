use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::balance::Balancer;
use crate::cluster::{LbPolicy, LbSettings};
use crate::endpoint::Address;
use weft_xds::pb::envoy::config::cluster::v3::OutlierDetection;

fn hosts(n: usize) -> Vec<Arc<Endpoint>> {
    (0..n)
        .map(|i| {
            let addr = format!("127.0.0.1:{}", 7000 + i).parse().expect("addr");
            Arc::new(Endpoint::new(Address::Socket(addr)))
        })
        .collect()
}

fn config() -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: 3,
        consecutive_gateway_failure: 2,
        enforcing_consecutive_gateway_failure: 100,
        base_ejection_time: Duration::from_secs(10),
        max_ejection_time: Duration::from_secs(25),
        max_ejection_percent: 50,
        ..OutlierConfig::default()
    }
}

/// Records `outcome` `n` times on `host`; whether the detector was woken.
fn record(c: &OutlierConfig, host: &Endpoint, outcome: Outcome, n: usize) -> bool {
    (0..n).fold(false, |woke, _| host.outlier.record(c, outcome) | woke)
}

#[test]
fn consecutive_5xx_ejects_and_the_time_grows_with_each_ejection() {
    let c = config();
    let hs = hosts(2);
    let stats = OutlierStats::default();
    let d = Detector {
        config: &c,
        hosts: &hs,
        stats: &stats,
    };
    let t0 = Instant::now();
    // Two 500s, a success, two more: never three in a row.
    assert!(!record(&c, &hs[0], Outcome::Status(500), 2));
    assert!(!record(&c, &hs[0], Outcome::Status(200), 1));
    assert!(!record(&c, &hs[0], Outcome::Status(500), 2));
    assert!(!d.eject_pending(t0));
    // The third in a row wakes the detector, which ejects.
    assert!(record(&c, &hs[0], Outcome::Status(500), 1));
    assert!(d.eject_pending(t0));
    assert!(hs[0].outlier.is_ejected() && !hs[0].is_healthy());
    assert_eq!(d.ejected(), 1);
    assert_eq!(stats.enforced_total.load(Ordering::Relaxed), 1);
    // Back after base × 1 = 10 s, not before.
    assert!(!d.sweep(t0 + Duration::from_secs(9)));
    assert!(d.sweep(t0 + Duration::from_secs(10)));
    assert!(hs[0].is_healthy());
    // Ejected again at once: 2 × 10 s this time.
    let t1 = t0 + Duration::from_secs(11);
    assert!(record(&c, &hs[0], Outcome::Status(503), 3));
    assert!(d.eject_pending(t1));
    assert_eq!(hs[0].outlier.multiplier(), 2);
    assert!(!d.sweep(t1 + Duration::from_secs(19)));
    assert!(d.sweep(t1 + Duration::from_secs(20)));
    // A third time in a row would be 30 s; max_ejection_time caps it at 25.
    let t2 = t1 + Duration::from_secs(21);
    assert!(record(&c, &hs[0], Outcome::Status(500), 3));
    assert!(d.eject_pending(t2));
    assert!(!d.sweep(t2 + Duration::from_secs(24)));
    assert!(d.sweep(t2 + Duration::from_secs(25)));
    // Healthy intervals bring the multiplier down again.
    assert_eq!(hs[0].outlier.multiplier(), 3);
    d.sweep(t2 + Duration::from_secs(26));
    assert_eq!(hs[0].outlier.multiplier(), 2);
}

#[test]
fn gateway_failures_count_apart_and_local_failures_map_to_5xx() {
    let c = config();
    let hs = hosts(2);
    // A 500 between two 502s breaks the gateway run, not the 5xx one.
    let h = &hs[0].outlier;
    h.record(&c, Outcome::Status(502));
    h.record(&c, Outcome::Status(500));
    // The second 502 is no gateway run (the 500 broke it), but it is the
    // third 5xx in a row.
    assert!(h.record(&c, Outcome::Status(502)));
    assert_eq!(
        h.pending.load(Ordering::Relaxed),
        Reason::Consecutive5xx.bit()
    );
    // Unsplit, connect failures are 503s: gateway failures.
    let g = &hs[1].outlier;
    g.record(&c, Outcome::ConnectFailed);
    assert!(g.record(&c, Outcome::Timeout));
    assert_eq!(
        g.pending.load(Ordering::Relaxed),
        Reason::ConsecutiveGatewayFailure.bit()
    );
    // Gateway ejection is not enforced by default (Envoy's 0%).
    let off = OutlierConfig {
        consecutive_gateway_failure: 2,
        ..OutlierConfig::default()
    };
    let stats = OutlierStats::default();
    let other = hosts(1);
    let d = Detector {
        config: &off,
        hosts: &other,
        stats: &stats,
    };
    record(&off, &other[0], Outcome::Status(502), 2);
    assert!(!d.eject_pending(Instant::now()));
    assert_eq!(
        stats.detected[Reason::ConsecutiveGatewayFailure as usize].load(Ordering::Relaxed),
        1
    );
}

#[test]
fn split_local_origin_errors_have_their_own_counter() {
    let c = OutlierConfig {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 2,
        consecutive_5xx: 2,
        ..OutlierConfig::default()
    };
    let hs = hosts(1);
    let h = &hs[0].outlier;
    // Local failures don't count as 5xx, and an answer resets them.
    h.record(&c, Outcome::ConnectFailed);
    h.record(&c, Outcome::Status(500));
    assert!(!h.record(&c, Outcome::Reset), "reset by the answer");
    assert!(h.record(&c, Outcome::Timeout));
    assert_eq!(
        h.pending.load(Ordering::Relaxed),
        Reason::ConsecutiveLocalOriginFailure.bit()
    );
}

#[test]
fn max_ejection_percent_caps_ejections_but_allows_the_first() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        max_ejection_percent: 10,
        ..OutlierConfig::default()
    };
    let hs = hosts(4);
    let stats = OutlierStats::default();
    let d = Detector {
        config: &c,
        hosts: &hs,
        stats: &stats,
    };
    let now = Instant::now();
    for h in &hs {
        h.outlier.record(&c, Outcome::Status(500));
    }
    assert!(d.eject_pending(now));
    // 10% of 4 hosts is under one, yet one is ejected; the rest overflow.
    assert_eq!(d.ejected(), 1);
    assert_eq!(stats.overflow.load(Ordering::Relaxed), 3);
    // At 50%, two of four.
    let half = OutlierConfig {
        max_ejection_percent: 50,
        ..c.clone()
    };
    let hs = hosts(4);
    let d = Detector {
        config: &half,
        hosts: &hs,
        stats: &stats,
    };
    for h in &hs {
        h.outlier.record(&half, Outcome::Status(500));
    }
    d.eject_pending(now);
    assert_eq!(d.ejected(), 2);
    // A 0% cap ejects nothing, unless always_eject_one_host.
    for (always, ejected) in [(false, 0), (true, 1)] {
        let none = OutlierConfig {
            max_ejection_percent: 0,
            always_eject_one_host: always,
            ..c.clone()
        };
        let hs = hosts(2);
        let d = Detector {
            config: &none,
            hosts: &hs,
            stats: &stats,
        };
        for h in &hs {
            h.outlier.record(&none, Outcome::Status(500));
        }
        d.eject_pending(now);
        assert_eq!(d.ejected(), ejected, "always_eject_one_host {always}");
    }
}

#[test]
fn failure_percentage_and_success_rate_eject_at_the_interval() {
    let c = OutlierConfig {
        consecutive_5xx: 0,
        enforcing_failure_percentage: 100,
        failure_percentage_minimum_hosts: 3,
        failure_percentage_request_volume: 10,
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    };
    let hs = hosts(3);
    let stats = OutlierStats::default();
    let d = Detector {
        config: &c,
        hosts: &hs,
        stats: &stats,
    };
    // Host 0 fails 9 of 10 (90% ≥ 85%), the others 1 of 10.
    for (i, h) in hs.iter().enumerate() {
        for k in 0..10 {
            let fail = if i == 0 { k < 9 } else { k < 1 };
            h.outlier
                .record(&c, Outcome::Status(if fail { 500 } else { 200 }));
        }
    }
    assert!(d.sweep(Instant::now()));
    let ejected: Vec<bool> = hs.iter().map(|h| h.outlier.is_ejected()).collect();
    assert_eq!(ejected, vec![true, false, false]);
    // Success rate: 5 hosts, one far below the others' mean.
    let sr = OutlierConfig {
        consecutive_5xx: 0,
        success_rate_minimum_hosts: 5,
        success_rate_request_volume: 20,
        success_rate_stdev_factor: 1000,
        max_ejection_percent: 100,
        ..OutlierConfig::default()
    };
    let hs = hosts(5);
    let d = Detector {
        config: &sr,
        hosts: &hs,
        stats: &stats,
    };
    for (i, h) in hs.iter().enumerate() {
        let failures = if i == 4 { 10 } else { 0 };
        for k in 0..20 {
            h.outlier
                .record(&sr, Outcome::Status(if k < failures { 503 } else { 200 }));
        }
    }
    assert!(d.sweep(Instant::now()));
    assert_eq!(d.ejected(), 1);
    assert!(hs[4].outlier.is_ejected());
    // The counts start over each interval: nothing more to eject.
    assert!(!d.sweep(Instant::now()));
}

#[test]
fn ejected_endpoints_fail_over_to_the_next_priority() {
    let c = OutlierConfig {
        consecutive_5xx: 1,
        ..OutlierConfig::default()
    };
    let mut local = Endpoint::new(Address::Socket("127.0.0.1:1".parse().expect("addr")));
    local.priority = 0;
    let mut remote = Endpoint::new(Address::Socket("127.0.0.1:2".parse().expect("addr")));
    remote.priority = 1;
    let hs = vec![Arc::new(local), Arc::new(remote)];
    let pick = |b: &Balancer| b.pick(None).map(|e| e.address.to_string());
    let b = Balancer::new(LbPolicy::RoundRobin, &LbSettings::default(), &hs, 140);
    assert_eq!(pick(&b).as_deref(), Some("127.0.0.1:1"));
    let stats = OutlierStats::default();
    let d = Detector {
        config: &c,
        hosts: &hs,
        stats: &stats,
    };
    hs[0].outlier.record(&c, Outcome::ConnectFailed);
    assert!(d.eject_pending(Instant::now()));
    let b = Balancer::new(LbPolicy::RoundRobin, &LbSettings::default(), &hs, 140);
    assert_eq!(
        b.levels().iter().map(|l| l.load).collect::<Vec<_>>(),
        vec![0, 100]
    );
    for _ in 0..20 {
        assert_eq!(pick(&b).as_deref(), Some("127.0.0.1:2"));
    }
    // A new config's endpoint at the same address takes the state over.
    let fresh = Endpoint::new(Address::Socket("127.0.0.1:1".parse().expect("addr")));
    fresh.outlier.inherit(&hs[0].outlier);
    assert!(fresh.outlier.is_ejected());
    fresh.outlier.clear();
    assert!(fresh.is_healthy());
}

#[test]
fn converts_istios_outlier_detection() {
    use weft_xds::pb::google::protobuf::{Duration as Pb, UInt32Value};
    let v = |value| Some(UInt32Value { value });
    let o = OutlierDetection {
        consecutive_5xx: v(1),
        enforcing_consecutive_5xx: v(100),
        interval: Some(Pb {
            seconds: 1,
            nanos: 0,
        }),
        base_ejection_time: Some(Pb {
            seconds: 3,
            nanos: 0,
        }),
        max_ejection_percent: v(100),
        enforcing_success_rate: v(0),
        ..Default::default()
    };
    let c = OutlierConfig::try_from(&o).expect("converts");
    assert_eq!(c.consecutive_5xx, 1);
    assert_eq!(c.interval, Duration::from_secs(1));
    assert_eq!(c.base_ejection_time, Duration::from_secs(3));
    assert_eq!(c.max_ejection_percent, 100);
    assert_eq!(c.enforcing_success_rate, 0);
    assert_eq!(c.consecutive_gateway_failure, 5);
    let bad = OutlierDetection {
        max_ejection_percent: v(101),
        ..Default::default()
    };
    assert!(OutlierConfig::try_from(&bad).is_err());
    let zero = OutlierDetection {
        interval: Some(Pb::default()),
        ..Default::default()
    };
    assert!(OutlierConfig::try_from(&zero).is_err());
}
