//! Invariants: kiln_shared::fuzzing::event::check_envelope (shared with shared/tests/fuzz_seeds.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_shared::fuzzing::event::check_envelope(data));
