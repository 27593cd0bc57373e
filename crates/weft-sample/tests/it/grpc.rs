//! gRPC greeter and health, called by Python grpcio (no generated stubs:
//! `grpc_client.py` encodes the few protobuf bytes itself).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Sample;

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs grpcio into .venv)",
        p.display()
    );
    p
}

#[test]
fn grpcio_says_hello_streams_and_sees_health_serving() {
    let s = Sample::start(&[
        "--name",
        "greeter",
        "--version",
        "v3",
        "--grpc",
        "127.0.0.1:0",
    ]);
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/grpc_client.py"))
        .args([&s.addr("grpc").to_string(), "weft", "4"])
        .output()
        .expect("run grpc_client.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hello"], "Hello weft from greeter v3");
    assert_eq!(v["metadata"]["x-sample-name"], "greeter");
    assert_eq!(v["metadata"]["x-sample-version"], "v3");
    let stream: Vec<&str> = v["stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        stream,
        (1..=4)
            .map(|i| format!("Hello weft from greeter v3 ({i}/4)"))
            .collect::<Vec<_>>()
    );
    assert_eq!(v["too_many"], "INVALID_ARGUMENT");
    // fail_with 9: FAILED_PRECONDITION after both replies, with a trailer.
    assert_eq!(v["failed"]["replies"], 2, "{v}");
    assert_eq!(v["failed"]["code"], "FAILED_PRECONDITION");
    assert_eq!(v["failed"]["details"], "failing on request after 2 replies");
    assert_eq!(v["failed"]["trailers"]["x-sample-trailer"], "failed");
    assert_eq!(
        v["chat"],
        serde_json::json!(["Hello a from greeter v3", "Hello b from greeter v3"])
    );
    // grpc.health.v1: 1 is SERVING.
    assert_eq!(v["health"][""], 1);
    assert_eq!(v["health"]["helloworld.Greeter"], 1);
    assert_eq!(v["health"]["no.such.Service"], "NOT_FOUND");
}
