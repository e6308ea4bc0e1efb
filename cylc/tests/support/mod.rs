//! What the link's tests against real Cylc schedulers read on the wire: a store
//! that keeps each payload and a reader of protobuf's top-level fields. The
//! schedulers themselves come from `clonewire_cylc::testing`.

#![allow(dead_code)] // Each test file uses a part.

use clonewire_cylc::link::{DataStore, StoreOutcome};
use clonewire_cylc::Kind;

/// A store that keeps only what the link gives it, with a check that each
/// payload is well-formed protobuf and a list of the top-level fields seen.
#[derive(Default)]
pub struct WireStore {
    /// Top-level field numbers of the last snapshot.
    pub snapshot_fields: Vec<u64>,
    /// The last snapshot.
    pub snapshot: Vec<u8>,
    /// `all` batches applied.
    pub batches: usize,
    /// Re-fetch replies by type.
    pub replaced: Vec<Kind>,
}

impl DataStore for WireStore {
    type Error = String;
    /// The payload's size.
    type Changes = usize;

    fn load_snapshot(&mut self, payload: &[u8]) -> Result<usize, String> {
        self.snapshot_fields = top_level_fields(payload)?;
        self.snapshot = payload.to_vec();
        Ok(payload.len())
    }

    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        top_level_fields(payload)?;
        self.batches += 1;
        Ok(StoreOutcome {
            changes: payload.len(),
            mismatched: Vec::new(),
        })
    }

    fn replace_elements(&mut self, kind: Kind, payload: &[u8]) -> Result<StoreOutcome<usize>, String> {
        top_level_fields(payload)?;
        self.replaced.push(kind);
        Ok(StoreOutcome {
            changes: payload.len(),
            mismatched: Vec::new(),
        })
    }
}

/// A protobuf field's value, as the wire has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    /// A varint (ints, bools, enums).
    Varint(u64),
    /// Length-delimited: a string, bytes, or a nested message.
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value.
    Fixed,
}

/// The fields of a protobuf message's top level (number and value), or why it is
/// not one.
pub fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (value, skip) = match key & 7 {
            0 => (Wire::Varint(varint(&mut bytes)?), 0),
            1 => (Wire::Fixed, 8),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                (Wire::Bytes(bytes.get(..len).ok_or("truncated field")?), len)
            }
            5 => (Wire::Fixed, 4),
            other => return Err(format!("wire type {other}")),
        };
        bytes = bytes.get(skip..).ok_or("truncated field")?;
        out.push((key >> 3, value));
    }
    Ok(out)
}

/// The field numbers of a protobuf message's top level, or why it is not one.
pub fn top_level_fields(bytes: &[u8]) -> Result<Vec<u64>, String> {
    Ok(fields(bytes)?.into_iter().map(|(n, _)| n).collect())
}
