//! Reconnect delays: exponential backoff with jitter, so a relay restart does not
//! bring every page back at the same instant.

/// Exponential backoff with "equal jitter": the delay for attempt `n` lies in
/// `[d/2, d]` where `d = min(max, base * 2^n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, in milliseconds.
    pub base_ms: u32,
    /// The longest delay, in milliseconds.
    pub max_ms: u32,
    /// Attempts since the last good connection.
    pub attempt: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base_ms: 500,
            max_ms: 30_000,
            attempt: 0,
        }
    }
}

impl Backoff {
    /// The next delay; `jitter` is a random number in `[0, 1)`.
    pub fn next_delay(&mut self, jitter: f64) -> u32 {
        let ceiling = u64::from(self.base_ms)
            .saturating_mul(1u64 << self.attempt.min(20))
            .min(u64::from(self.max_ms));
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        // `half + jitter * half` is at most `ceiling`, which fits in u32.
        (half + (jitter * half as f64) as u64) as u32
    }

    /// A connection worked: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_the_jitter_band() {
        let mut backoff = Backoff::default();
        let lows: Vec<u32> = (0..10).map(|_| backoff.next_delay(0.0)).collect();
        assert_eq!(lows[..4], [250, 500, 1000, 2000]);
        assert_eq!(*lows.last().unwrap(), 15_000);
        let mut backoff = Backoff::default();
        let highs: Vec<u32> = (0..10).map(|_| backoff.next_delay(0.999_999)).collect();
        assert!(highs[0] <= 500 && highs[0] >= 499);
        assert!(highs.iter().all(|d| *d <= 30_000));
        backoff.reset();
        assert!(backoff.next_delay(0.5) <= 500);
        assert!(Backoff::default().next_delay(f64::NAN) <= 500);
    }
}
