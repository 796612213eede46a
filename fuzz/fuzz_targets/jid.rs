//! Fuzz target: `roost_fuzz_targets::jid`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::jid(data));
