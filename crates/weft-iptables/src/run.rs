//! Applying and removing the rules with `iptables-save` /
//! `iptables-restore --noflush` (and the ip6tables pair), plus the policy
//! route TPROXY needs (`ip rule` / `ip route`).
//!
//! Both are one transaction per family, computed from what `iptables-save`
//! shows now, so both are idempotent: applying again replaces our rules
//! instead of adding a second copy, and cleaning a table without our chains
//! does nothing. Nothing outside our chains, the jumps into them and our
//! commented mangle rules is touched.

use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use crate::Error;
use crate::config::{Config, InboundMode};
use crate::rules::{COMMENT, Family, Table, restore_input, tables};

/// What applying or cleaning did to one family's tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Which family.
    pub family: Family,
    /// Rules installed (0 for cleanup).
    pub rules: usize,
    /// Rules of built-in chains (jumps into ours, our marks) removed first.
    pub jumps_removed: usize,
    /// Our chains that existed before (flushed and reused, or deleted).
    pub chains_found: usize,
}

/// Installs the rules for IPv4, and IPv6 when `config.ipv6` (then also
/// `::6` on `lo`, the proxy's passthrough source). Replaces any earlier
/// copy of our chains atomically (one `iptables-restore` transaction per
/// family), including a TPROXY set-up when the mode is now REDIRECT.
pub fn apply(config: &Config) -> Result<Vec<Outcome>, Error> {
    config.validate()?;
    let mut done = Vec::new();
    for family in families(config.ipv6) {
        let saved = save(family)?;
        let wanted = tables(config, family);
        let mut outcome = Outcome {
            family,
            rules: 0,
            jumps_removed: 0,
            chains_found: 0,
        };
        let mut input = String::new();
        let mut had_tproxy = false;
        for table in Table::ALL {
            let state = TableState::parse(&saved, table);
            match wanted.iter().find(|(t, _)| *t == table) {
                Some((_, rules)) => {
                    input.push_str(&restore_input(table, &state.deletes, rules));
                    outcome.rules += rules.len();
                }
                None => input.push_str(&state.cleanup_script(table).unwrap_or_default()),
            }
            had_tproxy |= table == Table::Mangle && !state.is_empty();
            outcome.jumps_removed += state.deletes.len();
            outcome.chains_found += state.chains.len();
        }
        restore(family, &input)?;
        if config.inbound_mode == InboundMode::Tproxy {
            tproxy_route(family, config, true)?;
        } else if had_tproxy {
            tproxy_route(family, config, false)?;
        }
        if family == Family::V6 {
            add_passthrough_source_v6()?;
        }
        done.push(outcome);
    }
    Ok(done)
}

/// Removes our chains and every rule of ours in built-in chains, for IPv4
/// and IPv6, and TPROXY's policy route (`config.tproxy_mark`,
/// `config.tproxy_route_table`) where our mangle rules were. IPv6 is best
/// effort unless `config.ipv6` (a host without ip6tables has nothing of
/// ours to remove).
pub fn cleanup(config: &Config) -> Result<Vec<Outcome>, Error> {
    let mut done = Vec::new();
    for (family, saved) in current(config.ipv6)? {
        let states = Table::ALL.map(|t| (t, TableState::parse(&saved, t)));
        let script: String = states
            .iter()
            .filter_map(|(t, s)| s.cleanup_script(*t))
            .collect();
        if !script.is_empty() {
            restore(family, &script)?;
        }
        if states
            .iter()
            .any(|(t, s)| *t == Table::Mangle && !s.is_empty())
        {
            tproxy_route(family, config, false)?;
        }
        done.push(Outcome {
            family,
            rules: 0,
            jumps_removed: states.iter().map(|(_, s)| s.deletes.len()).sum(),
            chains_found: states.iter().map(|(_, s)| s.chains.len()).sum(),
        });
    }
    Ok(done)
}

/// What [`cleanup`] would run now, per family (`None`: nothing to remove).
/// Reads the tables, so it needs root too.
pub fn cleanup_plan(config: &Config) -> Result<Vec<(Family, Option<String>)>, Error> {
    let mut plan = Vec::new();
    for (family, saved) in current(config.ipv6)? {
        let mut script = String::new();
        for table in Table::ALL {
            let state = TableState::parse(&saved, table);
            script.push_str(&state.cleanup_script(table).unwrap_or_default());
            if table == Table::Mangle && !state.is_empty() {
                for args in route_commands(family, config, false) {
                    script.push_str(&format!("# then: ip {}\n", args.join(" ")));
                }
            }
        }
        plan.push((family, Some(script).filter(|s| !s.is_empty())));
    }
    Ok(plan)
}

/// Each family's `iptables-save` output now; IPv6 skipped when it can't be
/// read and wasn't asked for.
fn current(ipv6: bool) -> Result<Vec<(Family, String)>, Error> {
    let mut saved = Vec::new();
    for family in [Family::V4, Family::V6] {
        match save(family) {
            Ok(s) => saved.push((family, s)),
            Err(_) if family == Family::V6 && !ipv6 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(saved)
}

fn families(ipv6: bool) -> impl Iterator<Item = Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter(move |f| *f == Family::V4 || ipv6)
}

/// Our part of one table, read from `iptables-save` output.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TableState {
    /// Our chains that exist.
    pub(crate) chains: Vec<String>,
    /// `-D` lines for every rule of another chain that jumps into ours or
    /// carries our comment.
    pub(crate) deletes: Vec<String>,
}

impl TableState {
    pub(crate) fn parse(save: &str, table: Table) -> TableState {
        let ours = table.chains();
        let mut state = TableState::default();
        let mut in_table = false;
        for line in save.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('*') {
                in_table = name == table.name();
                continue;
            }
            if !in_table {
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or_default();
                if ours.contains(&name) {
                    state.chains.push(name.to_owned());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let words: Vec<&str> = words.collect();
                let mine = words.windows(2).any(|w| {
                    (matches!(w[0], "-j" | "-g") && ours.contains(&w[1]))
                        || (w[0] == "--comment" && w[1].trim_matches('"') == COMMENT)
                });
                if !ours.contains(&chain) && mine {
                    state.deletes.push(format!("-D {rule}"));
                }
            }
        }
        state
    }

    fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.deletes.is_empty()
    }

    /// Deletes the rules in built-in chains, then flushes and deletes our
    /// chains; `None` when there is nothing of ours.
    pub(crate) fn cleanup_script(&self, table: Table) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut out = format!("*{}\n", table.name());
        for line in &self.deletes {
            out.push_str(line);
            out.push('\n');
        }
        for op in ["-F", "-X"] {
            for chain in &self.chains {
                out.push_str(&format!("{op} {chain}\n"));
            }
        }
        out.push_str("COMMIT\n");
        Some(out)
    }
}

/// The `ip` commands for TPROXY's policy route: packets with the mark are
/// looked up in their own table, whose one route delivers everything
/// locally. Adding first removes earlier copies of the rule (`ip rule add`
/// would stack them).
pub(crate) fn route_commands(family: Family, config: &Config, add: bool) -> Vec<Vec<String>> {
    let v = match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    };
    let (mark, table) = (
        config.tproxy_mark.to_string(),
        config.tproxy_route_table.to_string(),
    );
    let rule = |op: &str| {
        [v, "rule", op, "fwmark", &mark, "lookup", &table]
            .map(str::to_owned)
            .to_vec()
    };
    let mut cmds = vec![rule("del")];
    if add {
        cmds.push(rule("add"));
        let route = [
            v, "route", "replace", "local", "default", "dev", "lo", "table", &table,
        ];
        cmds.push(route.map(str::to_owned).to_vec());
    } else {
        cmds.push(
            [v, "route", "flush", "table", &table]
                .map(str::to_owned)
                .to_vec(),
        );
    }
    cmds
}

/// Adds (or removes) TPROXY's policy route. `ip rule del` is repeated
/// until no copy is left (bounded); its failure then is expected.
fn tproxy_route(family: Family, config: &Config, add: bool) -> Result<(), Error> {
    let cmds = route_commands(family, config, add);
    let Some((del, rest)) = cmds.split_first() else {
        return Ok(());
    };
    let del: Vec<&str> = del.iter().map(String::as_str).collect();
    for _ in 0..16 {
        match run("ip", &del, None) {
            Ok(_) => {}
            Err(e @ (Error::Missing { .. } | Error::NotRoot { .. })) => return Err(e),
            Err(_) => break,
        }
    }
    for cmd in rest {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        run("ip", &args, None)?;
    }
    Ok(())
}

/// Puts `::6` on `lo`, as istio-iptables does with IPv6: the proxy binds
/// its inbound passthrough connections to it (127.0.0.6 needs nothing:
/// IPv4's `lo` has all of 127/8), and `ISTIO_OUTPUT` lets that source
/// through. `replace` makes it idempotent. Cleanup leaves it.
fn add_passthrough_source_v6() -> Result<(), Error> {
    run(
        "ip",
        &["-6", "addr", "replace", "::6/128", "dev", "lo"],
        None,
    )
    .map(drop)
}

/// Every table of the family (one read, so all tables are seen at once).
fn save(family: Family) -> Result<String, Error> {
    let program = format!("{}-save", family.tool());
    run(&program, &[], None)
}

fn restore(family: Family, input: &str) -> Result<(), Error> {
    let program = format!("{}-restore", family.tool());
    // `-w`: wait for the xtables lock (legacy backend) instead of failing.
    run(&program, &["-w", "5", "--noflush"], Some(input)).map(drop)
}

/// Runs one of the iptables tools (or `ip`), turning its failures into errors that
/// say what to do.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let spawned = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Missing {
                program: program.to_owned(),
                package: if program == "ip" {
                    "iproute2"
                } else {
                    "iptables"
                },
            });
        }
        Err(source) => {
            return Err(Error::Io {
                program: program.to_owned(),
                source,
            });
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes the pipe; its status says why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(|source| Error::Io {
        program: program.to_owned(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let denied = [
        "Permission denied",
        "must be root",
        "Operation not permitted",
    ];
    if denied.iter().any(|d| stderr.contains(d)) {
        return Err(Error::NotRoot {
            program: program.to_owned(),
            stderr,
        });
    }
    Err(Error::Failed {
        program: program.to_owned(),
        status: output.status.to_string(),
        stderr,
    })
}
