//! Invariants: kiln_shared::fuzzing::signing::check (shared with shared/tests/fuzz_seeds.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_shared::fuzzing::signing::check(data));
