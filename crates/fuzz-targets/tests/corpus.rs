//! Replays every input of `fuzz/corpus/<target>/` and every crash kept in
//! `fuzz/regressions/<target>/` through its target: what the fuzzer once
//! found stays fixed, on the stable toolchain, in the test command.

use std::path::Path;

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for (name, target) in roost_fuzz_targets::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            for entry in dir.flatten() {
                let data = std::fs::read(entry.path()).expect("readable input");
                target(&data);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no corpus for {name}");
        ran += inputs;
    }
    assert!(ran >= roost_fuzz_targets::TARGETS.len());
}
