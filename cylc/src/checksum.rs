//! Cylc's per-type checksum, kept ready for every batch.
//!
//! A scheduler sends, with each element type it touched in a batch, the adler32 of
//! the concatenation of every element's `stamp` (edges: `id`), sorted, as UTF-8
//! (`generate_checksum` in cylc-flow's `data_store_mgr.py`). [`KeySet`] keeps those
//! keys sorted in chunks, each with its adler32 cached, and joins the chunks' sums
//! with adler32's combine rule: checking a batch rehashes only the chunks the batch
//! touched, plus one O(1) combine per chunk, never every key of the type.

use std::cell::Cell;
use std::cmp::Ordering;

/// Cylc's checksum of `keys` in the order given: adler32 of their concatenation.
pub fn checksum_of<'a>(keys: impl IntoIterator<Item = &'a str>) -> u32 {
    let mut adler = adler2::Adler32::new();
    for key in keys {
        adler.write_slice(key.as_bytes());
    }
    adler.checksum()
}

/// adler32's modulus.
const MOD: u64 = 65_521;

/// The adler32 of `A ++ B` from `adler32(A)`, `adler32(B)` and `B`'s length (the
/// combine rule of zlib's `adler32_combine`).
pub fn combine(first: u32, second: u32, second_len: u64) -> u32 {
    let rem = second_len % MOD;
    let (a1, b1) = (u64::from(first & 0xffff), u64::from(first >> 16));
    let (a2, b2) = (u64::from(second & 0xffff), u64::from(second >> 16));
    // a = a1 + a2 - 1; b = b1 + b2 + rem * a1 - rem (mod MOD): the second part's
    // running sums restart from 1, and each of its bytes also carries a1 - 1.
    let a = (a1 + a2 + MOD - 1) % MOD;
    let b = (b1 + b2 + rem * a1 % MOD + MOD - rem) % MOD;
    (a | (b << 16)) as u32
}

/// How many distinct keys a chunk holds at most before it splits.
const CHUNK: usize = 64;

/// A run of sorted keys with their multiplicities and its cached adler32.
#[derive(Clone, Debug, Default)]
struct Chunk {
    keys: Vec<(String, u32)>,
    /// Bytes of the chunk's part of the join (multiplicities counted).
    len: u64,
    /// adler32 of that part, when known.
    sum: Cell<Option<u32>>,
}

impl Chunk {
    fn sum(&self) -> u32 {
        if let Some(sum) = self.sum.get() {
            return sum;
        }
        let sum = checksum_of(
            self.keys
                .iter()
                .flat_map(|(key, n)| std::iter::repeat_n(key.as_str(), *n as usize)),
        );
        self.sum.set(Some(sum));
        sum
    }
}

/// The checksum keys of one element type, sorted, with their multiplicity.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// Non-empty chunks in key order; every key of one chunk sorts before the next's.
    chunks: Vec<Chunk>,
}

impl KeySet {
    /// The chunk that holds `key` or would: the last whose first key is not after it.
    fn chunk_for(&self, key: &str) -> usize {
        self.chunks
            .partition_point(|c| c.keys.first().is_some_and(|(first, _)| first.as_str() <= key))
            .saturating_sub(1)
    }

    /// Counts one more element with `key`.
    pub fn insert(&mut self, key: &str) {
        if self.chunks.is_empty() {
            self.chunks.push(Chunk::default());
        }
        let c = self.chunk_for(key);
        let chunk = &mut self.chunks[c];
        match chunk.keys.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => chunk.keys[i].1 += 1,
            Err(i) => chunk.keys.insert(i, (key.to_owned(), 1)),
        }
        chunk.len += key.len() as u64;
        chunk.sum.set(None);
        if chunk.keys.len() > 2 * CHUNK {
            let tail = chunk.keys.split_off(CHUNK);
            let tail_len: u64 = tail.iter().map(|(k, n)| k.len() as u64 * u64::from(*n)).sum();
            chunk.len -= tail_len;
            let next = Chunk {
                keys: tail,
                len: tail_len,
                sum: Cell::new(None),
            };
            self.chunks.insert(c + 1, next);
        }
    }

    /// Counts one element with `key` fewer (nothing if none has it).
    pub fn remove(&mut self, key: &str) {
        if self.chunks.is_empty() {
            return;
        }
        let c = self.chunk_for(key);
        let chunk = &mut self.chunks[c];
        let Ok(i) = chunk.keys.binary_search_by(|(k, _)| k.as_str().cmp(key)) else {
            return;
        };
        chunk.keys[i].1 -= 1;
        if chunk.keys[i].1 == 0 {
            chunk.keys.remove(i);
        }
        chunk.len -= key.len() as u64;
        chunk.sum.set(None);
        if chunk.keys.is_empty() {
            self.chunks.remove(c);
        } else if chunk.keys.len() < CHUNK / 4 {
            // An underfull chunk joins a neighbour it fits with, so the number of
            // chunks stays about keys / CHUNK however many were removed.
            let fits =
                |a: usize, b: usize| self.chunks[a].keys.len() + self.chunks[b].keys.len() <= 2 * CHUNK;
            if c + 1 < self.chunks.len() && fits(c, c + 1) {
                self.join_next(c);
            } else if c > 0 && fits(c - 1, c) {
                self.join_next(c - 1);
            }
        }
    }

    /// Moves chunk `c + 1`'s keys to the end of chunk `c`.
    fn join_next(&mut self, c: usize) {
        let next = self.chunks.remove(c + 1);
        let chunk = &mut self.chunks[c];
        chunk.keys.extend(next.keys);
        chunk.len += next.len;
        chunk.sum.set(None);
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.chunks.clear();
    }

    /// Every key in order, repeated by its multiplicity.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.chunks
            .iter()
            .flat_map(|c| &c.keys)
            .flat_map(|(key, n)| std::iter::repeat_n(key.as_str(), *n as usize))
    }

    /// Cylc's checksum over these keys: adler32 of the sorted keys joined.
    ///
    /// Rust orders `String`s by their UTF-8 bytes, which is Python's order by code
    /// point, so the sort agrees with Cylc's `sorted()`. Only chunks changed since
    /// the last call are rehashed.
    pub fn checksum(&self) -> u32 {
        self.chunks
            .iter()
            .fold(1, |sum, chunk| combine(sum, chunk.sum(), chunk.len))
    }
}

impl PartialEq for KeySet {
    /// The same keys, however they are chunked.
    fn eq(&self, other: &KeySet) -> bool {
        self.keys().cmp(other.keys()) == Ordering::Equal
    }
}

impl Eq for KeySet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_zlib_adler32_of_the_sorted_join() {
        // zlib.adler32(''.join(sorted(["b@2", "a@1"])).encode()) == 0x062801A7
        let mut set = KeySet::default();
        set.insert("b@2");
        set.insert("a@1");
        assert_eq!(set.checksum(), checksum_of(["a@1b@2"]));
        assert_eq!(checksum_of(["a@1b@2"]), 0x0628_01A7);
        // The empty set is adler32 of nothing.
        assert_eq!(KeySet::default().checksum(), 1);
    }

    #[test]
    fn removal_and_duplicates_count() {
        let mut set = KeySet::default();
        set.insert("x");
        set.insert("x");
        set.remove("x");
        assert_eq!(set.checksum(), checksum_of(["x"]));
        set.remove("x");
        set.remove("x");
        assert_eq!(set, KeySet::default());
    }

    #[test]
    fn combining_sums_is_the_sum_of_the_join() {
        let parts = ["", "a", "hello, ", "world", &"z".repeat(70_000), "\u{e9}t\u{e9}"];
        for first in parts {
            for second in parts {
                let joined = format!("{first}{second}");
                assert_eq!(
                    combine(checksum_of([first]), checksum_of([second]), second.len() as u64),
                    checksum_of([joined.as_str()]),
                    "{first:.8?} + {second:.8?}"
                );
            }
        }
    }

    #[test]
    fn chunks_split_as_keys_come_and_join_as_they_go() {
        let key = |i: u32| format!("~u/w//1/t{i:05}@1");
        let mut set = KeySet::default();
        for i in (0..2_000).rev() {
            set.insert(&key(i));
        }
        assert!(
            set.chunks.len() >= 2_000 / (2 * CHUNK),
            "{} chunks",
            set.chunks.len()
        );
        for i in (0..2_000).filter(|i| i % 50 != 0) {
            set.remove(&key(i));
        }
        assert!(set.chunks.len() <= 2, "{} chunks for 40 keys", set.chunks.len());
        let left: Vec<String> = (0..2_000).filter(|i| i % 50 == 0).map(key).collect();
        assert_eq!(set.checksum(), checksum_of(left.iter().map(String::as_str)));
    }

    proptest::proptest! {
        /// Whatever the inserts and removals, and however the keys are chunked, the
        /// checksum is adler32 of the sorted keys joined.
        #[test]
        fn the_checksum_is_always_the_sorted_join(
            ops in proptest::collection::vec((proptest::bool::weighted(0.7), 0..400u32), 0..900)
        ) {
            let mut set = KeySet::default();
            let mut plain: Vec<String> = Vec::new();
            for (i, (insert, n)) in ops.into_iter().enumerate() {
                let key = format!("~u/w//1/t{n:03}@{}", n % 7);
                if insert {
                    set.insert(&key);
                    plain.push(key);
                } else {
                    set.remove(&key);
                    if let Some(at) = plain.iter().position(|k| *k == key) {
                        plain.remove(at);
                    }
                }
                if i % 50 == 0 {
                    let mut sorted = plain.clone();
                    sorted.sort();
                    proptest::prop_assert_eq!(set.checksum(), checksum_of(sorted.iter().map(String::as_str)));
                }
            }
            plain.sort();
            proptest::prop_assert_eq!(set.checksum(), checksum_of(plain.iter().map(String::as_str)));
            proptest::prop_assert_eq!(set.keys().collect::<Vec<_>>(), plain.iter().map(String::as_str).collect::<Vec<_>>());
            proptest::prop_assert_eq!(set.keys().count(), plain.len());
        }
    }
}
