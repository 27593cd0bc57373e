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

/// The `-A` lines of `weft iptables --dry-run ARGS`, for each family printed.
fn rules(args: &[&str]) -> Vec<String> {
    let mut all = vec!["--dry-run"];
    all.extend(args);
    stdout(&weft(&all))
        .lines()
        .filter(|l| l.starts_with("-A ") || l.starts_with("# "))
        .map(str::to_string)
        .collect()
}

/// The rule text itself, for flag combinations istio-iptables' own golden
/// files cover (`tools/istio-iptables/pkg/capture/testdata/*.golden` in
/// istio/istio, named below; their `-p`, `-z`, `-u`, `-g`, `-i`, `-d`,
/// `-o`, `-x`, `-b` flags are ours). Each line is Istio's, but for what
/// Weft leaves out on purpose: the HBONE port 15008 (Istio's
/// `-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN` and the
/// `! --dport 15008` of the loopback redirect), UDP (newer Istio's twin
/// `-p udp` port exclusions, and so its `-A OUTPUT -j ISTIO_OUTPUT` for all
/// protocols), the closing `-A ISTIO_OUTPUT -j RETURN` after included
/// CIDRs (the chain's end returns anyway), and one `-m multiport` line
/// where Istio writes an `--dport` line per included inbound port. The
/// proxy's own ports 15000, 15020, 15021 and 15090 are always excluded
/// inbound (Istio's injector passes them with `-d`).
#[test]
fn dry_run_writes_istio_iptables_rules() {
    let redirects = [
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
    ];
    let owner = |v6: bool, kind: &str, id: &str| {
        let lo = if v6 { "::1/128" } else { "127.0.0.1/32" };
        [
            format!(
                "-A ISTIO_OUTPUT -o lo ! -d {lo} -p tcp -m owner --{kind}-owner {id} -j ISTIO_IN_REDIRECT"
            ),
            format!("-A ISTIO_OUTPUT -o lo -m owner ! --{kind}-owner {id} -j RETURN"),
            format!("-A ISTIO_OUTPUT -m owner --{kind}-owner {id} -j RETURN"),
        ]
    };
    let v4_owners = |uids: &[&str], gids: &[&str]| {
        let mut out = vec!["-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN".to_string()];
        for u in uids {
            out.extend(owner(false, "uid", u));
        }
        for g in gids {
            out.extend(owner(false, "gid", g));
        }
        out.push("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
        out
    };
    let header = |family: &str| format!("# {family}");
    let lines = |parts: &[&[String]]| parts.concat();
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // ip-range.golden (`-u 3,4 -g 1,2 -x 1.1.0.0/16 -i 9.9.0.0/16`, less
    // its DNS rules): uid and gid exclusions, excluded and included CIDRs.
    assert_eq!(
        rules(&[
            "--proxy-uid",
            "3,4",
            "--proxy-gid",
            "1,2",
            "--exclude-outbound-cidrs",
            "1.1.0.0/16",
            "--include-outbound-cidrs",
            "9.9.0.0/16",
        ]),
        lines(&[
            &[header("iptables-restore --noflush (IPv4)")],
            &owned(&redirects),
            &owned(&[
                "-A PREROUTING -p tcp -j ISTIO_INBOUND",
                "-A ISTIO_INBOUND -p tcp -m multiport --dports 15000,15020,15021,15090 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
            ]),
            &v4_owners(&["3", "4"], &["1", "2"]),
            &owned(&[
                "-A ISTIO_OUTPUT -d 1.1.0.0/16 -j RETURN",
                "-A ISTIO_OUTPUT -d 9.9.0.0/16 -j ISTIO_REDIRECT",
            ]),
        ])
    );

    // outbound-ports-exclude.golden and inbound-wildcard-exclude.golden
    // (`-o 22,80,443`, `-d 22,80,443`): one multiport RETURN each.
    assert_eq!(
        rules(&[
            "--exclude-outbound-ports",
            "22,80,443",
            "--exclude-inbound-ports",
            "22,80,443",
        ]),
        lines(&[
            &[header("iptables-restore --noflush (IPv4)")],
            &owned(&redirects),
            &owned(&[
                "-A PREROUTING -p tcp -j ISTIO_INBOUND",
                "-A ISTIO_INBOUND -p tcp -m multiport --dports 15000,15020,15021,15090,22,80,443 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
                "-A ISTIO_OUTPUT -p tcp -m multiport --dports 22,80,443 -j RETURN",
            ]),
            &v4_owners(&["1337"], &["1337"]),
            &owned(&["-A ISTIO_OUTPUT -j ISTIO_REDIRECT"]),
        ])
    );

    // outbound-ports-exclude-single.golden (`-o 22`): a plain --dport; and
    // inbound-ports-include.golden (`-b 32000,31000`): only those ports
    // captured, in the order given (Istio: a line per port).
    assert_eq!(
        rules(&[
            "--exclude-outbound-ports",
            "22",
            "--inbound-ports",
            "32000,31000",
            "--include-outbound-cidrs",
            "",
        ]),
        lines(&[
            &[header("iptables-restore --noflush (IPv4)")],
            &owned(&redirects),
            &owned(&[
                "-A PREROUTING -p tcp -j ISTIO_INBOUND",
                "-A ISTIO_INBOUND -p tcp -m multiport --dports 32000,31000 -j ISTIO_IN_REDIRECT",
                "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
                "-A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN",
            ]),
            &v4_owners(&["1337"], &["1337"]),
        ])
    );

    // ipv6-uid-gid.golden (`-u 3,4 -g 1,2 -b 4000,5000 -d 6000,7000
    // -x 2001:db8::/32 -i 2001:db8::/32` with IPv6, less its kube-virt
    // interfaces): the IPv6 table has ::6 and ::1 for Istio's 127.0.0.6
    // and 127.0.0.1, and the IPv6 CIDRs only; IPv4 gets none of them (an
    // include list of IPv6 ranges alone redirects no IPv4 traffic).
    let v6_tail = {
        let mut out = vec!["-A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN".to_string()];
        for u in ["3", "4"] {
            out.extend(owner(true, "uid", u));
        }
        for g in ["1", "2"] {
            out.extend(owner(true, "gid", g));
        }
        out.extend(owned(&[
            "-A ISTIO_OUTPUT -d ::1/128 -j RETURN",
            "-A ISTIO_OUTPUT -d 2001:db8::/32 -j RETURN",
            "-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT",
        ]));
        out
    };
    let inbound = owned(&[
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A ISTIO_INBOUND -p tcp -m multiport --dports 4000,5000 -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ]);
    assert_eq!(
        rules(&[
            "--ipv6",
            "--proxy-uid",
            "3,4",
            "--proxy-gid",
            "1,2",
            "--inbound-ports",
            "4000,5000",
            "--exclude-inbound-ports",
            "6000,7000",
            "--exclude-outbound-cidrs",
            "2001:db8::/32",
            "--include-outbound-cidrs",
            "2001:db8::/32",
        ]),
        lines(&[
            &[header("iptables-restore --noflush (IPv4)")],
            &owned(&redirects),
            &inbound,
            &v4_owners(&["3", "4"], &["1", "2"]),
            &[header("ip6tables-restore --noflush (IPv6)")],
            &owned(&redirects),
            &inbound,
            &v6_tail,
        ])
    );
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
