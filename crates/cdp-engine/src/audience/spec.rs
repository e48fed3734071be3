//! Audience files (`pipelines/audiences/*.toml`): what a marketer writes
//! to get an offer list, parsed and checked with the line of every value
//! kept, so a mistake is reported at its line.
//!
//! ```toml
//! name = "travel-card-spring"
//! offer = "cc_travel_gold"          # offer_id of ref.card_products
//! channel = "app_push"              # sms | app_push | email | branch
//! eligibility = "c.age_years BETWEEN 25 AND 60 AND f.foreign_share_90d > 0.05"
//!
//! [suppress]
//! opt_out = true                    # marketing_opt_in not true
//! unreachable = true                # no phone (sms), e-mail (email) or app device (app_push)
//! min_kyc_level = 2
//! holding = ["cc_travel_gold", "cc_travel_platinum"]
//! contacted_within_days = 30        # any offer sent in the last 30 business days
//! offered_within_days = 90          # this offer sent in the last 90 business days
//! lists = ["do_not_contact.txt"]    # customer_ids or unified_ids, one a line
//!
//! [score]
//! min = 0.10
//!
//! [select]
//! top = 20000
//!
//! [caps]
//! per_segment = 8000
//! per_city = 2500
//!
//! [holdout]
//! share = 0.10
//! seed = 7
//! ```
//!
//! Syntax checks happen here (TOML, keys, types, ranges, the channel, the
//! predicate's SQL syntax); names that need the lake (the offer, product
//! codes, columns of the predicate) are checked when the audience is run,
//! with the same line-accurate errors ([`Audience::error_at`]).

use std::ops::Range;
use std::path::{Path, PathBuf};

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The channels of the campaign system (`offer_events.channel`).
pub const CHANNELS: [&str; 4] = ["sms", "app_push", "email", "branch"];

/// A value of the audience file and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Its 1-based line in the audience file.
    pub line: usize,
    /// Its byte range in the audience file.
    pub span: Range<usize>,
}

/// The suppression rules, in the order the funnel applies them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suppress {
    /// Drop customers whose `marketing_opt_in` is not true (default on).
    pub opt_out: bool,
    /// Drop customers the channel cannot reach (default on).
    pub unreachable: bool,
    /// Drop customers below this KYC level (or without one).
    pub min_kyc_level: Option<At<i64>>,
    /// Drop customers holding any of these products (default: the offer).
    pub holding: Vec<At<String>>,
    /// Drop customers sent any offer in the last N business days.
    pub contacted_within_days: Option<At<u32>>,
    /// Drop customers sent this offer in the last N business days.
    pub offered_within_days: Option<At<u32>>,
    /// Suppression list files (resolved against the audience file's folder).
    pub lists: Vec<At<PathBuf>>,
}

/// How many to select.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Select {
    /// At most this many customers in the list (treatment and control).
    pub top: Option<u64>,
    /// At most this much spent on contacts (treatment only) …
    pub budget: Option<f64>,
    /// … at this cost per contact.
    pub cost_per_contact: Option<f64>,
}

impl Select {
    /// The most treatment contacts the budget pays for.
    pub fn max_contacts(&self) -> Option<u64> {
        match (self.budget, self.cost_per_contact) {
            (Some(budget), Some(cost)) if cost > 0.0 => Some((budget / cost + 1e-9).floor() as u64),
            _ => None,
        }
    }
}

/// Caps on the list's composition (treatment and control together).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Caps {
    /// At most this many per `customer_360.segment`.
    pub per_segment: Option<u64>,
    /// At most this many per `customer_360.city`.
    pub per_city: Option<u64>,
}

/// A parsed and checked audience file.
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    /// The file as given on the command line.
    pub file: String,
    /// Its text.
    pub text: String,
    /// SHA-256 (hex) of its text.
    pub sha256: String,
    /// A name for the list (default: the file stem).
    pub name: String,
    /// What the list is for.
    pub description: String,
    /// The card offer (`ref.card_products.offer_id`).
    pub offer: At<String>,
    /// The contact channel.
    pub channel: At<String>,
    /// The eligibility predicate (SQL over `c`, `f`, `t`), if any.
    pub eligibility: Option<At<String>>,
    /// Suppressions.
    pub suppress: Suppress,
    /// The lowest score a customer may have (0 when unset).
    pub min_score: f64,
    /// The model version the scores must come from, if pinned.
    pub model_version: Option<At<String>>,
    /// List size and budget.
    pub select: Select,
    /// Composition caps.
    pub caps: Caps,
    /// Control-group share, in `[0, 1)`.
    pub holdout_share: f64,
    /// The control group's seed.
    pub seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    description: Option<String>,
    offer: Spanned<String>,
    channel: Spanned<String>,
    eligibility: Option<Spanned<String>>,
    #[serde(default)]
    suppress: RawSuppress,
    #[serde(default)]
    score: RawScore,
    #[serde(default)]
    select: RawSelect,
    #[serde(default)]
    caps: RawCaps,
    #[serde(default)]
    holdout: RawHoldout,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppress {
    opt_out: Option<bool>,
    unreachable: Option<bool>,
    min_kyc_level: Option<Spanned<i64>>,
    holding: Option<Vec<Spanned<String>>>,
    contacted_within_days: Option<Spanned<i64>>,
    offered_within_days: Option<Spanned<i64>>,
    #[serde(default)]
    lists: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScore {
    min: Option<Spanned<f64>>,
    model_version: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelect {
    top: Option<Spanned<i64>>,
    budget: Option<Spanned<f64>>,
    cost_per_contact: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    per_segment: Option<Spanned<i64>>,
    per_city: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoldout {
    share: Option<Spanned<f64>>,
    seed: Option<Spanned<i64>>,
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Audience {
    /// Reads and checks the audience file at `path`.
    pub fn load(path: &Path) -> Result<Audience> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::AudienceFile {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        Audience::parse(&file, &text)
    }

    /// Parses and checks an audience file's text; `file` names it in errors
    /// and is the folder suppression lists are found relative to.
    pub fn parse(file: &str, text: &str) -> Result<Audience> {
        let raw: Raw = toml::from_str(text).map_err(|e| Error::Audience {
            file: file.into(),
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            reason: e.message().trim().replace('\n', " "),
        })?;
        let at = |span: Range<usize>| line_of(text, span.start);
        let err = |span: Range<usize>, reason: String| Error::Audience {
            file: file.into(),
            line: at(span),
            reason,
        };
        let wrap = |s: Spanned<String>| At {
            line: at(s.span()),
            span: s.span(),
            value: s.into_inner(),
        };
        let count = |s: Option<Spanned<i64>>, key: &str, min: i64| -> Result<Option<At<i64>>> {
            let Some(s) = s else { return Ok(None) };
            if *s.get_ref() < min {
                return Err(err(
                    s.span(),
                    format!("{key} must be at least {min}, not {}", s.get_ref()),
                ));
            }
            Ok(Some(At {
                line: at(s.span()),
                span: s.span(),
                value: s.into_inner(),
            }))
        };

        let offer = wrap(raw.offer);
        if offer.value.trim().is_empty() {
            return Err(err(offer.span, "offer must name a card offer_id".into()));
        }
        let channel = wrap(raw.channel);
        if !CHANNELS.contains(&channel.value.as_str()) {
            return Err(err(
                channel.span,
                format!(
                    "unknown channel {:?}; use one of {}",
                    channel.value,
                    CHANNELS.join(", ")
                ),
            ));
        }
        let eligibility = raw.eligibility.map(wrap);
        if let Some(e) = &eligibility {
            check_predicate(&e.value).map_err(|reason| Error::Audience {
                file: file.into(),
                line: e.line,
                reason: format!("eligibility: {reason}"),
            })?;
        }

        let s = raw.suppress;
        let days = |v: Option<Spanned<i64>>, key: &str| -> Result<Option<At<u32>>> {
            Ok(count(v, key, 1)?.map(|a| At {
                value: a.value.min(i64::from(u32::MAX)) as u32,
                line: a.line,
                span: a.span,
            }))
        };
        let min_kyc_level = count(s.min_kyc_level, "min_kyc_level", 1)?;
        let holding = match s.holding {
            Some(list) => list.into_iter().map(wrap).collect(),
            None => vec![offer.clone()],
        };
        let base = Path::new(file).parent().unwrap_or(Path::new("."));
        let lists = s
            .lists
            .into_iter()
            .map(|l| {
                let l = wrap(l);
                At {
                    value: base.join(&l.value),
                    line: l.line,
                    span: l.span,
                }
            })
            .collect();
        let suppress = Suppress {
            opt_out: s.opt_out.unwrap_or(true),
            unreachable: s.unreachable.unwrap_or(true),
            min_kyc_level,
            holding,
            contacted_within_days: days(s.contacted_within_days, "contacted_within_days")?,
            offered_within_days: days(s.offered_within_days, "offered_within_days")?,
            lists,
        };

        let min_score = match raw.score.min {
            Some(m) if !(0.0..=1.0).contains(m.get_ref()) => {
                return Err(err(
                    m.span(),
                    format!("min must be a probability in [0, 1], not {}", m.get_ref()),
                ));
            }
            Some(m) => m.into_inner(),
            None => 0.0,
        };
        let positive = |v: Option<Spanned<f64>>, key: &str| -> Result<Option<f64>> {
            match v {
                Some(v) if !(v.get_ref().is_finite() && *v.get_ref() > 0.0) => Err(err(
                    v.span(),
                    format!("{key} must be a positive number, not {}", v.get_ref()),
                )),
                v => Ok(v.map(Spanned::into_inner)),
            }
        };
        let budget_span = raw.select.budget.as_ref().map(Spanned::span);
        let cost_span = raw.select.cost_per_contact.as_ref().map(Spanned::span);
        let select = Select {
            top: count(raw.select.top, "top", 1)?.map(|a| a.value as u64),
            budget: positive(raw.select.budget, "budget")?,
            cost_per_contact: positive(raw.select.cost_per_contact, "cost_per_contact")?,
        };
        match (budget_span, cost_span) {
            (Some(span), None) => {
                return Err(err(span, "budget needs cost_per_contact".into()));
            }
            (None, Some(span)) => {
                return Err(err(span, "cost_per_contact needs budget".into()));
            }
            _ => {}
        }
        let caps = Caps {
            per_segment: count(raw.caps.per_segment, "per_segment", 1)?.map(|a| a.value as u64),
            per_city: count(raw.caps.per_city, "per_city", 1)?.map(|a| a.value as u64),
        };
        let holdout_share = match raw.holdout.share {
            Some(s) if !(0.0..1.0).contains(s.get_ref()) => {
                return Err(err(
                    s.span(),
                    format!("share must be in [0, 1), not {}", s.get_ref()),
                ));
            }
            Some(s) => s.into_inner(),
            None => 0.0,
        };
        let seed = count(raw.holdout.seed, "seed", 0)?.map_or(0, |a| a.value as u64);
        let name = raw.name.unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .map_or_else(|| "audience".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Audience {
            file: file.into(),
            text: text.into(),
            sha256: cdp_core::identity::sha256_hex(text),
            name,
            description: raw.description.unwrap_or_default(),
            offer,
            channel,
            eligibility,
            suppress,
            min_score,
            model_version: raw.score.model_version.map(wrap),
            select,
            caps,
            holdout_share,
            seed,
        })
    }

    /// An error at `line` of this file.
    pub fn error_at(&self, line: usize, reason: impl Into<String>) -> Error {
        Error::Audience {
            file: self.file.clone(),
            line,
            reason: reason.into(),
        }
    }

    /// An error about the eligibility predicate: at the line of the first
    /// occurrence of `needle` inside it when given and found, else at the
    /// `eligibility` key's line.
    pub fn eligibility_error(&self, needle: Option<&str>, reason: impl Into<String>) -> Error {
        let Some(e) = &self.eligibility else {
            return self.error_at(1, reason);
        };
        let raw = &self.text[e.span.clone()];
        let line = needle
            .filter(|n| !n.is_empty())
            .and_then(|n| {
                let lower = raw.to_lowercase();
                lower.find(&n.to_lowercase())
            })
            .map_or(e.line, |offset| line_of(&self.text, e.span.start + offset));
        self.error_at(line, format!("eligibility: {}", reason.into()))
    }
}

/// Checks that `text` is one SQL expression and nothing more (no second
/// statement, no trailing clause).
fn check_predicate(text: &str) -> std::result::Result<(), String> {
    if text.trim().is_empty() {
        return Err("empty predicate; leave eligibility out to take every customer".into());
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    parser.parse_expr().map_err(|e| e.to_string())?;
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(format!(
            "unexpected {other} after the predicate; eligibility is one SQL condition"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "travel"
offer = "cc_travel_gold"
channel = "sms"
eligibility = """
c.age_years >= 25
AND f.foreign_share_90d > 0.05
"""

[suppress]
min_kyc_level = 2
contacted_within_days = 30
lists = ["dnc.txt"]

[score]
min = 0.1

[select]
budget = 1000.0
cost_per_contact = 3.0

[holdout]
share = 0.1
seed = 9
"#;

    #[test]
    fn a_full_file_parses_with_defaults_and_lines() {
        let a = Audience::parse("aud/travel.toml", GOOD).unwrap();
        assert_eq!(a.name, "travel");
        assert_eq!(a.offer.value, "cc_travel_gold");
        assert_eq!(a.offer.line, 3);
        assert_eq!(a.eligibility.as_ref().unwrap().line, 5);
        assert!(a.suppress.opt_out && a.suppress.unreachable);
        assert_eq!(a.suppress.holding.len(), 1, "default: the offer itself");
        assert_eq!(a.suppress.holding[0].value, "cc_travel_gold");
        assert_eq!(a.suppress.contacted_within_days.as_ref().unwrap().value, 30);
        assert_eq!(a.suppress.lists[0].value, Path::new("aud/dnc.txt"));
        assert_eq!(a.select.max_contacts(), Some(333));
        assert_eq!((a.holdout_share, a.seed), (0.1, 9));
        assert_eq!(a.sha256.len(), 64);
    }

    /// (what is wrong, the file, the line the error must name, a word it must hold)
    const BAD: &[(&str, &str, usize, &str)] = &[
        (
            "unknown key",
            "offer = \"x\"\nchannel = \"sms\"\n\n[suppress]\nopt_outt = true\n",
            5,
            "opt_outt",
        ),
        (
            "bad channel",
            "offer = \"x\"\n\nchannel = \"fax\"\n",
            3,
            "channel",
        ),
        ("missing offer", "channel = \"sms\"\n", 1, "offer"),
        (
            "wrong type",
            "offer = \"x\"\nchannel = \"sms\"\n[select]\ntop = \"many\"\n",
            4,
            "expected i64",
        ),
        (
            "negative top",
            "offer = \"x\"\nchannel = \"sms\"\n[select]\n\ntop = -5\n",
            5,
            "top",
        ),
        (
            "share of one",
            "offer = \"x\"\nchannel = \"sms\"\n[holdout]\nshare = 1.0\n",
            4,
            "share",
        ),
        (
            "budget without cost",
            "offer = \"x\"\nchannel = \"sms\"\n[select]\nbudget = 10.0\n",
            4,
            "cost_per_contact",
        ),
        (
            "two statements",
            "offer = \"x\"\nchannel = \"sms\"\n\neligibility = \"c.age_years > 3; DROP TABLE x\"\n",
            4,
            "eligibility",
        ),
        (
            "broken sql",
            "offer = \"x\"\nchannel = \"sms\"\neligibility = \"c.age_years >\"\n",
            3,
            "eligibility",
        ),
        (
            "min score above one",
            "offer = \"x\"\nchannel = \"sms\"\n[score]\nmin = 1.5\n",
            4,
            "probability",
        ),
        (
            "toml syntax",
            "offer = \"x\"\nchannel = \"sms\"\n[select\ntop = 4\n",
            3,
            "",
        ),
    ];

    #[test]
    fn bad_files_name_the_line() {
        for (what, text, line, word) in BAD {
            let e = Audience::parse("a.toml", text).unwrap_err();
            match &e {
                Error::Audience {
                    line: got, reason, ..
                } => {
                    assert_eq!(got, line, "{what}: {e}");
                    assert!(reason.contains(word), "{what}: {e}");
                }
                other => panic!("{what}: {other}"),
            }
            let text = e.to_string();
            assert!(!text.contains('\n'), "{what}: one line: {text}");
            assert!(text.starts_with("audience file a.toml, line "), "{text}");
        }
    }

    #[test]
    fn predicate_errors_point_inside_multiline_predicates() {
        let a = Audience::parse("a.toml", GOOD).unwrap();
        let e = a.eligibility_error(Some("f.foreign_share_90d"), "no field");
        assert!(e.to_string().contains("line 7"), "{e}");
        let e = a.eligibility_error(Some("nowhere"), "no field");
        assert!(e.to_string().contains("line 5"), "{e}");
    }
}
