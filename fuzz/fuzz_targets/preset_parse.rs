//! Invariants: kiln_shared::fuzzing::preset::check (shared with shared/tests/fuzz_seeds.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_shared::fuzzing::preset::check(data));
