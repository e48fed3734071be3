//! The identity traps: merging customer records by DESIGN.md's rules
//! (shared id_number, normalised phone or normalised e-mail, transitively)
//! recovers exactly the true persons; same-name strangers and families
//! sharing a tablet stay apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cdp_core::identity::{normalize_email, normalize_phone};

use crate::support::{data_files, generate, read_csv};

/// A small union-find over customer_ids.
#[derive(Default)]
struct Sets {
    parent: HashMap<String, String>,
}

impl Sets {
    fn find(&mut self, x: &str) -> String {
        let p = self
            .parent
            .entry(x.to_string())
            .or_insert_with(|| x.to_string())
            .clone();
        if p == x {
            return p;
        }
        let root = self.find(&p);
        self.parent.insert(x.to_string(), root.clone());
        root
    }
    fn union(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

#[test]
fn merge_rules_recover_true_persons_and_traps_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 450, 40, 3, 0.0, &[]);
    let persons = read_csv(&dir.path().join("_truth/persons.csv"));
    let person_of: HashMap<String, String> = persons
        .iter()
        .map(|r| (r["customer_id"].clone(), r["person_id"].clone()))
        .collect();

    let mut sets = Sets::default();
    let mut owner_of_key: HashMap<String, String> = HashMap::new();
    let mut name_dob: HashMap<String, (String, String)> = HashMap::new();
    for path in data_files(dir.path()) {
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("customers_")
        {
            continue;
        }
        for row in read_csv(&path) {
            let id = row["customer_id"].clone();
            sets.find(&id);
            name_dob.insert(
                id.clone(),
                (row["full_name"].clone(), row["birth_date"].clone()),
            );
            let keys = [
                Some(format!("id:{}", row["id_number"])),
                normalize_phone(&row["phone"]).map(|p| format!("phone:{p}")),
                normalize_email(&row["email"]).map(|e| format!("email:{e}")),
            ];
            for key in keys.into_iter().flatten() {
                match owner_of_key.get(&key) {
                    Some(other) => sets.union(&id, &other.clone()),
                    None => {
                        owner_of_key.insert(key, id.clone());
                    }
                }
            }
        }
    }
    let ids: Vec<String> = person_of.keys().cloned().collect();
    let mut component_persons: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut person_components: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for id in &ids {
        let root = sets.find(id);
        component_persons
            .entry(root.clone())
            .or_default()
            .insert(person_of[id].clone());
        person_components
            .entry(person_of[id].clone())
            .or_default()
            .insert(root);
    }
    let over_merged: Vec<_> = component_persons.values().filter(|p| p.len() > 1).collect();
    let under_merged: Vec<_> = person_components
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .collect();
    assert!(
        over_merged.is_empty(),
        "different persons merged: {over_merged:?}"
    );
    assert!(under_merged.is_empty(), "a person split: {under_merged:?}");

    // every kind of trap is present
    let roles: BTreeSet<&str> = persons.iter().map(|r| r["role"].as_str()).collect();
    for role in ["dup_id_number", "dup_phone", "dup_email", "dup_chain"] {
        assert!(roles.contains(role), "no {role} in {roles:?}");
    }
    let chain = persons.iter().filter(|r| r["role"] == "dup_chain").count();
    assert_eq!(chain % 3, 0, "a chain person has three customer_ids");

    // same-name strangers: same name and birth date, different persons
    let twins: Vec<_> = persons
        .iter()
        .filter(|r| !r["same_name_as"].is_empty())
        .collect();
    assert!(twins.len() >= 3);
    for t in twins {
        let other = persons
            .iter()
            .find(|r| r["person_id"] == t["same_name_as"] && r["role"] != "x")
            .unwrap();
        assert_eq!(name_dob[&t["customer_id"]], name_dob[&other["customer_id"]]);
        assert_ne!(
            sets.find(&t["customer_id"]),
            sets.find(&other["customer_id"])
        );
    }

    // families: a shared tablet carries logins of several persons
    let devices = read_csv(&dir.path().join("_truth/devices.csv"));
    let shared: BTreeSet<String> = devices
        .iter()
        .filter(|r| r["shared"] == "true")
        .map(|r| r["device_id"].clone())
        .collect();
    assert!(shared.len() >= 3);
    let mut logins: HashMap<String, BTreeSet<String>> = HashMap::new();
    for path in data_files(dir.path()) {
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("device_events_")
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let (Some(dev), Some(cid)) = (v["device_id"].as_str(), v["customer_id"].as_str())
                && shared.contains(dev)
            {
                logins
                    .entry(dev.to_string())
                    .or_default()
                    .insert(person_of[cid].clone());
            }
        }
    }
    let multi = logins.values().filter(|p| p.len() >= 2).count();
    assert!(
        multi >= 3,
        "shared tablets used by several persons: {multi}"
    );
}
