//! Reading the captured fixtures (see `tests/fixtures/README.md`).

#![allow(dead_code)]

use std::path::PathBuf;

use clonewire_cylc::store::decode_entire_workflow;
use clonewire_cylc::CylcStore;

/// The bytes of a fixture file.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `all` payloads of a capture, in the order they were published (the file
/// holds each as a 4-byte big-endian length and the bytes).
pub fn frames(name: &str) -> Vec<Vec<u8>> {
    let bytes = fixture(name);
    let mut frames = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(rest.len() >= 4 + len, "truncated frame in {name}");
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes in {name}");
    frames
}

/// A store from a captured `pb_entire_workflow` reply.
pub fn store(name: &str) -> CylcStore {
    let snapshot = decode_entire_workflow(&fixture(name)).expect("a captured snapshot decodes");
    CylcStore::from_entire_workflow(&snapshot).expect("a captured snapshot loads")
}
