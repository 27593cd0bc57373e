use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::resource::Kind;

const A: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a, labels: {rev: \"1\"}}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";
const B: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: b}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";

fn key(name: &str) -> ResourceKey {
    ResourceKey {
        kind: Kind::Sidecar,
        namespace: "default".into(),
        name: name.into(),
    }
}

fn rev(s: &Snapshot, name: &str) -> Option<String> {
    s.resources
        .get(&key(name))
        .and_then(|r| r.meta.labels.get("rev").cloned())
}

/// Waits until `cond` holds for the store's snapshot, or fails after 10 s.
fn eventually(store: &Store, what: &str, cond: impl Fn(&Snapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond(&store.snapshot()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "timed out waiting for: {what}; snapshot: {:#?}",
        store.snapshot()
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    // Write-then-rename, as editors and `kubectl`-style tools do.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

#[test]
fn reload_keeps_last_good_and_reports_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", &format!("{A}---\n{B}"));
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let s = store.snapshot();
    assert_eq!(s.version, 1);
    assert_eq!(s.resources.len(), 2);
    assert!(s.diagnostics.is_empty());

    // An invalid document: its last good version stays, the error is reported.
    write(
        dir.path(),
        "a.yaml",
        &format!("{}---\n{B}", A.replace("spec: {", "spec: {bogusField: 1, ")),
    );
    let ev = store.reload();
    assert!(ev.is_empty(), "{ev:?}");
    let s = store.snapshot();
    assert_eq!(s.resources.len(), 2);
    assert!(s.stale.contains(&key("a")));
    assert!(s.diagnostics.iter().any(|d| d.code == Code::UnknownField));
    let kept = s
        .diagnostics
        .iter()
        .find(|d| d.code == Code::KeptLastGood)
        .expect("WEFT0010");
    // Where the broken document is: the file and its first line.
    assert_eq!(
        kept.file.as_deref(),
        Some(dir.path().join("a.yaml").as_path())
    );
    assert_eq!(kept.line, Some(1), "{kept:?}");

    // Fixed with a new value: applied, and the event names only it.
    write(
        dir.path(),
        "a.yaml",
        &format!("{}---\n{B}", A.replace("\"1\"", "\"2\"")),
    );
    let ev = store.reload();
    assert_eq!(ev.updated, vec![key("a")]);
    assert_eq!(ev.version, 2);
    assert_eq!(rev(&store.snapshot(), "a").as_deref(), Some("2"));
    assert!(store.snapshot().stale.is_empty());

    // A document removed: the resource goes.
    write(dir.path(), "a.yaml", A);
    let ev = store.reload();
    assert_eq!(ev.removed, vec![key("b")]);
}

#[test]
fn a_status_change_is_a_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", A);
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    // A WorkloadEntry's health lives in its status.
    let failed = format!("{A}status: {{conditions: [{{type: Healthy, status: \"False\"}}]}}\n");
    write(dir.path(), "a.yaml", &failed);
    assert_eq!(store.reload().updated, vec![key("a")]);
    write(dir.path(), "a.yaml", &failed);
    assert!(
        store.reload().is_empty(),
        "the same status again is no change"
    );
}

#[test]
fn a_file_that_stops_parsing_keeps_its_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", &format!("{A}---\n{B}"));
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    write(dir.path(), "a.yaml", "kind: [\n");
    let ev = store.reload();
    assert!(ev.is_empty(), "{ev:?}");
    let s = store.snapshot();
    assert_eq!(s.resources.len(), 2);
    assert_eq!(s.stale.len(), 2);
    assert!(s.diagnostics.iter().any(|d| d.code == Code::SyntaxError));
    // Deleting the file removes them: that is a deliberate change.
    std::fs::remove_file(dir.path().join("a.yaml")).expect("rm");
    let ev = store.reload();
    assert_eq!(ev.removed.len(), 2);
}

#[test]
fn watch_follows_edits_breakage_and_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", A);
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let mut events = store.subscribe();
    let _watch = store.watch(Duration::from_millis(50)).expect("watch");

    write(dir.path(), "a.yaml", &A.replace("\"1\"", "\"2\""));
    eventually(&store, "edit applied", |s| {
        rev(s, "a").as_deref() == Some("2")
    });
    let ev = events.try_recv().expect("an event for the edit");
    assert_eq!(ev.updated, vec![key("a")]);

    write(
        dir.path(),
        "a.yaml",
        &A.replace("spec: {", "spec: {bogusField: 1, "),
    );
    eventually(&store, "error reported", |s| {
        s.diagnostics.iter().any(|d| d.code == Code::UnknownField)
    });
    assert_eq!(
        rev(&store.snapshot(), "a").as_deref(),
        Some("2"),
        "last good version kept"
    );

    write(dir.path(), "a.yaml", &A.replace("\"1\"", "\"3\""));
    eventually(&store, "recovered", |s| {
        rev(s, "a").as_deref() == Some("3") && s.diagnostics.is_empty()
    });

    write(dir.path(), "b.yaml", B);
    eventually(&store, "new file picked up", |s| {
        s.resources.contains_key(&key("b"))
    });
}

#[test]
fn invalid_mesh_config_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cm = |body: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n{body}"
        )
    };
    write(
        dir.path(),
        "mesh.yaml",
        &cm("    rootNamespace: istio-config\n"),
    );
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let good = store.snapshot().mesh.clone();
    write(dir.path(), "mesh.yaml", &cm("    bogusMeshField: 1\n"));
    let ev = store.reload();
    assert!(!ev.mesh_changed);
    assert_eq!(store.snapshot().mesh, good);
    let d = store
        .snapshot()
        .diagnostics
        .iter()
        .find(|d| d.code == Code::UnknownField)
        .cloned()
        .expect("error");
    assert_eq!(d.line, Some(6), "{d}");
}

#[test]
fn concurrent_reloads_publish_versions_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", A);
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let mut events = store.subscribe();
    std::thread::scope(|s| {
        for t in 0..2 {
            let store = store.clone();
            let dir = dir.path();
            s.spawn(move || {
                for i in 0..20 {
                    let name = format!("t{t}.yaml");
                    write(
                        dir,
                        &name,
                        &B.replace("name: b", &format!("name: b{t}, labels: {{i: \"{i}\"}}")),
                    );
                    store.reload();
                }
            });
        }
    });
    let mut last = 1;
    while let Ok(ev) = events.try_recv() {
        assert_eq!(
            ev.version,
            last + 1,
            "versions must increase by one per change"
        );
        last = ev.version;
    }
    assert_eq!(store.snapshot().version, last);
    assert!(last > 2);
}

#[test]
fn of_kind_ranges_find_what_a_scan_finds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = [
        ("a", "ServiceEntry", "x"),
        ("b", "ServiceEntry", "y"),
        ("", "WorkloadEntry", "x"),
        ("w1", "WorkloadEntry", "x"),
        ("w2", "WorkloadEntry", "y"),
        ("w3", "WorkloadEntry", "z"),
        ("s", "Sidecar", "y"),
    ];
    let text: Vec<String> = docs
        .iter()
        .filter(|(name, _, _)| !name.is_empty())
        .map(|(name, kind, ns)| {
            let spec = match *kind {
                "ServiceEntry" => "{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}",
                "WorkloadEntry" => "{address: 10.0.0.1}",
                _ => "{egress: [{hosts: [\"./*\"]}]}",
            };
            format!("apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n")
        })
        .collect();
    write(dir.path(), "all.yaml", &text.join("---\n"));
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    let s = store.snapshot();
    assert!(
        s.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        s.diagnostics
    );
    for kind in [
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
        Kind::Sidecar,
        Kind::Gateway,
    ] {
        let scan: Vec<&ResourceKey> = s.resources.keys().filter(|k| k.kind == kind).collect();
        let range: Vec<ResourceKey> = s.of_kind(kind).map(|r| r.key()).collect();
        assert_eq!(range.iter().collect::<Vec<_>>(), scan, "{kind}");
        for ns in ["", "x", "y", "z", "zz"] {
            let scan: Vec<&&ResourceKey> = scan.iter().filter(|k| k.namespace == ns).collect();
            let range: Vec<ResourceKey> = s.of_kind_in(kind, ns).map(|r| r.key()).collect();
            assert_eq!(
                range.iter().collect::<Vec<_>>(),
                scan.into_iter().copied().collect::<Vec<_>>(),
                "{kind} {ns}"
            );
        }
    }
    assert_eq!(s.of_kind(Kind::WorkloadEntry).count(), 3);
    assert_eq!(s.of_kind_in(Kind::WorkloadEntry, "x").count(), 1);
}

/// Files the store has parsed so far.
fn parsed(store: &Store) -> u64 {
    store.inner.state.lock().expect("store lock").files.parsed()
}

#[test]
fn a_reload_parses_only_the_files_that_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.yaml", A);
    write(dir.path(), "b.yaml", B);
    write(
        dir.path(),
        "c.yaml",
        &B.replace("name: b}", "name: c}")
            .replace("spec: {", "spec: {bogusField: 1, "),
    );
    let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
    assert_eq!(parsed(&store), 3);
    let unknown = |s: &Snapshot| {
        s.diagnostics
            .iter()
            .filter(|d| d.code == Code::UnknownField)
            .count()
    };
    assert_eq!(unknown(&store.snapshot()), 1);

    // Nothing changed: nothing parsed, nothing published.
    assert!(store.reload().is_empty());
    assert_eq!(parsed(&store), 3);
    assert_eq!(store.snapshot().version, 1);

    // One file edited: only it is parsed; the untouched file's error stays.
    let before = store.snapshot();
    write(dir.path(), "a.yaml", &A.replace("\"1\"", "\"2\""));
    let ev = store.reload();
    assert_eq!(ev.updated, vec![key("a")]);
    assert_eq!(parsed(&store), 4);
    let s = store.snapshot();
    assert_eq!(rev(&s, "a").as_deref(), Some("2"));
    assert_eq!(unknown(&s), 1);
    // The untouched resource keeps its Arc (readers compare pointers).
    assert!(Arc::ptr_eq(
        &s.resources[&key("b")],
        &before.resources[&key("b")]
    ));

    // A deleted file removes its documents.
    std::fs::remove_file(dir.path().join("b.yaml")).expect("rm");
    let ev = store.reload();
    assert_eq!(ev.removed, vec![key("b")]);
    assert_eq!(parsed(&store), 4);

    // The broken file fixed: parsed again, its resource applies.
    write(dir.path(), "c.yaml", &B.replace("name: b}", "name: c}"));
    let ev = store.reload();
    assert_eq!(ev.updated, vec![key("c")]);
    assert_eq!(parsed(&store), 5);
    assert_eq!(unknown(&store.snapshot()), 0);
}
