//! Times the config store's edit-to-snapshot path on a directory: one
//! file rewritten (a byte changed, same size), then `Store::reload`, and
//! for comparison a full `load_paths` of the same directory (what every
//! reload did before the per-file cache). Interleaved, `--runs` times.
//!
//! ```sh
//! target/release/weft-bench mesh /tmp/mesh --services 1000
//! cargo run --release -p weft-config --example reload -- /tmp/mesh vs-svc-0.yaml
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use weft_config::store::Store;
use weft_config::{LoadOptions, load_paths};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, file, rest @ ..] = args.as_slice() else {
        bail!("usage: reload DIR FILE [RUNS]");
    };
    let runs: usize = rest.first().map_or(Ok(10), |r| r.parse()).context("RUNS")?;
    let dir = PathBuf::from(dir);
    let path = dir.join(file);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let opts = LoadOptions::default();
    let store = Store::open(vec![dir.clone()], opts.clone());
    println!(
        "{} resources, version {}",
        store.snapshot().resources.len(),
        store.snapshot().version
    );
    let (mut cached, mut full) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Same size, different bytes: a weight 80 -> 81 -> 80 ...
        let text = if i % 2 == 0 {
            original
                .replacen("weight: 80", "weight: 81", 1)
                .replacen("weight: 20", "weight: 19", 1)
        } else {
            original.clone()
        };
        std::fs::write(&path, &text).context("write")?;
        let t = Instant::now();
        let ev = store.reload();
        cached.push(t.elapsed().as_secs_f64() * 1000.0);
        if ev.is_empty() && i % 2 == 0 {
            bail!("the edit was not seen as a change");
        }
        let t = Instant::now();
        let loaded = load_paths(std::slice::from_ref(&dir), &opts);
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(loaded);
    }
    std::fs::write(&path, &original).context("restore")?;
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "min {:.1} / median {:.1} / max {:.1} ms",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        )
    };
    println!("Store::reload after one edit: {}", summary(&mut cached));
    println!(
        "full load_paths (the old reload's parse): {}",
        summary(&mut full)
    );
    Ok(())
}
