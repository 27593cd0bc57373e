//! The benchmark's results as markdown, and writing them into
//! `bench/README.md` between the results markers (the text around them is
//! kept).

use std::path::Path;

use crate::client::Protocol;
use crate::mesh::Scope;
use crate::xds::{Outcome, Push, gib, type_names};

/// Start of the generated section of `bench/README.md`.
pub const START: &str = "<!-- weft-bench xds results: start -->";
/// End of the generated section.
pub const END: &str = "<!-- weft-bench xds results: end -->";

/// The targets of the issue: 10 000 proxies × 1 000 services on 2 cores.
const TARGET_P99_SECS: f64 = 1.0;
const TARGET_RSS: u64 = 1 << 30;
const TARGET_PROXIES: usize = 10_000;

/// Machine facts and the command, for the report's header.
#[derive(Clone, Debug)]
pub struct Facts {
    /// `nproc`.
    pub cpus: usize,
    /// UTC date and time.
    pub date: String,
    /// The command line.
    pub command: String,
    /// The `weft` binary measured (and its git commit if known).
    pub weft: String,
}

fn ms(secs: f64) -> String {
    if secs.is_nan() {
        "—".into()
    } else {
        format!("{:.0}", secs * 1000.0)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / f64::from(1u32 << 20))
}

fn latencies(p: Option<&Push>) -> String {
    match p {
        Some(p) => format!(
            "{} / {} / {} ({}/{})",
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            p.converged,
            p.expected
        ),
        None => "—".into(),
    }
}

fn cpu(p: Option<&Push>, proxies: usize) -> String {
    match p {
        Some(p) => format!(
            "{:.2} s / {:.3} ms",
            p.cpu,
            p.cpu * 1000.0 / proxies.max(1) as f64
        ),
        None => "—".into(),
    }
}

/// The results section: facts, the main table, per-proxy xDS sizes, each
/// route run, and the ratio to the targets.
pub fn markdown(facts: &Facts, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    s += &format!(
        "Measured {} on {} cores (`nproc`), loopback only. Command: `{}`. Binary: {}.\n\n",
        facts.date, facts.cpus, facts.command, facts.weft
    );
    s += "| proxies | services | visibility | protocol | synced | connect + sync all (s) | CP RSS idle (MiB) | CP RSS synced (MiB) | CP peak RSS (MiB) | RSS per proxy (KiB) | route change p50 / p99 / max (ms) | CPU per route push / per proxy | route push per proxy (KiB) | endpoint change p50 / p99 / max (ms) | CPU per endpoint push / per proxy |\n";
    s += "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- | --- |\n";
    for o in outcomes {
        let route = o.median_route();
        s += &format!(
            "| {} | {} | {} | {} | {}{} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            o.proxies,
            o.services,
            o.scope.as_str(),
            o.protocol.as_str(),
            o.synced,
            if o.failed > 0 {
                format!(" ({} failed)", o.failed)
            } else {
                String::new()
            },
            o.sync_secs,
            mib(o.idle.rss),
            mib(o.synced_sample.rss),
            mib(o.end.hwm),
            o.rss_per_proxy()
                .map_or("—".into(), |b| format!("{:.0}", b as f64 / 1024.0)),
            latencies(route),
            cpu(route, o.synced),
            route.map_or("—".into(), |p| format!("{:.1}", p.bytes as f64 / 1024.0)),
            latencies(o.endpoint.as_ref()),
            cpu(o.endpoint.as_ref(), o.synced),
        );
    }
    s += "\nLatencies run from the file write to each client's ACK of the new version (they include the \
          store's 50 ms file debounce and the publisher's `--debounce-after`); the route change is the median \
          (by p99) of its runs; `(k/n)`: clients that converged within the timeout. CPU is the control plane's \
          utime + stime over the same interval. With `namespace` visibility both changes (to service 0) \
          concern only the proxies of its namespace, so `n` is those; the others are not pushed.\n\n";
    s += "What one proxy is sent (client 0; for delta the last response of each type), and what the harness (all clients, one process) used:\n\n| proxies | services | visibility | protocol |";
    for t in type_names() {
        s += &format!(" {t} resources / KiB |");
    }
    s += " harness RSS at end (MiB) / CPU (s) | harness RSS growth per client (KiB) |\n| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for o in outcomes {
        s += &format!(
            "| {} | {} | {} | {} |",
            o.proxies,
            o.services,
            o.scope.as_str(),
            o.protocol.as_str()
        );
        for (n, b) in o.per_proxy {
            s += &format!(" {n} / {:.0} |", b as f64 / 1024.0);
        }
        s += &format!(
            " {} / {:.0} | {} |\n",
            mib(o.harness.rss),
            o.harness.cpu,
            o.harness_per_client()
                .map_or("—".into(), |b| format!("{:.0}", b as f64 / 1024.0))
        );
    }
    s += "\nEvery route run (p50 / p99 / max ms, CPU s):\n\n";
    for o in outcomes {
        let runs: Vec<String> = o
            .routes
            .iter()
            .map(|p| {
                format!(
                    "{} / {} / {}, {:.2}",
                    ms(p.p50),
                    ms(p.p99),
                    ms(p.max),
                    p.cpu
                )
            })
            .collect();
        s += &format!(
            "- {} proxies × {} services, {} visibility, {}: {}{}\n",
            o.proxies,
            o.services,
            o.scope.as_str(),
            o.protocol.as_str(),
            if runs.is_empty() {
                "none".to_string()
            } else {
                runs.join("; ")
            },
            o.aborted
                .as_ref()
                .map_or(String::new(), |a| format!(" — stopped early: {a}"))
        );
        if let Some(e) = &o.error {
            s += &format!("  - first client error: {e}\n");
        }
    }
    for scope in [Scope::Full, Scope::Namespace] {
        for protocol in [Protocol::Sotw, Protocol::Delta, Protocol::Vhds] {
            let runs: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.scope == scope && o.protocol == protocol)
                .collect();
            s += &targets(&runs);
        }
    }
    s
}

/// The measured ratio to each target: for the largest run with ≥ 1 000
/// services (the target's shape), and, where that run stopped before its
/// route changes, from the largest such run that timed them, with the
/// CPU they would need at 10 000 proxies.
fn targets(outcomes: &[&Outcome]) -> String {
    let target_shape = || outcomes.iter().copied().filter(|o| o.services >= 1000);
    let Some(o) = target_shape().max_by_key(|o| o.synced) else {
        return String::new();
    };
    let mut s = format!(
        "\nAgainst the targets (10 000 proxies × 1 000 services, 2 cores), run of {} proxies × {} services, {} visibility, {}:\n\n",
        o.proxies,
        o.services,
        o.scope.as_str(),
        o.protocol.as_str()
    );
    s += &format!(
        "- proxies connected and synced: {} of {TARGET_PROXIES} ({:.2}× the target)\n",
        o.synced,
        o.synced as f64 / TARGET_PROXIES as f64
    );
    s += &format!(
        "- control-plane peak RSS: {} ({:.2}× the 1 GiB target)\n",
        gib(o.end.hwm),
        o.end.hwm as f64 / TARGET_RSS as f64
    );
    if o.synced < TARGET_PROXIES
        && let Some(per) = o.rss_per_proxy()
    {
        let projected = o.idle.rss + per * TARGET_PROXIES as u64;
        s += &format!(
            "- projected RSS at 10 000 proxies (idle + 10 000 × {:.0} KiB): {} ({:.0}× the target)\n",
            per as f64 / 1024.0,
            gib(projected),
            projected as f64 / TARGET_RSS as f64
        );
    }
    let timed = target_shape()
        .filter(|o| o.median_route().is_some())
        .max_by_key(|o| o.synced);
    if let Some(t) = timed
        && let Some(p) = t.median_route()
    {
        s += &format!(
            "- route change p99 with {} proxies: {} ms ({:.2}× the 1 s target; {} of {} converged)\n",
            t.synced,
            ms(p.p99),
            p.p99 / TARGET_P99_SECS,
            p.converged,
            p.expected
        );
        // Projected only from a smaller fleet; per proxy that was pushed
        // (with namespace visibility, only service 0's namespace is).
        let per_proxy = p.cpu / p.expected.max(1) as f64;
        let cpu = per_proxy * TARGET_PROXIES as f64;
        if t.synced < TARGET_PROXIES {
            s += &format!(
                "- projected route push at 10 000 proxies: {cpu:.0} CPU s ({:.0} ms per proxy), so at least {:.0} s on 2 cores ({:.0}× the 1 s target)\n",
                per_proxy * 1000.0,
                cpu / 2.0,
                cpu / 2.0 / TARGET_P99_SECS
            );
        }
    }
    s
}

/// Replaces the section between [`START`] and [`END`] in `path` with
/// `section` (appending it, with the markers, if the file has none).
pub fn write_into(path: &Path, section: &str) -> std::io::Result<()> {
    write_between(path, START, END, section)
}

/// Replaces what lies between the markers `start` and `end` in `path` with
/// `section` (appending the markers if missing), keeping the rest.
pub fn write_between(path: &Path, start: &str, end: &str, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{start}\n{section}{end}\n");
    let new = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) if a < b => {
            let tail = &old[b + end.len()..];
            format!(
                "{}{block}{}",
                &old[..a],
                tail.strip_prefix('\n').unwrap_or(tail)
            )
        }
        _ => format!("{old}{}{block}", if old.is_empty() { "" } else { "\n" }),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_results_section() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("README.md");
        std::fs::write(&path, "# Bench\n\nintro\n").expect("write");
        write_into(&path, "one\n").expect("first");
        write_into(&path, "two\n").expect("second");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("# Bench\n\nintro\n\n{START}\ntwo\n{END}\n"));
        std::fs::write(&path, format!("a\n{START}\nold\n{END}\nafter\n")).expect("write");
        write_into(&path, "new\n").expect("third");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("a\n{START}\nnew\n{END}\nafter\n"));
    }
}
