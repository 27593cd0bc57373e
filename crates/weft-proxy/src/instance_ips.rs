//! The workload's IPs, which the proxy reports as Istio's proxy does
//! (`INSTANCE_IPS` in the node metadata, the first in the node id): the
//! control plane finds the proxy's WorkloadEntry by them when its name
//! doesn't say, and the proxy appends its own IP to `x-forwarded-for` for
//! peers on loopback. In transparent mode they are the host's (the pod's)
//! non-loopback addresses, read from `/proc/net/fib_trie` (IPv4 local
//! routes) and `/proc/net/if_inet6` (global IPv6 addresses).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host's non-loopback, non-link-local addresses, IPv4 first; empty
/// if `/proc` can't say.
pub fn host_ips() -> Vec<IpAddr> {
    let v4 = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let mut out: Vec<IpAddr> = local_ipv4(&v4).into_iter().map(IpAddr::V4).collect();
    out.extend(global_ipv6(&v6).into_iter().map(IpAddr::V6));
    out
}

/// The addresses of `/32 host LOCAL` entries in `/proc/net/fib_trie`,
/// loopback left out, sorted.
fn local_ipv4(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut found = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !ip.is_unspecified()
        {
            found.insert(ip);
        }
    }
    found.into_iter().collect()
}

/// The global-scope addresses of `/proc/net/if_inet6` (address in hex,
/// interface index, prefix length, scope, flags, name), sorted.
fn global_ipv6(if_inet6: &str) -> Vec<Ipv6Addr> {
    let mut found = BTreeSet::new();
    for line in if_inet6.lines() {
        let mut fields = line.split_whitespace();
        let (Some(hex), Some(_), Some(_), Some(scope)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if scope != "00" || hex.len() != 32 {
            continue;
        }
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let ip = Ipv6Addr::from(bits);
        if !ip.is_loopback() && !ip.is_unspecified() {
            found.insert(ip);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ipv4_addresses_come_from_the_fib_trie() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.0.0/24 2 0 2\n        |-- 10.0.0.0\n           /24 link UNICAST\n        |-- 10.0.0.5\n           /32 host LOCAL\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\nLocal:\n     |-- 10.0.0.5\n        /32 host LOCAL\n     |-- 192.168.7.2\n        /32 host LOCAL\n";
        assert_eq!(
            local_ipv4(trie),
            vec![Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(192, 168, 7, 2)]
        );
        assert!(local_ipv4("").is_empty());
    }

    #[test]
    fn global_ipv6_addresses_come_from_if_inet6() {
        let table = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\nfd000000000000000000000000000005 02 40 00 80     eth0\nbroken line\n";
        assert_eq!(
            global_ipv6(table),
            vec!["fd00::5".parse::<Ipv6Addr>().expect("ip")]
        );
    }

    #[test]
    fn the_host_has_no_loopback_in_its_ips() {
        assert!(host_ips().iter().all(|ip| !ip.is_loopback()));
    }
}
