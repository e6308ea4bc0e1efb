//! [`Seq`]: a topic's sequence number.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A topic's sequence number in one suite epoch (docs/protocol.md, "Suite link"):
/// 1 for the topic's first delta, +1 for each next; 0 means "no delta yet". The suite
/// assigns it and it is carried unchanged end to end: suite link, relay, client link,
/// the browser's store. On the wire it is a plain JSON number.
///
/// The number is public so tests and patterns can write `Seq(3)`; code that steps or
/// compares seqs uses the methods below rather than arithmetic on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first delta of a topic.
    pub const ZERO: Seq = Seq(0);

    /// The seq with this number.
    pub const fn new(n: u64) -> Seq {
        Seq(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one (saturating, so a hostile peer's `u64::MAX` cannot
    /// overflow).
    #[must_use]
    pub const fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }

    /// The seq before this one, or `None` at zero.
    pub const fn prev(self) -> Option<Seq> {
        match self.0.checked_sub(1) {
            Some(n) => Some(Seq(n)),
            None => None,
        }
    }

    /// Whether `self` directly follows `earlier` (`earlier.next() == self` without
    /// saturation).
    pub const fn follows(self, earlier: Seq) -> bool {
        earlier.0 < u64::MAX && self.0 == earlier.0 + 1
    }

    /// How many seqs lie from `earlier` up to `self` (0 if `earlier` is not behind).
    pub const fn since(self, earlier: Seq) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for Seq {
    fn from(n: u64) -> Seq {
        Seq(n)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> u64 {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_plain_number_on_the_wire() {
        assert_eq!(serde_json::to_string(&Seq::new(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<Seq>("7").unwrap(), Seq::new(7));
        assert!(serde_json::from_str::<Seq>("-1").is_err());
        assert!(serde_json::from_str::<Seq>("\"7\"").is_err());
    }

    #[test]
    fn steps_and_gaps() {
        assert_eq!(Seq::ZERO.next(), Seq::new(1));
        assert_eq!(Seq::new(u64::MAX).next(), Seq::new(u64::MAX));
        assert_eq!(Seq::ZERO.prev(), None);
        assert_eq!(Seq::new(5).prev(), Some(Seq::new(4)));
        assert!(Seq::new(5).follows(Seq::new(4)));
        assert!(!Seq::new(6).follows(Seq::new(4)));
        assert!(!Seq::new(u64::MAX).follows(Seq::new(u64::MAX)));
        assert_eq!(Seq::new(9).since(Seq::new(4)), 5);
        assert_eq!(Seq::new(3).since(Seq::new(4)), 0);
        assert_eq!(Seq::new(12).to_string(), "12");
    }
}
