//! Fuzzes the config loader end to end: YAML parsing, typed
//! deserialization, validation and analysis must never panic or hang on
//! any input.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weft_config::LoadOptions;
use weft_config::load::load_str;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let loaded = load_str(&text, Path::new("fuzz.yaml"), &LoadOptions::default());
    for d in weft_config::analyze::analyze(&loaded).iter().chain(&loaded.diagnostics) {
        let _ = d.to_string();
    }
});
