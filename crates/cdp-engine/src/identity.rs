//! Identity resolution: one `unified_id` per real person.
//!
//! customer_ids are merged when they share an id_number, a normalised phone
//! or a normalised e-mail (through the SHA-256 hashes ingest computed),
//! transitively, with a union-find over dense integer ids: linear in the
//! number of keys, millions of customers in seconds. Names are never merge
//! keys. Social profiles attach through the hashes, devices and cards
//! through the customer_ids they were used with; a device several people
//! use is recorded for each of them as `shared_device` and merges nobody.
//!
//! unified_ids are stable from one build to the next: the previous
//! snapshot's map is an input, a person keeps yesterday's id, two people
//! who merge keep the older (lower-numbered) id, and a new person gets the
//! next number, which is never one issued before.
//!
//! ```
//! use cdp_engine::identity::{KeyKind, Resolver};
//!
//! let mut r = Resolver::default();
//! r.add_key("C1", KeyKind::IdNumber, "110101199001011234");
//! r.add_key("C2", KeyKind::IdNumber, "110101199001011234");
//! r.add_key("C3", KeyKind::Phone, "ab12");
//! let map = r.resolve(&Default::default(), 1);
//! assert_eq!(map.unified_id("C1"), map.unified_id("C2"));
//! assert_ne!(map.unified_id("C1"), map.unified_id("C3"));
//! assert_eq!(map.next_unified_id, 3);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use xxhash_rust::xxh3::xxh3_128;

/// A key that merges customer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// The national id number.
    IdNumber,
    /// SHA-256 of the normalised phone.
    Phone,
    /// SHA-256 of the normalised e-mail.
    Email,
}

impl KeyKind {
    /// The `matched_by` label of this rule.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::IdNumber => "id_number",
            KeyKind::Phone => "phone",
            KeyKind::Email => "email",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Formats unified_id number `n` (`U0000000042`).
pub fn format_unified_id(n: u64) -> String {
    format!("U{n:010}")
}

/// Parses a unified_id back to its number.
pub fn parse_unified_id(id: &str) -> Option<u64> {
    id.strip_prefix('U')?.parse().ok()
}

/// Collects customer_ids and their keys, then resolves them to persons.
#[derive(Debug, Default)]
pub struct Resolver {
    index: HashMap<String, u32>,
    customers: Vec<String>,
    parent: Vec<u32>,
    /// Key kinds each customer shares with some other customer.
    shared: Vec<u8>,
    /// First customer seen with each key.
    owner: HashMap<u128, u32>,
}

impl Resolver {
    /// Adds a customer_id (idempotent) and returns its dense index.
    pub fn add_customer(&mut self, customer_id: &str) -> u32 {
        if let Some(&i) = self.index.get(customer_id) {
            return i;
        }
        let i = self.customers.len() as u32;
        self.index.insert(customer_id.to_string(), i);
        self.customers.push(customer_id.to_string());
        self.parent.push(i);
        self.shared.push(0);
        i
    }

    /// Records that `customer_id` holds `key` of `kind`; merges it with
    /// every other customer_id holding the same key. Blank keys are ignored.
    pub fn add_key(&mut self, customer_id: &str, kind: KeyKind, key: &str) {
        let i = self.add_customer(customer_id);
        let key = key.trim();
        if key.is_empty() {
            return;
        }
        let hash = key_hash(kind, key);
        match self.owner.get(&hash) {
            None => {
                self.owner.insert(hash, i);
            }
            Some(&first) if first != i => {
                self.shared[first as usize] |= kind.bit();
                self.shared[i as usize] |= kind.bit();
                self.union(first, i);
            }
            Some(_) => {}
        }
    }

    /// True when `customer_id` was added.
    pub fn knows(&self, customer_id: &str) -> bool {
        self.index.contains_key(customer_id)
    }

    /// The customer_id holding `key` of `kind` first, if any.
    pub fn owner_of(&self, kind: KeyKind, key: &str) -> Option<&str> {
        self.owner
            .get(&key_hash(kind, key.trim()))
            .map(|&i| self.customers[i as usize].as_str())
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The lower index roots the set: deterministic for the input order.
            let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[child as usize] = root;
        }
    }

    /// Groups the customers into persons and gives each a unified_id:
    /// `previous` maps customer_ids to yesterday's unified_id numbers;
    /// `next_id` is the first number never issued.
    pub fn resolve(mut self, previous: &HashMap<String, u64>, next_id: u64) -> PersonMap {
        let n = self.customers.len();
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for i in 0..n as u32 {
            let root = self.find(i);
            members.entry(root).or_default().push(i);
        }
        // Each person: the oldest id any of its customer_ids had, and its
        // smallest customer_id (to order new ids deterministically).
        let mut persons: Vec<(Option<u64>, String, Vec<u32>)> = members
            .into_values()
            .map(|m| {
                let claim = m
                    .iter()
                    .filter_map(|&i| previous.get(&self.customers[i as usize]).copied())
                    .min();
                let first = m
                    .iter()
                    .map(|&i| self.customers[i as usize].clone())
                    .min()
                    .unwrap_or_default();
                (claim, first, m)
            })
            .collect();
        persons.sort_by(|a, b| (a.0.is_none(), a.0, &a.1).cmp(&(b.0.is_none(), b.0, &b.1)));

        let mut next_id = next_id.max(previous.values().max().map_or(1, |m| m + 1));
        let mut taken = BTreeSet::new();
        let mut of_customer = vec![0u64; n];
        for (claim, _, m) in &persons {
            let id = match claim {
                Some(c) if taken.insert(*c) => *c,
                _ => {
                    let id = next_id;
                    next_id += 1;
                    id
                }
            };
            for &i in m {
                of_customer[i as usize] = id;
            }
        }
        let mut rows = Vec::with_capacity(n);
        for (i, customer_id) in self.customers.iter().enumerate() {
            let shared = self.shared[i];
            let matched_by = [KeyKind::IdNumber, KeyKind::Phone, KeyKind::Email]
                .into_iter()
                .find(|k| shared & k.bit() != 0)
                .map_or("customer_id", KeyKind::label);
            rows.push((customer_id.clone(), of_customer[i], matched_by));
        }
        PersonMap {
            index: self.index,
            rows,
            next_unified_id: next_id,
        }
    }
}

fn key_hash(kind: KeyKind, key: &str) -> u128 {
    let mut bytes = Vec::with_capacity(key.len() + 1);
    bytes.push(kind as u8);
    bytes.extend_from_slice(key.as_bytes());
    xxh3_128(&bytes)
}

/// customer_ids resolved to persons.
#[derive(Debug)]
pub struct PersonMap {
    index: HashMap<String, u32>,
    /// (customer_id, unified_id number, matched_by) in first-seen order.
    pub rows: Vec<(String, u64, &'static str)>,
    /// The first number not issued yet.
    pub next_unified_id: u64,
}

impl PersonMap {
    /// The unified_id number of a customer_id.
    pub fn number_of(&self, customer_id: &str) -> Option<u64> {
        self.index
            .get(customer_id)
            .map(|&i| self.rows[i as usize].1)
    }

    /// The unified_id of a customer_id.
    pub fn unified_id(&self, customer_id: &str) -> Option<String> {
        self.number_of(customer_id).map(format_unified_id)
    }

    /// How many persons.
    pub fn persons(&self) -> usize {
        self.rows.iter().map(|r| r.1).collect::<BTreeSet<_>>().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(links: &[(&str, KeyKind, &str)]) -> Resolver {
        let mut r = Resolver::default();
        for (c, k, v) in links {
            r.add_key(c, *k, v);
        }
        r
    }

    #[test]
    fn merges_transitively_and_records_the_rule() {
        let r = resolver(&[
            ("C1", KeyKind::IdNumber, "X"),
            ("C2", KeyKind::IdNumber, "X"),
            ("C2", KeyKind::Phone, "p"),
            ("C3", KeyKind::Phone, "p"),
            ("C4", KeyKind::Email, "e"),
        ]);
        let map = r.resolve(&HashMap::new(), 1);
        assert_eq!(map.persons(), 2);
        assert_eq!(map.unified_id("C1"), map.unified_id("C3"));
        let rule = |c: &str| map.rows.iter().find(|r| r.0 == c).unwrap().2;
        assert_eq!(rule("C1"), "id_number");
        assert_eq!(rule("C3"), "phone");
        assert_eq!(rule("C4"), "customer_id");
        // Same kind of key, different values: never merged.
        assert_ne!(map.unified_id("C1"), map.unified_id("C4"));
    }

    #[test]
    fn ids_are_stable_and_the_older_survives_a_merge() {
        let previous: HashMap<String, u64> = [
            ("C1".to_string(), 7),
            ("C2".to_string(), 3),
            ("C3".to_string(), 5),
        ]
        .into();
        // C1 and C2 merge today; C4 is new.
        let r = resolver(&[
            ("C1", KeyKind::Email, "e"),
            ("C2", KeyKind::Email, "e"),
            ("C3", KeyKind::Phone, "p"),
            ("C4", KeyKind::Phone, "q"),
        ]);
        let map = r.resolve(&previous, 9);
        assert_eq!(map.number_of("C1"), Some(3));
        assert_eq!(map.number_of("C2"), Some(3));
        assert_eq!(map.number_of("C3"), Some(5));
        assert_eq!(
            map.number_of("C4"),
            Some(9),
            "new ids start at the high-water mark"
        );
        assert_eq!(map.next_unified_id, 10);
    }

    #[test]
    fn new_ids_follow_customer_id_order_whatever_the_input_order() {
        let a = resolver(&[("C2", KeyKind::Phone, "b"), ("C1", KeyKind::Phone, "a")])
            .resolve(&HashMap::new(), 1);
        let b = resolver(&[("C1", KeyKind::Phone, "a"), ("C2", KeyKind::Phone, "b")])
            .resolve(&HashMap::new(), 1);
        assert_eq!(a.unified_id("C1").as_deref(), Some("U0000000001"));
        assert_eq!(b.unified_id("C1").as_deref(), Some("U0000000001"));
        assert_eq!(a.unified_id("C2"), b.unified_id("C2"));
    }

    #[test]
    fn blank_keys_link_nothing() {
        let map = resolver(&[("C1", KeyKind::Email, " "), ("C2", KeyKind::Email, "")])
            .resolve(&HashMap::new(), 1);
        assert_eq!(map.persons(), 2);
    }
}
