//! Replays the fuzz targets' kept corpus (`fuzz/corpus/<target>/`): every input the
//! fuzzer kept, and every crash it once found, must pass the target's check here, on
//! stable Rust, in the ordinary suite. `cargo xtask fuzz` grows the corpus.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the corpus for {target} is missing at {}: {e}",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a corpus file");
            (p, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the corpus for {target} is empty");
    inputs
}

fn replay(target: &str, check: fn(&[u8])) {
    for (path, input) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            path.display()
        );
    }
}

#[test]
fn the_html_corpus_passes() {
    replay("html", actas_rewrite::fuzzing::html);
}

#[test]
fn the_raw_html_corpus_passes() {
    replay("html_raw", actas_rewrite::fuzzing::html_raw);
}

#[test]
fn the_json_corpus_passes() {
    replay("json", actas_rewrite::fuzzing::json);
}

#[test]
fn the_url_corpus_passes() {
    replay("urls", actas_rewrite::fuzzing::urls);
}
