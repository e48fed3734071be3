//! SQL templates: `${name}` parameters rendered as typed SQL literals, and
//! scripts split into statements.
//!
//! The parameters of a build as of D:
//!
//! | parameter     | value                                             |
//! |---------------|---------------------------------------------------|
//! | `${as_of}`    | `DATE 'D'`                                        |
//! | `${cutoff}`   | D+1 00:00 business time, as a UTC `TIMESTAMP`     |
//! | `${next_day}` | `DATE 'D+1'` (file pruning with a day of slack)   |
//!
//! ```
//! use cdp_core::time::BusinessCalendar;
//! use cdp_engine::sql::{Params, render};
//! use chrono::NaiveDate;
//!
//! let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
//! let params = Params::for_build(&BusinessCalendar::default(), d);
//! let sql = render("x.sql", "SELECT * FROM t WHERE ts < ${cutoff}", &params).unwrap();
//! assert_eq!(sql, "SELECT * FROM t WHERE ts < TIMESTAMP '2026-03-01T16:00:00Z'");
//! ```

use std::collections::BTreeMap;

use cdp_core::time::BusinessCalendar;
use chrono::{NaiveDate, SecondsFormat};

use crate::error::{Error, Result};

/// Parameter values, already rendered as SQL literals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<&'static str, String>,
}

impl Params {
    /// The parameters of a build as of `as_of`.
    pub fn for_build(calendar: &BusinessCalendar, as_of: NaiveDate) -> Self {
        let cutoff = calendar
            .as_of_cutoff(as_of)
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let values = BTreeMap::from([
            ("as_of", format!("DATE '{as_of}'")),
            ("cutoff", format!("TIMESTAMP '{cutoff}'")),
            (
                "next_day",
                format!("DATE '{}'", crate::build::next_day(as_of)),
            ),
        ]);
        Self { values }
    }

    /// Sets `name` to `sql`, a literal or fragment rendered as is.
    pub fn set(&mut self, name: &'static str, sql: String) {
        self.values.insert(name, sql);
    }

    /// The rendered value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Replaces every `${name}` in `text`; an unknown name is an error naming `file`.
pub fn render(file: &str, text: &str, params: &Params) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Error::UnknownParameter {
                file: file.into(),
                name: after.chars().take(20).collect(),
            });
        };
        let name = &after[..end];
        let value = params.get(name).ok_or_else(|| Error::UnknownParameter {
            file: file.into(),
            name: name.into(),
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The statements of a script, without `--` comments, split at `;`
/// outside string literals.
pub fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_string = !in_string;
                current.push(c);
            }
            '-' if !in_string && chars.peek() == Some(&'-') => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            ';' if !in_string => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unclosed_parameters_are_named() {
        let p = Params::default();
        let err = render("f.sql", "SELECT ${nope}", &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.sql") && err.contains("${nope}"), "{err}");
        assert!(render("f.sql", "SELECT ${as_of", &p).is_err());
    }

    #[test]
    fn cutoff_is_next_business_midnight_in_utc() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let p = Params::for_build(&BusinessCalendar::default(), d);
        assert_eq!(p.get("cutoff"), Some("TIMESTAMP '2026-01-31T16:00:00Z'"));
        assert_eq!(p.get("next_day"), Some("DATE '2026-02-01'"));
        let ny = BusinessCalendar::new("America/New_York").unwrap();
        let p = Params::for_build(&ny, d);
        assert_eq!(p.get("cutoff"), Some("TIMESTAMP '2026-02-01T05:00:00Z'"));
    }

    #[test]
    fn scripts_split_into_statements_without_comment_only_parts() {
        let script = "-- a view; note\nCREATE VIEW a AS SELECT ';--' AS x;\n\n-- trailing; note\n";
        assert_eq!(statements(script), ["CREATE VIEW a AS SELECT ';--' AS x"]);
    }
}
