//! The HTML report of an offer list (`cdp offers --report FILE.html`): one
//! self-contained page — inline CSS and SVG charts drawn here, no script,
//! no fonts or images fetched — that opens in any browser.
//!
//! Sections: the funnel; the list's score distribution (treatment and
//! control); expected acceptances (sum of scores, and through the model's
//! calibration) per tenth of the list; the model's lift by decile and
//! calibration on its test offers; the segment, customer-tag segment and
//! city mix; the most frequent reasons. Every value on the page is
//! escaped; only masked fields and counts appear.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cdp_ml::eval::CalibrationBin;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;

use super::OfferList;

const BLUE: &str = "#2563eb";
const GREY: &str = "#cbd5e1";
const ORANGE: &str = "#f59e0b";
const GREEN: &str = "#16a34a";
/// Chart width in SVG units (the page scales it).
const WIDTH: f64 = 560.0;

/// The observed acceptance rate of the calibration bin holding `score`
/// (the score itself when no bin with rows holds it).
pub fn calibrated(bins: &[CalibrationBin], score: f64) -> f64 {
    bins.iter()
        .enumerate()
        .find(|(i, b)| b.rows > 0 && score >= b.lower && (score < b.upper || *i + 1 == bins.len()))
        .map_or(score, |(_, b)| b.observed_rate)
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One bar of a chart: label, value, colour, the text shown beside it.
struct Bar {
    label: String,
    value: f64,
    colour: &'static str,
    text: String,
}

/// Horizontal bars, one row each, with labels on the left and values on
/// the right.
fn hbars(title: &str, bars: &[Bar]) -> String {
    let row = 24.0;
    let label_w = 250.0;
    let text_w = 100.0;
    let plot = WIDTH - label_w - text_w;
    let height = 34.0 + row * bars.len().max(1) as f64;
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let mut svg = svg_open(title, height);
    if bars.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="50" class="note">nothing to show</text>"#,
            WIDTH / 2.0
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let w = if max > 0.0 { plot * b.value / max } else { 0.0 };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text><rect x="{label_w:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" class="value">{}</text>"#,
            label_w - 6.0,
            y + row * 0.62,
            escape(&shorten(&b.label, 40)),
            y + 3.0,
            w.max(0.5),
            row - 6.0,
            b.colour,
            escape(&b.label),
            escape(&b.text),
            label_w + w + 5.0,
            y + row * 0.62,
            escape(&b.text)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars (groups of one or two series) over a category axis, with
/// an optional dashed reference line.
fn vbars(
    title: &str,
    categories: &[String],
    series: &[(&str, &'static str, Vec<f64>)],
    reference: Option<(f64, &str)>,
    format: fn(f64) -> String,
) -> String {
    let height = 260.0;
    let (left, right, top, bottom) = (50.0, 10.0, 46.0, 40.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let mut max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    if let Some((r, _)) = reference {
        max = max.max(r);
    }
    if max <= 0.0 {
        max = 1.0;
    }
    let mut svg = svg_open(title, height);
    // legend
    let mut x = left;
    for (name, colour, _) in series {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="26" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="35" class="label">{}</text>"#,
            x + 14.0,
            escape(name)
        );
        x += 24.0 + 7.0 * name.chars().count() as f64;
    }
    // axis with three ticks
    for k in 0..=2 {
        let v = max * k as f64 / 2.0;
        let y = top + plot_h - plot_h * v / max;
        let _ = write!(
            svg,
            r#"<line x1="{left:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - right,
            left - 4.0,
            y + 4.0,
            escape(&format(v))
        );
    }
    let n = categories.len().max(1);
    let group = plot_w / n as f64;
    let bar_w = (group * 0.8) / series.len().max(1) as f64;
    for (i, category) in categories.iter().enumerate() {
        let gx = left + group * i as f64 + group * 0.1;
        for (s, (name, colour, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0.0).max(0.0);
            let h = plot_h * v / max;
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} {}: {}</title></rect>"#,
                gx + bar_w * s as f64,
                top + plot_h - h,
                (bar_w - 1.0).max(0.5),
                h,
                escape(name),
                escape(category),
                escape(&format(v))
            );
        }
        if n <= 12 || i % (n / 10).max(1) == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                gx + group * 0.4,
                top + plot_h + 16.0,
                escape(category)
            );
        }
    }
    if let Some((r, label)) = reference {
        let y = top + plot_h - plot_h * r / max;
        let _ = write!(
            svg,
            r#"<line x1="{left:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="ref"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - right,
            WIDTH - right,
            y - 4.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn svg_open(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" role="img" aria-label="{t}"><text x="0" y="16" class="title">{t}</text>"#,
        t = escape(title)
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// A count on an axis: whole numbers plain, the halves of small axes with
/// one decimal.
fn count(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn plain(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Counts of a text column's values among the list's rows, most first
/// (ties by name), nulls as "(none)".
fn mix(list: &RecordBatch, column: usize) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let values = list.column(column).as_string::<i32>();
    for i in 0..values.len() {
        let key = if values.is_valid(i) && !values.value(i).is_empty() {
            values.value(i).to_string()
        } else {
            "(none)".to_string()
        };
        *counts.entry(key).or_default() += 1;
    }
    let mut out: Vec<(String, u64)> = counts.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn mix_chart(title: &str, counts: &[(String, u64)], total: u64, keep: usize) -> String {
    let mut bars: Vec<Bar> = counts
        .iter()
        .take(keep)
        .map(|(k, n)| Bar {
            label: k.clone(),
            value: *n as f64,
            colour: BLUE,
            text: format!("{} ({:.0} %)", thousands(*n), share(*n, total) * 100.0),
        })
        .collect();
    let rest: u64 = counts.iter().skip(keep).map(|(_, n)| n).sum();
    if rest > 0 {
        bars.push(Bar {
            label: match counts.len() - keep {
                1 => "1 other".to_string(),
                n => format!("{n} others"),
            },
            value: rest as f64,
            colour: GREY,
            text: format!("{} ({:.0} %)", thousands(rest), share(rest, total) * 100.0),
        });
    }
    hbars(title, &bars)
}

fn share(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

/// The report page.
pub fn render(list: &OfferList) -> String {
    let r = &list.record;
    let batch = &list.list;
    let scores = batch.column(8).as_primitive::<Float64Type>().values();
    let control = batch.column(13).as_boolean();
    let n = batch.num_rows();

    // funnel
    let funnel: Vec<Bar> = r
        .funnel
        .iter()
        .map(|s| Bar {
            label: s.label.clone(),
            value: s.customers as f64,
            colour: if s.step == "selected" { GREEN } else { BLUE },
            text: if s.removed > 0 {
                format!("{} (−{})", thousands(s.customers), thousands(s.removed))
            } else {
                thousands(s.customers)
            },
        })
        .chain([
            Bar {
                label: "treatment (to contact)".into(),
                value: r.treatment as f64,
                colour: GREEN,
                text: thousands(r.treatment),
            },
            Bar {
                label: "control (held out)".into(),
                value: r.control as f64,
                colour: ORANGE,
                text: thousands(r.control),
            },
        ])
        .collect();

    // score histogram, 20 bins over the list's range
    let (lo, hi) = scores
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let bins = 20usize;
    let (lo, hi) = if n == 0 {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 0.005, hi + 0.005)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let mut treated = vec![0.0; bins];
    let mut held = vec![0.0; bins];
    for (i, &s) in scores.iter().enumerate() {
        let b = (((s - lo) / width) as usize).min(bins - 1);
        if control.value(i) {
            held[b] += 1.0;
        } else {
            treated[b] += 1.0;
        }
    }
    let bin_labels: Vec<String> = (0..bins)
        .map(|b| format!("{:.3}", lo + width * b as f64))
        .collect();
    let histogram = vbars(
        "Scores on the list (predicted probability of acceptance)",
        &bin_labels,
        &[("treatment", BLUE, treated), ("control", ORANGE, held)],
        None,
        count,
    );

    // expected acceptances per tenth of the list (treatment only)
    let tenths: Vec<String> = (1..=10).map(|d| d.to_string()).collect();
    let mut by_score = vec![0.0; 10];
    let mut by_calibration = vec![0.0; 10];
    let calibration = list.model.as_ref().map(|m| &m.test.calibration);
    for (i, &s) in scores.iter().enumerate() {
        if control.value(i) {
            continue;
        }
        let d = (i * 10 / n.max(1)).min(9);
        by_score[d] += s;
        by_calibration[d] += calibration.map_or(s, |c| calibrated(c, s));
    }
    let mut expected_series = vec![("sum of scores", BLUE, by_score)];
    if calibration.is_some_and(|c| !c.is_empty()) {
        expected_series.push(("through the calibration", GREEN, by_calibration));
    }
    let expected = vbars(
        "Expected acceptances per tenth of the list (treatment, best first)",
        &tenths,
        &expected_series,
        None,
        plain,
    );

    // the model's test report
    let model_charts = match &list.model {
        Some(m) if !m.test.lift.is_empty() => {
            let deciles: Vec<String> = m.test.lift.iter().map(|d| d.decile.to_string()).collect();
            let lift = vbars(
                &format!(
                    "Offer model {}: lift by score decile on its {} test offers",
                    r.model_version, m.test.rows
                ),
                &deciles,
                &[
                    ("lift", BLUE, m.test.lift.iter().map(|d| d.lift).collect()),
                    (
                        "cumulative lift",
                        GREEN,
                        m.test.lift.iter().map(|d| d.cumulative_lift).collect(),
                    ),
                ],
                Some((1.0, "random = 1")),
                plain,
            );
            let bins: Vec<&CalibrationBin> =
                m.test.calibration.iter().filter(|b| b.rows > 0).collect();
            let calibration = vbars(
                &format!(
                    "Calibration: predicted against observed acceptance (AUC {:.3})",
                    m.test.auc
                ),
                &bins
                    .iter()
                    .map(|b| format!("{:.2}–{:.2}", b.lower, b.upper))
                    .collect::<Vec<_>>(),
                &[
                    (
                        "mean predicted",
                        BLUE,
                        bins.iter().map(|b| b.mean_predicted).collect(),
                    ),
                    (
                        "observed",
                        GREEN,
                        bins.iter().map(|b| b.observed_rate).collect(),
                    ),
                ],
                None,
                percent,
            );
            format!(r#"<div class="chart">{lift}</div><div class="chart">{calibration}</div>"#)
        }
        _ => format!(
            r#"<p class="note">The training report of offer model {} is not in the lake; lift and calibration cannot be shown.</p>"#,
            escape(&r.model_version)
        ),
    };

    // mixes and reasons
    let segments = mix_chart("Banking segment", &mix(batch, 10), n as u64, 8);
    let tag_segments = mix_chart("Customer-tag segment", &mix(batch, 12), n as u64, 10);
    let cities = mix_chart("City", &mix(batch, 11), n as u64, 12);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let reason_column = batch.column(9).as_string::<i32>();
    for i in 0..n {
        for reason in reason_column.value(i).split("; ").filter(|s| !s.is_empty()) {
            *reasons.entry(reason.to_string()).or_default() += 1;
        }
    }
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let reason_bars: Vec<Bar> = reasons
        .iter()
        .take(12)
        .map(|(k, c)| Bar {
            label: k.clone(),
            value: *c as f64,
            colour: BLUE,
            text: format!("{:.0} % of the list", share(*c, n as u64) * 100.0),
        })
        .collect();
    let reasons_chart = hbars("Most frequent reasons behind the scores", &reason_bars);

    let funnel_rows: String = r
        .funnel
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&s.step),
                escape(&s.label),
                thousands(s.customers),
                if s.removed > 0 {
                    format!("−{}", thousands(s.removed))
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let mean = if n > 0 {
        scores.iter().sum::<f64>() / n as f64
    } else {
        0.0
    };
    let card = |label: &str, value: String| {
        format!(
            r#"<div class="card"><div class="big">{}</div><div>{}</div></div>"#,
            escape(&value),
            escape(label)
        )
    };
    let mut cards = vec![
        card("customers on the list", thousands(r.selected)),
        card("to contact (treatment)", thousands(r.treatment)),
        card("held out (control)", thousands(r.control)),
        card(
            "expected acceptances (sum of scores)",
            format!("{:.1}", r.expected_acceptances),
        ),
        card("mean score on the list", format!("{mean:.3}")),
    ];
    if let Some(c) = r.expected_acceptances_calibrated {
        cards.insert(
            4,
            card("expected acceptances (calibrated)", format!("{c:.1}")),
        );
    }
    if let Some(cost) = r.cost {
        cards.push(card("contact cost", format!("{cost:.2}")));
    }
    let description = if r.audience.description.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>", escape(&r.audience.description))
    };
    let stop = match r.stop {
        super::select::Stop::Candidates => "every candidate above the minimum score was taken",
        super::select::Stop::Top => "the list reached its size (top)",
        super::select::Stop::Budget => "the budget was spent",
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Offer list {name} — {offer} as of {as_of}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, "Noto Sans", "Helvetica Neue", Arial, sans-serif; margin: 24px auto; max-width: 1180px; color: #0f172a; background: #fff; }}
h1 {{ font-size: 26px; margin: 0 0 4px; }}
h2 {{ font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }}
.meta {{ color: #475569; font-size: 13px; }}
.meta code {{ font-size: 12px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }}
.card {{ border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 14px; min-width: 150px; font-size: 13px; color: #475569; }}
.card .big {{ font-size: 24px; color: #0f172a; font-weight: 600; }}
.grid2 {{ display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }}
.chart svg {{ width: 100%; height: auto; }}
svg .title {{ font-size: 14px; font-weight: 600; fill: #0f172a; }}
svg .label {{ font-size: 11px; fill: #334155; }}
svg .value, svg .tick {{ font-size: 10px; fill: #475569; }}
svg .note {{ font-size: 12px; fill: #64748b; }}
svg .grid {{ stroke: #e2e8f0; stroke-width: 1; }}
svg .ref {{ stroke: #dc2626; stroke-width: 1; stroke-dasharray: 4 3; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #e2e8f0; padding: 4px 10px; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.note {{ color: #64748b; font-size: 13px; }}
</style>
</head>
<body>
<h1>Offer list: {name}</h1>
<div class="meta">{offer_name} (<code>{offer}</code>) by {channel} · as of {as_of} · offer model {model} · snapshot run <code>{snapshot}</code> · audience file <code>{file}</code> (SHA-256 <code>{hash}</code>) · seed {seed}, control share {share} · made {created} by cdp {version}</div>
{description}
<div class="cards">{cards}</div>
<h2>Funnel</h2>
<div class="grid2"><div class="chart">{funnel_chart}</div>
<div><table><thead><tr><th>step</th><th>what</th><th>customers</th><th>removed</th></tr></thead><tbody>{funnel_rows}</tbody></table>
<p class="note">Selection ended because {stop}; {capped_segment} candidates skipped by the segment cap, {capped_city} by the city cap.</p></div></div>
<h2>Scores and expected acceptances</h2>
<div class="grid2"><div class="chart">{histogram}</div><div class="chart">{expected}</div></div>
<h2>How well the model ranks</h2>
<div class="grid2">{model_charts}</div>
<h2>Who is on the list</h2>
<div class="grid2"><div class="chart">{segments}</div><div class="chart">{tag_segments}</div><div class="chart">{cities}</div><div class="chart">{reasons_chart}</div></div>
<p class="note">The list holds masked contact fields only. Customers in the control group are not to be contacted: compare their acceptance with the treatment's to measure the campaign's lift.</p>
</body>
</html>
"#,
        name = escape(&r.audience.name),
        offer = escape(&r.audience.offer),
        offer_name = escape(&r.audience.offer_name),
        channel = escape(&r.audience.channel),
        as_of = r.as_of,
        model = escape(&r.model_version),
        snapshot = escape(&r.snapshot_run),
        file = escape(&r.audience.file),
        hash = escape(&r.audience.sha256[..r.audience.sha256.len().min(12)]),
        seed = r.limits.seed,
        share = r.limits.holdout_share,
        created = escape(&r.created_at),
        version = escape(&r.cdp_version),
        cards = cards.join(""),
        funnel_chart = hbars("Customers at each step", &funnel),
        capped_segment = thousands(r.capped_by_segment),
        capped_city = thousands(r.capped_by_city),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(lower: f64, upper: f64, rows: usize, observed: f64) -> CalibrationBin {
        CalibrationBin {
            lower,
            upper,
            rows,
            mean_predicted: (lower + upper) / 2.0,
            observed_rate: observed,
        }
    }

    #[test]
    fn calibration_looks_up_the_bin_of_a_score() {
        let bins = [
            bin(0.0, 0.1, 10, 0.05),
            bin(0.1, 0.2, 0, 0.0),
            bin(0.2, 1.0, 5, 0.4),
        ];
        for (score, expected) in [
            (0.0, 0.05),
            (0.099, 0.05),
            (0.15, 0.15),
            (0.5, 0.4),
            (1.0, 0.4),
        ] {
            assert_eq!(calibrated(&bins, score), expected, "score {score}");
        }
    }

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }

    #[test]
    fn charts_are_svg_with_escaped_labels() {
        let svg = hbars(
            "t<1>",
            &[Bar {
                label: "a & b".into(),
                value: 3.0,
                colour: BLUE,
                text: "3".into(),
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &amp; b") && svg.contains("t&lt;1&gt;"));
        let v = vbars(
            "v",
            &["1".into()],
            &[("x", BLUE, vec![0.0])],
            Some((1.0, "r")),
            plain,
        );
        assert!(v.contains("<line") && !v.contains("NaN"));
    }
}
