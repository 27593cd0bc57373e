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

/// Requests per proxy CPU-second (throughput per core).
fn per_core(cpu_per_k: f64) -> f64 {
    if cpu_per_k > 0.0 {
        1000.0 / cpu_per_k
    } else {
        f64::NAN
    }
}

/// The section: `header` (machine facts) then the table, ratios and targets.
pub fn markdown(header: &str, rows: &[Row]) -> String {
    let mut s = format!("{header}\n\n");
    s.push_str("| setup | HTTP/1.1 req/s (wrk) | HTTP/2 req/s (h2load) | gRPC unary req/s | p50 / p99 / p99.9 ms at 1 000 rps | proxy CPU s per 1 000 req (HTTP/1.1 / HTTP/2) | req per proxy CPU-s (HTTP/1.1 / HTTP/2) | proxy peak RSS (MiB) | notes |\n");
    s.push_str("| --- | ---: | ---: | ---: | --- | --- | --- | ---: | --- |\n");
    for r in rows {
        let (cpu, core, rss) = if r.proxied {
            (
                format!("{} / {}", f(r.h1_cpu_per_k, 3), f(r.h2_cpu_per_k, 3)),
                format!(
                    "{} / {}",
                    f(per_core(r.h1_cpu_per_k), 0),
                    f(per_core(r.h2_cpu_per_k), 0)
                ),
                f(r.rss as f64 / f64::from(1u32 << 20), 1),
            )
        } else {
            ("—".into(), "—".into(), "—".into())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} / {} | {cpu} | {core} | {rss} | {} |",
            r.name,
            f(r.h1_rps, 0),
            f(r.h2_rps, 0),
            f(r.grpc_rps, 0),
            f(r.lat[0], 3),
            f(r.lat[1], 3),
            f(r.lat[2], 3),
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
        let _ = writeln!(
            s,
            "- Weft 2 hops / direct: p99 {}× ({} ms added), p50 {} ms added, HTTP/1.1 throughput {}×",
            f(w.lat[1] / d.lat[1], 2),
            f(w.lat[1] - d.lat[1], 3),
            f(w.lat[0] - d.lat[0], 3),
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
        let added = w.lat[1] - d.lat[1];
        let _ = writeln!(
            s,
            "- added p99 for two hops ≤ 0.5 ms at 1 000 rps: {} ms ({}× the target)",
            f(added, 3),
            f(added / 0.5, 2)
        );
    }
    if let Some(w) = find("Weft, 2 hops, 100") {
        let per = w.rss as f64 / 2.0 / f64::from(1u32 << 20);
        let _ = writeln!(
            s,
            "- RSS ≤ 20 MB with 100 services: {} MiB per proxy (mean of the two sidecars' VmHWM; {}× the target)",
            f(per, 1),
            f(per * f64::from(1u32 << 20) / 20e6, 2)
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
            proxied: name != "direct",
            rss: 4 << 20,
            ..Row::default()
        };
        let rows = [
            row("direct", 0.0, 0.2),
            row("Weft, 1 hop (server sidecar)", 0.1, 0.3),
            row("Weft, 2 hops (client + server sidecar)", 0.2, 0.6),
            row("nginx (reverse proxy)", 0.05, 0.25),
        ];
        let md = markdown("facts", &rows);
        assert!(
            md.contains("Weft (1 hop) / nginx: throughput per core 0.50×"),
            "{md}"
        );
        assert!(md.contains("0.400 ms added"), "{md}");
        assert!(md.contains("Weft/haproxy: not measured"), "{md}");
    }
}
