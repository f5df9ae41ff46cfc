//! Invariant checks shared by the cargo-fuzz targets (`fuzz/`) and the seed regression
//! test (`tests/fuzz_seeds.rs`): a committed seed is checked by `cargo test` exactly as
//! the fuzzer checks it. Every `check` panics when an invariant fails, which is how
//! libFuzzer learns of a finding.
//!
//! Structure-aware checks decode their input with [`Bytes`], a forgiving reader (running
//! out of input yields zeros), so every byte string is a valid case and libFuzzer's
//! mutations move through meaningful inputs.

pub mod event;
pub mod preset;
pub mod signing;

/// An invariant check over one fuzz input; panics on a violation.
pub type Check = fn(&[u8]);

/// Fuzz target name → its check. The fuzz crate has one binary per entry and the seed
/// test runs `fuzz/seeds/<name>/*` through the same function.
pub const TARGETS: &[(&str, Check)] = &[
    ("event_parse", event::check_text),
    ("event_envelope", event::check_envelope),
    ("preset_parse", preset::check),
    ("ingest_verify", signing::check),
];

/// A forgiving little-endian reader over fuzz input.
#[derive(Debug, Clone)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    pub fn i64(&mut self) -> i64 {
        let mut buf = [0u8; 8];
        let head = self.take(8);
        buf[..head.len()].copy_from_slice(head);
        i64::from_le_bytes(buf)
    }

    /// Up to 255 bytes, length-prefixed.
    pub fn short(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    pub fn short_str(&mut self) -> String {
        String::from_utf8_lossy(self.short()).into_owned()
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.u8()) % items.len()]
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_reader_is_forgiving() {
        let mut b = Bytes::new(&[3, b'a', b'b', 0x34, 0x12]);
        assert_eq!(b.short(), b"ab\x34");
        assert_eq!(b.u16(), 0x12);
        assert_eq!(b.i64(), 0);
        assert_eq!(b.pick(&["x", "y"]), "x");
        assert!(b.rest().is_empty());
        let mut b = Bytes::new(&[1, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(b.i64(), i64::MIN + 1);
    }
}
