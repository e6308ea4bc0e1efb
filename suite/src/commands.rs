//! Commands on the REP socket (docs/protocol.md, Suite link › Requests, and Commands).
//! A suite that takes commands gives its publisher a [`CommandHandler`]; the REP thread
//! checks each command against the protocol's table, then asks the handler, which
//! answers at once (`queued` or `refused`) and leaves the work to the suite's own
//! thread. The effect reaches followers as ordinary deltas.

use std::sync::Arc;

use clonewire_core::protocol::command::Command;
use clonewire_core::protocol::suite::{CommandReply, ErrorReply};
use clonewire_core::Document;

/// What a suite does with the commands it takes.
pub trait CommandHandler: Send + Sync {
    /// Decides at once what to do with `command` from `user` (the relay's word for
    /// who asked): `Ok` with `queued` (it will be done) or `refused` (and why), or
    /// `Err` with an error reply such as `busy`. `store` is the REP thread's copy of
    /// the suite's store, to check the command's ids against. Called on the REP thread:
    /// it must not block.
    fn command(
        &self,
        command: &Command,
        user: Option<&str>,
        store: &Document,
    ) -> Result<CommandReply, ErrorReply>;
}

/// A shared [`CommandHandler`], for a publisher's config.
#[derive(Clone)]
pub struct Commands(pub Arc<dyn CommandHandler>);

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commands(..)")
    }
}
