//! Property tests: the loader never panics or hangs, whatever bytes it is
//! given — arbitrary input, and arbitrary mutations of our own examples.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use weft_config::LoadOptions;
use weft_config::load::load_str;

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files = weft_config::load::config_files(&dir).expect("examples/ exists");
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read example"))
        .collect()
}

fn load(text: &str) {
    let loaded = load_str(text, &PathBuf::from("fuzz.yaml"), &LoadOptions::default());
    // Whatever was loaded can be analyzed and printed.
    let _ = weft_config::analyze::analyze(&loaded);
    for d in &loaded.diagnostics {
        let _ = d.to_string();
    }
}

/// One edit to a text.
#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Indent(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let noise = prop_oneof![
        Just(":".to_string()),
        Just("- ".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("[".to_string()),
        Just("{".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("---\n".to_string()),
        Just("\"".to_string()),
        Just("\t".to_string()),
        Just("!!str ".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        "\\PC{0,8}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), noise).prop_map(|(a, s)| Mutation::Insert(a, s)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), 0usize..6).prop_map(|(a, n)| Mutation::Indent(a, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn char_boundary(s: &str, at: usize) -> usize {
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match m {
        Mutation::Delete(at, len) => {
            let a = char_boundary(text, *at);
            let b = char_boundary(text, a + len);
            format!("{}{}", &text[..a], &text[b.max(a)..])
        }
        Mutation::Insert(at, s) => {
            let a = char_boundary(text, *at);
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        Mutation::DuplicateLine(i) => {
            if let Some(l) = lines.get(i % n).cloned() {
                lines.insert(i % n, l);
            }
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
        Mutation::Indent(i, by) => {
            if let Some(l) = lines.get_mut(i % n) {
                *l = format!("{}{l}", " ".repeat(*by));
            }
            lines.join("\n")
        }
        Mutation::Truncate(at) => text[..char_boundary(text, *at)].to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_yamlish_text_never_panics(text in "[ a-zA-Z0-9:\\-\\[\\]{},\"'&*!#|>\n\t.]{0,512}") {
        load(&text);
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let all = examples();
        let mut text = all[which % all.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        load(&text);
    }
}
