//! Fuzz target: `roost_fuzz_targets::server_stanza`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roost_fuzz_targets::server_stanza(data));
