//! `weft proxy-status`: is every connected proxy in sync with the control
//! plane? Reads the control plane's `/debug/syncz`, prints a table like
//! `istioctl proxy-status`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use weft_control::ads::{ProxyStatus, TypeStatus};

/// `weft proxy-status` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane's debug address (`weft control --debug-addr`).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    debug_addr: SocketAddr,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Output {
    /// A table, one proxy per line.
    Table,
    /// The control plane's JSON.
    Json,
}

/// Runs `weft proxy-status`.
pub fn run(args: Args) -> ExitCode {
    let url = format!("http://{}/debug/syncz", args.debug_addr);
    let proxies: Vec<ProxyStatus> = match ureq::get(&url)
        .call()
        .and_then(|mut r| r.body_mut().read_json())
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "weft proxy-status: cannot read {url}: {e}\n    hint: is `weft control` running with --debug-addr {}?",
                args.debug_addr
            );
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = match args.output {
        Output::Json => serde_json::to_writer_pretty(&mut out, &proxies)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        Output::Table => write!(out, "{}", table(&proxies)),
    };
    if written.is_err() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// One word for a type's state: `SYNCED`, `STALE` (sent, not yet ACKed),
/// `NACKED` (the proxy rejected the last version), `NOT SENT`.
fn state(t: Option<&TypeStatus>) -> String {
    match t {
        None => "NOT SENT".into(),
        Some(t)
            if t.nacked
                .as_ref()
                .is_some_and(|(v, _)| Some(v) == t.sent.as_ref()) =>
        {
            "NACKED".into()
        }
        Some(t) if t.in_sync() => format!("SYNCED ({})", t.resources),
        Some(_) => "STALE".into(),
    }
}

/// The RDS column: with VHDS it covers the virtual hosts too —
/// `SYNCED (2 + 1000 vhosts)` when both are in sync, else the state of
/// whichever is not.
fn routes(p: &ProxyStatus) -> String {
    let rds = p.types.get("RDS");
    match p.types.get("VHDS") {
        None => state(rds),
        Some(v) if rds.is_some_and(TypeStatus::in_sync) && v.in_sync() => format!(
            "SYNCED ({} + {} vhosts)",
            rds.map_or(0, |r| r.resources),
            v.resources
        ),
        Some(v) if rds.is_some_and(TypeStatus::in_sync) => format!("VHDS {}", state(Some(v))),
        Some(_) => state(rds),
    }
}

fn table(proxies: &[ProxyStatus]) -> String {
    let header = [
        "NAME",
        "KIND",
        "NAMESPACE",
        "STREAM",
        "CDS",
        "LDS",
        "EDS",
        "RDS",
        "VERSION",
    ];
    let rows: Vec<[String; 9]> = proxies
        .iter()
        .map(|p| {
            let version = p
                .types
                .values()
                .filter_map(|t| t.sent.clone())
                .max_by_key(|v| v.parse::<u64>().unwrap_or(0));
            [
                p.id.clone(),
                p.kind.to_lowercase(),
                p.namespace.clone(),
                stream(p),
                state(p.types.get("CDS")),
                state(p.types.get("LDS")),
                state(p.types.get("EDS")),
                routes(p),
                version.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("   ").trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if proxies.is_empty() {
        out.push_str("(no proxies connected)\n");
    }
    for p in proxies {
        for (ty, t) in &p.types {
            if let Some((version, error)) = &t.nacked {
                out.push_str(&format!(
                    "\n{} rejected {ty} version {version}: {error}",
                    p.id
                ));
            }
        }
    }
    if proxies
        .iter()
        .any(|p| p.types.values().any(|t| t.nacked.is_some()))
    {
        out.push('\n');
    }
    out
}

/// The gRPC service of a proxy's stream and whether it is incremental:
/// `ADS`, `ADS delta`, `CDS`, ...
fn stream(p: &ProxyStatus) -> String {
    let service = if p.service.is_empty() {
        "ADS"
    } else {
        &p.service
    };
    if p.delta {
        format!("{service} delta")
    } else {
        service.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn table_like_istioctl() {
        let mut types = BTreeMap::new();
        types.insert(
            "CDS".into(),
            TypeStatus {
                sent: Some("3".into()),
                resources: 16,
                acked: Some("3".into()),
                nacked: None,
            },
        );
        types.insert(
            "LDS".into(),
            TypeStatus {
                sent: Some("3".into()),
                resources: 1,
                acked: Some("2".into()),
                nacked: None,
            },
        );
        types.insert(
            "RDS".into(),
            TypeStatus {
                sent: Some("3".into()),
                resources: 1,
                acked: None,
                nacked: Some(("3".into(), "bad route".into())),
            },
        );
        let p = ProxyStatus {
            id: "sidecar~10.0.0.1~reviews-v1.shop~shop.svc.cluster.local".into(),
            kind: "Sidecar".into(),
            namespace: "shop".into(),
            service: "ADS".into(),
            delta: false,
            connected_at: 0,
            last_push: Some(0),
            types,
        };
        let t = table(std::slice::from_ref(&p));
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(
            lines[1].contains("SYNCED (16)")
                && lines[1].contains("STALE")
                && lines[1].contains("NOT SENT")
                && lines[1].contains("NACKED"),
            "{t}"
        );
        assert!(lines[1].trim_end().ends_with('3'), "{t}");
        assert!(lines[1].contains("   ADS   "), "{t}");
        assert!(
            t.contains("shop.svc.cluster.local rejected RDS version 3: bad route"),
            "{t}"
        );
        assert_eq!(table(&[]).lines().nth(1), Some("(no proxies connected)"));
        let mut delta = p.clone();
        delta.delta = true;
        delta.service = "EDS".into();
        assert_eq!(stream(&delta), "EDS delta");

        // VHDS: the RDS column covers the virtual hosts.
        let synced = |resources| TypeStatus {
            sent: Some("4".into()),
            resources,
            acked: Some("4".into()),
            nacked: None,
        };
        let mut vhds = delta.clone();
        vhds.types.insert("RDS".into(), synced(2));
        vhds.types.insert("VHDS".into(), synced(1000));
        assert_eq!(routes(&vhds), "SYNCED (2 + 1000 vhosts)");
        vhds.types.insert(
            "VHDS".into(),
            TypeStatus {
                acked: Some("3".into()),
                ..synced(1000)
            },
        );
        assert_eq!(routes(&vhds), "VHDS STALE");
        assert!(table(&[vhds]).contains("VHDS STALE"));
    }
}
