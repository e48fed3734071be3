//! The lake's refresh lock: a lease that only one refresh holds at a time.
//!
//! Leases are numbered objects, `_locks/refresh/<n>.json`. To take the
//! lock, a refresh reads the newest lease; when it is released or its
//! lease ran out, the refresh creates lease `n + 1` *create-only*: on a
//! local disk and on object stores with conditional writes alike, exactly
//! one of several racing refreshes creates it. The holder renews its lease
//! while it runs and releases it at the end; a refresh that died (SIGKILL,
//! lost machine) is taken over once its lease ran out, or at once when it
//! ran on the same host and its process is gone. Before publishing,
//! the holder checks that no newer lease exists; the release manifest's
//! expected-version swap closes the last gap, so two refreshes can never
//! both publish.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cdp_core::lake::Lake;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use cdp_core::release::hostname;

/// Folder of the refresh lock's leases.
pub const LOCKS: &str = "_locks/refresh";

/// One lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Lease number (1, 2, …).
    pub number: u64,
    /// The refresh run holding it.
    pub run: String,
    /// Host of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken.
    pub acquired_at: DateTime<Utc>,
    /// When it runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Given back by its holder.
    pub released: bool,
}

impl Lease {
    /// True when the holder ran on this host and its process is gone (a
    /// refresh killed here need not wait for its lease to run out). A
    /// holder on another host is only known dead once its lease ran out.
    pub fn holder_is_gone(&self) -> bool {
        self.host == hostname()
            && self.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
            && std::path::Path::new("/proc/self").exists()
    }
}

fn lease_path(number: u64) -> String {
    format!("{LOCKS}/{number:010}.json")
}

/// The newest lease, if any.
pub async fn newest(lake: &Lake) -> Result<Option<Lease>> {
    let Some(meta) = lake.list(LOCKS).await?.into_iter().next_back() else {
        return Ok(None);
    };
    let path = lake.relative(&meta.location);
    let Some(bytes) = lake.get(&path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::Corrupt { path, source })
}

/// A held lock; renewed in the background until [`RefreshLock::release`]
/// (or drop, which stops renewing and lets the lease run out).
#[derive(Debug)]
pub struct RefreshLock {
    lake: Lake,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RefreshLock {
    /// Takes the lock for `run`, or fails with [`Error::Locked`] naming
    /// the holder.
    pub async fn acquire(lake: &Lake, run: &str, lease: Duration) -> Result<RefreshLock> {
        let lease_for = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::hours(1));
        let now = Utc::now();
        let number = match newest(lake).await? {
            Some(held) if !held.released && held.expires_at > now && !held.holder_is_gone() => {
                return Err(Error::Locked {
                    run: held.run,
                    host: held.host,
                    pid: held.pid,
                    expires_at: held.expires_at,
                });
            }
            Some(previous) => {
                if !previous.released {
                    tracing::warn!(
                        run = %previous.run,
                        expires = %previous.expires_at,
                        "taking over the lock of a refresh that died"
                    );
                }
                previous.number + 1
            }
            None => 1,
        };
        let mine = Lease {
            number,
            run: run.into(),
            host: hostname(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + lease_for,
            released: false,
        };
        if !lake.put_create(&lease_path(number), encode(&mine)?).await? {
            // another refresh created the same lease number first
            let held = newest(lake).await?.unwrap_or(mine);
            return Err(Error::Locked {
                run: held.run,
                host: held.host,
                pid: held.pid,
                expires_at: held.expires_at,
            });
        }
        tracing::info!(lease = number, "refresh lock taken");
        let shared = Arc::new(tokio::sync::Mutex::new(mine));
        let renewer = tokio::spawn(renew_loop(lake.clone(), shared.clone(), lease));
        Ok(RefreshLock {
            lake: lake.clone(),
            lease: shared,
            renewer,
        })
    }

    /// Fails with [`Error::LockLost`] unless this lease is still the newest
    /// and has not run out.
    pub async fn check(&self) -> Result<()> {
        let mine = self.lease.lock().await.clone();
        let newest = newest(&self.lake).await?;
        match newest {
            Some(n) if n.number == mine.number && mine.expires_at > Utc::now() => Ok(()),
            Some(n) => Err(Error::LockLost {
                run: mine.run,
                lease: format!("lease {} of run {}", n.number, n.run),
            }),
            None => Err(Error::LockLost {
                run: mine.run,
                lease: "none: the lock folder was emptied".into(),
            }),
        }
    }

    /// Gives the lock back.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let mut lease = self.lease.lock().await.clone();
        lease.released = true;
        if let Some(n) = newest(&self.lake).await?
            && n.number == lease.number
        {
            self.lake
                .put(&lease_path(lease.number), encode(&lease)?)
                .await?;
        }
        tracing::info!(lease = lease.number, "refresh lock released");
        Ok(())
    }
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of its length while it is the newest.
async fn renew_loop(lake: Lake, lease: Arc<tokio::sync::Mutex<Lease>>, length: Duration) {
    let every = length / 3;
    let length = chrono::Duration::from_std(length).unwrap_or(chrono::Duration::hours(1));
    loop {
        tokio::time::sleep(every).await;
        let mut mine = lease.lock().await;
        match newest(&lake).await {
            Ok(Some(n)) if n.number == mine.number => {
                mine.expires_at = Utc::now() + length;
                let written = match encode(&mine) {
                    Ok(bytes) => lake.put(&lease_path(mine.number), bytes).await,
                    Err(_) => continue,
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not renew the refresh lock");
                }
            }
            Ok(_) => {
                tracing::warn!("the refresh lock was taken over; no longer renewing");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not read the refresh lock"),
        }
    }
}

fn encode(lease: &Lease) -> Result<Bytes> {
    serde_json::to_vec_pretty(lease)
        .map(Bytes::from)
        .map_err(|source| Error::Corrupt {
            path: lease_path(lease.number),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let first = RefreshLock::acquire(&lake, "run-a", Duration::from_secs(60))
            .await
            .unwrap();
        let refused = RefreshLock::acquire(&lake, "run-b", Duration::from_secs(60)).await;
        match refused {
            Err(Error::Locked { run, .. }) => assert_eq!(run, "run-a"),
            other => panic!("expected Locked, got {other:?}"),
        }
        first.check().await.unwrap();
        first.release().await.unwrap();
        let second = RefreshLock::acquire(&lake, "run-b", Duration::from_secs(60))
            .await
            .unwrap();
        // run-b dies without releasing: its lease is rewritten as expired
        drop(second);
        let mut dead = newest(&lake).await.unwrap().unwrap();
        assert_eq!((dead.number, dead.run.as_str()), (2, "run-b"));
        dead.expires_at = Utc::now() - chrono::Duration::seconds(1);
        lake.put(&lease_path(2), encode(&dead).unwrap())
            .await
            .unwrap();
        let third = RefreshLock::acquire(&lake, "run-c", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(newest(&lake).await.unwrap().unwrap().number, 3);
        third.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_holder_killed_on_this_host_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let now = Utc::now();
        let killed = Lease {
            number: 1,
            run: "run-killed".into(),
            host: hostname(),
            // beyond any pid_max: no such process
            pid: 4_999_999,
            acquired_at: now,
            expires_at: now + chrono::Duration::hours(1),
            released: false,
        };
        lake.put(&lease_path(1), encode(&killed).unwrap())
            .await
            .unwrap();
        let lock = RefreshLock::acquire(&lake, "run-next", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(newest(&lake).await.unwrap().unwrap().number, 2);
        lock.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_holder_whose_lease_was_taken_over_may_not_publish() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let stalled = RefreshLock::acquire(&lake, "run-a", Duration::from_secs(60))
            .await
            .unwrap();
        let mut lease = newest(&lake).await.unwrap().unwrap();
        lease.expires_at = Utc::now() - chrono::Duration::seconds(1);
        lake.put(&lease_path(1), encode(&lease).unwrap())
            .await
            .unwrap();
        let newer = RefreshLock::acquire(&lake, "run-b", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(stalled.check().await, Err(Error::LockLost { .. })));
        newer.check().await.unwrap();
    }

    #[tokio::test]
    async fn racing_refreshes_get_exactly_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let attempts = (0..8).map(|i| {
            let lake = lake.clone();
            tokio::spawn(async move {
                RefreshLock::acquire(&lake, &format!("run-{i}"), Duration::from_secs(60)).await
            })
        });
        let mut held = Vec::new();
        for a in attempts {
            if let Ok(lock) = a.await.unwrap() {
                held.push(lock);
            }
        }
        assert_eq!(held.len(), 1);
    }
}
