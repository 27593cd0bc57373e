//! Loading with a per-file cache: what each file gave when it was last
//! parsed, so a reload re-parses only the files whose bytes changed.
//!
//! Every file is still read on each load (reading is cheap next to
//! parsing and validating, ≈ 100× here), and a file counts as unchanged
//! when its size and content hash are those of the bytes parsed last
//! time. Modification times are not trusted alone: the kernel stamps them
//! at a coarse tick, so two same-size writes within one tick would look
//! alike. A file that is gone (or no longer a config file) leaves the
//! cache with its documents; a file that cannot be read is reported as
//! such and forgotten. Errors of unchanged files stay reported: they are
//! part of what the file gave.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::{LoadOptions, Loaded, load_bytes, load_paths_with, unreadable};

/// What one file gave, and the bytes it gave it for.
#[derive(Clone, Debug)]
struct Entry {
    len: usize,
    hash: u64,
    loaded: Loaded,
}

/// Per-file load results kept between loads (see the module docs).
#[derive(Debug, Default)]
pub struct FileCache {
    files: HashMap<PathBuf, Entry>,
    /// Files parsed (not taken from the cache) over this cache's life.
    parsed: u64,
}

impl FileCache {
    /// Files parsed over this cache's life (cache misses).
    pub fn parsed(&self) -> u64 {
        self.parsed
    }

    /// Files held.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Loads `file`, from the cache when its bytes are the ones parsed last time.
    fn load_file(&mut self, file: &Path, opts: &LoadOptions) -> Loaded {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                self.files.remove(file);
                return unreadable(file, format!("cannot read: {e}"));
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let (len, hash) = (bytes.len(), hasher.finish());
        if let Some(e) = self.files.get(file)
            && e.len == len
            && e.hash == hash
        {
            return e.loaded.clone();
        }
        self.parsed += 1;
        let loaded = load_bytes(bytes, file, opts);
        self.files.insert(
            file.to_path_buf(),
            Entry {
                len,
                hash,
                loaded: loaded.clone(),
            },
        );
        loaded
    }
}

/// [`super::load_paths`], re-parsing only the files that changed since the
/// last load with `cache` (which it updates: files no longer found leave it).
/// The result is the same as `load_paths` gives.
pub fn load_paths_cached(paths: &[PathBuf], opts: &LoadOptions, cache: &mut FileCache) -> Loaded {
    let mut seen = std::collections::HashSet::new();
    let all = load_paths_with(paths, opts, |file| {
        seen.insert(file.to_path_buf());
        cache.load_file(file, opts)
    });
    cache.files.retain(|f, _| seen.contains(f));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_paths;

    const A: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a, namespace: ns}\nspec: {hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}\n";

    fn names(l: &Loaded) -> Vec<String> {
        l.resources.iter().map(|r| r.meta.name.clone()).collect()
    }

    #[test]
    fn parses_only_changed_files_and_gives_what_a_full_load_gives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write =
            |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
        write("a.yaml", A);
        write("b.yaml", &A.replace("name: a,", "name: b,"));
        write("broken.yaml", "kind: [\n");
        let paths = vec![dir.path().to_path_buf()];
        let opts = LoadOptions::default();
        let mut cache = FileCache::default();

        let first = load_paths_cached(&paths, &opts, &mut cache);
        assert_eq!(cache.parsed(), 3);
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.diagnostics, load_paths(&paths, &opts).diagnostics);

        // Nothing changed: nothing parsed, the same result (the broken
        // file's error included).
        let again = load_paths_cached(&paths, &opts, &mut cache);
        assert_eq!(cache.parsed(), 3);
        assert_eq!(names(&again), names(&first));
        assert_eq!(again.diagnostics, first.diagnostics);
        assert!(again.has_errors());

        // One file edited, with the same size: only it is parsed.
        write("b.yaml", &A.replace("name: a,", "name: c,"));
        let edited = load_paths_cached(&paths, &opts, &mut cache);
        assert_eq!(cache.parsed(), 4);
        assert_eq!(names(&edited), ["a", "c"]);
        assert_eq!(names(&edited), names(&load_paths(&paths, &opts)));

        // A deleted file takes its documents (and its errors) with it.
        std::fs::remove_file(dir.path().join("broken.yaml")).expect("rm");
        std::fs::remove_file(dir.path().join("a.yaml")).expect("rm");
        let deleted = load_paths_cached(&paths, &opts, &mut cache);
        assert_eq!(names(&deleted), ["c"]);
        assert!(!deleted.has_errors(), "{:?}", deleted.diagnostics);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.parsed(), 4);
    }

    #[test]
    fn duplicates_across_a_cached_and_a_new_file_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), A).expect("write");
        let paths = vec![dir.path().to_path_buf()];
        let opts = LoadOptions::default();
        let mut cache = FileCache::default();
        assert!(!load_paths_cached(&paths, &opts, &mut cache).has_errors());
        std::fs::write(dir.path().join("b.yaml"), A).expect("write");
        let l = load_paths_cached(&paths, &opts, &mut cache);
        assert_eq!(names(&l), ["a"]);
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.code == crate::diag::Code::DuplicateResource)
        );
    }
}
