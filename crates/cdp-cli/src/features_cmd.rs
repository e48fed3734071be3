//! `cdp features list|describe NAME`: the declared feature registry.

use cdp_engine::features::FeatureRegistry;
use cdp_store::services::FeatureServices;

use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp features list
  cdp features list --json
  cdp features describe spend_30d
  cdp features describe card_offers_v1

Features are declared in pipelines/features/: each family is a SQL file
(one SELECT returning unified_id and its features) and a TOML file with each
feature's name, entity, type, description, owner, TTL, default and tags.
`cdp build` computes them all into silver.features. Feature services
(pipelines/feature_services/*.toml) are named, versioned feature sets per
consumer (`cdp historical --service card_offers_v1`): `list` shows them after
the features (--json: each feature's \"services\"), `describe` shows one.";

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Every feature: name, type, family, TTL and description.
    List,
    /// One feature's metadata and the SQL that computes it, or one feature service.
    Describe {
        /// Feature or feature service name, as `list` shows it.
        name: String,
    },
}

pub fn run(ctx: &Context, action: Action) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    match action {
        Action::List => {
            let features: Vec<_> = registry.features().collect();
            let services = FeatureServices::embedded(&registry)?;
            if ctx.json {
                // Each feature as before, plus the services that include it.
                let mut rows = Vec::with_capacity(features.len());
                for f in &features {
                    let mut row = serde_json::to_value(f)?;
                    row["services"] = serde_json::json!(
                        services
                            .services()
                            .iter()
                            .filter(|s| s.features.contains(&f.name))
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                    );
                    rows.push(row);
                }
                return print_json(&rows);
            }
            println!(
                "{:<30} {:<12} {:<13} {:>4}  description",
                "name", "type", "family", "ttl"
            );
            for f in &features {
                println!(
                    "{:<30} {:<12} {:<13} {:>3}d  {}",
                    f.name,
                    f.ty.name(),
                    f.family,
                    f.ttl_days,
                    f.description
                );
            }
            println!(
                "{} features in {} families",
                features.len(),
                registry.families().len()
            );
            println!(
                "\n{:<20} {:>7}  {:<17} {:>8}  description",
                "service", "version", "owner", "features"
            );
            for service in services.services() {
                println!(
                    "{:<20} {:>7}  {:<17} {:>8}  {}",
                    service.name,
                    service.version,
                    service.owner,
                    service.features.len(),
                    service.description
                );
                println!("{:<20} {:>7}  consumer: {}", "", "", service.consumer);
                println!("{:<20} {:>7}  {}", "", "", service.features.join(", "));
            }
            println!("{} feature services", services.services().len());
        }
        Action::Describe { name } => {
            let services = FeatureServices::embedded(&registry)?;
            if registry.feature(&name).is_err()
                && let Ok(service) = services.get(&name)
            {
                if ctx.json {
                    return print_json(service);
                }
                println!("{} (feature service)", service.name);
                println!("  description  {}", service.description);
                println!("  version      {}", service.version);
                println!("  owner        {}", service.owner);
                println!("  consumer     {}", service.consumer);
                println!("  features     {}", service.features.len());
                for f in &service.features {
                    let feature = registry.feature(f)?;
                    println!(
                        "    {:<28} {:<12} ttl {}d  {}",
                        feature.name,
                        feature.ty.name(),
                        feature.ttl_days,
                        feature.description
                    );
                }
                println!("\n-- pipelines/feature_services/{}.toml", service.name);
                return Ok(());
            }
            let feature = registry.feature(&name)?;
            let family = registry.family_of(&name)?;
            if ctx.json {
                return print_json(&serde_json::json!({
                    "feature": feature,
                    "family": family.name,
                    "sql": family.sql,
                }));
            }
            println!("{}", feature.name);
            println!("  description  {}", feature.description);
            println!("  entity       {} (keyed by unified_id)", feature.entity);
            println!("  type         {}", feature.ty.name());
            println!("  family       {} ({})", family.name, family.description);
            println!("  owner        {}", feature.owner);
            println!("  ttl          {} days", feature.ttl_days);
            println!(
                "  default      {}",
                feature.default.as_deref().unwrap_or("null")
            );
            println!("  tags         {}", feature.tags.join(", "));
            println!(
                "\n-- pipelines/features/{}.sql\n{}",
                family.name,
                family.sql.trim_end()
            );
        }
    }
    Ok(())
}
