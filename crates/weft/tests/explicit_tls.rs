//! TLS passthrough by SNI in explicit mode, on loopback: two TLS services
//! (`a.tls.test`, `b.tls.test`) share port 8443, their endpoints are
//! `openssl s_server`s (no sidecar: dialled directly). A `CONNECT` to a
//! service name picks its chain by that name (curl `-x`); a `CONNECT` to
//! an address is routed by the SNI of the ClientHello sent in the tunnel
//! (`openssl s_client -proxy`). The TLS session is end to end: the client
//! sees each server's own certificate and page.

mod common;

use common::free_port;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A child process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `openssl s_server -WWW` on 127.0.0.1:`port` for `host`, serving
/// `name.txt` (the host name).
fn tls_server(dir: &Path, host: &str, port: u16) -> Proc {
    let dir = dir.join(host);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("name.txt"), format!("{host}\n")).expect("name.txt");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={host}")])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(&dir)
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", "cert.pem", "-key", "key.pem"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    Proc(child)
}

fn mesh(dir: &Path, a: u16, b: u16) {
    let service = |name: &str, port: u16| {
        format!(
            r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tls-{name}, namespace: shop}}
spec:
  hosts: [{name}.tls.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.0.1, ports: {{tls: {port}}}}}]
---
"#
        )
    };
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: client, namespace: shop}}\nspec: {{address: 127.0.0.1, labels: {{app: client}}}}\n",
        service("a", a),
        service("b", b)
    );
    std::fs::write(dir.join("mesh.yaml"), yaml).expect("write mesh");
}

/// Starts an explicit-mode `weft proxy`; its outbound and admin ports.
fn proxy(xds: u16) -> (Proc, u16, u16) {
    let (child, outbound, admin) = common::spawn_proxy(xds, "shop/client", &[]);
    (Proc(child), outbound, admin)
}

/// Runs `cmd` to its end within [`TIMEOUT`] with `input` on stdin; stdout.
fn run(cmd: &mut Command, input: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    reader.join().unwrap_or_default()
}

#[test]
fn connect_tunnels_to_tls_services_by_name_and_by_sni() {
    if !have_openssl() {
        common::skip(
            "connect_tunnels_to_tls_services_by_name_and_by_sni",
            "openssl not found (Debian: apt-get install openssl)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_port(), free_port());
    let _servers = [
        tls_server(dir.path(), "a.tls.test", a),
        tls_server(dir.path(), "b.tls.test", b),
    ];
    let deadline = Instant::now() + TIMEOUT;
    for port in [a, b] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s_server on {port} not listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    mesh(dir.path(), a, b);
    let (_control, xds, _debug) = common::start(dir.path());
    let (_proxy, outbound, admin) = proxy(xds);
    let deadline = Instant::now() + TIMEOUT;
    let ready = || {
        Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{admin}/healthz/ready"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    while !ready() {
        assert!(Instant::now() < deadline, "proxy not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let via = format!("http://127.0.0.1:{outbound}");

    // CONNECT by name: curl -x, the chain named by the CONNECT host.
    for host in ["a.tls.test", "b.tls.test"] {
        let body = run(
            Command::new("curl")
                .args(["-sS", "-k", "--max-time", "10", "-x", &via])
                .arg(format!("https://{host}:8443/name.txt")),
            "",
        );
        assert_eq!(body.trim(), host, "CONNECT {host}:8443");
    }

    // CONNECT to an address: the ClientHello's SNI picks the service.
    for host in ["b.tls.test", "a.tls.test"] {
        let out = run(
            Command::new("openssl")
                .args(["s_client", "-quiet", "-proxy"])
                .arg(format!("127.0.0.1:{outbound}"))
                .args(["-connect", "127.0.0.1:8443", "-servername", host]),
            "GET /name.txt HTTP/1.0\r\n\r\n",
        );
        assert!(
            out.lines().any(|l| l.trim() == host),
            "CONNECT 127.0.0.1:8443 with SNI {host}: {out}"
        );
    }

    // A tunnel whose SNI names no service is closed, and counts no error
    // response (the CONNECT was answered before the hello).
    let out = run(
        Command::new("openssl")
            .args(["s_client", "-quiet", "-proxy"])
            .arg(format!("127.0.0.1:{outbound}"))
            .args(["-connect", "127.0.0.1:8443", "-servername", "c.tls.test"]),
        "GET /name.txt HTTP/1.0\r\n\r\n",
    );
    assert!(
        !out.contains(".tls.test"),
        "unknown SNI reached a server: {out}"
    );
}
