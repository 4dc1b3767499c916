//! Fuzz target `json`: see `actas_rewrite::fuzzing::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| actas_rewrite::fuzzing::json(data));
