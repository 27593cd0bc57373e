//! The `main` of a root-only integration test (`harness = false`): the
//! same binary run as `NAME helper …` inside a network namespace is the
//! test's servers and clients; otherwise it acts like libtest for one
//! test (`--list`, name filters) and prints libtest's summary line, which
//! `scripts/test.sh` counts. Without root or one of its tools the test
//! prints why and passes — unless it is a CI run ([`crate::common::in_ci`]),
//! where it fails. (The test file declares `mod common`.)

use std::process::{Command, ExitCode, Stdio};

/// One root-only test.
pub struct RootTest {
    /// Its name, for `cargo test NAME` filters and `--list`.
    pub name: &'static str,
    /// Commands it runs, checked before it starts.
    pub tools: &'static [&'static str],
    /// The Debian packages that have them, for the "not found" reason.
    pub packages: &'static str,
    /// The in-namespace helper (`NAME helper ARGS…`).
    pub helper: fn(&[String]),
    /// The test itself; it fails by panicking.
    pub test: fn(),
}

impl RootTest {
    /// Runs as the test binary's `main`.
    pub fn main(&self) -> ExitCode {
        let name = self.name;
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("helper") {
            (self.helper)(&args[1..]);
            return ExitCode::SUCCESS;
        }
        if args.iter().any(|a| a == "--list") {
            println!("{name}: test");
            return ExitCode::SUCCESS;
        }
        // Like libtest: positional arguments are name filters.
        let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
            return ExitCode::SUCCESS;
        }
        if let Some(reason) = self.missing_prerequisite() {
            if crate::common::in_ci() {
                println!(
                    "test {name} ... FAILED: cannot run in CI: {reason} (run scripts/setup.sh as root)"
                );
                println!(
                    "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
                );
                return ExitCode::FAILURE;
            }
            crate::common::announce_skip(name, &reason);
            println!("test {name} ... skipped: {reason}");
            println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
            return ExitCode::SUCCESS;
        }
        // The summary line, whichever way it ends; the test's namespaces
        // are deleted while the panic unwinds.
        if std::panic::catch_unwind(self.test).is_err() {
            println!("test {name} ... FAILED");
            println!(
                "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            return ExitCode::from(101);
        }
        println!("test {name} ... ok");
        println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
        ExitCode::SUCCESS
    }

    /// Why this machine can't run the test, if it can't.
    fn missing_prerequisite(&self) -> Option<String> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_owned);
        if euid.as_deref() != Some("0") {
            return Some("not root (network namespaces and iptables need root)".into());
        }
        for tool in self.tools {
            let found = Command::new(tool)
                .arg(match *tool {
                    "ip" => "-V",
                    "openssl" => "version",
                    _ => "--version",
                })
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Some(format!(
                    "`{tool}` not found (Debian: apt-get install {})",
                    self.packages
                ));
            }
        }
        None
    }
}
