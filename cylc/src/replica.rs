//! The link's [`DataStore`] for real: a [`CylcStore`] replica, which applies Cylc's
//! protobuf payloads as Cylc's own data store does and says per topic what changed.

use crate::element::Kind;
use crate::link::{DataStore, StoreOutcome};
use crate::proto::{PbEntireWorkflow, PbWorkflow};
use crate::store::{decode_entire_workflow, Applied, CylcError, CylcStore};

/// A workflow's replica, empty until the link's first snapshot.
#[derive(Clone, Debug)]
pub struct CylcReplica {
    store: CylcStore,
    loaded: bool,
}

impl Default for CylcReplica {
    fn default() -> CylcReplica {
        CylcReplica::new()
    }
}

impl CylcReplica {
    /// An empty replica: a default workflow element and no other element, so the
    /// first snapshot reports every leaf as changed.
    pub fn new() -> CylcReplica {
        let empty = PbEntireWorkflow {
            workflow: Some(PbWorkflow::default()),
            ..PbEntireWorkflow::default()
        };
        let store = match CylcStore::from_entire_workflow(&empty) {
            Ok(store) => store,
            // An empty store has nothing to map that could fail.
            Err(err) => unreachable!("an empty Cylc store cannot be refused: {err}"),
        };
        CylcReplica { store, loaded: false }
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

impl DataStore for CylcReplica {
    type Error = CylcError;
    type Changes = Applied;

    fn load_snapshot(&mut self, payload: &[u8]) -> Result<Applied, CylcError> {
        let snapshot = decode_entire_workflow(payload)?;
        let applied = self.store.replace_all(&snapshot)?;
        self.loaded = true;
        Ok(applied)
    }

    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<Applied>, CylcError> {
        let applied = self.store.apply_bytes(payload)?;
        Ok(StoreOutcome {
            mismatched: applied.mismatches().collect(),
            changes: applied,
        })
    }

    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<StoreOutcome<Applied>, CylcError> {
        let applied = self.store.replace_type(kind, payload)?;
        Ok(StoreOutcome {
            mismatched: applied.mismatches().collect(),
            changes: applied,
        })
    }
}

impl AsRef<CylcReplica> for CylcReplica {
    fn as_ref(&self) -> &CylcReplica {
        self
    }
}
