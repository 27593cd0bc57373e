//! The transparent-mode test's machinery: the namespaces, the processes
//! started in them (killed on drop), curl and `/stats` from inside a
//! namespace, netcat as the TCP client, and the helper side of the test
//! binary (the sample apps).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TIMEOUT, WEFT};

/// The name the copies have in the shared directory.
pub const WEFT_COPY: &str = "weft";
pub const HELPER_COPY: &str = "helper";

/// A directory any uid can read, with copies of `weft` and this test
/// binary (the checkout may not be readable by the proxy's uid), the mesh
/// config and the TLS servers' files; removed on drop.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn install() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::copy(WEFT, dir.path().join(WEFT_COPY)).expect("copy weft");
        let exe = std::env::current_exe().expect("current exe");
        std::fs::copy(&exe, dir.path().join(HELPER_COPY)).expect("copy helper");
        Files { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `cmd` (its first word one of the copies) in `ns`, after the
    /// `prefix` words (setpriv); stderr is echoed with `name`.
    pub fn spawn(&self, ns: &str, prefix: &[&str], name: &str, cmd: &[&str]) -> Proc {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(prefix);
        c.arg(self.path(cmd[0])).args(&cmd[1..]);
        c.env("WEFT_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        if let Some(stderr) = child.stderr.take() {
            let name = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {line}");
                }
            });
        }
        Proc(child)
    }

    /// `openssl s_server -WWW` on 127.0.0.1:`port` with a certificate for
    /// `<name>.tls.test`, serving `name.txt` (its host name).
    pub fn tls_server(&self, ns: &str, name: &str, port: &str) -> Proc {
        let host = format!("{name}.tls.test");
        let dir = self.path(&format!("tls-{name}"));
        std::fs::create_dir_all(&dir).expect("tls dir");
        std::fs::write(dir.join("name.txt"), format!("{host}\n")).expect("name.txt");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-subj", &format!("/CN={host}")])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .current_dir(&dir)
            .output()
            .expect("openssl req");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "openssl", "s_server", "-quiet", "-WWW"])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", "cert.pem", "-key", "key.pem"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let _ = child.stdin.take();
        Proc(child)
    }

    /// Sends `msg` from `ns` to `addr` with a real, unmodified client —
    /// OpenBSD netcat, `-N` half-closing once `msg` is sent — and returns
    /// what came back (trimmed; `error: ...` with nc's complaint if it
    /// failed) and how long nc ran (its idle limit is 5 s).
    pub fn tcp(&self, ns: &str, addr: &str, msg: &str) -> (String, Duration) {
        let addr: SocketAddr = addr.parse().expect("an address");
        let start = Instant::now();
        let mut nc = Command::new("ip")
            .args(["netns", "exec", ns, "nc.openbsd", "-N", "-w", "5"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nc.openbsd");
        let mut stdin = nc.stdin.take().expect("stdin");
        // A closed connection may refuse the write: nc reports that itself.
        let _ = stdin.write_all(msg.as_bytes());
        drop(stdin);
        let out = wait_bounded(nc);
        let reply = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
        };
        (reply, start.elapsed())
    }
}

/// A process started in a namespace; killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to its end within [`TIMEOUT`]; its stdout.
pub fn run_bounded(cmd: &mut Command) -> String {
    let child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    String::from_utf8_lossy(&wait_bounded(child).stdout).into_owned()
}

/// Waits up to [`TIMEOUT`] for `child` (its piped outputs read meanwhile);
/// kills it and panics past that.
fn wait_bounded(child: Child) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for the child"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("process {pid} did not finish within {TIMEOUT:?}");
        }
    }
}

/// curl in `ns` (as root: captured), no proxy settings: status and body.
pub fn curl(ns: &str, args: &[&str]) -> (u16, String) {
    let out = run_bounded(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "curl",
                "-s",
                "--noproxy",
                "*",
                "--max-time",
                "10",
            ])
            .args(["-o", "-", "-w", "\n%{http_code}"])
            .args(args),
    );
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// p50 and p99 (ms) of 200 GETs of `url` in one curl from `ns`.
pub fn latencies(ns: &str, url: &str) -> (f64, f64) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "--noproxy", "*"])
        .args(["--max-time", "20", "-w", "%{http_code} %{time_total}\n"]);
    for _ in 0..200 {
        cmd.args(["-o", "/dev/null", url]);
    }
    let out = run_bounded(&mut cmd);
    let mut ms: Vec<f64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("200 "))
        .filter_map(|t| t.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0)
        .collect();
    assert_eq!(ms.len(), 200, "every GET of {url} succeeds:\n{out}");
    ms.sort_by(f64::total_cmp);
    (ms[100], ms[197])
}

/// A counter of the proxy in `ns`.
pub fn stat(ns: &str, name: &str) -> u64 {
    let (code, body) = curl(ns, &["http://127.0.0.1:15000/stats"]);
    assert_eq!(code, 200, "stats in {ns}");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no stat {name} in {ns}:\n{body}"))
}

pub fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something listens on each TCP port in `ns`.
pub fn wait_listening(ns: &str, ports: &[&str]) {
    eventually(&format!("listeners {ports:?} in {ns}"), || {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Htln"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        ports.iter().all(|p| {
            out.split_whitespace()
                .any(|w| w.rsplit_once(':').is_some_and(|(_, port)| port == *p))
        })
    });
}

/// Runs `weft ARGS` in a namespace; it must succeed.
pub fn weft(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, WEFT])
        .args(args)
        .output()
        .expect("ip netns exec weft");
    assert!(
        out.status.success(),
        "weft {args:?} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two namespaces and their veth link; deleted on drop, also when
/// the test fails (the processes in them are killed first: they are
/// dropped before this guard).
pub struct Netns {
    pub client: String,
    pub server: String,
}

impl Netns {
    pub fn new() -> Netns {
        let id = std::process::id();
        let net = Netns {
            client: format!("weft-tp-{id}-client"),
            server: format!("weft-tp-{id}-server"),
        };
        ip(&["netns", "add", &net.client]);
        ip(&["netns", "add", &net.server]);
        let (client, server) = (net.client.as_str(), net.server.as_str());
        ip(&[
            "netns", "exec", client, "ip", "link", "add", "veth0", "type", "veth", "peer", "name",
            "veth1", "netns", server,
        ]);
        for (ns, dev, v4, v6) in [
            (client, "veth0", "10.77.0.1/24", "fd00:77::1/64"),
            (server, "veth1", "10.77.0.2/24", "fd00:77::2/64"),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
            ip(&["-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        // Service VIPs go out of the veth, like a cluster's service range:
        // only the sidecar's capture makes them answer.
        ip(&[
            "-n",
            client,
            "route",
            "add",
            "10.77.100.0/24",
            "dev",
            "veth0",
        ]);
        net
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The helper side: `sample http|tcp ADDR NAME`.
pub fn helper(args: &[String]) {
    match args {
        [cmd, kind, addr, name] if cmd == "sample" => sample(kind, addr, name),
        _ => panic!("helper: unknown arguments {args:?}"),
    }
}

/// A weft-sample app (HTTP echo named `name`, or TCP echo) until stdin closes.
pub fn sample(kind: &str, addr: &str, name: &str) {
    let addr: SocketAddr = addr.parse().expect("address");
    let mut config = weft_sample::Config::new(name);
    match kind {
        "http" => config.http = Some(addr),
        _ => config.tcp = Some(addr),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sample = weft_sample::Sample::bind(config)
            .await
            .expect("bind sample");
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        });
        let _ = sample
            .serve(async {
                let _ = stdin_closed.await;
            })
            .await;
    });
}
