//! The link's [`Store`] for real: a [`CylcStore`] replica, which applies Cylc's
//! protobuf payloads as Cylc's own data store does and says per topic what changed.

use crate::element::Kind;
use crate::link::{Outcome, Store};
use crate::proto::{PbEntireWorkflow, PbWorkflow};
use crate::store::{decode_entire_workflow, Applied, CylcError, CylcStore};

/// A workflow's replica, empty until the link's first snapshot.
#[derive(Clone, Debug)]
pub struct Replica {
    store: CylcStore,
    loaded: bool,
}

impl Default for Replica {
    fn default() -> Replica {
        Replica::new()
    }
}

impl Replica {
    /// An empty replica: a default workflow element and no other element, so the
    /// first snapshot reports every leaf as changed.
    pub fn new() -> Replica {
        let empty = PbEntireWorkflow {
            workflow: Some(PbWorkflow::default()),
            ..PbEntireWorkflow::default()
        };
        let store = match CylcStore::from_entire_workflow(&empty) {
            Ok(store) => store,
            // An empty store has nothing to map that could fail.
            Err(err) => unreachable!("an empty Cylc store cannot be refused: {err}"),
        };
        Replica { store, loaded: false }
    }

    /// The replica (empty until [`is_loaded`](Self::is_loaded)).
    pub fn store(&self) -> &CylcStore {
        &self.store
    }

    /// Whether a snapshot has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }
}

impl Store for Replica {
    type Error = CylcError;
    type Changes = Applied;

    fn load_snapshot(&mut self, payload: &[u8]) -> Result<Applied, CylcError> {
        let snapshot = decode_entire_workflow(payload)?;
        let applied = self.store.replace_all(&snapshot)?;
        self.loaded = true;
        Ok(applied)
    }

    fn apply_deltas(&mut self, payload: &[u8]) -> Result<Outcome<Applied>, CylcError> {
        let applied = self.store.apply_bytes(payload)?;
        Ok(Outcome {
            mismatched: applied.mismatches().collect(),
            changes: applied,
        })
    }

    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<Outcome<Applied>, CylcError> {
        let applied = self.store.replace_type(kind, payload)?;
        Ok(Outcome {
            mismatched: applied.mismatches().collect(),
            changes: applied,
        })
    }
}

impl AsRef<Replica> for Replica {
    fn as_ref(&self) -> &Replica {
        self
    }
}
