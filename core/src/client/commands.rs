//! Requests a client sends with an id of its own choosing and the relay answers by
//! that id (`command`, docs/protocol.md, Commands): the link keeps them here, so that
//! answering, expiring and losing a connection are handled once, for every driver.
//! They are few (at most [`MAX_PENDING_COMMANDS`]), so a list searched in order
//! serves, and keeps the browser's module small.

use std::time::Duration;

use super::time::Moment;

/// The most requests waiting for an answer at once.
pub const MAX_PENDING_COMMANDS: usize = 64;
/// The most bytes (ids and request texts) kept for waiting requests.
pub const MAX_PENDING_COMMAND_BYTES: usize = 1 << 20;

/// One request waiting for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCommand<T> {
    /// The request's text as sent (to send again, or to report).
    pub request: String,
    /// When to stop waiting.
    pub deadline: T,
}

/// Why a request was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandRefused {
    /// A request with this id is already waiting.
    DuplicateId,
    /// Too many requests, or bytes, are waiting already.
    Full,
    /// The link is not connected: nothing could be sent.
    NotConnected,
    /// The id is longer than the protocol allows.
    IdTooLong,
}

/// The requests waiting for an answer, by the client's id; bounded in number and bytes.
#[derive(Clone, Debug)]
pub struct PendingCommands<T> {
    by_id: Vec<(String, PendingCommand<T>)>,
    bytes: usize,
}

impl<T> Default for PendingCommands<T> {
    fn default() -> Self {
        PendingCommands {
            by_id: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T: Moment> PendingCommands<T> {
    /// Waits for the answer to `request` (id `id`) until `now + timeout`.
    pub fn insert(
        &mut self,
        id: String,
        request: String,
        now: T,
        timeout: Duration,
    ) -> Result<(), CommandRefused> {
        if self.by_id.iter().any(|(waiting, _)| *waiting == id) {
            return Err(CommandRefused::DuplicateId);
        }
        let size = id.len() + request.len();
        if self.by_id.len() >= MAX_PENDING_COMMANDS || self.bytes + size > MAX_PENDING_COMMAND_BYTES {
            return Err(CommandRefused::Full);
        }
        self.bytes += size;
        let deadline = now + timeout;
        self.by_id.push((id, PendingCommand { request, deadline }));
        Ok(())
    }

    /// The request an answer with this id answers, no longer waiting; `None` for an
    /// id not waiting (an answer too late, or not ours).
    pub fn answer(&mut self, id: &str) -> Option<PendingCommand<T>> {
        let at = self.by_id.iter().position(|(waiting, _)| waiting == id)?;
        let (id, pending) = self.by_id.swap_remove(at);
        self.bytes -= id.len() + pending.request.len();
        Some(pending)
    }

    /// The earliest deadline of a waiting request.
    pub fn next_deadline(&self) -> Option<T> {
        self.by_id.iter().map(|(_, p)| p.deadline).min()
    }

    /// Stops waiting for the requests whose deadline has passed at `now`; returns
    /// their ids.
    pub fn expire(&mut self, now: T) -> Vec<String> {
        let due: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            self.answer(id);
        }
        due
    }

    /// The connection is gone, and with it every answer: returns the ids that will
    /// never be answered.
    pub fn abandon(&mut self) -> Vec<String> {
        self.bytes = 0;
        std::mem::take(&mut self.by_id)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// How many requests are waiting.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when none is waiting.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
