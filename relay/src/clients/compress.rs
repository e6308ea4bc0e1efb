//! Deflated forms of outgoing frames, for clients that said in `subscribe` they can
//! inflate them (docs/protocol.md, Client link).
//!
//! A frame is an `Arc<str>` shared by every client it goes to (a delta is serialized
//! once per subscription), so it is deflated once: writers look it up here by the
//! `Arc`'s address, the first one compresses (off the async workers) and the others
//! wait for its result. An entry holds a `Weak` of its frame, so an address reused by a
//! later frame never matches, and entries whose frame is gone are dropped. The cache
//! therefore holds at most one compressed copy of each large frame still queued or
//! kept somewhere, and never more than [`MAX_ENTRIES`] of them.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, Weak};

use axum::body::Bytes;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use tokio::sync::OnceCell;

/// Most frames with a compressed form kept at once; past it the cache starts over.
pub const MAX_ENTRIES: usize = 4_096;

/// The deflate level: the fastest, since the relay compresses on the send path and
/// JSON shrinks several-fold even so.
const LEVEL: u32 = 1;

struct Entry {
    frame: Weak<str>,
    packed: Arc<OnceCell<Option<Bytes>>>,
}

/// The process's deflater: frames are told apart by address, so every relay in the
/// process may share it.
pub static SHARED: std::sync::LazyLock<FrameDeflater> = std::sync::LazyLock::new(FrameDeflater::default);

/// The compressed forms of live shared frames.
#[derive(Default)]
pub struct FrameDeflater {
    entries: Mutex<HashMap<usize, Entry>>,
}

impl std::fmt::Debug for FrameDeflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDeflater").finish_non_exhaustive()
    }
}

impl FrameDeflater {
    /// Bytes of compressed frames held (entries of frames gone are dropped first).
    pub fn held_bytes(&self) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, e| e.frame.strong_count() > 0);
        entries
            .values()
            .filter_map(|e| e.packed.get().and_then(Option::as_ref))
            .map(Bytes::len)
            .sum()
    }

    /// `frame` as raw DEFLATE (RFC 1951), compressed once however many clients ask;
    /// `None` if compressing failed (the frame then goes out as text).
    pub async fn deflate(&self, frame: &Arc<str>) -> Option<Bytes> {
        let packed = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let address = Arc::as_ptr(frame).cast::<u8>() as usize;
            match entries.get(&address) {
                Some(entry) if entry.frame.upgrade().is_some_and(|f| Arc::ptr_eq(&f, frame)) => {
                    entry.packed.clone()
                }
                _ => {
                    entries.retain(|_, e| e.frame.strong_count() > 0);
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                    let packed = Arc::new(OnceCell::new());
                    entries.insert(
                        address,
                        Entry {
                            frame: Arc::downgrade(frame),
                            packed: packed.clone(),
                        },
                    );
                    packed
                }
            }
        };
        packed
            .get_or_init(|| {
                let frame = frame.clone();
                async move {
                    tokio::task::spawn_blocking(move || deflate_raw(frame.as_bytes()))
                        .await
                        .ok()
                        .flatten()
                }
            })
            .await
            .clone()
    }
}

/// Raw DEFLATE of `bytes`.
pub fn deflate_raw(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::new(LEVEL));
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn inflate(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::DeflateDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[tokio::test]
    async fn a_shared_frame_is_deflated_once_and_inflates_to_itself() {
        let deflater = FrameDeflater::default();
        let frame: Arc<str> = Arc::from(format!("{{\"value\":[{}]}}", "\"waiting\",".repeat(10_000)));
        let first = deflater.deflate(&frame).await.unwrap();
        let again = deflater.deflate(&frame).await.unwrap();
        assert_eq!(inflate(&first), &*frame);
        assert!(
            first.len() * 10 < frame.len(),
            "{} of {}",
            first.len(),
            frame.len()
        );
        // The same allocation: the second writer got the first one's bytes.
        assert_eq!(first.as_ptr(), again.as_ptr());
        // Equal text in another frame is another entry.
        let other: Arc<str> = Arc::from(&*frame);
        let separate = deflater.deflate(&other).await.unwrap();
        assert_ne!(first.as_ptr(), separate.as_ptr());
    }

    #[tokio::test]
    async fn entries_of_dropped_frames_go() {
        let deflater = FrameDeflater::default();
        for i in 0..3 {
            let frame: Arc<str> = Arc::from(format!("frame {i}"));
            deflater.deflate(&frame).await.unwrap();
        }
        // Each insert dropped the entries of frames gone before it.
        assert_eq!(deflater.entries.lock().unwrap().len(), 1);
    }
}
