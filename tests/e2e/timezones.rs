//! Timestamps come in `+08:00`, `Z` and foreign offsets; every row sits in
//! the file of its business day (Asia/Shanghai), which around midnight is
//! not its UTC date.

use std::collections::HashSet;

use cdp_core::time::{BusinessCalendar, parse_date, parse_timestamp};

use crate::support::{data_files, generate, read_csv};

#[test]
fn rows_sit_in_the_file_of_their_business_day_even_when_written_in_utc() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 500, 20, 9, 0.02, &[]);
    let cal = BusinessCalendar::default();
    let late: HashSet<(String, String)> = read_csv(&dir.path().join("_truth/dirty.csv"))
        .into_iter()
        .filter(|r| r["kind"] == "late" || r["kind"] == "duplicate" || !r["reason"].is_empty())
        .map(|r| (r["file"].clone(), r["line"].clone()))
        .collect();
    let (mut z_across_midnight, mut offset_after_midnight, mut foreign) = (0, 0, 0);
    for path in data_files(dir.path()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(day) = name
            .strip_prefix("transactions_")
            .and_then(|s| s.strip_suffix(".csv"))
        else {
            continue;
        };
        let file_day = parse_date(day).unwrap();
        for (i, row) in read_csv(&path).into_iter().enumerate() {
            let line = (i + 2).to_string();
            if late.contains(&(name.clone(), line)) {
                continue;
            }
            let text = &row["ts"];
            let ts = parse_timestamp(text).unwrap();
            assert_eq!(cal.business_date(ts), file_day, "{name}: {text}");
            if text.ends_with('Z') && ts.date_naive() != file_day {
                z_across_midnight += 1;
            }
            if text.ends_with("+08:00") && &text[11..13] == "00" {
                offset_after_midnight += 1;
            }
            if !text.ends_with('Z') && !text.ends_with("+08:00") {
                foreign += 1;
            }
        }
    }
    assert!(
        z_across_midnight > 20,
        "UTC rows on the previous UTC date: {z_across_midnight}"
    );
    assert!(
        offset_after_midnight > 10,
        "+08:00 rows just after midnight: {offset_after_midnight}"
    );
    assert!(foreign > 10, "rows in foreign offsets: {foreign}");
}
