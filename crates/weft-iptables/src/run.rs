//! Applying and removing the rules with `iptables-save` /
//! `iptables-restore --noflush` (and the ip6tables pair).
//!
//! Both are one nat-table transaction each, computed from what
//! `iptables-save` shows now, so both are idempotent: applying again
//! replaces our rules instead of adding a second copy, and cleaning a table
//! without our chains does nothing. Nothing outside our chains and the
//! jumps into them is touched.

use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use crate::Error;
use crate::config::Config;
use crate::rules::{CHAINS, Family, restore_input, rules};

/// What applying or cleaning did to one family's nat table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Which table.
    pub family: Family,
    /// Rules installed (0 for cleanup).
    pub rules: usize,
    /// Jumps into our chains from `PREROUTING`/`OUTPUT` removed first.
    pub jumps_removed: usize,
    /// Our chains that existed before (flushed and reused, or deleted).
    pub chains_found: usize,
}

/// Installs the rules for IPv4, and IPv6 when `config.ipv6` (then also
/// `::6` on `lo`, the proxy's passthrough source). Replaces any earlier
/// copy of our chains atomically (one `iptables-restore` transaction per
/// family).
pub fn apply(config: &Config) -> Result<Vec<Outcome>, Error> {
    config.validate()?;
    families(config.ipv6)
        .map(|family| {
            let state = NatState::parse(&save(family)?);
            let rules = rules(config, family);
            restore(family, &restore_input(&state.deletes, &rules))?;
            if family == Family::V6 {
                add_passthrough_source_v6()?;
            }
            Ok(Outcome {
                family,
                rules: rules.len(),
                jumps_removed: state.deletes.len(),
                chains_found: state.chains.len(),
            })
        })
        .collect()
}

/// Removes our chains and every jump into them, for IPv4 and IPv6. IPv6 is
/// best effort unless `ipv6` (a host without ip6tables or its nat table has
/// nothing of ours to remove).
pub fn cleanup(ipv6: bool) -> Result<Vec<Outcome>, Error> {
    let mut done = Vec::new();
    for (family, state) in current(ipv6)? {
        if let Some(script) = state.cleanup_script() {
            restore(family, &script)?;
        }
        done.push(Outcome {
            family,
            rules: 0,
            jumps_removed: state.deletes.len(),
            chains_found: state.chains.len(),
        });
    }
    Ok(done)
}

/// What [`cleanup`] would run now, per family (`None`: nothing to remove).
/// Reads the tables, so it needs root too.
pub fn cleanup_plan(ipv6: bool) -> Result<Vec<(Family, Option<String>)>, Error> {
    Ok(current(ipv6)?
        .into_iter()
        .map(|(family, state)| (family, state.cleanup_script()))
        .collect())
}

/// Our part of each family's nat table now; IPv6 skipped when it can't be
/// read and wasn't asked for.
fn current(ipv6: bool) -> Result<Vec<(Family, NatState)>, Error> {
    let mut states = Vec::new();
    for family in [Family::V4, Family::V6] {
        match save(family) {
            Ok(s) => states.push((family, NatState::parse(&s))),
            Err(_) if family == Family::V6 && !ipv6 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(states)
}

fn families(ipv6: bool) -> impl Iterator<Item = Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter(move |f| *f == Family::V4 || ipv6)
}

/// Our part of a nat table, read from `iptables-save` output.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NatState {
    /// Our chains that exist.
    pub(crate) chains: Vec<String>,
    /// `-D` lines for every rule of another chain that jumps into ours.
    pub(crate) deletes: Vec<String>,
}

impl NatState {
    pub(crate) fn parse(save: &str) -> NatState {
        let mut state = NatState::default();
        let mut in_nat = false;
        for line in save.lines().map(str::trim) {
            if let Some(table) = line.strip_prefix('*') {
                in_nat = table == "nat";
                continue;
            }
            if !in_nat {
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or_default();
                if CHAINS.contains(&name) {
                    state.chains.push(name.to_owned());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let words: Vec<&str> = words.collect();
                let jumps_to_ours = words
                    .windows(2)
                    .any(|w| matches!(w[0], "-j" | "-g") && CHAINS.contains(&w[1]));
                if !CHAINS.contains(&chain) && jumps_to_ours {
                    state.deletes.push(format!("-D {rule}"));
                }
            }
        }
        state
    }

    /// Deletes the jumps, then flushes and deletes the chains; `None` when
    /// there is nothing of ours.
    pub(crate) fn cleanup_script(&self) -> Option<String> {
        if self.chains.is_empty() && self.deletes.is_empty() {
            return None;
        }
        let mut out = String::from("*nat\n");
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

fn save(family: Family) -> Result<String, Error> {
    let program = format!("{}-save", family.tool());
    run(&program, &["-t", "nat"], None)
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
