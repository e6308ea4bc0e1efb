//! Waking a link thread that waits on its upstream: a socket pair whose read end the
//! upstream polls beside its own sockets, and whose write end the senders of commands
//! write a byte to. So an idle link thread sleeps until there is work (a message, a
//! command, a deadline), never on a fixed tick.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The thread's end: what it polls, and drains before looking for commands.
pub struct Wake {
    read: UnixStream,
    write: Arc<UnixStream>,
}

/// A sender's end: wakes the thread.
#[derive(Clone)]
pub struct Waker(Arc<UnixStream>);

impl Wake {
    /// A new pair, both ends non-blocking.
    pub fn new() -> std::io::Result<Wake> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Wake {
            read,
            write: Arc::new(write),
        })
    }

    /// A waker for senders.
    pub fn waker(&self) -> Waker {
        Waker(self.write.clone())
    }

    /// What to poll for readability: readable once woken, until drained.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Takes every wake-up so far (wake-ups are not counted: one drain serves all).
    pub fn drain(&self) {
        let mut buffer = [0u8; 64];
        while matches!((&self.read).read(&mut buffer), Ok(n) if n > 0) {}
    }
}

impl Waker {
    /// Wakes the thread (a full pipe already will).
    pub fn wake(&self) {
        let _ = (&*self.0).write(&[1]);
    }
}

/// Waits up to `timeout` for `fd` to become readable; true if it did.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).ok();
    matches!(poll(&mut fds, timeout.as_ref()), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_wake_is_seen_until_drained_and_many_wakes_need_one_drain() {
        let wake = Wake::new().unwrap();
        assert!(!wait_readable(wake.fd(), Duration::ZERO));
        let waker = wake.waker();
        for _ in 0..100_000 {
            waker.wake();
        }
        assert!(wait_readable(wake.fd(), Duration::ZERO));
        wake.drain();
        assert!(!wait_readable(wake.fd(), Duration::ZERO));
        // A wake from another thread ends a wait at once.
        let started = Instant::now();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        assert!(wait_readable(wake.fd(), Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(2));
        other.join().unwrap();
    }
}
