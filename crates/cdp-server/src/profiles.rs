//! The profile index: one served snapshot's golden records in Arrow
//! columns, and every known key of every person pointing at their row.
//!
//! A key that points at several people (a family's shared tablet, a card
//! reissued to another person) resolves to nobody: the server never
//! guesses who a caller means.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};

use crate::error::{Error, Result};
use crate::pb;

/// The key kinds a caller may name, in the order an unspecified kind tries them.
pub const KEY_ORDER: [pb::KeyKind; 6] = [
    pb::KeyKind::UnifiedId,
    pb::KeyKind::CustomerId,
    pb::KeyKind::DeviceId,
    pb::KeyKind::CardId,
    pb::KeyKind::PhoneSha256,
    pb::KeyKind::EmailSha256,
];

/// A key's kind in words, for messages (never the key itself).
pub fn kind_name(kind: pb::KeyKind) -> &'static str {
    match kind {
        pb::KeyKind::Unspecified => "key",
        pb::KeyKind::UnifiedId => "unified_id",
        pb::KeyKind::CustomerId => "customer_id",
        pb::KeyKind::DeviceId => "device_id",
        pb::KeyKind::CardId => "card_id",
        pb::KeyKind::PhoneSha256 => "phone_sha256",
        pb::KeyKind::EmailSha256 => "email_sha256",
    }
}

/// A row number, or several people.
const AMBIGUOUS: u32 = u32::MAX;

/// Raw golden PII columns, loaded only when some key holds the PII scope.
#[derive(Debug)]
struct RawPii {
    full_name: StringArray,
    id_number: StringArray,
    phone: StringArray,
    email: StringArray,
}

/// Tag columns, when the snapshot date is tagged.
#[derive(Debug)]
struct TagColumns {
    segment: Int64Array,
    segment_name: StringArray,
    tags: ListArray,
    version: StringArray,
}

/// One snapshot's profiles, indexed by every key.
#[derive(Debug)]
pub struct Profiles {
    unified_id: StringArray,
    primary_customer_id: StringArray,
    customer_ids: ListArray,
    full_name_masked: StringArray,
    id_number_masked: StringArray,
    phone_masked: StringArray,
    email_masked: StringArray,
    phone_sha256: StringArray,
    email_sha256: StringArray,
    gender: StringArray,
    city: StringArray,
    segment: StringArray,
    income_band: Int64Array,
    kyc_level: Int64Array,
    marketing_opt_in: BooleanArray,
    onboard_date: StringArray,
    tenure_days: Int64Array,
    age_years: Int64Array,
    products: ListArray,
    device_ids: ListArray,
    card_ids: ListArray,
    social_profiles: ListArray,
    shared_device_count: Int64Array,
    updated_at: TimestampMicrosecondArray,
    tags: Option<TagColumns>,
    pii: Option<RawPii>,
    index: [HashMap<Box<str>, u32>; 6],
}

impl Profiles {
    /// Indexes the profiles table of [`cdp_engine::serving::ServingTables`].
    pub fn new(batch: &RecordBatch) -> Result<Self> {
        let c = Columns(batch);
        let tags = if batch.schema().column_with_name("tag_segment").is_some() {
            Some(TagColumns {
                segment: c.int("tag_segment")?,
                segment_name: c.string("tag_segment_name")?,
                tags: c.list("tag_list")?,
                version: c.string("tagger_version")?,
            })
        } else {
            None
        };
        let pii = if batch.schema().column_with_name("full_name").is_some() {
            Some(RawPii {
                full_name: c.string("full_name")?,
                id_number: c.string("id_number")?,
                phone: c.string("phone")?,
                email: c.string("email")?,
            })
        } else {
            None
        };
        let mut profiles = Profiles {
            unified_id: c.string("unified_id")?,
            primary_customer_id: c.string("primary_customer_id")?,
            customer_ids: c.list("customer_ids")?,
            full_name_masked: c.string("full_name_masked")?,
            id_number_masked: c.string("id_number_masked")?,
            phone_masked: c.string("phone_masked")?,
            email_masked: c.string("email_masked")?,
            phone_sha256: c.string("phone_sha256")?,
            email_sha256: c.string("email_sha256")?,
            gender: c.string("gender")?,
            city: c.string("city")?,
            segment: c.string("segment")?,
            income_band: c.int("income_band")?,
            kyc_level: c.int("kyc_level")?,
            marketing_opt_in: c.boolean("marketing_opt_in")?,
            onboard_date: c.string("onboard_date")?,
            tenure_days: c.int("tenure_days")?,
            age_years: c.int("age_years")?,
            products: c.list("products")?,
            device_ids: c.list("device_ids")?,
            card_ids: c.list("card_ids")?,
            social_profiles: c.list("social_profiles")?,
            shared_device_count: c.int("shared_device_count")?,
            updated_at: c.timestamp("updated_at")?,
            tags,
            pii,
            index: Default::default(),
        };
        profiles.index = profiles.build_index();
        Ok(profiles)
    }

    fn build_index(&self) -> [HashMap<Box<str>, u32>; 6] {
        let n = self.unified_id.len();
        let mut index: [HashMap<Box<str>, u32>; 6] =
            std::array::from_fn(|_| HashMap::with_capacity(n));
        let mut add = |kind: usize, key: &str, row: u32| {
            if key.is_empty() {
                return;
            }
            match index[kind].entry(key.into()) {
                Entry::Vacant(v) => {
                    v.insert(row);
                }
                Entry::Occupied(mut o) if *o.get() != row => {
                    o.insert(AMBIGUOUS);
                }
                Entry::Occupied(_) => {}
            }
        };
        for row in 0..n {
            let r = row as u32;
            add(0, self.unified_id.value(row), r);
            for key in list_values(&self.customer_ids, row) {
                add(1, &key, r);
            }
            for key in list_values(&self.device_ids, row) {
                add(2, &key, r);
            }
            for key in list_values(&self.card_ids, row) {
                add(3, &key, r);
            }
            if self.phone_sha256.is_valid(row) {
                add(4, self.phone_sha256.value(row), r);
            }
            if self.email_sha256.is_valid(row) {
                add(5, self.email_sha256.value(row), r);
            }
        }
        index
    }

    /// People in the snapshot.
    pub fn len(&self) -> usize {
        self.unified_id.len()
    }

    /// Whether the snapshot has nobody.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether raw PII was loaded.
    pub fn has_pii(&self) -> bool {
        self.pii.is_some()
    }

    /// The row of the person `key` names: `Ok(None)` when nobody (or
    /// several people) has it; INVALID_ARGUMENT for an empty key or an
    /// unknown kind.
    pub fn resolve(&self, key: Option<&pb::CustomerKey>, field: &str) -> Result<Option<usize>> {
        let key = key.ok_or_else(|| Error::invalid(field, "a customer key is required"))?;
        let value = key.value.trim();
        if value.is_empty() {
            return Err(Error::invalid(
                format!("{field}.value"),
                "must not be empty",
            ));
        }
        let kind = pb::KeyKind::try_from(key.kind).map_err(|_| {
            Error::invalid(
                format!("{field}.kind"),
                format!("unknown key kind {}", key.kind),
            )
        })?;
        let kinds: &[pb::KeyKind] = if kind == pb::KeyKind::Unspecified {
            &KEY_ORDER
        } else {
            std::slice::from_ref(
                &KEY_ORDER[KEY_ORDER
                    .iter()
                    .position(|k| *k == kind)
                    .expect("every kind is indexed")],
            )
        };
        for k in kinds {
            let slot = KEY_ORDER.iter().position(|x| x == k).expect("indexed kind");
            let mut lookup = value.to_string();
            if matches!(k, pb::KeyKind::PhoneSha256 | pb::KeyKind::EmailSha256) {
                lookup.make_ascii_lowercase();
            }
            match self.index[slot].get(lookup.as_str()) {
                Some(&AMBIGUOUS) => return Ok(None),
                Some(&row) => return Ok(Some(row as usize)),
                None => {}
            }
        }
        Ok(None)
    }

    /// The row of `key`, or NOT_FOUND.
    pub fn require(&self, key: Option<&pb::CustomerKey>, field: &str) -> Result<usize> {
        self.resolve(key, field)?.ok_or_else(|| Error::NotFound {
            kind: key
                .and_then(|k| pb::KeyKind::try_from(k.kind).ok())
                .map_or("key", kind_name),
        })
    }

    /// The unified_id of a row.
    pub fn unified_id(&self, row: usize) -> &str {
        self.unified_id.value(row)
    }

    /// The income band of a row, if known.
    pub fn income_band(&self, row: usize) -> Option<i64> {
        self.income_band
            .is_valid(row)
            .then(|| self.income_band.value(row))
    }

    /// The products a row holds.
    pub fn products(&self, row: usize) -> Vec<String> {
        list_values(&self.products, row)
    }

    /// The golden record of a row; raw PII only when `pii` is set and loaded.
    pub fn profile(&self, row: usize, pii: bool) -> pb::Profile {
        let s = |a: &StringArray| text(a, row);
        let raw = self.pii.as_ref().filter(|_| pii);
        let (full_name, id_number, phone, email) = match raw {
            Some(p) => (s(&p.full_name), s(&p.id_number), s(&p.phone), s(&p.email)),
            None => (
                s(&self.full_name_masked),
                s(&self.id_number_masked),
                s(&self.phone_masked),
                s(&self.email_masked),
            ),
        };
        let int = |a: &Int64Array| a.is_valid(row).then(|| a.value(row));
        pb::Profile {
            unified_id: s(&self.unified_id),
            primary_customer_id: s(&self.primary_customer_id),
            pii_masked: raw.is_none(),
            full_name,
            id_number,
            phone,
            email,
            phone_sha256: s(&self.phone_sha256),
            email_sha256: s(&self.email_sha256),
            gender: s(&self.gender),
            city: s(&self.city),
            segment: s(&self.segment),
            income_band: int(&self.income_band).unwrap_or_default() as i32,
            kyc_level: int(&self.kyc_level).unwrap_or_default() as i32,
            marketing_opt_in: self.marketing_opt_in.is_valid(row)
                && self.marketing_opt_in.value(row),
            onboard_date: s(&self.onboard_date),
            tenure_days: int(&self.tenure_days).unwrap_or_default(),
            age_years: int(&self.age_years),
            products: list_values(&self.products, row),
            keys: Some(pb::LinkedKeys {
                customer_ids: list_values(&self.customer_ids, row),
                device_ids: list_values(&self.device_ids, row),
                card_ids: list_values(&self.card_ids, row),
                social_profiles: list_values(&self.social_profiles, row),
            }),
            shared_device_count: int(&self.shared_device_count).unwrap_or_default(),
            tags: Some(match &self.tags {
                Some(t) if t.segment.is_valid(row) => pb::CustomerTags {
                    segment: t.segment.value(row) as i32,
                    segment_name: text(&t.segment_name, row),
                    tags: list_values(&t.tags, row),
                    tagger_version: text(&t.version, row),
                },
                _ => pb::CustomerTags {
                    segment: -1,
                    ..Default::default()
                },
            }),
            updated_at: self.updated_at.is_valid(row).then(|| {
                let micros = self.updated_at.value(row);
                prost_types::Timestamp {
                    seconds: micros.div_euclid(1_000_000),
                    nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
                }
            }),
        }
    }
}

/// A string cell, `""` when null.
fn text(array: &StringArray, row: usize) -> String {
    if array.is_valid(row) {
        array.value(row).to_string()
    } else {
        String::new()
    }
}

/// The strings of a list cell (none when null).
fn list_values(array: &ListArray, row: usize) -> Vec<String> {
    if array.is_null(row) {
        return Vec::new();
    }
    let values = array.value(row);
    let values = values.as_string::<i32>();
    values.iter().flatten().map(str::to_string).collect()
}

/// Columns of the profiles table, cast to the types the index keeps.
struct Columns<'a>(&'a RecordBatch);

impl Columns<'_> {
    fn column(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let column = self.0.column_by_name(name).ok_or_else(|| Error::Column {
            table: "profiles",
            column: name.into(),
            reason: "missing".into(),
        })?;
        cast(column, to).map_err(|e| Error::Column {
            table: "profiles",
            column: name.into(),
            reason: e.to_string(),
        })
    }

    fn string(&self, name: &str) -> Result<StringArray> {
        Ok(self
            .column(name, &DataType::Utf8)?
            .as_string::<i32>()
            .clone())
    }

    fn int(&self, name: &str) -> Result<Int64Array> {
        let column = self.column(name, &DataType::Int64);
        Ok(column?.as_primitive().clone())
    }

    fn boolean(&self, name: &str) -> Result<BooleanArray> {
        Ok(self.column(name, &DataType::Boolean)?.as_boolean().clone())
    }

    fn list(&self, name: &str) -> Result<ListArray> {
        let item = Field::new("item", DataType::Utf8, true);
        let to = DataType::List(std::sync::Arc::new(item));
        Ok(self.column(name, &to)?.as_list::<i32>().clone())
    }

    fn timestamp(&self, name: &str) -> Result<TimestampMicrosecondArray> {
        let to = DataType::Timestamp(TimeUnit::Microsecond, None);
        Ok(self.column(name, &to)?.as_primitive().clone())
    }
}
