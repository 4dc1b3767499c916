//! Fuzz target `urls`: see `actas_rewrite::fuzzing::urls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| actas_rewrite::fuzzing::urls(data));
