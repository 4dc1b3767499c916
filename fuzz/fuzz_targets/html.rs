//! Fuzz target `html`: see `actas_rewrite::fuzzing::html`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| actas_rewrite::fuzzing::html(data));
