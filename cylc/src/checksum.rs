//! Cylc's per-type checksum, kept ready for every batch.
//!
//! A scheduler sends, with each element type it touched in a batch, the adler32 of
//! the concatenation of every element's `stamp` (edges: `id`), sorted, as UTF-8
//! (`generate_checksum` in cylc-flow's `data_store_mgr.py`). [`KeySet`] keeps those
//! keys sorted as elements come and go (O(log n) each), so checking a batch costs
//! one adler32 pass over the keys and no sort.

use std::collections::BTreeMap;

/// Cylc's checksum of `keys` in the order given: adler32 of their concatenation.
pub fn checksum_of<'a>(keys: impl IntoIterator<Item = &'a str>) -> u32 {
    let mut adler = adler2::Adler32::new();
    for key in keys {
        adler.write_slice(key.as_bytes());
    }
    adler.checksum()
}

/// The checksum keys of one element type, sorted, with their multiplicity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<String, u32>,
}

impl KeySet {
    /// Counts one more element with `key`.
    pub fn insert(&mut self, key: &str) {
        match self.keys.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.keys.insert(key.to_owned(), 1);
            }
        }
    }

    /// Counts one element with `key` fewer (nothing if none has it).
    pub fn remove(&mut self, key: &str) {
        if let Some(n) = self.keys.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(key);
            }
        }
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    /// Cylc's checksum over these keys: adler32 of the sorted keys joined.
    ///
    /// Rust orders `String`s by their UTF-8 bytes, which is Python's order by code
    /// point, so the sort agrees with Cylc's `sorted()`.
    pub fn checksum(&self) -> u32 {
        checksum_of(
            self.keys
                .iter()
                .flat_map(|(key, n)| std::iter::repeat_n(key.as_str(), *n as usize)),
        )
    }
}

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
}
