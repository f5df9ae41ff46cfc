//! Invariants: kiln_shared::fuzzing::event::check_text (shared with shared/tests/fuzz_seeds.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_shared::fuzzing::event::check_text(data));
