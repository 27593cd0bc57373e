//! `weft iptables` for real, in two network namespaces (root only).
//!
//! `pod` is the workload's namespace, `peer` another host on a veth link
//! (10.9.8.1 / fd00:9:8::1 in the pod, 10.9.8.7 / fd00:9:8::7 in the peer).
//! In the pod, stand-ins for the proxy's listeners (127.0.0.1/[::1]:15001
//! outbound, [::]:15006 inbound) and its readiness port (15021) answer
//! every connection with their name and the connection's `original_dst`;
//! so does a server on the peer at port 80. The test applies the rules with
//! `weft iptables --ipv6` inside the pod and shows: the app's outbound
//! connections reach the outbound listener with their original destination
//! (IPv4 and IPv6), the proxy's uid and gid go out directly, the peer's
//! inbound connections reach the inbound listener but not an excluded
//! port, and after `--cleanup` nothing is redirected any more. Then the
//! same in TPROXY mode, with an IP_TRANSPARENT inbound listener.
//!
//! This file has its own `main` (`harness = false`): the same binary, run
//! as `iptables helper serve|connect …` inside a namespace, is the servers
//! and clients; it prints libtest's summary line for `scripts/test.sh`. Without root, `ip`, `setpriv` or iptables the test prints
//! why and passes — unless `CI` is set (CI runs as root and
//! `scripts/setup.sh` installs iptables), where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

mod common;
#[path = "root_test/mod.rs"]
mod root_test;

use root_test::RootTest;

const WEFT: &str = env!("CARGO_BIN_EXE_weft");
const PROXY_UID: u32 = 1337;
const APP_UID: u32 = 1338;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The one test's name, for `cargo test NAME` filters and `--list`.
const NAME: &str = "interception";

fn main() -> std::process::ExitCode {
    RootTest {
        name: NAME,
        tools: &[
            "ip",
            "setpriv",
            "iptables-save",
            "iptables-restore",
            "ip6tables-save",
            "ip6tables-restore",
        ],
        packages: "iptables iproute2 util-linux",
        helper,
        test: interception,
    }
    .main()
}

fn interception() {
    let net = Netns::new();
    let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
    let helper = Helper::install();

    let _servers = [
        helper.serve(pod, "proxy-outbound", &["127.0.0.1:15001", "[::1]:15001"]),
        helper.serve(pod, "readiness", &["[::]:15021"]),
        helper.serve(peer, "peer", &["10.9.8.7:80", "[fd00:9:8::7]:80"]),
    ];
    let inbound = helper.serve(pod, "proxy-inbound", &["[::]:15006"]);

    // Nothing installed yet: everything goes where it was sent.
    assert_reply(&helper.connect(pod, 0, 0, "10.9.8.7:80"), "peer");

    // Apply, twice: the second run replaces the first.
    let uid = PROXY_UID.to_string();
    for _ in 0..2 {
        weft(pod, &["iptables", "--proxy-uid", &uid, "--ipv6"]);
    }
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = ns_output(pod, &[save, "-t", "nat"]);
        for chain in weft_iptables::CHAINS {
            assert!(
                rules.contains(&format!(":{chain} ")),
                "{save}: no {chain}:\n{rules}"
            );
        }
        for jump in [
            "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
            "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        ] {
            let n = rules.lines().filter(|l| *l == jump).count();
            assert_eq!(
                n, 1,
                "{save}: `{jump}` {n} times after applying twice:\n{rules}"
            );
        }
    }

    // With IPv6, the proxy's passthrough source is on lo, as with Istio.
    let lo = ns_output(pod, &["ip", "-6", "addr", "show", "dev", "lo"]);
    assert!(lo.contains("inet6 ::6/128"), "no ::6 on lo:\n{lo}");

    // Outbound from the app (root, and another uid): to the outbound
    // listener, which sees where the app was going.
    for (uid, gid) in [(0, 0), (APP_UID, APP_UID)] {
        let reply = helper.connect(pod, uid, gid, "10.9.8.7:80");
        assert_reply(&reply, "proxy-outbound orig=10.9.8.7:80");
    }
    let reply = helper.connect(pod, 0, 0, "[fd00:9:8::7]:80");
    assert_reply(&reply, "proxy-outbound orig=[fd00:9:8::7]:80");

    // The proxy's own uid, and its gid (the default --proxy-gid), go out directly.
    for (uid, gid) in [(PROXY_UID, PROXY_UID), (APP_UID, PROXY_UID)] {
        assert_reply(&helper.connect(pod, uid, gid, "10.9.8.7:80"), "peer");
        assert_reply(&helper.connect(pod, uid, gid, "[fd00:9:8::7]:80"), "peer");
    }

    // Loopback, in Istio's order. The proxy calling its own pod's address
    // (the app called itself through a Service VIP) goes to the inbound
    // listener; the proxy's inbound passthrough (source 127.0.0.6 / ::6)
    // does not; the app calling its own address directly does not either.
    let proxy = (PROXY_UID, PROXY_UID);
    for (pod_ip, passthrough) in [("10.9.8.1", "127.0.0.6"), ("[fd00:9:8::1]", "[::6]")] {
        let reply = helper.connect(pod, proxy.0, proxy.1, &format!("{pod_ip}:8080"));
        assert_reply(&reply, &format!("proxy-inbound orig={pod_ip}:8080"));
        let to = format!("{pod_ip}:15021");
        let reply = helper.connect_from(pod, proxy.0, proxy.1, &to, &format!("{passthrough}:0"));
        assert_reply(&reply, "readiness");
        assert_reply(&helper.connect(pod, APP_UID, APP_UID, &to), "readiness");
    }

    // Inbound from the peer: to the inbound listener (dual-stack, so the
    // IPv4 connection arrives v4-mapped), except the readiness port.
    let reply = helper.connect(peer, 0, 0, "10.9.8.1:8080");
    assert_reply(&reply, "proxy-inbound orig=10.9.8.1:8080");
    let reply = helper.connect(peer, 0, 0, "[fd00:9:8::1]:8080");
    assert_reply(&reply, "proxy-inbound orig=[fd00:9:8::1]:8080");
    assert_reply(&helper.connect(peer, 0, 0, "10.9.8.1:15021"), "readiness");

    // Cleanup, twice: every chain and jump gone, nothing redirected.
    for _ in 0..2 {
        weft(pod, &["iptables", "--cleanup"]);
    }
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = ns_output(pod, &[save, "-t", "nat"]);
        assert!(!rules.contains("ISTIO"), "{save} after cleanup:\n{rules}");
    }
    assert_reply(&helper.connect(pod, 0, 0, "10.9.8.7:80"), "peer");
    assert_reply(&helper.connect(pod, 0, 0, "[fd00:9:8::7]:80"), "peer");
    let reply = helper.connect(peer, 0, 0, "10.9.8.1:8080");
    assert!(
        reply.starts_with("error:"),
        "port 8080 has no listener: {reply}"
    );

    tproxy(&helper, pod, peer, inbound);
}

/// TPROXY mode: inbound through the mangle table and a policy route to an
/// IP_TRANSPARENT listener, which sees the original destination as its
/// own address; outbound unchanged; cleanup removes the route too.
fn tproxy(helper: &Helper, pod: &str, peer: &str, redirect_inbound: Server) {
    drop(redirect_inbound);
    let _inbound = helper.serve(
        pod,
        "proxy-inbound-tproxy",
        &["transparent:0.0.0.0:15006", "transparent:[::]:15006"],
    );
    let uid = PROXY_UID.to_string();
    let args = [
        "iptables",
        "--proxy-uid",
        &uid,
        "--ipv6",
        "--inbound-interception-mode",
        "TPROXY",
    ];
    for _ in 0..2 {
        weft(pod, &args);
    }
    for ip_version in ["-4", "-6"] {
        let rules = ns_output(pod, &["ip", ip_version, "rule", "show"]);
        let n = rules.matches("fwmark 0x539 lookup 133").count();
        assert_eq!(n, 1, "ip {ip_version} rule after applying twice:\n{rules}");
        let table = ns_output(pod, &["ip", ip_version, "route", "show", "table", "133"]);
        assert!(table.contains("local default dev lo"), "{table}");
    }
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = ns_output(pod, &[save, "-t", "mangle"]);
        for chain in weft_iptables::MANGLE_CHAINS {
            assert!(
                rules.contains(&format!(":{chain} ")),
                "{save}: no {chain}:\n{rules}"
            );
        }
    }

    for pod_ip in ["10.9.8.1", "[fd00:9:8::1]"] {
        let reply = helper.connect(peer, 0, 0, &format!("{pod_ip}:8080"));
        assert_reply(&reply, &format!("proxy-inbound-tproxy orig={pod_ip}:8080"));
        let reply = helper.connect(peer, 0, 0, &format!("{pod_ip}:15021"));
        assert_reply(&reply, "readiness");
    }
    let reply = helper.connect(pod, APP_UID, APP_UID, "10.9.8.7:80");
    assert_reply(&reply, "proxy-outbound orig=10.9.8.7:80");
    let reply = helper.connect(pod, PROXY_UID, PROXY_UID, "10.9.8.7:80");
    assert_reply(&reply, "peer");

    weft(pod, &["iptables", "--cleanup"]);
    for save in ["iptables-save", "ip6tables-save"] {
        let rules = ns_output(pod, &[save]);
        assert!(
            !rules.contains("ISTIO") && !rules.contains("weft"),
            "{save} after cleanup:\n{rules}"
        );
    }
    for ip_version in ["-4", "-6"] {
        let rules = ns_output(pod, &["ip", ip_version, "rule", "show"]);
        assert!(
            !rules.contains("lookup 133"),
            "ip {ip_version} rule after cleanup:\n{rules}"
        );
        let table = ns_output(pod, &["ip", ip_version, "route", "show", "table", "133"]);
        assert!(table.trim().is_empty(), "table 133 after cleanup: {table}");
    }
    let reply = helper.connect(peer, 0, 0, "10.9.8.1:8080");
    assert!(
        reply.starts_with("error:"),
        "port 8080 has no listener: {reply}"
    );
}

fn assert_reply(reply: &str, expected: &str) {
    assert!(
        reply == expected || reply.starts_with(&format!("{expected} ")),
        "expected `{expected}`, got `{reply}`"
    );
}

/// Runs `weft ARGS` in a namespace; it must succeed.
fn weft(ns: &str, args: &[&str]) {
    let mut cmd = vec![WEFT];
    cmd.extend_from_slice(args);
    ns_output(ns, &cmd);
}

/// Runs a command in a namespace and returns its stdout; it must succeed.
fn ns_output(ns: &str, cmd: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "{cmd:?} in {ns}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two namespaces and their veth link; deleted on drop, also when the
/// test fails.
struct Netns {
    pod: String,
    peer: String,
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id();
        let net = Netns {
            pod: format!("weft-ipt-{id}-pod"),
            peer: format!("weft-ipt-{id}-peer"),
        };
        ip(&["netns", "add", &net.pod]);
        ip(&["netns", "add", &net.peer]);
        let (pod, peer) = (net.pod.as_str(), net.peer.as_str());
        let link = [
            "netns", "exec", pod, "ip", "link", "add", "veth0", "type", "veth", "peer", "name",
            "veth1", "netns", peer,
        ];
        ip(&link);
        for (ns, dev, v4, v6) in [
            (pod, "veth0", "10.9.8.1/24", "fd00:9:8::1/64"),
            (peer, "veth1", "10.9.8.7/24", "fd00:9:8::7/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        net
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.peer] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A copy of this binary that any uid can run (the checkout may not be
/// readable by the proxy's uid), removed on drop.
struct Helper {
    dir: tempfile::TempDir,
}

impl Helper {
    fn install() -> Helper {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let exe = std::env::current_exe().expect("current exe");
        std::fs::copy(&exe, dir.path().join("helper")).expect("copy helper");
        Helper { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("helper")
    }

    /// Starts a server in `ns` answering on `addrs`; waits until it listens.
    fn serve(&self, ns: &str, name: &str, addrs: &[&str]) -> Server {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(self.path())
            .args(["helper", "serve", name])
            .args(addrs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let server = Server(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(TIMEOUT).unwrap_or_default();
        assert_eq!(line.trim(), "ready", "server {name} in {ns} did not start");
        server
    }

    /// Connects from `ns` as `uid`/`gid` to `addr`; the server's answer, or
    /// `error: …`.
    fn connect(&self, ns: &str, uid: u32, gid: u32, addr: &str) -> String {
        self.connect_from(ns, uid, gid, addr, "")
    }

    /// [`Helper::connect`] from source address `src` (empty: any).
    fn connect_from(&self, ns: &str, uid: u32, gid: u32, addr: &str, src: &str) -> String {
        let (uid, gid) = (uid.to_string(), gid.to_string());
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args([
                "setpriv",
                "--reuid",
                &uid,
                "--regid",
                &gid,
                "--clear-groups",
            ])
            .arg(self.path())
            .args(["helper", "connect", addr, src])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let deadline = Instant::now() + TIMEOUT;
        while child.try_wait().expect("wait client").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("client to {addr} in {ns} as {uid}:{gid} did not finish");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("client output");
        out.trim().to_owned()
    }
}

/// A running helper server; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The helper side: `serve NAME ADDR…` or `connect ADDR SRC`.
fn helper(args: &[String]) {
    match args {
        [cmd, name, addrs @ ..] if cmd == "serve" => serve(name, addrs),
        [cmd, addr, src] if cmd == "connect" => connect(addr, src),
        _ => panic!("helper: unknown arguments {args:?}"),
    }
}

/// A listener on `ADDR`, or with `transparent:ADDR` an IP_TRANSPARENT one
/// (IPv6-only for an IPv6 address) as TPROXY needs.
fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let (transparent, addr) = match addr.strip_prefix("transparent:") {
        Some(a) => (true, a),
        None => (false, addr),
    };
    let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if transparent {
        match addr {
            SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            SocketAddr::V6(_) => {
                socket.set_only_v6(true)?;
                socket.set_ip_transparent_v6(true)?;
            }
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Answers every connection with `NAME orig=ADDR` (or `orig=error: …`).
/// Exits when stdin closes, so it never outlives the test.
fn serve(name: &str, addrs: &[String]) {
    for addr in addrs {
        let listener = listen(addr).unwrap_or_else(|e| panic!("{name}: bind {addr}: {e}"));
        let name = name.to_owned();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let orig = match weft_iptables::original_dst(&stream) {
                    Ok(a) => a.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                let _ = writeln!(stream, "{name} orig={orig}");
            }
        });
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Prints the first line the server at `addr` sends, or `error: …`;
/// binds `src` first unless it is empty.
fn connect(addr: &str, src: &str) {
    let reply = (|| -> std::io::Result<String> {
        let addr: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        if !src.is_empty() {
            let src: SocketAddr = src.parse().map_err(std::io::Error::other)?;
            socket.bind(&src.into())?;
        }
        socket.connect_timeout(&addr.into(), Duration::from_secs(3))?;
        let stream = TcpStream::from(socket);
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim().to_owned())
    })();
    match reply {
        Ok(line) => println!("{line}"),
        Err(e) => println!("error: {e}"),
    }
}
