//! Epoch names. The protocol only asks that the epoch change every time the suite
//! starts; we make it readable and unique: the start time (Unix ms, base 36), the
//! process id and a per-process counter, e.g. `"m3x9k2a1-1f3a-0"`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static STARTS: AtomicU64 = AtomicU64::new(0);

/// A fresh epoch, different from every other epoch this machine has made.
pub fn new_epoch() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    format!("{}-{:x}-{}", base36(ms), std::process::id(), base36(n))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_gets_a_new_epoch() {
        let a = new_epoch();
        let b = new_epoch();
        assert_ne!(a, b);
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 1), "101");
    }
}
