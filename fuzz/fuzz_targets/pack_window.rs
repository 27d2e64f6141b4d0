//! libFuzzer binary for `docket_fuzz::pack_window`; the target lives in crates/docket-fuzz.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| docket_fuzz::pack_window(data));
