//! The one request policy of a REQ socket, for every link that asks a peer
//! something (a clonewire suite's follower, the Cylc link): one request out at a
//! time, each with a deadline; past it the request is given up and the REQ socket
//! must be discarded and reopened (a REQ socket whose request got no reply can never
//! send again: the "Lazy Pirate" pattern), and each timeout in a row makes the next
//! deadline longer, so a big answer that takes longer still gets through. Failures
//! (an error reply, a busy peer, a timeout if the policy says so) make the next
//! request wait a backoff that doubles each time, up to a maximum; a good answer
//! starts it small again.
//!
//! Sans-IO: [`Requests`] has no socket and no clock. The time goes in, and what it
//! says (send now, the request is lost, reopen, wait until then) comes out for the
//! link to act on.

use std::time::{Duration, Instant};

/// The deadlines and backoff of a link's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long a request may take before its socket is discarded and it is retried.
    /// Each timeout in a row doubles it, up to `max_timeout_factor` times; a reply
    /// resets it.
    pub request_timeout: Duration,
    /// How far the deadline may grow after timeouts in a row (a power of two: 8 is
    /// three doublings).
    pub max_timeout_factor: u32,
    /// The first wait before asking again after a failure; doubles each time.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// Whether a timeout is a failure that backs off too (else the request is sent
    /// again, on a new socket, as soon as the old one is discarded).
    pub backoff_after_timeout: bool,
}

/// Where the one request slot stands.
#[derive(Debug)]
enum Slot<T> {
    /// Nothing out; the next request may go.
    Idle,
    /// Nothing out; the next request waits until then.
    BackingOff { until: Instant },
    /// A request is out.
    Out { asked: T, deadline: Instant },
    /// Its answer has arrived and is being handled elsewhere (decoded on another
    /// thread, say): no deadline runs, and the next request waits for it.
    Held,
}

/// The request slot of one REQ socket under a [`RetryPolicy`]. `T` is what the link
/// remembers about the request out (what it asked, to use the answer).
#[derive(Debug)]
pub struct Requests<T> {
    policy: RetryPolicy,
    slot: Slot<T>,
    /// The deadline's multiplier: doubles on each timeout, 1 after a reply.
    timeout_factor: u32,
    /// The next backoff delay.
    backoff: Duration,
}

impl<T> Requests<T> {
    /// An idle slot: the first request may go at once.
    pub fn new(policy: RetryPolicy) -> Requests<T> {
        Requests {
            backoff: policy.backoff_min,
            policy,
            slot: Slot::Idle,
            timeout_factor: 1,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// True when a new request may be sent at `now` (a backoff that is over ends).
    pub fn ready(&mut self, now: Instant) -> bool {
        match &self.slot {
            Slot::Idle => true,
            Slot::BackingOff { until } if now >= *until => {
                self.slot = Slot::Idle;
                true
            }
            _ => false,
        }
    }

    /// `asked` is sent at `now`: it is out until answered, lost or expired. Returns
    /// its deadline.
    pub fn send(&mut self, asked: T, now: Instant) -> Instant {
        let deadline = now + self.policy.request_timeout * self.timeout_factor;
        self.slot = Slot::Out { asked, deadline };
        deadline
    }

    /// The request out, if any.
    pub fn in_flight(&self) -> Option<&T> {
        match &self.slot {
            Slot::Out { asked, .. } => Some(asked),
            _ => None,
        }
    }

    /// The request out has its answer: it is no longer out, and deadlines go back to
    /// normal (the peer answers). `None` if nothing was out.
    pub fn answered(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.slot, Slot::Idle) {
            Slot::Out { asked, .. } => {
                self.timeout_factor = 1;
                Some(asked)
            }
            other => {
                self.slot = other;
                None
            }
        }
    }

    /// As [`answered`](Self::answered), for an answer handled elsewhere: the next
    /// request waits until [`release`](Self::release).
    pub fn hold(&mut self) -> Option<T> {
        let asked = self.answered()?;
        self.slot = Slot::Held;
        Some(asked)
    }

    /// The answer taken by [`hold`](Self::hold) has been handled: the slot is free
    /// again (unless something else already set it).
    pub fn release(&mut self) {
        if matches!(self.slot, Slot::Held) {
            self.slot = Slot::Idle;
        }
    }

    /// True while an answer taken by [`hold`](Self::hold) is being handled.
    pub fn held(&self) -> bool {
        matches!(self.slot, Slot::Held)
    }

    /// The request out will never be answered (its socket is gone, or the link
    /// stopped): the slot is free.
    pub fn lost(&mut self) {
        if matches!(self.slot, Slot::Out { .. }) {
            self.slot = Slot::Idle;
        }
    }

    /// If the request out passed its deadline at `now`, it is given up and returned:
    /// its socket must be reopened, the next deadline is longer, and if the policy
    /// says so the next request backs off.
    pub fn expire(&mut self, now: Instant) -> Option<T> {
        if !matches!(&self.slot, Slot::Out { deadline, .. } if now >= *deadline) {
            return None;
        }
        let Slot::Out { asked, .. } = std::mem::replace(&mut self.slot, Slot::Idle) else {
            return None;
        };
        self.timeout_factor = (self.timeout_factor * 2).min(self.policy.max_timeout_factor.max(1));
        if self.policy.backoff_after_timeout {
            self.back_off(now);
        }
        Some(asked)
    }

    /// A failure: the next request waits the current backoff delay, which then
    /// doubles; returns the wait.
    pub fn back_off(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.wait_until(now + wait);
        self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
        wait
    }

    /// The next request waits until `until` (unless one is out or held).
    pub fn wait_until(&mut self, until: Instant) {
        if !matches!(self.slot, Slot::Out { .. } | Slot::Held) {
            self.slot = Slot::BackingOff { until };
        }
    }

    /// A good answer: the backoff starts small again.
    pub fn reset_backoff(&mut self) {
        self.backoff = self.policy.backoff_min;
    }

    /// When something is due: the deadline of the request out, or the end of the
    /// backoff.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.slot {
            Slot::Idle | Slot::Held => None,
            Slot::BackingOff { until } => Some(*until),
            Slot::Out { deadline, .. } => Some(*deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_after_timeout: bool) -> RetryPolicy {
        RetryPolicy {
            request_timeout: Duration::from_secs(5),
            max_timeout_factor: 4,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            backoff_after_timeout,
        }
    }

    #[test]
    fn deadlines_grow_after_timeouts_in_a_row_and_reset_on_an_answer() {
        let start = Instant::now();
        let mut requests = Requests::new(policy(false));
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..4 {
            assert!(requests.ready(now));
            let deadline = requests.send("hello", now);
            waits.push((deadline - now).as_secs());
            assert_eq!(requests.expire(deadline - Duration::from_millis(1)), None);
            assert_eq!(requests.expire(deadline), Some("hello"));
            now = deadline;
        }
        assert_eq!(waits, [5, 10, 20, 20]);
        requests.send("hello", now);
        assert_eq!(requests.answered(), Some("hello"));
        assert_eq!(requests.send("again", now) - now, Duration::from_secs(5));
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_maximum() {
        let now = Instant::now();
        let mut requests = Requests::<()>::new(policy(true));
        let waits: Vec<u128> = (0..4).map(|_| requests.back_off(now).as_millis()).collect();
        assert_eq!(waits, [100, 200, 300, 300]);
        assert!(!requests.ready(now));
        assert_eq!(requests.next_deadline(), Some(now + Duration::from_millis(300)));
        requests.reset_backoff();
        assert_eq!(requests.back_off(now), Duration::from_millis(100));

        // A timeout backs off too when the policy says so.
        let mut requests = Requests::new(policy(true));
        let deadline = requests.send((), now);
        assert_eq!(requests.expire(deadline), Some(()));
        assert!(!requests.ready(deadline));
        assert!(requests.ready(deadline + Duration::from_millis(100)));
    }

    #[test]
    fn a_held_answer_stops_the_deadline_and_the_next_request() {
        let now = Instant::now();
        let mut requests = Requests::new(policy(false));
        let deadline = requests.send(7, now);
        assert_eq!(requests.hold(), Some(7));
        assert!(requests.held());
        assert_eq!(requests.expire(deadline), None);
        assert_eq!(requests.next_deadline(), None);
        requests.wait_until(deadline);
        assert!(!requests.ready(deadline));
        requests.release();
        assert!(requests.ready(now));
    }
}
