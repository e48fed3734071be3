//! `cdp offers` on generated data: every suppression rule removes exactly
//! the customers an independent query names; control share, caps, list
//! size and budget hold; the same inputs give the same list byte for byte;
//! a bad audience file is reported at its line; lists and reports hold
//! masked contact fields only; the HTML report renders in headless
//! Chromium without console errors.
//!
//! One data set (2,000 customers × 75 days, weekly campaigns) is ingested,
//! built weekly before the campaigns and as of D, tagged, trained on and
//! scored as of D once, when the world is first used
//! ([`scored_lake`](crate::support::scored_lake)).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{cdp, read_csv, repo_root, run_ok, scored_lake};

/// The list date.
pub(crate) const D: &str = crate::support::SCORED_AS_OF;

/// The card the tests' audiences offer.
const OFFER: &str = "cc_travel_gold";

pub(crate) struct World {
    dir: tempfile::TempDir,
    raw: PathBuf,
    pub(crate) lake: String,
}

/// The scored lake these tests share (2,000 persons, built, tagged,
/// trained and scored as of [`D`]).
pub(crate) fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (raw, lake) = scored_lake(dir.path());
        World { dir, raw, lake }
    })
}

/// A fresh path in the world's folder.
pub(crate) fn fresh(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let folder = world()
        .dir
        .path()
        .join(format!("run{}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&folder).unwrap();
    folder.join(name)
}

/// The unified_ids `sql` returns (first column).
fn ids(sql: &str) -> BTreeSet<String> {
    let out = run_ok(&["query", "--lake", &world().lake, "--format", "csv", sql]);
    out.lines().skip(1).map(|l| l.trim().to_string()).collect()
}

/// What one `cdp offers` run gave.
struct Run {
    record: serde_json::Value,
    rows: Vec<BTreeMap<String, String>>,
}

impl Run {
    fn ids(&self) -> BTreeSet<String> {
        self.rows.iter().map(|r| r["unified_id"].clone()).collect()
    }

    fn step(&self, name: &str) -> &serde_json::Value {
        self.record["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {}", self.record["funnel"]))
    }
}

/// `cdp offers --lake LAKE --audience FILE` and `more` arguments.
fn offers_args(file: &Path, more: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["offers", "--lake", &world().lake, "--audience"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(file.to_str().unwrap().to_string());
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// Runs `cdp offers` (successfully) on an audience file; returns stdout.
fn run_offers(file: &Path, more: &[&str]) -> String {
    let args = offers_args(file, more);
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs `cdp offers` on an audience file with this text, writing a CSV list.
fn offers(audience: &str, extra: &[&str]) -> Run {
    let file = fresh("audience.toml");
    std::fs::write(&file, audience).unwrap();
    let list = file.with_file_name("list.csv");
    let mut more = vec!["--as-of", D, "--out", list.to_str().unwrap(), "--json"];
    more.extend_from_slice(extra);
    let record: serde_json::Value =
        serde_json::from_str(&run_offers(&file, &more)).expect("--json prints JSON");
    let rows = read_csv(&list);
    Run { record, rows }
}

/// An audience with every rule off, no floor, no limits, no control group:
/// the list is every customer scored for the offer.
fn audience(channel: &str, suppress: &str, rest: &str) -> String {
    let mut block = String::new();
    for (key, off) in [
        ("opt_out", "false"),
        ("unreachable", "false"),
        ("holding", "[]"),
    ] {
        if !suppress.lines().any(|l| l.starts_with(&format!("{key} ="))) {
            block.push_str(&format!("{key} = {off}\n"));
        }
    }
    format!(
        "offer = \"{OFFER}\"\nchannel = \"{channel}\"\n\n[suppress]\n{block}{suppress}\n{rest}\n"
    )
}

/// Business day D minus `days`, as a SQL date.
fn day_minus(days: i64) -> String {
    let d =
        chrono::NaiveDate::parse_from_str(D, "%Y-%m-%d").unwrap() - chrono::Days::new(days as u64);
    format!("DATE '{d}'")
}

/// Persons (through `customer_360.customer_ids`, not the identity map)
/// sent an offer, optionally this one, on Shanghai business days D−days+1 … D.
fn contacted(days: i64, offer: Option<&str>) -> String {
    format!(
        "SELECT DISTINCT c.unified_id FROM silver.customer_360 c, bronze.offer_events o \
         WHERE c.as_of = DATE '{D}' AND array_has(c.customer_ids, o.customer_id) \
         AND CAST(o.sent_at + INTERVAL '8 hours' AS DATE) BETWEEN {} AND DATE '{D}' {}",
        day_minus(days - 1),
        offer.map_or(String::new(), |o| format!("AND o.offer_id = '{o}'"))
    )
}

#[test]
fn each_suppression_removes_exactly_the_customers_an_independent_query_names() {
    let base = offers(&audience("email", "", ""), &[]);
    let everyone = base.ids();
    let scored = ids(&format!(
        "SELECT unified_id FROM gold.scores WHERE as_of = DATE '{D}' AND offer_id = '{OFFER}'"
    ));
    assert_eq!(
        everyone, scored,
        "no rule: the list is every scored customer"
    );
    assert!(everyone.len() > 300, "{}", everyone.len());
    let customers = ids(&format!(
        "SELECT unified_id FROM silver.customer_360 WHERE as_of = DATE '{D}'"
    ));
    assert_eq!(base.step("customers")["customers"], customers.len());
    assert_eq!(base.step("eligible")["customers"], customers.len());

    // a suppression list: customer_ids (one of them the second id of a
    // merged person) and unified_ids
    let merged = ids(&format!(
        "SELECT customer_ids[2] FROM silver.customer_360 WHERE as_of = DATE '{D}' \
         AND array_length(customer_ids) > 1 ORDER BY unified_id LIMIT 3"
    ));
    let primary = ids(&format!(
        "SELECT primary_customer_id FROM silver.customer_360 WHERE as_of = DATE '{D}' \
         ORDER BY unified_id LIMIT 5"
    ));
    let unified: Vec<&String> = everyone.iter().rev().take(4).collect();
    let mut list_text = String::from("customer_id\n# asked not to be contacted\n");
    for k in merged.iter().chain(&primary).chain(unified.iter().copied()) {
        list_text.push_str(k);
        list_text.push('\n');
    }
    let list_file = fresh("dnc.txt");
    std::fs::write(&list_file, &list_text).unwrap();
    let keys: Vec<String> = list_text
        .lines()
        .skip(2)
        .map(|k| format!("'{k}'"))
        .collect();

    let rules: Vec<(&str, &str, String, String)> = vec![
        (
            "opt_out",
            "email",
            "opt_out = true".into(),
            format!(
                "SELECT unified_id FROM silver.customer_360 WHERE as_of = DATE '{D}' \
                 AND (marketing_opt_in = false OR marketing_opt_in IS NULL)"
            ),
        ),
        (
            "unreachable",
            "email",
            "unreachable = true".into(),
            format!(
                "SELECT unified_id FROM silver.customer_360 WHERE as_of = DATE '{D}' \
                 AND email_masked IS NULL"
            ),
        ),
        (
            "kyc",
            "email",
            "min_kyc_level = 3".into(),
            format!(
                "SELECT unified_id FROM silver.customer_360 WHERE as_of = DATE '{D}' \
                 AND NOT (kyc_level >= 3 AND kyc_level IS NOT NULL)"
            ),
        ),
        (
            "holding",
            "email",
            "holding = [\"credit_classic\", \"cc_travel_platinum\"]".into(),
            format!(
                "SELECT DISTINCT unified_id FROM (SELECT unified_id, unnest(products) AS p \
                 FROM silver.customer_360 WHERE as_of = DATE '{D}') \
                 WHERE p IN ('credit_classic', 'cc_travel_platinum')"
            ),
        ),
        (
            "contacted",
            "email",
            "contacted_within_days = 8".into(),
            contacted(8, None),
        ),
        (
            "offered",
            "email",
            "offered_within_days = 36".into(),
            contacted(36, Some(OFFER)),
        ),
        (
            "list",
            "email",
            format!("lists = [{:?}]", list_file.to_str().unwrap()),
            format!(
                "SELECT DISTINCT unified_id FROM silver.customer_360 WHERE as_of = DATE '{D}' \
                 AND (unified_id IN ({k}) OR array_has_any(customer_ids, make_array({k})))",
                k = keys.join(", ")
            ),
        ),
    ];
    let mut all_rules = String::new();
    let mut union = BTreeSet::new();
    for (step, channel, rule, independent) in &rules {
        let run = offers(&audience(channel, rule, ""), &[]);
        let violators = ids(independent);
        let removed: BTreeSet<String> = everyone.difference(&run.ids()).cloned().collect();
        let expected: BTreeSet<String> = everyone.intersection(&violators).cloned().collect();
        assert!(run.ids().is_subset(&everyone), "{step}");
        assert!(
            !expected.is_empty(),
            "{step}: the data must exercise the rule"
        );
        assert_eq!(
            removed, expected,
            "{step}: removed against the independent query"
        );
        // the funnel counts the rule among every (eligible) customer
        let counted = customers.intersection(&violators).count();
        assert_eq!(
            run.step(step)["removed"],
            counted,
            "{step}: {}",
            run.record["funnel"]
        );
        if *step != "unreachable" {
            all_rules.push_str(rule);
            all_rules.push('\n');
            union.extend(violators);
        }
    }
    // every rule at once but reachability, one after the other
    let all = offers(&audience("email", &all_rules, ""), &[]);
    let expected: BTreeSet<String> = everyone.difference(&union).cloned().collect();
    assert_eq!(all.ids(), expected, "all rules together");
    // the funnel goes down step by step and ends at the list
    let funnel = all.record["funnel"].as_array().unwrap();
    for pair in funnel.windows(2) {
        let (a, b) = (
            pair[0]["customers"].as_u64().unwrap(),
            pair[1]["customers"].as_u64().unwrap(),
        );
        assert_eq!(a - b, pair[1]["removed"].as_u64().unwrap(), "{pair:?}");
    }
    assert_eq!(all.step("selected")["customers"], all.rows.len());
}

#[test]
fn eligibility_min_score_control_share_caps_top_and_budget_hold() {
    // eligibility and the score floor, against independent queries
    let with_predicate = audience("sms", "", "[score]\nmin = 0.12\n").replacen(
        "\n\n[suppress]",
        "\neligibility = \"c.age_years >= 30 AND f.txn_count_30d > 3\"\n\n[suppress]",
        1,
    );
    let run = offers(&with_predicate, &[]);
    let expected = ids(&format!(
        "SELECT s.unified_id FROM gold.scores s JOIN silver.customer_360 c \
         ON c.unified_id = s.unified_id AND c.as_of = s.as_of \
         JOIN silver.features f ON f.unified_id = s.unified_id AND f.as_of = s.as_of \
         WHERE s.as_of = DATE '{D}' AND s.offer_id = '{OFFER}' AND s.probability >= 0.12 \
         AND c.age_years >= 30 AND f.txn_count_30d > 3"
    ));
    assert_eq!(run.ids(), expected);
    // ranked best first, ranks 1..n, scores as gold.scores has them
    let scores: Vec<f64> = run
        .rows
        .iter()
        .map(|r| r["score"].parse().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    for (i, r) in run.rows.iter().enumerate() {
        assert_eq!(r["rank"], (i + 1).to_string());
        assert_eq!(r["offer_id"], OFFER);
        assert_eq!(r["channel"], "sms");
    }

    // nobody above the floor: an empty list (a header), not an error
    let empty = offers(&audience("sms", "", "[score]\nmin = 0.999\n"), &[]);
    assert!(empty.rows.is_empty());
    assert_eq!(empty.record["selected"], 0);
    assert_eq!(empty.record["expected_acceptances"], 0.0);

    // control share and caps
    let capped = offers(
        &audience(
            "app_push",
            "",
            "[caps]\nper_segment = 60\nper_city = 14\n[holdout]\nshare = 0.3\nseed = 5\n",
        ),
        &[],
    );
    let n = capped.rows.len();
    assert!(n > 100, "{n}");
    let mut per_segment: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_city: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &capped.rows {
        *per_segment.entry(&r["segment"]).or_default() += 1;
        *per_city.entry(&r["city"]).or_default() += 1;
    }
    assert!(per_segment.values().all(|&c| c <= 60), "{per_segment:?}");
    assert!(per_city.values().all(|&c| c <= 14), "{per_city:?}");
    assert!(
        per_city.values().any(|&c| c == 14),
        "a cap binds: {per_city:?}"
    );
    let control = capped
        .rows
        .iter()
        .filter(|r| r["control"] == "true")
        .count();
    let share = control as f64 / n as f64;
    let tolerance = 3.0 * (0.3 * 0.7 / n as f64).sqrt();
    assert!(
        (share - 0.3).abs() <= tolerance,
        "control share {share} of {n}"
    );
    let r = &capped.record;
    assert_eq!(r["control"], control);
    assert_eq!(r["treatment"], n - control);
    // skipped by a cap + chosen = every candidate above the floor
    assert_eq!(r["stop"], "candidates");
    assert_eq!(
        r["capped_by_segment"].as_u64().unwrap() + r["capped_by_city"].as_u64().unwrap() + n as u64,
        capped.step("min_score")["customers"].as_u64().unwrap()
    );
    // a person's control flag depends on the seed and the person only
    let flags = |run: &Run| -> BTreeMap<String, String> {
        run.rows
            .iter()
            .map(|r| (r["unified_id"].clone(), r["control"].clone()))
            .collect()
    };
    let uncapped = offers(
        &audience("app_push", "", "[holdout]\nshare = 0.3\nseed = 5\n"),
        &[],
    );
    let all_flags = flags(&uncapped);
    for (id, flag) in flags(&capped) {
        assert_eq!(all_flags[&id], flag, "{id}");
    }
    let reseeded = offers(
        &audience("app_push", "", "[holdout]\nshare = 0.3\nseed = 6\n"),
        &[],
    );
    assert_ne!(
        flags(&reseeded),
        all_flags,
        "another seed, another control group"
    );

    // top: the best 25 of the full ranking
    let top = offers(&audience("app_push", "", "[select]\ntop = 25\n"), &[]);
    let best: Vec<&String> = uncapped
        .rows
        .iter()
        .take(25)
        .map(|r| &r["unified_id"])
        .collect();
    let got: Vec<&String> = top.rows.iter().map(|r| &r["unified_id"]).collect();
    assert_eq!(got, best);
    assert_eq!(top.record["stop"], "top");
    // budget: 101 at 2 pays 50 contacts; control customers are free
    let budget = offers(
        &audience(
            "app_push",
            "",
            "[select]\nbudget = 101.0\ncost_per_contact = 2.0\n[holdout]\nshare = 0.2\nseed = 1\n",
        ),
        &[],
    );
    assert_eq!(budget.record["treatment"], 50);
    assert_eq!(budget.record["stop"], "budget");
    assert_eq!(budget.record["cost"], 100.0);
    let treatment_sum: f64 = budget
        .rows
        .iter()
        .filter(|r| r["control"] == "false")
        .map(|r| r["score"].parse::<f64>().unwrap())
        .sum();
    let expected = budget.record["expected_acceptances"].as_f64().unwrap();
    assert!(
        (treatment_sum - expected).abs() < 1e-6,
        "{treatment_sum} {expected}"
    );
}

#[test]
fn the_same_inputs_give_the_same_list_byte_for_byte() {
    let example = repo_root().join("pipelines/audiences/travel_card.toml");
    let run = |out: &Path| {
        run_offers(
            &example,
            &["--as-of", D, "--out", out.to_str().unwrap(), "--json"],
        )
    };
    for ext in ["csv", "parquet"] {
        let a = fresh(&format!("a.{ext}"));
        let b = fresh(&format!("b.{ext}"));
        let first: serde_json::Value = serde_json::from_str(&run(&a)).unwrap();
        let second: serde_json::Value = serde_json::from_str(&run(&b)).unwrap();
        let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(x.len() > 200, "{ext}: {} bytes", x.len());
        assert_eq!(x, y, "{ext}: byte for byte");
        assert_eq!(first["list"]["sha256"], second["list"]["sha256"]);
        // the run record sits beside the list and names its inputs
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.with_extension("run.json")).unwrap()).unwrap();
        assert_eq!(record["list"]["sha256"], first["list"]["sha256"]);
        assert_eq!(record["model_version"], "v1");
        assert_eq!(record["as_of"], D);
        assert_eq!(record["limits"]["seed"], 2026);
        assert!(
            record["snapshot_run"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
        let text = std::fs::read_to_string(&example).unwrap();
        assert_eq!(
            record["audience"]["sha256"],
            cdp_core::identity::sha256_hex(&text)
        );
        assert!(record["funnel"].as_array().unwrap().len() >= 10);
    }
    // every documented example runs; --dry-run writes nothing
    for entry in std::fs::read_dir(repo_root().join("pipelines/audiences")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = fresh("never.csv");
        let text = run_offers(
            &path,
            &["--as-of", D, "--out", out.to_str().unwrap(), "--dry-run"],
        );
        assert!(
            text.contains("eligible") && text.contains("dry run"),
            "{text}"
        );
        assert!(!out.exists() && !out.with_extension("run.json").exists());
    }
}

#[test]
fn a_bad_audience_file_is_reported_at_its_line() {
    let list = fresh("missing-list.txt");
    let cases: Vec<(&str, String, usize, &str)> = vec![
        (
            "unknown column on the third line of a predicate",
            format!(
                "offer = \"{OFFER}\"\nchannel = \"sms\"\n\neligibility = \"\"\"\nc.age_years > 20\n\
                 AND f.txn_count_30d > 1\nAND c.no_such_column = 3\n\"\"\"\n"
            ),
            7,
            "no_such_column",
        ),
        (
            "SQL syntax",
            format!(
                "offer = \"{OFFER}\"\nchannel = \"sms\"\neligibility = \"c.age_years >> AND\"\n"
            ),
            3,
            "eligibility",
        ),
        (
            "not a condition",
            format!(
                "offer = \"{OFFER}\"\nchannel = \"sms\"\n\n\neligibility = \"c.age_years + 1\"\n"
            ),
            5,
            "eligibility",
        ),
        (
            "unknown offer",
            "channel = \"sms\"\noffer = \"cc_travel_goldd\"\n".into(),
            2,
            "unknown offer",
        ),
        (
            "unknown product",
            format!(
                "offer = \"{OFFER}\"\nchannel = \"sms\"\n[suppress]\nholding = [\n  \"debit\",\n  \"platinum_dreams\",\n]\n"
            ),
            6,
            "platinum_dreams",
        ),
        (
            "unknown key",
            format!("offer = \"{OFFER}\"\nchannel = \"sms\"\n[select]\ntop = 5\ntop_n = 5\n"),
            5,
            "top_n",
        ),
        (
            "unknown channel",
            format!("offer = \"{OFFER}\"\nchannel = \"pigeon\"\n"),
            2,
            "channel",
        ),
        (
            "missing suppression list",
            format!(
                "offer = \"{OFFER}\"\nchannel = \"sms\"\n[suppress]\nlists = [{:?}]\n",
                list.to_str().unwrap()
            ),
            4,
            "suppression list",
        ),
        (
            "pinned model the scores do not come from",
            format!("offer = \"{OFFER}\"\nchannel = \"sms\"\n[score]\nmodel_version = \"v99\"\n"),
            4,
            "v99",
        ),
    ];
    for (what, text, line, word) in cases {
        let file = fresh("bad.toml");
        std::fs::write(&file, &text).unwrap();
        let out = cdp()
            .args(offers_args(&file, &["--as-of", D, "--dry-run"]))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{what}: one line: {stderr}"
        );
        let expected = format!("error: audience file {}, line {line}: ", file.display());
        assert!(stderr.starts_with(&expected), "{what}: {stderr}");
        assert!(stderr.contains(word), "{what}: {stderr}");
    }
    // a list that is neither CSV nor Parquet, and a date never built
    let good = fresh("good.toml");
    std::fs::write(&good, format!("offer = \"{OFFER}\"\nchannel = \"sms\"\n")).unwrap();
    for (args, word) in [
        (vec!["--as-of", D, "--out", "list.xlsx"], ".csv or .parquet"),
        (
            vec!["--as-of", "2026-03-10", "--dry-run"],
            "cdp build --as-of 2026-03-10",
        ),
    ] {
        let out = cdp().args(offers_args(&good, &args)).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success() && stderr.contains(word), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

/// Raw phone numbers and e-mail addresses of the generated bank.
fn raw_contacts(raw: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(raw).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("customers") {
            continue;
        }
        for row in read_csv(&path) {
            for key in ["phone", "email", "id_number"] {
                if let Some(v) = row.get(key).filter(|v| v.len() > 6) {
                    out.insert(v.clone());
                }
            }
        }
    }
    out
}

/// A headless Chromium on this machine, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

#[test]
fn the_report_is_self_contained_masked_and_renders_in_headless_chromium() {
    let w = world();
    let example = repo_root().join("pipelines/audiences/travel_card.toml");
    let list = fresh("travel.csv");
    let report = list.with_file_name("travel.html");
    run_offers(
        &example,
        &[
            "--as-of",
            D,
            "--out",
            list.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    for section in [
        "Funnel",
        "Scores on the list",
        "lift by score decile",
        "Calibration",
        "City",
        "reasons",
    ] {
        assert!(html.contains(section), "{section}");
    }
    assert!(html.matches("<svg").count() >= 8, "charts, not only tables");
    for fetch in ["<script", "<link", "<img", "src=", "@import", "url("] {
        assert!(!html.contains(fetch), "self-contained: {fetch}");
    }
    let outside: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 30).min(html.len())])
        .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    // masked contact fields only, in the list and the report
    let rows = read_csv(&list);
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["phone_masked"].contains("****")));
    let list_text = std::fs::read_to_string(&list).unwrap();
    for raw in raw_contacts(&w.raw) {
        assert!(!list_text.contains(&raw), "raw PII in the list");
        assert!(!html.contains(&raw), "raw PII in the report");
    }

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CDP_REQUIRE_CHROMIUM").is_none(),
            "CDP_REQUIRE_CHROMIUM is set but no chromium is on PATH"
        );
        eprintln!("skipping the Chromium rendering check: no chromium on PATH");
        return;
    };
    let profile = fresh("chromium-profile");
    let shot = list.with_file_name("report.png");
    let url = format!("file://{}", report.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let user_data = format!("--user-data-dir={}", profile.display());
    let screenshot = format!("--screenshot={}", shot.display());
    let out = std::process::Command::new(&browser)
        .args(common)
        .args([
            user_data.as_str(),
            screenshot.as_str(),
            "--window-size=1200,2000",
            url.as_str(),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    for bad in [
        "Uncaught",
        ":CONSOLE(",
        "Failed to load resource",
        "net::ERR_",
    ] {
        assert!(!log.contains(bad), "browser console: {log}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 2000));
    assert!(
        png.len() > 40_000,
        "a page of charts, not a blank one: {} bytes",
        png.len()
    );
    if let Some(dir) = std::env::var_os("CDP_SCREENSHOT_DIR") {
        std::fs::copy(&shot, Path::new(&dir).join("offers-report.png")).unwrap();
    }
    // the DOM Chromium built holds the charts
    let dom = std::process::Command::new(&browser)
        .args(common)
        .args([user_data.as_str(), "--dump-dom", url.as_str()])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Offer list: travel-card-spring"), "{dom:.300}");
    assert!(dom.matches("<svg").count() >= 8);
}
