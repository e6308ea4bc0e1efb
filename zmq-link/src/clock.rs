//! The wall clock as the protocol's `time` field: Unix milliseconds, as a float.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, with sub-millisecond precision.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
