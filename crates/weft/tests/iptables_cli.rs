//! `weft iptables` flags, without root: `--dry-run` prints the rules the
//! flags ask for, bad values are refused by name, and a missing iptables
//! says what to install. (`tests/iptables.rs` applies them, as root.)

use std::process::{Command, Output};

use weft_iptables::{Cidrs, Config, Family, InboundMode, Ports, parse_cidrs, render};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("iptables")
        .args(args)
        .output()
        .expect("run weft")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dry_run_defaults_are_istios() {
    let out = stdout(&weft(&["--dry-run"]));
    let expected = format!(
        "# iptables-restore --noflush (IPv4)\n{}",
        render(&Config::default(), Family::V4)
    );
    assert_eq!(out, expected);
}

#[test]
fn dry_run_follows_the_flags() {
    let out = stdout(&weft(&[
        "--dry-run",
        "--ipv6",
        "--proxy-uid",
        "1000",
        "--outbound-port",
        "16001",
        "--inbound-port",
        "16006",
        "--inbound-ports",
        "*",
        "--exclude-inbound-ports",
        "22,15021",
        "--exclude-outbound-ports",
        "3306",
        "--include-outbound-cidrs",
        "*",
        "--exclude-outbound-cidrs",
        "169.254.169.254/32, fd00::/8",
    ]));
    // The gid defaults to the uid; the user's inbound exclusions come on
    // top of the proxy's own ports.
    let config = Config {
        proxy_uids: vec![1000],
        proxy_gids: vec![1000],
        outbound_port: 16001,
        inbound_port: 16006,
        inbound_ports: Ports::All,
        exclude_inbound_ports: vec![15000, 15020, 15021, 15090, 22],
        exclude_outbound_ports: vec![3306],
        include_outbound_cidrs: Cidrs::All,
        exclude_outbound_cidrs: parse_cidrs("169.254.169.254/32,fd00::/8").expect("cidrs"),
        ipv6: true,
        ..Config::default()
    };
    let expected = format!(
        "# iptables-restore --noflush (IPv4)\n{}# ip6tables-restore --noflush (IPv6)\n{}",
        render(&config, Family::V4),
        render(&config, Family::V6)
    );
    assert_eq!(out, expected);
    assert!(out.contains("-A ISTIO_OUTPUT -m owner --gid-owner 1000 -j RETURN"));
    assert!(out.contains("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001"));
}

#[test]
fn separate_gids_and_port_lists() {
    let out = stdout(&weft(&[
        "--dry-run",
        "--proxy-uid",
        "1337,1338",
        "--proxy-gid",
        "2000",
        "--inbound-ports",
        "9080",
        "--include-outbound-cidrs",
        "10.0.0.0/8",
    ]));
    for line in [
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1338 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --gid-owner 2000 -j RETURN",
        "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT",
        "-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    assert!(!out.contains("--gid-owner 1337"), "{out}");
    // Only the included range is captured, not everything.
    assert!(
        !out.lines()
            .any(|l| l == "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
        "{out}"
    );
}

#[test]
fn tproxy_mode() {
    let out = stdout(&weft(&[
        "--dry-run",
        "--inbound-interception-mode",
        "tproxy",
        "--inbound-tproxy-mark",
        "7",
    ]));
    let config = Config {
        inbound_mode: InboundMode::Tproxy,
        tproxy_mark: 7,
        ..Config::default()
    };
    let expected = format!(
        "# iptables-restore --noflush (IPv4)\n{}",
        render(&config, Family::V4)
    );
    assert_eq!(out, expected);
    assert!(
        out.starts_with("# iptables-restore --noflush (IPv4)\n*mangle\n"),
        "{out}"
    );
    let out = weft(&[
        "--dry-run",
        "--inbound-interception-mode",
        "TPROXY",
        "--inbound-tproxy-route-table",
        "254",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("route table 254"), "{stderr}");
}

#[test]
fn bad_values_are_refused() {
    for (flag, value, says) in [
        ("--exclude-outbound-cidrs", "*", "`*` is not a CIDR"),
        ("--exclude-outbound-ports", "80,ssh", "`ssh` is not a port"),
        ("--inbound-ports", "0", "`0` is not a port"),
        ("--include-outbound-cidrs", "10.0.0.0/40", "is not a CIDR"),
        ("--inbound-interception-mode", "NAT", "REDIRECT or TPROXY"),
    ] {
        let out = weft(&["--dry-run", flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn missing_iptables_says_what_to_install() {
    let empty = tempfile::tempdir().expect("tempdir");
    for args in [&[][..], &["--cleanup"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .arg("iptables")
            .args(args)
            .env("PATH", empty.path())
            .output()
            .expect("run weft");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("`iptables-save` not found")
                && stderr.contains("apt-get install iptables"),
            "{stderr}"
        );
    }
}
