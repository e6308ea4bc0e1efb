//! Threads doing bulk work that can wait a little (decoding a big answer, writing a
//! big snapshot) run at a lower scheduling priority, so that on a busy machine the
//! threads that move live deltas get a CPU first and their clients' latency does not
//! follow another client's join.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;

/// How much lower than the process's priority (nice steps; 19 is the lowest).
const STEPS: i32 = 10;

/// Lowers the calling thread's priority by ten nice steps (Linux, where nice is
/// per thread; elsewhere nothing). Best effort: on failure the thread keeps its
/// priority, which is only slower for others, and the reason is logged.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let now = getpriority_process(thread).unwrap_or(0);
        if let Err(e) = setpriority_process(thread, (now + STEPS).min(19)) {
            tracing::debug!(error = %e, "cannot lower a background thread's priority");
        }
    }
}

/// Values waiting to be dropped at most; past that they are dropped by the caller. The
/// memory they hold was already in use, and waits for at most two drops before it is
/// freed.
const DROP_QUEUE: usize = 2;

/// Drops `value` on a background thread (of lowered priority), or here when that
/// thread is busy with others or cannot be started. For big values whose drop would
/// otherwise hold up a thread that moves live data: freeing a 100K-task topic's
/// million changed leaves takes about 100 ms.
pub fn drop_elsewhere<T: Send + 'static>(value: T) {
    static DROPPER: OnceLock<Option<SyncSender<Box<dyn Send>>>> = OnceLock::new();
    let dropper = DROPPER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Box<dyn Send>>(DROP_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("clonewire-drop".into())
            .spawn(move || {
                lower_this_thread();
                while let Ok(value) = rx.recv() {
                    drop(value);
                }
            });
        spawned.ok().map(|_| tx)
    });
    if let Some(dropper) = dropper {
        // Full: dropped here, when `try_send` hands the value back.
        let _ = dropper.try_send(Box::new(value));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + STEPS).min(19));
        let mine = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(mine, before, "the calling thread of the test keeps its priority");
    }

    #[test]
    fn a_value_dropped_elsewhere_is_dropped_on_another_thread() {
        struct Tells(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Tells {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        drop_elsewhere(Tells(tx));
        let by = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("dropped");
        assert_ne!(by, std::thread::current().id());
    }
}
