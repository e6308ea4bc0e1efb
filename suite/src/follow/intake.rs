//! PUB messages read off the SUB socket and not yet handled, bounded in bytes: what
//! does not fit is refused (and the follower repairs the gap), so a follower that
//! falls behind its suite never holds more than the bound.

use std::collections::VecDeque;

/// One PUB message's frames.
pub(super) type Frames = Vec<Vec<u8>>;

/// A FIFO of PUB messages holding at most `limit` bytes of frames.
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

fn size(frames: &Frames) -> usize {
    frames.iter().map(Vec::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_fits_and_refuses_the_rest() {
        let mut intake = Intake::new(10);
        assert!(intake.push(vec![b"ab".to_vec(), b"cdef".to_vec()]).is_ok());
        assert!(intake.push(vec![b"t".to_vec(), b"12345".to_vec()]).is_err());
        assert!(intake.push(vec![b"t".to_vec(), b"123".to_vec()]).is_ok());
        assert_eq!((intake.bytes(), intake.peak()), (10, 10));
        assert_eq!(intake.pop().unwrap()[0], b"ab");
        assert_eq!(intake.bytes(), 4);
        assert!(intake.push(vec![b"t".to_vec(), b"12345".to_vec()]).is_ok());
        assert_eq!(intake.peak(), 10);
    }
}
