//! Names a marketer can read: themes of features, component names from
//! loadings, segment names from centroids, and customer tags.
//!
//! A **theme** groups features that mean one thing to a marketer ("travel &
//! foreign spend" = travel share, foreign share, foreign spend, foreign
//! currency share, foreign logins), each with a sign (`days_since_last_txn`
//! counts *against* card activity). The vocabulary below covers the
//! declared features; a feature it does not know becomes a theme of its
//! own, named after the feature. A fitted tagger keeps the resolved themes,
//! so its names never change when this vocabulary does.
//!
//! * a **component** is named after the themes of its strongest loadings:
//!   `"travel & foreign spend + dining vs card activity"`;
//! * a **segment** is named from its centroid mapped back to standardised
//!   features (the PCA reconstruction): its strongest theme, high or low,
//!   strongest behaviour theme becomes a noun (`"frequent traveller"`),
//!   the strongest spend, wealth, age or activity theme an adjective
//!   (`"high-spend dining"`, `"young digital-first"`), and low card activity
//!   makes it `"dormant"`;
//! * a **customer** carries the tags of the themes they stand out on by
//!   more than the configured threshold (`"traveller"`, `"digital-first"`).

use serde::{Deserialize, Serialize};

/// A group of features read together, with how to call it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Theme {
    /// Short identifier, e.g. `travel`.
    pub key: String,
    /// What a component loading on it is about: `"travel & foreign spend"`.
    pub label: String,
    /// A segment high on it: `"frequent traveller"`.
    pub high: String,
    /// A segment high on it, after an adjective: `"traveller"`.
    pub short: String,
    /// A segment or customer strongly low on it, when that reads as
    /// something (`"dormant"`, `"young"`).
    pub low: Option<String>,
    /// The tag of a customer high on it: `"traveller"`.
    pub tag: String,
    /// Adjectives when it qualifies another theme: high and low side
    /// (`"high-spend"`, `"budget"`).
    pub adjective: (Option<String>, Option<String>),
    /// Member features with their sign (+1 or −1), in matrix order.
    pub features: Vec<(String, f64)>,
}

/// The vocabulary: key, label, high, short, low, tag, adjectives, features.
type Entry = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    (Option<&'static str>, Option<&'static str>),
    &'static [(&'static str, f64)],
);

const VOCABULARY: &[Entry] = &[
    (
        "activity",
        "card activity",
        "frequent card user",
        "card user",
        Some("dormant"),
        "frequent card user",
        (Some("frequent"), Some("occasional")),
        &[
            ("txn_count_1d", 1.0),
            ("txn_count_7d", 1.0),
            ("txn_count_30d", 1.0),
            ("txn_count_90d", 1.0),
            ("active_days_30d", 1.0),
            ("distinct_merchants_90d", 1.0),
            ("max_daily_txn_30d", 1.0),
            ("days_since_last_txn", -1.0),
        ],
    ),
    (
        "spend",
        "spend",
        "high spender",
        "spender",
        Some("low spender"),
        "high spender",
        (Some("high-spend"), Some("budget")),
        &[
            ("spend_7d", 1.0),
            ("spend_30d", 1.0),
            ("spend_90d", 1.0),
            ("avg_ticket_30d", 1.0),
            ("avg_ticket_90d", 1.0),
            ("max_ticket_90d", 1.0),
            ("max_daily_spend_30d", 1.0),
        ],
    ),
    (
        "wealth",
        "income & wealth",
        "affluent",
        "affluent",
        None,
        "affluent",
        (Some("affluent"), None),
        &[("income_band", 1.0), ("has_wealth", 1.0)],
    ),
    (
        "travel",
        "travel & foreign spend",
        "frequent traveller",
        "traveller",
        None,
        "traveller",
        (None, None),
        &[
            ("travel_share_90d", 1.0),
            ("foreign_share_90d", 1.0),
            ("foreign_spend_90d", 1.0),
            ("foreign_currency_share_90d", 1.0),
            ("foreign_geo_events_90d", 1.0),
        ],
    ),
    (
        "dining",
        "dining",
        "dining out",
        "dining",
        None,
        "foodie",
        (None, None),
        &[("dining_share_90d", 1.0)],
    ),
    (
        "online",
        "online shopping",
        "online shopper",
        "online shopper",
        None,
        "online shopper",
        (None, None),
        &[
            ("online_share_90d", 1.0),
            ("retail_share_90d", 1.0),
            ("digital_share_90d", 1.0),
        ],
    ),
    (
        "digital",
        "app & digital activity",
        "digital-first",
        "digital-first",
        Some("offline"),
        "digital-first",
        (None, None),
        &[
            ("logins_30d", 1.0),
            ("app_opens_30d", 1.0),
            ("payment_auths_30d", 1.0),
            ("digital_active_days_30d", 1.0),
            ("distinct_devices_90d", 1.0),
            ("device_binds_90d", 1.0),
            ("days_since_last_login", -1.0),
        ],
    ),
    (
        "everyday",
        "everyday & commuting spend",
        "everyday commuter",
        "commuter",
        None,
        "commuter",
        (None, None),
        &[
            ("grocery_share_90d", 1.0),
            ("transport_share_90d", 1.0),
            ("pos_share_90d", 1.0),
            ("atm_count_90d", 1.0),
        ],
    ),
    (
        "age",
        "age & tenure",
        "established",
        "established customer",
        Some("young"),
        "established",
        (Some("mature"), Some("young")),
        &[("age_years", 1.0), ("tenure_days", 1.0)],
    ),
    (
        "social",
        "social reach",
        "social influencer",
        "influencer",
        None,
        "socially active",
        (Some("social"), None),
        &[
            ("social_profiles", 1.0),
            ("social_followers", 1.0),
            ("social_following", 1.0),
            ("social_posts_30d", 1.0),
            ("social_engagement_rate", 1.0),
            ("social_interest_count", 1.0),
        ],
    ),
    (
        "entertainment",
        "entertainment",
        "entertainment lover",
        "entertainment lover",
        None,
        "entertainment",
        (None, None),
        &[("entertainment_share_90d", 1.0)],
    ),
    (
        "transfers",
        "transfers",
        "transfer-heavy",
        "transferrer",
        None,
        "transfers",
        // Transfers qualify a segment, they do not define one.
        (Some("transfer-heavy"), None),
        &[("transfer_count_90d", 1.0)],
    ),
    (
        "products",
        "product holdings",
        "multi-product",
        "multi-product customer",
        None,
        "multi-product",
        (None, None),
        &[
            ("product_count", 1.0),
            ("has_credit_card", 1.0),
            ("has_mortgage", 1.0),
        ],
    ),
    (
        "risk",
        "declines & security events",
        "at-risk",
        "at-risk customer",
        None,
        "at-risk",
        (None, None),
        &[
            ("decline_count_30d", 1.0),
            ("decline_rate_30d", 1.0),
            ("reversal_count_90d", 1.0),
            ("failed_logins_30d", 1.0),
            ("rooted_devices_90d", 1.0),
            ("password_resets_90d", 1.0),
            ("shared_devices", 1.0),
        ],
    ),
    (
        "refunds",
        "refunds",
        "frequent returner",
        "returner",
        None,
        "returner",
        (None, None),
        &[("refund_count_90d", 1.0), ("refund_amount_90d", 1.0)],
    ),
    (
        "offers",
        "offer engagement",
        "offer-responsive",
        "offer-responsive customer",
        None,
        "offer-responsive",
        (None, None),
        &[
            ("offers_received_90d", 1.0),
            ("offers_opened_90d", 1.0),
            ("offers_accepted", 1.0),
            ("offer_open_rate_90d", 1.0),
            ("days_since_last_offer", -1.0),
        ],
    ),
];

/// A theme side stronger than this (in standard deviations) can name a segment.
pub const NAMING_STRENGTH: f64 = 0.5;

/// A behaviour theme names a segment only when at least this share as
/// strong as the segment's strongest side.
const NOUN_SHARE: f64 = 0.6;

/// A theme loading at least this share of a component's strongest one joins its name.
const COMPONENT_SHARE: f64 = 0.6;

/// The themes of these features, in vocabulary order, then one theme per
/// unknown feature (named after it), in feature order.
pub fn themes_for(features: &[String]) -> Vec<Theme> {
    let mut themes = Vec::new();
    let mut known = vec![false; features.len()];
    for (key, label, high, short, low, tag, (adj_high, adj_low), members) in VOCABULARY {
        let present: Vec<(String, f64)> = features
            .iter()
            .enumerate()
            .filter_map(|(j, f)| {
                members.iter().find(|(name, _)| name == f).map(|(_, sign)| {
                    known[j] = true;
                    (f.clone(), *sign)
                })
            })
            .collect();
        if present.is_empty() {
            continue;
        }
        themes.push(Theme {
            key: key.to_string(),
            label: label.to_string(),
            high: high.to_string(),
            short: short.to_string(),
            low: low.map(String::from),
            tag: tag.to_string(),
            adjective: (adj_high.map(String::from), adj_low.map(String::from)),
            features: present,
        });
    }
    for (f, _) in features.iter().zip(known).filter(|(_, k)| !k) {
        let label = f.replace('_', " ");
        themes.push(Theme {
            key: f.clone(),
            label: label.clone(),
            high: format!("high {label}"),
            short: label.clone(),
            low: Some(format!("low {label}")),
            tag: format!("high {label}"),
            adjective: (None, None),
            features: vec![(f.clone(), 1.0)],
        });
    }
    themes
}

/// A `themes × features` weight matrix: a theme's score is the signed mean
/// of its features' standardised values.
pub fn theme_weights(themes: &[Theme], features: &[String]) -> Vec<Vec<f64>> {
    themes
        .iter()
        .map(|t| {
            let share = 1.0 / t.features.len() as f64;
            features
                .iter()
                .map(|f| {
                    t.features
                        .iter()
                        .find(|(name, _)| name == f)
                        .map_or(0.0, |(_, sign)| sign * share)
                })
                .collect()
        })
        .collect()
}

/// Scores of every theme for one standardised profile.
pub fn theme_scores(weights: &[Vec<f64>], profile: &[f64]) -> Vec<f64> {
    weights
        .iter()
        .map(|w| w.iter().zip(profile).map(|(a, b)| a * b).sum())
        .collect()
}

/// A component's name from its loadings: its strongest themes on the
/// positive side (joined with `+`), then `vs` its strongest opposite theme.
pub fn component_name(themes: &[Theme], features: &[String], loadings: &[f64]) -> String {
    // A theme loads as its single strongest (signed) member loading.
    let theme_loadings: Vec<(usize, f64)> = themes
        .iter()
        .enumerate()
        .map(|(t, theme)| {
            let value = theme
                .features
                .iter()
                .filter_map(|(name, sign)| {
                    features
                        .iter()
                        .position(|f| f == name)
                        .map(|j| sign * loadings[j])
                })
                .fold(
                    0.0f64,
                    |best, v| if v.abs() > best.abs() { v } else { best },
                );
            (t, value)
        })
        .collect();
    let strongest = theme_loadings
        .iter()
        .map(|(_, v)| v.abs())
        .fold(0.0, f64::max);
    let mut positive: Vec<&(usize, f64)> = theme_loadings
        .iter()
        .filter(|(_, v)| *v >= COMPONENT_SHARE * strongest && *v > 0.0)
        .collect();
    positive.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut negative: Vec<&(usize, f64)> = theme_loadings
        .iter()
        .filter(|(_, v)| *v <= -COMPONENT_SHARE * strongest && *v < 0.0)
        .collect();
    negative.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let side = |list: &[&(usize, f64)]| {
        list.iter()
            .take(2)
            .map(|(t, _)| themes[*t].label.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    };
    match (positive.is_empty(), negative.is_empty()) {
        (false, false) => format!("{} vs {}", side(&positive), side(&negative[..1])),
        (false, true) => side(&positive),
        (true, false) => format!("low {}", side(&negative)),
        (true, true) => "no structure".to_string(),
    }
}

/// One side of a theme: high (`+1`) or low (`−1`), with its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Side {
    theme: usize,
    high: bool,
    strength: f64,
}

/// Theme sides of a profile, strongest first (ties: vocabulary order,
/// high before low). Low sides only count for themes with a low name.
fn sides(themes: &[Theme], scores: &[f64]) -> Vec<Side> {
    let mut out: Vec<Side> = Vec::with_capacity(themes.len() * 2);
    for (t, (theme, &s)) in themes.iter().zip(scores).enumerate() {
        out.push(Side {
            theme: t,
            high: true,
            strength: s,
        });
        if theme.low.is_some() {
            out.push(Side {
                theme: t,
                high: false,
                strength: -s,
            });
        }
    }
    out.sort_by(|a, b| {
        b.strength
            .total_cmp(&a.strength)
            .then(a.theme.cmp(&b.theme))
            .then(b.high.cmp(&a.high))
    });
    out
}

/// Segment names from each segment's theme scores (largest segment first),
/// made unique: a repeated name is qualified by the segment's next strong
/// theme it does not mention yet, else numbered.
pub fn segment_names(themes: &[Theme], segment_scores: &[Vec<f64>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(segment_scores.len());
    for (id, scores) in segment_scores.iter().enumerate() {
        let ranked = sides(themes, scores);
        let (base, used) = segment_name(themes, &ranked);
        let mut name = base.clone();
        if names.contains(&name)
            && let Some(extra) = ranked
                .iter()
                .filter(|s| s.strength >= NAMING_STRENGTH / 2.0 && !used.contains(&s.theme))
                .map(|s| side_phrase(themes, s))
                .next()
        {
            name = format!("{base} · {extra}");
        }
        if names.contains(&name) {
            name = format!("{base} ({})", id + 1);
        }
        names.push(name);
    }
    names
}

/// The phrase of one side: the theme's high or low name.
fn side_phrase(themes: &[Theme], side: &Side) -> String {
    let theme = &themes[side.theme];
    if side.high {
        theme.high.clone()
    } else {
        theme
            .low
            .clone()
            .unwrap_or_else(|| format!("low {}", theme.label))
    }
}

/// A segment's name from its ranked theme sides, and the themes it used.
///
/// The noun is the strongest high side of a theme that describes behaviour
/// (travel, dining, online, digital, …: themes without a high-side
/// adjective), when it is not much weaker than the strongest side; the
/// adjective the strongest side of another theme that has
/// one (spend, wealth, age, activity). Without a noun, the one or two
/// strongest sides are named as they are. A segment whose strongest side
/// is low card activity is "dormant", whatever else it is.
fn segment_name(themes: &[Theme], ranked: &[Side]) -> (String, Vec<usize>) {
    let strong: Vec<&Side> = ranked
        .iter()
        .filter(|s| s.strength >= NAMING_STRENGTH)
        .collect();
    let Some(first) = strong.first() else {
        return ("mainstream".to_string(), Vec::new());
    };
    if !first.high && themes[first.theme].key == "activity" {
        return (side_phrase(themes, first), vec![first.theme]);
    }
    let adjective_of = |s: &Side| {
        let (high, low) = &themes[s.theme].adjective;
        if s.high { high.clone() } else { low.clone() }
    };
    // A behaviour much weaker than what stands out most does not name it.
    let noun = strong.iter().find(|s| {
        s.high && themes[s.theme].adjective.0.is_none() && s.strength >= NOUN_SHARE * first.strength
    });
    let adjective = strong
        .iter()
        .filter(|s| noun.is_none_or(|n| n.theme != s.theme))
        .find_map(|s| adjective_of(s).map(|a| (a, s.theme)));
    match (noun, adjective) {
        (Some(n), Some((a, t))) => (format!("{a} {}", themes[n.theme].short), vec![n.theme, t]),
        (Some(n), None) => (themes[n.theme].high.clone(), vec![n.theme]),
        (None, _) => match strong.get(1) {
            Some(second) => (
                format!(
                    "{} · {}",
                    side_phrase(themes, first),
                    side_phrase(themes, second)
                ),
                vec![first.theme, second.theme],
            ),
            None => (side_phrase(themes, first), vec![first.theme]),
        },
    }
}

/// Most tags one customer carries.
pub const MAX_TAGS: usize = 3;

/// A customer's tags: up to [`MAX_TAGS`] indices into [`tag_vocabulary`],
/// strongest first (a plain value: tagging a million customers allocates
/// nothing per customer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagList {
    ids: [u16; MAX_TAGS],
    len: u8,
}

impl TagList {
    /// The tag indices, strongest first.
    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }
}

/// Which themes have a low side that tags a customer (see
/// [`customer_tags`]).
pub fn low_sides(themes: &[Theme]) -> Vec<bool> {
    themes.iter().map(|t| t.low.is_some()).collect()
}

/// Customer tags: the tag of every theme side stronger than `threshold`,
/// strongest first (ties: vocabulary order), at most [`MAX_TAGS`]. A low
/// side counts for the themes `low_sides` marks ([`low_sides`]).
pub fn customer_tags(low_sides: &[bool], scores: &[f64], threshold: f64) -> TagList {
    // The three strongest sides, strongest first. Each theme offers its
    // stronger side (selected without a branch); it enters only when it
    // beats the third, which after the first themes is rare, so the loop
    // barely branches. A side passes only strictly weaker ones: earlier
    // themes win ties.
    // Start from "just below the threshold": weaker sides never enter.
    let floor = if threshold > 0.0 {
        f64::from_bits(threshold.to_bits() - 1)
    } else {
        f64::NEG_INFINITY
    };
    let mut best = [(floor, u16::MAX); MAX_TAGS];
    for (t, (&low, &s)) in low_sides.iter().zip(scores).enumerate() {
        let low_strength = if low { -s } else { f64::NEG_INFINITY };
        let is_low = low_strength > s;
        let strength = s.max(low_strength);
        if strength > best[MAX_TAGS - 1].0 {
            let id = (2 * t + usize::from(is_low)) as u16;
            let mut at = MAX_TAGS - 1;
            while at > 0 && strength > best[at - 1].0 {
                best[at] = best[at - 1];
                at -= 1;
            }
            best[at] = (strength, id);
        }
    }
    let mut list = TagList::default();
    for (_, id) in best.into_iter().filter(|(_, id)| *id != u16::MAX) {
        list.ids[list.len as usize] = id;
        list.len += 1;
    }
    list
}

/// The tag texts [`customer_tags`] indexes: for theme `t`, `2t` is its high
/// tag and `2t + 1` its low name (empty when it has none).
pub fn tag_vocabulary(themes: &[Theme]) -> Vec<String> {
    themes
        .iter()
        .flat_map(|t| [t.tag.clone(), t.low.clone().unwrap_or_default()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    const FEATURES: [&str; 8] = [
        "travel_share_90d",
        "foreign_spend_90d",
        "spend_90d",
        "dining_share_90d",
        "txn_count_30d",
        "days_since_last_txn",
        "age_years",
        "spend_pace_7d_vs_90d",
    ];

    #[test]
    fn themes_group_known_features_and_name_unknown_ones() {
        let f = names(&FEATURES);
        let themes = themes_for(&f);
        let keys: Vec<&str> = themes.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "activity",
                "spend",
                "travel",
                "dining",
                "age",
                "spend_pace_7d_vs_90d"
            ]
        );
        let activity = &themes[0];
        assert_eq!(
            activity.features,
            [
                ("txn_count_30d".to_string(), 1.0),
                ("days_since_last_txn".to_string(), -1.0)
            ]
        );
        assert_eq!(themes[5].label, "spend pace 7d vs 90d");
        let w = theme_weights(&themes, &f);
        // activity = (txn_count_30d - days_since_last_txn) / 2
        assert_eq!(w[0], [0.0, 0.0, 0.0, 0.0, 0.5, -0.5, 0.0, 0.0]);
    }

    #[test]
    fn components_are_named_from_their_loadings() {
        let f = names(&FEATURES);
        let themes = themes_for(&f);
        let travel_vs_activity = [0.6, 0.5, 0.1, 0.0, -0.45, 0.1, 0.0, 0.0];
        assert_eq!(
            component_name(&themes, &f, &travel_vs_activity),
            "travel & foreign spend vs card activity"
        );
        let spend_and_dining = [0.0, 0.0, 0.7, 0.65, 0.0, 0.0, 0.1, 0.0];
        assert_eq!(
            component_name(&themes, &f, &spend_and_dining),
            "spend + dining"
        );
        // a recency loading counts against activity
        let lapsed = [0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0];
        assert_eq!(component_name(&themes, &f, &lapsed), "low card activity");
    }

    #[test]
    fn segments_get_nouns_adjectives_and_unique_names() {
        let f = names(&FEATURES);
        let themes = themes_for(&f);
        // activity, spend, travel, dining, age, pace
        let segments = vec![
            vec![0.2, 1.2, 0.1, 1.8, 0.0, 0.0],     // dining + high spend
            vec![0.1, 0.8, 2.0, 0.3, 0.0, 0.0],     // traveller + high spend
            vec![-2.0, -0.7, -0.3, -0.2, 0.4, 0.0], // dormant
            vec![0.1, 0.0, 0.0, 0.2, 0.1, 0.0],     // nothing stands out
            vec![0.0, -0.6, 0.0, 0.0, -1.4, 0.0],   // young, budget
            vec![0.1, 1.3, 0.6, 1.7, 0.0, 0.0],     // dining + high spend again, some travel
            vec![0.1, 1.3, 0.0, 1.7, 0.0, 0.0],     // and again
            vec![0.0, 2.0, 0.0, 0.9, 0.0, 0.0],     // spend, and some dining
        ];
        let names = segment_names(&themes, &segments);
        assert_eq!(
            names,
            [
                "high-spend dining",
                "high-spend traveller",
                "dormant",
                "mainstream",
                "young · low spender",
                "high-spend dining · frequent traveller",
                "high-spend dining (7)",
                "high spender · dining out",
            ]
        );
    }

    #[test]
    fn customers_are_tagged_by_strong_theme_sides() {
        let f = names(&FEATURES);
        let themes = themes_for(&f);
        let vocabulary = tag_vocabulary(&themes);
        let text = |scores: &[f64]| -> Vec<String> {
            customer_tags(&low_sides(&themes), scores, 1.0)
                .as_slice()
                .iter()
                .map(|&i| vocabulary[i as usize].clone())
                .collect()
        };
        assert_eq!(
            text(&[-1.5, 0.2, 2.5, 1.1, 0.0, 0.0]),
            ["traveller", "dormant", "foodie"]
        );
        assert!(text(&[0.5, 0.5, 0.5, 0.5, 0.5, 0.5]).is_empty());
        // at most three, the strongest; ties keep vocabulary order
        assert_eq!(
            text(&[3.0, 2.0, 1.5, 2.0, 0.0, 1.2]),
            ["frequent card user", "high spender", "foodie"]
        );
        assert_eq!(
            text(&[0.0, 0.0, 0.0, 0.0, -4.0, 1.0]),
            ["young", "high spend pace 7d vs 90d"]
        );
    }
}
