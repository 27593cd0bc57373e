//! Golden tests of `weft analyze`: the exact text a user sees, and the exit
//! status. Each case under `tests/golden/<case>/` has an `args` file (one
//! argument per line, run from that folder) and an `expected` file (exit
//! status line, then stdout). `WEFT_BLESS=1 cargo test` rewrites them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

fn run_case(dir: &Path) -> String {
    let args = std::fs::read_to_string(dir.join("args")).expect("args file");
    let out = weft()
        .current_dir(dir)
        .args(args.lines().filter(|l| !l.is_empty()))
        .output()
        .expect("run weft");
    format!(
        "exit: {}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("args").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases");
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let got = run_case(case);
        let expected_path = case.join("expected");
        if bless {
            std::fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "--- {}\n--- want:\n{want}--- got:\n{got}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (WEFT_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn examples_analyze_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = weft()
        .current_dir(&root)
        .args(["analyze", "examples/"])
        .output()
        .expect("run weft");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "only a success line expected, got:\n{stdout}"
    );
    assert!(
        stdout.starts_with("✔ No validation issues found"),
        "{stdout}"
    );
}

#[test]
fn reads_standard_input_as_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = weft()
        .args(["analyze", "-n", "shop", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run weft");
    let doc = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  egress: [{hosts: [\"bad\"]}]\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("Error [WEFT0020] Sidecar shop/s (<stdin>:5) spec.egress[0].hosts[0]: "),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = weft().arg("analyze").output().expect("run weft");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PATH"));
    let out = weft()
        .args(["analyze", "--output", "xml", "."])
        .output()
        .expect("run weft");
    assert_eq!(out.status.code(), Some(2));
}
