//! The data-plane benchmark's markdown: the table of setups, the ratios and
//! the targets, written into `bench/README.md` between its own markers.

use std::fmt::Write as _;

use crate::dataplane::Row;

/// Start of the generated section of `bench/README.md`.
pub const START: &str = "<!-- weft-bench dataplane results: start -->";
/// End of the generated section.
pub const END: &str = "<!-- weft-bench dataplane results: end -->";

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "—".into()
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// Requests per proxy CPU-second (throughput per core).
fn per_core(cpu_per_k: f64) -> f64 {
    if cpu_per_k > 0.0 {
        1000.0 / cpu_per_k
    } else {
        f64::NAN
    }
}

/// The direct row's evenly spaced latency to measure "added" against: of
/// its two runs (before and after the proxies), the one with the lower p99.
fn baseline(direct: &Row) -> [f64; 3] {
    match direct.lat_again {
        Some(again) if again[1] < direct.lat[1] => again,
        _ => direct.lat,
    }
}

/// The section: `header` (machine facts) then the table, ratios and targets.
pub fn markdown(header: &str, rows: &[Row]) -> String {
    let mut s = format!("{header}\n\n");
    s.push_str("| setup | HTTP/1.1 req/s (wrk) | HTTP/2 req/s (h2load) | gRPC unary req/s | p50 / p99 / p99.9 ms at 1 000 rps, evenly spaced | same, h2load `--rps` (bursts of 10) | proxy CPU s per 1 000 req (HTTP/1.1 / HTTP/2) | req per proxy CPU-s (HTTP/1.1 / HTTP/2) | proxy RSS MiB: idle / peak HTTP/1.1 / peak HTTP/2 / peak | notes |\n");
    s.push_str("| --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: | --- |\n");
    for r in rows {
        let (cpu, core, rss) = if r.proxied {
            (
                format!("{} / {}", f(r.h1_cpu_per_k, 3), f(r.h2_cpu_per_k, 3)),
                format!(
                    "{} / {}",
                    f(per_core(r.h1_cpu_per_k), 0),
                    f(per_core(r.h2_cpu_per_k), 0)
                ),
                [r.rss_idle, r.rss_load[0], r.rss_load[1], r.rss]
                    .map(|b| f(mib(b), 1))
                    .join(" / "),
            )
        } else {
            ("—".into(), "—".into(), "—".into())
        };
        let three = |l: &[f64; 3]| l.map(|x| f(x, 3)).join(" / ");
        let lat = match &r.lat_again {
            Some(again) => format!("{}; after the proxies {}", three(&r.lat), three(again)),
            None => three(&r.lat),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {lat} | {} / {} / {} | {cpu} | {core} | {rss} | {} |",
            r.name,
            f(r.h1_rps, 0),
            f(r.h2_rps, 0),
            f(r.grpc_rps, 0),
            f(r.lat_burst[0], 3),
            f(r.lat_burst[1], 3),
            f(r.lat_burst[2], 3),
            if r.notes.is_empty() {
                "none failed".to_string()
            } else {
                r.notes.join("; ")
            }
        );
    }
    let find = |p: &str| rows.iter().find(|r| r.name.starts_with(p));
    s.push_str("\nRatios (per core = requests per proxy CPU-second; CPU per request from the same runs):\n\n");
    let weft1 = find("Weft, 1 hop");
    let weft2 = find("Weft, 2 hops (");
    for (other, label) in [(find("nginx"), "nginx"), (find("haproxy"), "haproxy")] {
        let (Some(w), Some(o)) = (weft1, other) else {
            let _ = writeln!(s, "- Weft/{label}: not measured ({label} missing)");
            continue;
        };
        let _ = writeln!(
            s,
            "- Weft (1 hop) / {label}: throughput per core {}× (HTTP/1.1), {}× (HTTP/2); CPU per request {}× (HTTP/1.1), {}× (HTTP/2)",
            f(per_core(w.h1_cpu_per_k) / per_core(o.h1_cpu_per_k), 2),
            f(per_core(w.h2_cpu_per_k) / per_core(o.h2_cpu_per_k), 2),
            f(w.h1_cpu_per_k / o.h1_cpu_per_k, 2),
            f(w.h2_cpu_per_k / o.h2_cpu_per_k, 2),
        );
    }
    if let (Some(w), Some(d)) = (weft2, find("direct")) {
        let base = baseline(d);
        let _ = writeln!(
            s,
            "- Weft 2 hops / direct: p99 {}× ({} ms added), p50 {} ms added (evenly spaced 1 000 rps); in h2load's bursts of 10, p99 {} ms added; HTTP/1.1 throughput {}×",
            f(w.lat[1] / base[1], 2),
            f(w.lat[1] - base[1], 3),
            f(w.lat[0] - base[0], 3),
            f(w.lat_burst[1] - d.lat_burst[1], 3),
            f(w.h1_rps / d.h1_rps, 2),
        );
    }
    s.push_str("\nAgainst the targets:\n\n");
    if let (Some(w), Some(n)) = (weft1, find("nginx")) {
        let _ = writeln!(
            s,
            "- max throughput per core ≥ nginx's: Weft {} vs nginx {} HTTP/1.1 req per CPU-s ({}× the target)",
            f(per_core(w.h1_cpu_per_k), 0),
            f(per_core(n.h1_cpu_per_k), 0),
            f(per_core(w.h1_cpu_per_k) / per_core(n.h1_cpu_per_k), 2),
        );
    }
    if let (Some(w), Some(d)) = (weft2, find("direct")) {
        let added = w.lat[1] - baseline(d)[1];
        let burst = w.lat_burst[1] - d.lat_burst[1];
        let evenly = if added >= 0.0 {
            format!(
                "{} ms evenly spaced ({}× the target)",
                f(added, 3),
                f(added / 0.5, 2)
            )
        } else {
            format!(
                "not measured evenly spaced: the direct p99 ({} ms) was above the 2 hops' ({} ms) in both direct runs, so the machine stalled; run again",
                f(baseline(d)[1], 3),
                f(w.lat[1], 3)
            )
        };
        let _ = writeln!(
            s,
            "- added p99 for two hops ≤ 0.5 ms at 1 000 rps: {evenly}; {} ms when the 1 000 rps come in bursts of 10 (h2load, {}× the target)",
            f(burst, 3),
            f(burst / 0.5, 2)
        );
    }
    if let Some(w) = find("Weft, 2 hops, 100") {
        // Per proxy: the mean of the two sidecars.
        let line = |what: &str, bytes: u64| {
            let per = bytes as f64 / 2.0;
            format!(
                "{what} {} MiB ({}× the target)",
                f(mib(per as u64), 1),
                f(per / 20e6, 2)
            )
        };
        let _ = writeln!(
            s,
            "- RSS ≤ 20 MB with 100 services, per proxy (mean of the two sidecars): {}; {}; {}; {}",
            line("idle, config applied,", w.rss_idle),
            line("peak under HTTP/1.1 load (64 connections)", w.rss_load[0]),
            line(
                "peak under HTTP/2 load (64 connections × 10 streams)",
                w.rss_load[1]
            ),
            line("peak over every load", w.rss),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_ratios() {
        let row = |name: &str, cpu: f64, p99: f64| Row {
            name: name.into(),
            h1_rps: 1000.0,
            h1_cpu_per_k: cpu,
            h2_cpu_per_k: cpu,
            lat: [0.1, p99, 1.0],
            lat_burst: [0.2, 2.0 * p99, 3.0],
            proxied: name != "direct",
            rss: 4 << 20,
            ..Row::default()
        };
        let rows = [
            row("direct", 0.0, 0.2),
            row("Weft, 1 hop (server sidecar)", 0.1, 0.3),
            row("Weft, 2 hops (client + server sidecar)", 0.2, 0.6),
            row("nginx (reverse proxy)", 0.05, 0.25),
            Row {
                rss_idle: 20 << 20,
                rss_load: [30 << 20, 50 << 20],
                rss: 50 << 20,
                ..row("Weft, 2 hops, 100 more services configured", 0.2, 0.6)
            },
        ];
        let md = markdown("facts", &rows);
        assert!(
            md.contains("Weft (1 hop) / nginx: throughput per core 0.50×"),
            "{md}"
        );
        // A stalled first direct run: the second one is the baseline.
        let mut stalled = rows.clone();
        stalled[0].lat[1] = 3.0;
        stalled[0].lat_again = Some([0.1, 0.2, 1.0]);
        let md2 = markdown("facts", &stalled);
        assert!(md2.contains("0.400 ms evenly spaced"), "{md2}");
        assert!(
            md2.contains("0.100 / 3.000 / 1.000; after the proxies 0.100 / 0.200 / 1.000"),
            "{md2}"
        );
        // Both stalled: said, not a negative number.
        stalled[0].lat_again = Some([0.1, 2.0, 1.0]);
        let md3 = markdown("facts", &stalled);
        assert!(md3.contains("not measured evenly spaced"), "{md3}");
        assert!(md.contains("0.400 ms added"), "{md}");
        assert!(
            md.contains("0.400 ms evenly spaced (0.80× the target); 0.800 ms when"),
            "{md}"
        );
        assert!(md.contains("Weft/haproxy: not measured"), "{md}");
        assert!(md.contains("| 20.0 / 30.0 / 50.0 / 50.0 |"), "{md}");
        assert!(
            md.contains("idle, config applied, 10.0 MiB (0.52× the target)"),
            "{md}"
        );
        assert!(
            md.contains("peak over every load 25.0 MiB (1.31× the target)"),
            "{md}"
        );
    }
}
