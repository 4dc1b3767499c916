//! Fuzz target `html_raw`: see `actas_rewrite::fuzzing::html_raw`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| actas_rewrite::fuzzing::html_raw(data));
