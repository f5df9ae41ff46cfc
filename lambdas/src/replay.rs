//! status-origin's memory of the signatures it accepted, so a captured signed request
//! is answered once per container, not every time it is replayed within the window.
//!
//! Bounded: at most [`CAPACITY`] entries, each forgotten once its timestamp has left
//! the window. When full, the oldest entry is dropped and everything signed at or before
//! its time is refused from then on (a low-water mark), so forgetting never reopens a
//! replay. Per container only: another container has its own memory, which is why the
//! function's concurrency is reserved and kept small.

use std::collections::BTreeSet;

/// Edge pulls are about one per TTL per colo; this covers minutes of them.
pub const CAPACITY: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Replay {
    #[error("signature already used")]
    Seen,
    #[error("signed before what this container still remembers")]
    Forgotten,
}

#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    window_secs: i64,
    /// (signed timestamp, first 16 bytes of the MAC): the timestamp orders expiry.
    seen: BTreeSet<(i64, u128)>,
    /// Requests signed at or before this are refused (see module docs).
    floor: i64,
}

impl ReplayGuard {
    pub fn new(capacity: usize, window_secs: i64) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            window_secs,
            seen: BTreeSet::new(),
            floor: i64::MIN,
        }
    }

    /// Admits a verified signature (`tag`, signed at `ts`) once; `now` in Unix seconds.
    pub fn admit(&mut self, tag: &[u8], ts: i64, now: i64) -> Result<(), Replay> {
        let horizon = now.saturating_sub(self.window_secs);
        while self.seen.first().is_some_and(|(t, _)| *t < horizon) {
            self.seen.pop_first();
        }
        if ts <= self.floor {
            return Err(Replay::Forgotten);
        }
        let mut head = [0u8; 16];
        let n = tag.len().min(16);
        head[..n].copy_from_slice(&tag[..n]);
        let key = (ts, u128::from_be_bytes(head));
        if self.seen.contains(&key) {
            return Err(Replay::Seen);
        }
        if self.seen.len() >= self.capacity
            && let Some((oldest, _)) = self.seen.pop_first()
        {
            self.floor = self.floor.max(oldest);
            if ts <= self.floor {
                return Err(Replay::Forgotten);
            }
        }
        self.seen.insert(key);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn tag(i: u32) -> Vec<u8> {
        let mut t = vec![0u8; 32];
        t[..4].copy_from_slice(&i.to_be_bytes());
        t
    }

    #[test]
    fn a_signature_is_admitted_once() {
        let mut g = ReplayGuard::new(16, 300);
        assert_eq!(g.admit(&tag(1), NOW, NOW), Ok(()));
        assert_eq!(g.admit(&tag(1), NOW, NOW + 5), Err(Replay::Seen));
        assert_eq!(g.admit(&tag(2), NOW, NOW + 5), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_forgetting_never_reopens_a_replay() {
        let mut g = ReplayGuard::new(4, 300);
        for i in 0..4 {
            g.admit(&tag(i), NOW + i64::from(i), NOW).unwrap();
        }
        // Full: the oldest (NOW) is dropped, and with it anything signed at NOW.
        g.admit(&tag(10), NOW + 10, NOW).unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(g.admit(&tag(0), NOW, NOW), Err(Replay::Forgotten));
        assert_eq!(g.admit(&tag(1), NOW + 1, NOW), Err(Replay::Seen));
        // Many more requests than the capacity: never more than 4 remembered.
        for i in 100..10_000 {
            let _ = g.admit(&tag(i), NOW + 20 + i64::from(i), NOW + 20 + i64::from(i));
            assert!(g.len() <= 4);
        }
    }

    #[test]
    fn entries_leave_with_the_window() {
        let mut g = ReplayGuard::new(4, 300);
        g.admit(&tag(1), NOW, NOW).unwrap();
        g.admit(&tag(2), NOW + 1, NOW + 1).unwrap();
        g.admit(&tag(3), NOW + 400, NOW + 400).unwrap();
        assert_eq!(g.len(), 1, "the two old ones expired");
        assert_eq!(g.admit(&tag(3), NOW + 400, NOW + 401), Err(Replay::Seen));
    }
}
