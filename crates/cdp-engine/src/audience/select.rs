//! Choosing the list from the ranked candidates: caps, list size, budget
//! and the control group, all deterministic.
//!
//! Candidates come best first (score descending, then unified_id). They
//! are walked in that order:
//!
//! 1. a candidate whose segment or city is already at its cap is skipped
//!    (the walk goes on: the next one may be elsewhere);
//! 2. the candidate is in the control group when a hash of (seed,
//!    unified_id) falls below the holdout share ([`is_control`]): the same
//!    person gets the same flag on every run with the same seed, whatever
//!    else is on the list, and the control group has the treatment's
//!    score profile;
//! 3. the walk stops when the list holds `top` customers, or before the
//!    first treatment customer the budget cannot pay for (control
//!    customers are not contacted and cost nothing).

use std::collections::BTreeMap;

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// What the walk needs of a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// The person.
    pub unified_id: &'a str,
    /// `customer_360.segment`.
    pub segment: Option<&'a str>,
    /// `customer_360.city`.
    pub city: Option<&'a str>,
}

/// The limits of the walk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// List size (treatment and control).
    pub top: Option<u64>,
    /// Treatment contacts the budget pays for.
    pub max_contacts: Option<u64>,
    /// Per segment.
    pub per_segment: Option<u64>,
    /// Per city.
    pub per_city: Option<u64>,
    /// Control share in `[0, 1)`.
    pub holdout_share: f64,
    /// Control seed.
    pub seed: u64,
}

/// Why the walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Every candidate was looked at.
    Candidates,
    /// The list reached `top`.
    Top,
    /// The budget could not pay for the next contact.
    Budget,
}

/// What the walk chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Indices of the chosen candidates, best first, with their control flag.
    pub chosen: Vec<(usize, bool)>,
    /// Candidates skipped because their segment was full.
    pub capped_by_segment: u64,
    /// Candidates skipped because their city was full (segment not full).
    pub capped_by_city: u64,
    /// Why the walk ended.
    pub stop: Stop,
}

impl Selection {
    /// Customers in the control group.
    pub fn control(&self) -> u64 {
        self.chosen.iter().filter(|(_, c)| *c).count() as u64
    }

    /// Customers to contact.
    pub fn treatment(&self) -> u64 {
        self.chosen.len() as u64 - self.control()
    }
}

/// Whether `unified_id` is held out with this seed and share: the top 53
/// bits of xxh3-64 (seeded) as a number in `[0, 1)`, below `share`.
pub fn is_control(seed: u64, unified_id: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let u = (xxh3_64_with_seed(unified_id.as_bytes(), seed) >> 11) as f64 / (1u64 << 53) as f64;
    u < share
}

/// Walks the candidates (best first) under `limits`.
pub fn select(candidates: &[Candidate<'_>], limits: &Limits) -> Selection {
    const NONE: &str = "";
    let mut per_segment: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_city: BTreeMap<&str, u64> = BTreeMap::new();
    let mut chosen = Vec::new();
    let mut contacts = 0u64;
    let (mut capped_by_segment, mut capped_by_city) = (0, 0);
    let mut stop = Stop::Candidates;
    for (i, c) in candidates.iter().enumerate() {
        if limits.top.is_some_and(|top| chosen.len() as u64 >= top) {
            stop = Stop::Top;
            break;
        }
        let segment = c.segment.unwrap_or(NONE);
        let city = c.city.unwrap_or(NONE);
        if limits
            .per_segment
            .is_some_and(|cap| per_segment.get(segment).copied().unwrap_or(0) >= cap)
        {
            capped_by_segment += 1;
            continue;
        }
        if limits
            .per_city
            .is_some_and(|cap| per_city.get(city).copied().unwrap_or(0) >= cap)
        {
            capped_by_city += 1;
            continue;
        }
        let control = is_control(limits.seed, c.unified_id, limits.holdout_share);
        if !control {
            if limits.max_contacts.is_some_and(|max| contacts >= max) {
                stop = Stop::Budget;
                break;
            }
            contacts += 1;
        }
        *per_segment.entry(segment).or_default() += 1;
        *per_city.entry(city).or_default() += 1;
        chosen.push((i, control));
    }
    if stop == Stop::Candidates && limits.top.is_some_and(|top| chosen.len() as u64 >= top) {
        stop = Stop::Top;
    }
    Selection {
        chosen,
        capped_by_segment,
        capped_by_city,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("U{i:010}")).collect()
    }

    fn candidates<'a>(
        ids: &'a [String],
        segments: &[&'a str],
        cities: &[&'a str],
    ) -> Vec<Candidate<'a>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Candidate {
                unified_id: id,
                segment: Some(segments[i % segments.len()]),
                city: Some(cities[i % cities.len()]),
            })
            .collect()
    }

    /// (limits, expected list size, expected stop)
    #[test]
    fn limits_end_the_walk_where_they_should() {
        let ids = people(1000);
        let c = candidates(&ids, &["mass", "affluent"], &["A", "B", "C", "D"]);
        let cases: Vec<(Limits, usize, Stop)> = vec![
            (Limits::default(), 1000, Stop::Candidates),
            (
                Limits {
                    top: Some(100),
                    ..Limits::default()
                },
                100,
                Stop::Top,
            ),
            (
                Limits {
                    top: Some(1000),
                    ..Limits::default()
                },
                1000,
                Stop::Top,
            ),
            (
                Limits {
                    per_segment: Some(30),
                    ..Limits::default()
                },
                60,
                Stop::Candidates,
            ),
            (
                Limits {
                    per_city: Some(10),
                    top: Some(25),
                    ..Limits::default()
                },
                25,
                Stop::Top,
            ),
            (
                Limits {
                    max_contacts: Some(50),
                    ..Limits::default()
                },
                50,
                Stop::Budget,
            ),
        ];
        for (limits, size, stop) in cases {
            let s = select(&c, &limits);
            assert_eq!((s.chosen.len(), s.stop), (size, stop), "{limits:?}");
        }
    }

    #[test]
    fn caps_hold_and_skip_rather_than_stop() {
        let ids = people(400);
        // the first 200 are all "mass": the cap fills, then affluent ones follow
        let segs: Vec<&str> = (0..400)
            .map(|i| if i < 200 { "mass" } else { "affluent" })
            .collect();
        let c: Vec<Candidate> = ids
            .iter()
            .zip(&segs)
            .map(|(id, s)| Candidate {
                unified_id: id,
                segment: Some(s),
                city: None,
            })
            .collect();
        let s = select(
            &c,
            &Limits {
                per_segment: Some(50),
                ..Limits::default()
            },
        );
        assert_eq!(s.chosen.len(), 100);
        assert_eq!(s.capped_by_segment, 300);
        assert_eq!(s.chosen[49].0, 49);
        assert_eq!(s.chosen[50].0, 200, "skips to the next segment");
    }

    #[test]
    fn budget_counts_treatment_only_and_control_is_stable() {
        let ids = people(20_000);
        let c = candidates(&ids, &["mass"], &["A"]);
        let limits = Limits {
            max_contacts: Some(9_000),
            holdout_share: 0.2,
            seed: 7,
            ..Limits::default()
        };
        let s = select(&c, &limits);
        assert_eq!(s.treatment(), 9_000);
        assert_eq!(s.stop, Stop::Budget);
        let share = s.control() as f64 / s.chosen.len() as f64;
        assert!((share - 0.2).abs() < 0.015, "share {share}");
        // a person's flag depends on the seed and their id only
        let again = select(&c[..5_000], &limits);
        for (a, b) in again.chosen.iter().zip(&s.chosen) {
            assert_eq!(a, b);
        }
        let other_seed = select(
            &c,
            &Limits {
                seed: 8,
                ..limits.clone()
            },
        );
        assert_ne!(other_seed.chosen, s.chosen);
        assert!(!is_control(1, "U1", 0.0));
    }
}
