//! `cdp features list|describe NAME`: the declared feature registry.

use cdp_engine::features::FeatureRegistry;

use crate::{Context, print_json};

pub const EXAMPLES: &str = "\
Examples:
  cdp features list
  cdp features list --json
  cdp features describe spend_30d

Features are declared in pipelines/features/: each family is a SQL file
(one SELECT returning unified_id and its features) and a TOML file with each
feature's name, entity, type, description, owner, TTL, default and tags.
`cdp build` computes them all into silver.features.";

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Every feature: name, type, family, TTL and description.
    List,
    /// One feature's metadata and the SQL that computes it.
    Describe {
        /// Feature name, as `list` shows it.
        name: String,
    },
}

pub fn run(ctx: &Context, action: Action) -> anyhow::Result<()> {
    let registry = FeatureRegistry::embedded()?;
    match action {
        Action::List => {
            let features: Vec<_> = registry.features().collect();
            if ctx.json {
                return print_json(&features);
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
        }
        Action::Describe { name } => {
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
