//! Every thread the relay starts, by name, so that stopping it can wait for each and
//! say which did not stop in time.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a join looks again at threads still running.
const LOOK_AGAIN: Duration = Duration::from_millis(5);

/// Named threads still to be joined.
#[derive(Default)]
pub(crate) struct Threads {
    running: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl Threads {
    /// Tracks `handle` until it is joined.
    pub(crate) fn track(&self, name: impl Into<String>, handle: JoinHandle<()>) {
        self.lock().push((name.into(), handle));
    }

    /// Joins every tracked thread (those tracked meanwhile included) that finishes
    /// by `deadline`; returns the names of those still running then.
    pub(crate) fn join_until(&self, deadline: Instant) -> Vec<String> {
        loop {
            let taken = std::mem::take(&mut *self.lock());
            let mut left = Vec::new();
            for (name, handle) in taken {
                if handle.is_finished() {
                    if handle.join().is_err() {
                        tracing::error!(thread = %name, "a relay thread panicked");
                    }
                } else {
                    left.push((name, handle));
                }
            }
            if left.is_empty() && self.lock().is_empty() {
                return Vec::new();
            }
            if Instant::now() >= deadline {
                let names = left.iter().map(|(n, _)| n.clone()).collect();
                self.lock().extend(left);
                return names;
            }
            self.lock().extend(left);
            std::thread::sleep(LOOK_AGAIN);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, JoinHandle<()>)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn finished_threads_are_joined_and_stuck_ones_named() {
        let threads = Threads::default();
        let release = Arc::new(AtomicBool::new(false));
        threads.track("quick", std::thread::spawn(|| {}));
        let held = release.clone();
        threads.track(
            "stuck",
            std::thread::spawn(move || {
                while !held.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }),
        );
        let left = threads.join_until(Instant::now() + Duration::from_millis(50));
        assert_eq!(left, vec!["stuck".to_owned()]);
        release.store(true, Ordering::Relaxed);
        let left = threads.join_until(Instant::now() + Duration::from_secs(5));
        assert!(left.is_empty());
    }
}
