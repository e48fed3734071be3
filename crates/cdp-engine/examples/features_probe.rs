//! TEMPORARY profiling probe (bench work, to be deleted): runs one feature
//! family (or all composed) of a build's features stage, with identity_map
//! and customer_360 read from already written silver files.
//! usage: features_probe LAKE AS_OF IDMAP_RUN_DIR C360_RUN_DIR FAMILY|composed [explain]
use std::sync::Arc;
use std::time::Instant;

use cdp_core::lake::Lake;
use cdp_core::time::BusinessCalendar;
use cdp_engine::features::FeatureRegistry;
use cdp_engine::sql::{Params, render, statements};
use cdp_engine::{Engine, EngineOptions, tables};
use chrono::NaiveDate;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::physical_plan::displayable;
use futures::StreamExt;

fn hwm() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn files(lake: &str, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("{lake}/{dir}"))
        .unwrap()
        .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    v.sort();
    v
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (lake_uri, as_of, idmap, c360, which) = (&a[1], &a[2], &a[3], &a[4], &a[5]);
    let explain = a.get(6).is_some();
    let as_of: NaiveDate = as_of.parse().unwrap();
    let lake = Lake::open(lake_uri).unwrap();
    let options = EngineOptions {
        memory_limit: std::env::var("PROBE_MEM")
            .map(|m| m.parse::<u64>().unwrap() << 30)
            .unwrap_or(8 << 30),
        ..EngineOptions::default()
    };
    let engine = Engine::new(lake, BusinessCalendar::default(), &options).unwrap();
    let ctx = engine.context();
    tables::register_bronze(&engine, tables::Access::Pii)
        .await
        .unwrap();
    tables::register_reference(&engine).unwrap();
    let provider: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
    ctx.catalog("datafusion")
        .unwrap()
        .register_schema("build", provider)
        .unwrap();
    let params = Params::for_build(engine.calendar(), as_of);
    let run = |text: &str| {
        let r = render("x", text, &params).unwrap();
        statements(&r)
    };
    for s in run(include_str!("../../../pipelines/views/asof.sql")) {
        ctx.sql(&s).await.unwrap().collect().await.unwrap();
    }
    let t = tables::listing_table(&engine, &files(lake_uri, idmap), "im")
        .await
        .unwrap();
    let batches = ctx.read_table(t).unwrap().collect().await.unwrap();
    let mem =
        datafusion::datasource::MemTable::try_new(batches[0].schema(), vec![batches]).unwrap();
    tables::register(&engine, "build.identity_map", Arc::new(mem)).unwrap();
    for s in run(include_str!("../../../pipelines/views/entities.sql")) {
        ctx.sql(&s).await.unwrap().collect().await.unwrap();
    }
    let t = tables::listing_table(&engine, &files(lake_uri, c360), "c360")
        .await
        .unwrap();
    tables::register(&engine, "build.customer_360", t).unwrap();
    eprintln!("setup done: {}", hwm());

    let registry = FeatureRegistry::load_dir(std::path::Path::new("pipelines/features")).unwrap();
    let sql = if which == "composed" {
        let mut ctes = Vec::new();
        let mut columns = vec!["c.as_of".to_string(), "c.unified_id".to_string()];
        let mut joins = Vec::new();
        for family in registry.families() {
            let sql = render("f", &family.sql, &params).unwrap();
            let alias = format!("f_{}", family.name);
            for f in &family.features {
                let value = match &f.default {
                    Some(d) => format!("COALESCE({alias}.{}, {d})", f.name),
                    None => format!("{alias}.{}", f.name),
                };
                columns.push(match f.ty.sql_type() {
                    Some(ty) => format!("CAST({value} AS {ty}) AS {}", f.name),
                    None => format!("{value} AS {}", f.name),
                });
            }
            joins.push(format!(
                "LEFT JOIN {alias} ON {alias}.unified_id = c.unified_id"
            ));
            ctes.push(format!("{alias} AS (\n{sql}\n)"));
        }
        format!(
            "WITH {}\nSELECT {}\nFROM build.customer_360 c\n{}",
            ctes.join(",\n"),
            columns.join(",\n       "),
            joins.join("\n")
        )
    } else {
        let family = registry
            .families()
            .iter()
            .find(|f| &f.name == which)
            .expect("family");
        render("f", &family.sql, &params).unwrap()
    };
    let started = Instant::now();
    let df = ctx.sql(&sql).await.unwrap();
    if explain {
        let plan = df.clone().create_physical_plan().await.unwrap();
        println!("{}", displayable(plan.as_ref()).indent(true));
    }
    let mut stream = df.execute_stream().await.unwrap();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        rows += b.unwrap().num_rows();
    }
    println!(
        "{which}: {rows} rows in {:.2} s; {}",
        started.elapsed().as_secs_f64(),
        hwm()
    );
}
