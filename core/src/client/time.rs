//! Time as the driver tells it. The link never reads a clock: every call that needs
//! the time is given it, as a [`Moment`], and deadlines come back in the same type.
//! A native driver passes `std::time::Instant`; the browser, which has no monotonic
//! `Instant` in `std`, passes [`Millis`].

use std::fmt::Debug;
use std::ops::Add;
use std::time::{Duration, Instant};

/// A point in time on the driver's clock.
pub trait Moment: Copy + Ord + Debug + Add<Duration, Output = Self> {
    /// How long after `earlier` this is (zero if it is not after it).
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for Instant {
    fn since(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Milliseconds from an origin the driver chooses (such as the page's
/// `performance.now()` or `Date.now()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// The moment `ms` milliseconds after the origin; a negative or non-finite value
    /// is the origin.
    pub fn from_f64(ms: f64) -> Millis {
        if ms.is_finite() && ms > 0.0 {
            Millis(ms.min(u64::MAX as f64) as u64)
        } else {
            Millis(0)
        }
    }
}

impl Add<Duration> for Millis {
    type Output = Millis;

    fn add(self, duration: Duration) -> Millis {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_add(ms))
    }
}

impl Moment for Millis {
    fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}
