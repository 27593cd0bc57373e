//! The debounce of [`publish_generations`], in paused time: a real
//! config store over a temporary directory, edited and reloaded by the
//! test, and the generations it publishes timed on tokio's clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use weft_config::LoadOptions;
use weft_config::store::Store;
use weft_registry::FileRegistry;

use super::{generation, publish_generations};
use crate::ads::Generation;

/// `weft control`'s defaults (`--debounce-after`, `--debounce-max`).
const AFTER: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(1);
/// How often the test edits the config: faster than `AFTER`.
const EDIT_EVERY: Duration = Duration::from_millis(50);

/// A config directory and the publisher following it.
struct Mesh {
    _dir: tempfile::TempDir,
    file: PathBuf,
    store: Store,
    generations: watch::Receiver<Arc<Generation>>,
    edits: u32,
}

impl Mesh {
    fn start() -> Mesh {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("reviews.yaml");
        std::fs::write(&file, reviews(0)).expect("write");
        let store = Store::open(vec![dir.path().to_path_buf()], LoadOptions::default());
        assert!(
            store.snapshot().diagnostics.is_empty(),
            "{:#?}",
            store.snapshot().diagnostics
        );
        // The store's snapshots as `weft control` reads them (with no
        // auto-registered entries here).
        let in_force = store.snapshots();
        let registry = FileRegistry::follow_snapshots(in_force.clone()).expect("registry");
        let (publish, generations) = watch::channel(Arc::new(generation(1, &in_force, &registry)));
        tokio::spawn(publish_generations(in_force, registry, publish, AFTER, MAX));
        Mesh {
            _dir: dir,
            file,
            store,
            generations,
            edits: 0,
        }
    }

    /// Changes the VirtualService (a new timeout) and reloads, as the
    /// file watcher would; returns the config version it made.
    fn edit(&mut self) -> u64 {
        self.edits += 1;
        write(&self.file, &reviews(self.edits));
        let event = self.store.reload();
        assert!(!event.is_empty(), "edit {} changed nothing", self.edits);
        event.version
    }

    /// The config version of the generation in force.
    fn published(&self) -> u64 {
        self.generations.borrow().config.version
    }
}

/// A VirtualService only (no registry input), with timeout `n` + 1 ms.
fn reviews(n: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: reviews, namespace: shop}}\n\
         spec:\n  hosts: [reviews]\n  \
         http: [{{route: [{{destination: {{host: reviews}}}}], timeout: {}ms}}]\n",
        n + 1
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

/// When each generation after the first was published, from `start`,
/// with its config version, until `until` has passed.
async fn publications(
    generations: &mut watch::Receiver<Arc<Generation>>,
    start: Instant,
    until: Instant,
) -> Vec<(Duration, u64)> {
    let mut out = Vec::new();
    while let Ok(changed) = tokio::time::timeout_at(until, generations.changed()).await {
        changed.expect("publisher running");
        out.push((
            start.elapsed(),
            generations.borrow_and_update().config.version,
        ));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_edits_is_published_once_after_the_quiet_period() {
    let mut mesh = Mesh::start();
    let start = Instant::now();
    // Five edits 50 ms apart: t = 0, 50, 100, 150, 200 ms.
    let mut last = 0;
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(EDIT_EVERY).await;
        }
        last = mesh.edit();
        // Nothing yet: each edit comes before the quiet period is over.
        assert_eq!(mesh.published(), 1, "published after edit {i}");
    }
    let mut generations = mesh.generations.clone();
    generations.mark_unchanged();
    let seen = publications(&mut generations, start, start + Duration::from_secs(5)).await;
    // One generation, 100 ms after the last edit, with all five edits.
    assert_eq!(seen, [(Duration::from_millis(300), last)]);
    assert_eq!(generations.borrow().version, 2);
}

#[tokio::test(start_paused = true)]
async fn edits_that_never_stop_are_still_published_by_the_max() {
    let mut mesh = Mesh::start();
    let mut generations = mesh.generations.clone();
    generations.mark_unchanged();
    let start = Instant::now();
    // An edit every 50 ms for 2.5 s (t = 0 .. 2500 ms): never quiet for 100 ms.
    let editing = Duration::from_millis(2500);
    let edits = tokio::spawn(async move {
        let mut last = mesh.edit();
        while start.elapsed() < editing {
            tokio::time::sleep(EDIT_EVERY).await;
            last = mesh.edit();
        }
        (mesh, last)
    });
    let seen = publications(&mut generations, start, start + Duration::from_secs(5)).await;
    let (_mesh, last) = edits.await.expect("edits");
    let times: Vec<Duration> = seen.iter().map(|s| s.0).collect();
    // The first burst is cut at the max, 1 s after its first edit; the
    // next starts with the next edit (50 ms later at most) and is cut 1 s
    // after that; once the edits stop, the last is published 100 ms after
    // the last edit.
    assert_eq!(times.len(), 3, "{seen:?}");
    assert_eq!(times[0], MAX, "{seen:?}");
    assert!(
        times[1] > times[0] + MAX && times[1] <= times[0] + MAX + EDIT_EVERY,
        "{seen:?}"
    );
    assert_eq!(times[2], editing + AFTER, "{seen:?}");
    // Each carries the edits so far, in order; the last carries them all.
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "{seen:?}");
    assert_eq!(seen[2].1, last, "{seen:?}");
}
