//! The key index of an embedded snapshot: unified_id → row, as an
//! open-addressing hash table in a file that is read in place (memory-mapped).
//!
//! Layout, little-endian: a 32-byte header (`CDPIDX01`, slot count — a
//! power of two at least twice the rows —, rows, hash seed), then one
//! 8-byte slot per position: 0 when empty, else the high 32 bits of the
//! key's XXH3 hash and the row + 1. A lookup hashes the key, probes
//! linearly from `hash & (slots - 1)` until an empty slot, and confirms a
//! slot whose hash bits match by comparing the key itself, so a lookup
//! touches one or two cache lines of the index and one key.
//!
//! ```
//! use cdp_store::online::index::KeyIndex;
//!
//! let keys = ["U1", "U2", "U3"];
//! let bytes = KeyIndex::build(keys.len(), |row| keys[row]).unwrap();
//! let index = KeyIndex::new(bytes::Bytes::from(bytes)).unwrap();
//! assert_eq!(index.find("U2", |row| keys[row]), Some(1));
//! assert_eq!(index.find("U9", |row| keys[row]), None);
//! ```

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The first 8 bytes of an index file.
pub const MAGIC: &[u8; 8] = b"CDPIDX01";

const HEADER: usize = 32;
const SEED: u64 = 0x00C0_FFEE_CD9E_0001;

/// A key index read from its bytes.
#[derive(Debug, Clone)]
pub struct KeyIndex {
    bytes: Bytes,
    mask: usize,
    rows: usize,
    seed: u64,
}

fn hash(key: &str, seed: u64) -> u64 {
    xxh3_64_with_seed(key.as_bytes(), seed)
}

impl KeyIndex {
    /// The index file of `rows` keys, `key(row)` giving each. Fails with
    /// the duplicated key when a key appears twice.
    pub fn build<'a>(
        rows: usize,
        key: impl Fn(usize) -> &'a str,
    ) -> std::result::Result<Vec<u8>, String> {
        if rows >= u32::MAX as usize {
            return Err(format!("{rows} rows: at most {} fit", u32::MAX - 1));
        }
        let slots = (rows * 2).next_power_of_two().max(8);
        let mask = slots - 1;
        let mut table = vec![0u64; slots];
        for row in 0..rows {
            let k = key(row);
            let h = hash(k, SEED);
            let tag = h >> 32;
            let mut at = (h as usize) & mask;
            loop {
                let slot = table[at];
                if slot == 0 {
                    table[at] = (tag << 32) | (row as u64 + 1);
                    break;
                }
                if slot >> 32 == tag && key(((slot & 0xFFFF_FFFF) - 1) as usize) == k {
                    return Err(format!("unified_id {k} appears twice"));
                }
                at = (at + 1) & mask;
            }
        }
        let mut out = Vec::with_capacity(HEADER + slots * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(slots as u64).to_le_bytes());
        out.extend_from_slice(&(rows as u64).to_le_bytes());
        out.extend_from_slice(&SEED.to_le_bytes());
        for slot in table {
            out.extend_from_slice(&slot.to_le_bytes());
        }
        Ok(out)
    }

    /// Reads an index file (checked for its magic and size).
    pub fn new(bytes: Bytes) -> std::result::Result<Self, String> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err("not a cdp key index (bad magic)".into());
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let (slots, rows, seed) = (word(1) as usize, word(2) as usize, word(3));
        if !slots.is_power_of_two() || bytes.len() != HEADER + slots * 8 || rows > slots / 2 {
            return Err(format!(
                "corrupt key index: {slots} slots, {rows} rows, {} bytes",
                bytes.len()
            ));
        }
        Ok(Self {
            bytes,
            mask: slots - 1,
            rows,
            seed,
        })
    }

    /// Keys indexed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The row of `key`, confirmed with `key_of(row)`.
    #[inline]
    pub fn find<'a>(&self, key: &str, key_of: impl Fn(usize) -> &'a str) -> Option<usize> {
        let h = hash(key, self.seed);
        let tag = h >> 32;
        let mut at = (h as usize) & self.mask;
        loop {
            let offset = HEADER + at * 8;
            let slot = u64::from_le_bytes(
                self.bytes[offset..offset + 8]
                    .try_into()
                    .expect("slot is 8 bytes"),
            );
            if slot == 0 {
                return None;
            }
            if slot >> 32 == tag {
                let row = ((slot & 0xFFFF_FFFF) - 1) as usize;
                if row < self.rows && key_of(row) == key {
                    return Some(row);
                }
            }
            at = (at + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_found_and_others_are_not() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("U{i:09}")).collect();
        let bytes = KeyIndex::build(keys.len(), |r| keys[r].as_str()).unwrap();
        let index = KeyIndex::new(Bytes::from(bytes)).unwrap();
        assert_eq!(index.rows(), keys.len());
        for (row, key) in keys.iter().enumerate() {
            assert_eq!(index.find(key, |r| keys[r].as_str()), Some(row));
        }
        for i in 10_000..11_000 {
            assert_eq!(index.find(&format!("U{i:09}"), |r| keys[r].as_str()), None);
        }
        assert_eq!(index.find("", |r| keys[r].as_str()), None);
    }

    #[test]
    fn duplicates_and_corrupt_files_are_refused() {
        let keys = ["a", "b", "a"];
        let err = KeyIndex::build(3, |r| keys[r]).unwrap_err();
        assert!(err.contains("a appears twice"), "{err}");
        assert!(KeyIndex::new(Bytes::from_static(b"nope")).is_err());
        let mut bytes = KeyIndex::build(2, |r| keys[r]).unwrap();
        bytes.truncate(bytes.len() - 8);
        assert!(
            KeyIndex::new(Bytes::from(bytes))
                .unwrap_err()
                .contains("corrupt")
        );
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        let bytes = KeyIndex::build(0, |_| "").unwrap();
        let index = KeyIndex::new(Bytes::from(bytes)).unwrap();
        assert_eq!(index.find("U1", |_| unreachable!()), None);
    }
}
