//! The release: the one manifest that says what the lake serves, and the
//! pins by which running servers say what they hold.
//!
//! Every stage publishes its own output (a silver snapshot, gold tables, a
//! model version, an online snapshot) as soon as it is complete, so a
//! stage can be re-run or inspected on its own. What *serves* is decided
//! by one more manifest, [`RELEASE`], which `cdp refresh` publishes last,
//! only when every stage and the quality gate passed: `cdp serve` follows
//! it (the date, the model version and the online snapshot it names) when
//! the lake has one, so a nightly run that fails half-way leaves
//! yesterday's data serving. A lake without a release (stages run by
//! hand) serves its latest outputs.
//!
//! A running server writes a [`ServingPin`] under [`PINS`] when it loads a
//! snapshot and renews it while it runs; retention never deletes what a
//! live pin names.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use cdp_core::lake::Lake;
//! use cdp_core::release::{self, Release};
//!
//! let lake = Lake::open("memory://").unwrap();
//! assert!(release::current(&lake).await.unwrap().is_none());
//! let body = Release {
//!     run: "20261207T020000Z-abc123".into(),
//!     as_of: "2026-03-16".parse().unwrap(),
//!     silver_run: "20261207T020100Z-def456".into(),
//!     model: Some("v2".into()),
//!     tagger: Some("v1".into()),
//!     online: Some(4),
//! };
//! lake.publish(release::RELEASE, &body, Some(0)).await.unwrap();
//! let current = release::current(&lake).await.unwrap().unwrap();
//! assert_eq!(current.body.model.as_deref(), Some("v2"));
//! # });
//! ```

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::{Lake, Manifest};

/// The release manifest's name.
pub const RELEASE: &str = "release";

/// Folder of serving pins inside the lake.
pub const PINS: &str = "_serving";

/// What the lake serves: written by `cdp refresh` as its last step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The refresh run that published it.
    pub run: String,
    /// The business date served.
    pub as_of: NaiveDate,
    /// The build run of that date's silver snapshot.
    pub silver_run: String,
    /// The offer model version served (`None` before the first model).
    pub model: Option<String>,
    /// The tagger version that tagged the date.
    pub tagger: Option<String>,
    /// The version of the `online/embedded` manifest that holds the date's
    /// online features (`None` when the online store is Redis, which is
    /// written in place).
    pub online: Option<u64>,
}

/// The current release, `None` in a lake no refresh has published to.
pub async fn current(lake: &Lake) -> Result<Option<Manifest<Release>>> {
    lake.read_manifest(RELEASE).await
}

/// What one running server holds, renewed while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingPin {
    /// Unique per server process.
    pub instance: String,
    /// Host name and process id, for people.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The date served.
    pub as_of: NaiveDate,
    /// The silver build run served.
    pub silver_run: String,
    /// The offer model version served.
    pub model: Option<String>,
    /// The online snapshot folder served (embedded store).
    pub online_folder: Option<String>,
    /// When the pin was last written.
    pub heartbeat_at: DateTime<Utc>,
}

/// The host name, for people reading pins, run records and locks.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Where the pin of `instance` lives, relative to the lake root.
pub fn pin_path(instance: &str) -> String {
    format!("{PINS}/{instance}.json")
}

/// Writes (or renews) a pin.
pub async fn write_pin(lake: &Lake, pin: &ServingPin) -> Result<()> {
    let path = pin_path(&pin.instance);
    let bytes = serde_json::to_vec_pretty(pin).map_err(|source| Error::ManifestCorrupt {
        path: path.clone(),
        source,
    })?;
    lake.put(&path, Bytes::from(bytes)).await
}

/// Removes a pin (a server shutting down).
pub async fn remove_pin(lake: &Lake, instance: &str) -> Result<()> {
    lake.delete(&pin_path(instance)).await
}

/// The pins renewed within `lease`; older ones belong to servers that
/// stopped without removing theirs. An unreadable pin is skipped with a
/// warning rather than trusted.
pub async fn live_pins(lake: &Lake, lease: Duration) -> Result<Vec<ServingPin>> {
    let now = Utc::now();
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    let mut pins = Vec::new();
    for meta in lake.list(PINS).await? {
        let relative = lake.relative(&meta.location);
        let Some(bytes) = lake.get(&relative).await? else {
            continue;
        };
        match serde_json::from_slice::<ServingPin>(&bytes) {
            Ok(pin) if now - pin.heartbeat_at <= lease => pins.push(pin),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %relative, error = %e, "unreadable serving pin skipped")
            }
        }
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pins_renewed_within_the_lease_are_live() {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let lake = Lake::open("memory://").unwrap();
                let pin = |instance: &str, age_s: i64| ServingPin {
                    instance: instance.into(),
                    host: "h".into(),
                    pid: 1,
                    as_of: "2026-03-16".parse().unwrap(),
                    silver_run: "r".into(),
                    model: None,
                    online_folder: None,
                    heartbeat_at: Utc::now() - chrono::Duration::seconds(age_s),
                };
                write_pin(&lake, &pin("fresh", 5)).await.unwrap();
                write_pin(&lake, &pin("stale", 3600)).await.unwrap();
                let live = live_pins(&lake, Duration::from_secs(60)).await.unwrap();
                assert_eq!(live.len(), 1);
                assert_eq!(live[0].instance, "fresh");
                remove_pin(&lake, "fresh").await.unwrap();
                assert!(
                    live_pins(&lake, Duration::from_secs(60))
                        .await
                        .unwrap()
                        .is_empty()
                );
            });
    }
}
