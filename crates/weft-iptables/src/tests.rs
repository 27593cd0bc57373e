//! Rule generation against golden files (checked by hand against
//! istio-iptables' own goldens in tools/istio-iptables/pkg/capture/testdata),
//! config parsing, and reading `iptables-save` for apply and cleanup.
//!
//! `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-iptables` rewrites the goldens;
//! read the diff before committing it.

use std::path::Path;

use crate::config::InboundMode;
use crate::config::{Cidrs, Config, Ports, parse_cidrs, parse_ports};
use crate::rules::{Family, Table, nat_rules as rules, render, restore_input};
use crate::run::{TableState, route_commands};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("WEFT_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file");
    assert_eq!(
        actual, expected,
        "{name} differs (WEFT_UPDATE_GOLDEN=1 rewrites it)"
    );
}

/// The ports and CIDRs a user excludes in practice: ssh and a database
/// port, the cloud metadata address, a pod CIDR of each family.
fn with_exclusions() -> Config {
    Config {
        proxy_uids: vec![1337],
        proxy_gids: vec![1338],
        inbound_ports: Ports::All,
        exclude_inbound_ports: vec![15000, 15020, 15021, 15090, 22],
        exclude_outbound_ports: vec![3306, 5432],
        include_outbound_cidrs: Cidrs::All,
        exclude_outbound_cidrs: parse_cidrs("169.254.169.254/32,10.96.0.0/12,fd00:10:96::/112")
            .expect("cidrs"),
        ipv6: true,
        ..Config::default()
    }
}

#[test]
fn default_v4_golden() {
    golden("default.v4", &render(&Config::default(), Family::V4));
}

#[test]
fn default_v6_golden() {
    golden("default.v6", &render(&Config::default(), Family::V6));
}

#[test]
fn exclusions_v4_golden() {
    golden("exclusions.v4", &render(&with_exclusions(), Family::V4));
}

#[test]
fn exclusions_v6_golden() {
    golden("exclusions.v6", &render(&with_exclusions(), Family::V6));
}

#[test]
fn included_ports_and_cidrs_golden() {
    let config = Config {
        proxy_gids: vec![],
        inbound_ports: "8080, 9080".parse().expect("ports"),
        include_outbound_cidrs: "10.0.0.0/8,fd00::/8".parse().expect("cidrs"),
        ..Config::default()
    };
    golden("include.v4", &render(&config, Family::V4));
    golden("include.v6", &render(&config, Family::V6));
}

#[test]
fn no_inbound_ports_no_inbound_capture() {
    let config = Config {
        inbound_ports: "".parse().expect("ports"),
        ..Config::default()
    };
    let r = rules(&config, Family::V4);
    assert!(!r.iter().any(|l| l.contains("PREROUTING")), "{r:#?}");
    assert!(
        !r.iter().any(|l| l.starts_with("-A ISTIO_INBOUND")),
        "{r:#?}"
    );
    assert!(r.contains(&"-A ISTIO_OUTPUT -j ISTIO_REDIRECT".to_owned()));
}

#[test]
fn included_loopback_keeps_app_to_itself_captured() {
    let config = Config {
        include_outbound_cidrs: "127.0.0.0/8".parse().expect("cidrs"),
        ..Config::default()
    };
    let v4 = rules(&config, Family::V4);
    assert!(!v4.iter().any(|l| l.contains("! --uid-owner")), "{v4:#?}");
    assert!(v4.contains(&"-A ISTIO_OUTPUT -d 127.0.0.0/8 -j ISTIO_REDIRECT".to_owned()));
    // IPv6 has no loopback range included: the app's own calls stay direct.
    let v6 = rules(&config, Family::V6);
    assert!(v6.contains(&"-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN".to_owned()));
    assert!(
        !v6.iter()
            .any(|l| l.ends_with("-j ISTIO_REDIRECT") && l.contains(" -d "))
    );
}

#[test]
fn many_ports_split_into_multiport_groups() {
    let ports: Vec<u16> = (8000..8020).collect();
    let config = Config {
        exclude_outbound_ports: ports,
        ..Config::default()
    };
    let r: Vec<_> = rules(&config, Family::V4)
        .into_iter()
        .filter(|l| l.starts_with("-A ISTIO_OUTPUT") && l.contains("multiport"))
        .collect();
    assert_eq!(
        r,
        [
            "-A ISTIO_OUTPUT -p tcp -m multiport --dports \
             8000,8001,8002,8003,8004,8005,8006,8007,8008,8009,8010,8011,8012,8013,8014 -j RETURN",
            "-A ISTIO_OUTPUT -p tcp -m multiport --dports 8015,8016,8017,8018,8019 -j RETURN",
        ]
    );
}

#[test]
fn ports_and_cidrs_parse() {
    assert_eq!("*".parse::<Ports>().expect("all"), Ports::All);
    assert_eq!(
        " 80, 443 ,".parse::<Ports>().expect("list"),
        Ports::List(vec![80, 443])
    );
    assert_eq!("".parse::<Ports>().expect("none"), Ports::List(vec![]));
    assert_eq!(Ports::List(vec![80, 443]).to_string(), "80,443");
    for bad in ["0", "65536", "http", "80-90"] {
        let e = parse_ports(bad).expect_err(bad).to_string();
        assert!(e.contains(&format!("`{bad}` is not a port")), "{e}");
    }
    assert_eq!("*".parse::<Cidrs>().expect("all"), Cidrs::All);
    assert_eq!(
        parse_cidrs("10.1.2.3/8, 192.0.2.1, ::1").expect("cidrs"),
        parse_cidrs("10.0.0.0/8,192.0.2.1/32,::1/128").expect("cidrs"),
        "hosts become /32 and /128; host bits are dropped"
    );
    let e = parse_cidrs("10.0.0.0/33")
        .expect_err("bad prefix")
        .to_string();
    assert!(e.contains("`10.0.0.0/33` is not a CIDR"), "{e}");
    assert!(parse_cidrs("*").is_err(), "exclusions can't be everything");
}

#[test]
fn validate_refuses_loops() {
    let config = Config {
        proxy_uids: vec![],
        proxy_gids: vec![],
        ..Config::default()
    };
    let e = config.validate().expect_err("no owner").to_string();
    assert!(e.contains("no proxy uid or gid"), "{e}");
    assert!(Config::default().validate().is_ok());
    let e = Config {
        outbound_port: 0,
        ..Config::default()
    }
    .validate()
    .expect_err("port 0")
    .to_string();
    assert!(e.contains("outbound port 0"), "{e}");
}

/// `iptables-save -t nat` of a host with our rules (applied twice by a
/// tool that appends) next to someone else's.
const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Tue Dec  1 11:58:52 2026
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
# Completed on Tue Dec  1 11:58:52 2026
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j ISTIO_INBOUND_LOOKALIKE
COMMIT
";

#[test]
fn cleanup_removes_exactly_ours() {
    let state = TableState::parse(SAVED, Table::Nat);
    assert_eq!(
        state.chains,
        [
            "ISTIO_INBOUND",
            "ISTIO_IN_REDIRECT",
            "ISTIO_OUTPUT",
            "ISTIO_REDIRECT"
        ]
    );
    assert_eq!(
        state
            .cleanup_script(Table::Nat)
            .expect("something to remove"),
        "*nat
-D PREROUTING -p tcp -j ISTIO_INBOUND
-D OUTPUT -p tcp -j ISTIO_OUTPUT
-D OUTPUT -p tcp -j ISTIO_OUTPUT
-F ISTIO_INBOUND
-F ISTIO_IN_REDIRECT
-F ISTIO_OUTPUT
-F ISTIO_REDIRECT
-X ISTIO_INBOUND
-X ISTIO_IN_REDIRECT
-X ISTIO_OUTPUT
-X ISTIO_REDIRECT
COMMIT
"
    );
}

#[test]
fn cleanup_of_a_clean_table_does_nothing() {
    let clean = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    assert_eq!(
        TableState::parse(clean, Table::Nat).cleanup_script(Table::Nat),
        None
    );
    assert_eq!(
        TableState::parse("", Table::Nat).cleanup_script(Table::Nat),
        None
    );
}

#[test]
fn reapply_replaces_old_jumps_in_one_transaction() {
    let state = TableState::parse(SAVED, Table::Nat);
    let input = restore_input(
        Table::Nat,
        &state.deletes,
        &rules(&Config::default(), Family::V4),
    );
    let lines: Vec<&str> = input.lines().collect();
    // Old jumps go first, then the chains are declared (emptied), then the
    // new rules, with exactly one jump from each built-in chain.
    assert_eq!(lines[0], "*nat");
    assert_eq!(
        lines[1..4],
        state.deletes.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(lines[4], ":ISTIO_INBOUND - [0:0]");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("-A OUTPUT")).count(),
        1
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("-A PREROUTING"))
            .count(),
        1
    );
    assert_eq!(lines.last(), Some(&"COMMIT"));
}

fn tproxy() -> Config {
    Config {
        inbound_mode: InboundMode::Tproxy,
        ipv6: true,
        ..Config::default()
    }
}

#[test]
fn tproxy_v4_golden() {
    golden("tproxy.v4", &render(&tproxy(), Family::V4));
}

#[test]
fn tproxy_v6_golden() {
    golden("tproxy.v6", &render(&tproxy(), Family::V6));
}

#[test]
fn tproxy_with_listed_ports() {
    let config = Config {
        inbound_ports: "9080".parse().expect("ports"),
        ..tproxy()
    };
    let out = render(&config, Family::V4);
    for line in [
        "-A ISTIO_INBOUND -p tcp --dport 9080 -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT",
        "-A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_TPROXY",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    // Nothing inbound in nat; no inbound capture at all means no mangle.
    assert!(!out.contains(
        "-A PREROUTING -p tcp -j ISTIO_INBOUND\n-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT"
    ));
    let none = Config {
        inbound_ports: "".parse().expect("ports"),
        ..tproxy()
    };
    assert!(!render(&none, Family::V4).contains("*mangle"));
}

#[test]
fn tproxy_validation() {
    for (config, says) in [
        (
            Config {
                tproxy_mark: 1338,
                ..tproxy()
            },
            "TPROXY mark 1338",
        ),
        (
            Config {
                tproxy_mark: 0,
                ..tproxy()
            },
            "TPROXY mark 0",
        ),
        (
            Config {
                tproxy_route_table: 254,
                ..tproxy()
            },
            "route table 254",
        ),
    ] {
        let e = config.validate().expect_err(says).to_string();
        assert!(e.contains(says), "{e}");
    }
    assert!("tproxy".parse::<InboundMode>().is_ok());
    assert!("nat".parse::<InboundMode>().is_err());
}

/// `iptables-save` of a TPROXY set-up (as the kernel prints it: marks in
/// hex, TPROXY's defaults spelled out) beside someone else's mangle rule.
const SAVED_TPROXY: &str = "\
*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_DIVERT - [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_TPROXY - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -p tcp -m mark --mark 0x539 -m comment --comment weft-iptables -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A PREROUTING -i eth0 -j MARK --set-xmark 0x7/0xffffffff
-A OUTPUT -p tcp -o lo -m mark --mark 0x539 -m comment --comment \"weft-iptables\" -j RETURN
-A ISTIO_DIVERT -j MARK --set-xmark 0x539/0xffffffff
-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
COMMIT
";

#[test]
fn cleanup_finds_our_mangle_rules_by_comment() {
    let state = TableState::parse(SAVED_TPROXY, Table::Mangle);
    assert_eq!(
        state.chains,
        ["ISTIO_DIVERT", "ISTIO_INBOUND", "ISTIO_TPROXY"]
    );
    let script = state.cleanup_script(Table::Mangle).expect("ours");
    assert!(
        script.starts_with("*mangle\n-D PREROUTING -p tcp -j ISTIO_INBOUND\n"),
        "{script}"
    );
    assert!(
        script.contains("-D PREROUTING -p tcp -m mark --mark 0x539 -m comment"),
        "{script}"
    );
    assert!(
        script.contains("-D OUTPUT -p tcp -o lo -m mark --mark 0x539"),
        "{script}"
    );
    assert!(
        !script.contains("eth0"),
        "someone else's rule stays: {script}"
    );
    assert_eq!(state.deletes.len(), 3);
    // The nat section is read on its own.
    let nat = TableState::parse(SAVED_TPROXY, Table::Nat);
    assert_eq!((nat.chains.len(), nat.deletes.len()), (1, 0));
}

#[test]
fn tproxy_policy_route_commands() {
    let config = Config {
        tproxy_mark: 7,
        tproxy_route_table: 100,
        ..tproxy()
    };
    let cmds = |family, add| -> Vec<String> {
        route_commands(family, &config, add)
            .into_iter()
            .map(|c| c.join(" "))
            .collect()
    };
    assert_eq!(
        cmds(Family::V4, true),
        [
            "-4 rule del fwmark 7 lookup 100",
            "-4 rule add fwmark 7 lookup 100",
            "-4 route replace local default dev lo table 100",
        ]
    );
    assert_eq!(
        cmds(Family::V6, false),
        [
            "-6 rule del fwmark 7 lookup 100",
            "-6 route flush table 100"
        ]
    );
}
