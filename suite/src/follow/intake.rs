//! PUB messages read off the SUB socket and not yet handled, bounded in bytes: what
//! does not fit is refused (and the follower repairs the gap), so a follower that
//! falls behind its suite never holds more than the bound.

use std::collections::VecDeque;

/// What holding one message costs beyond its frames' bytes (its vectors and their
/// allocations), charged so that many tiny messages cannot hold much more memory
/// than the limit says.
pub(super) const MESSAGE_OVERHEAD: usize = 128;

/// One PUB message's frames.
pub(super) type Frames = Vec<Vec<u8>>;

/// A FIFO of PUB messages holding at most `limit` bytes (frames, plus
/// [`MESSAGE_OVERHEAD`] per message).
pub(super) struct Intake {
    queue: VecDeque<Frames>,
    bytes: usize,
    limit: usize,
    /// The most bytes ever held.
    peak: usize,
}

impl Intake {
    pub(super) fn new(limit: usize) -> Intake {
        Intake {
            queue: VecDeque::new(),
            bytes: 0,
            limit,
            peak: 0,
        }
    }

    /// Keeps `frames` if they fit; else gives them back.
    pub(super) fn push(&mut self, frames: Frames) -> Result<(), Frames> {
        let size = size(&frames);
        if self.bytes.saturating_add(size) > self.limit {
            return Err(frames);
        }
        self.bytes += size;
        self.peak = self.peak.max(self.bytes);
        self.queue.push_back(frames);
        Ok(())
    }

    /// The oldest message.
    pub(super) fn pop(&mut self) -> Option<Frames> {
        let frames = self.queue.pop_front()?;
        self.bytes -= size(&frames);
        Some(frames)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes held now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most bytes held at once so far.
    pub(super) fn peak(&self) -> usize {
        self.peak
    }
}

/// What a message is charged.
pub(super) fn size(frames: &Frames) -> usize {
    MESSAGE_OVERHEAD + frames.iter().map(Vec::len).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_fits_and_refuses_the_rest() {
        let mut intake = Intake::new(2 * MESSAGE_OVERHEAD + 10);
        assert!(intake.push(vec![b"ab".to_vec(), b"cdef".to_vec()]).is_ok());
        assert!(intake.push(vec![b"t".to_vec(), b"12345".to_vec()]).is_err());
        assert!(intake.push(vec![b"t".to_vec(), b"123".to_vec()]).is_ok());
        let full = 2 * MESSAGE_OVERHEAD + 10;
        assert_eq!((intake.bytes(), intake.peak()), (full, full));
        assert_eq!(intake.pop().unwrap()[0], b"ab");
        assert_eq!(intake.bytes(), MESSAGE_OVERHEAD + 4);
        assert!(intake.push(vec![b"t".to_vec(), b"12345".to_vec()]).is_ok());
        assert_eq!(intake.peak(), full);
    }

    #[test]
    fn empty_messages_are_not_free() {
        let mut intake = Intake::new(1000);
        let mut held = 0;
        while intake.push(vec![Vec::new(), Vec::new()]).is_ok() {
            held += 1;
        }
        assert_eq!(held, 1000 / MESSAGE_OVERHEAD);
    }
}
