//! Reference data shipped in `pipelines/reference/` and embedded into the
//! binary: the card products campaigns offer, the CNY FX table and the
//! merchant-category groups features use.
//!
//! ```
//! use cdp_core::reference;
//! let fx = reference::fx_rates().unwrap();
//! assert_eq!(fx["CNY"], 1.0);
//! assert!(reference::card_products().unwrap().iter().any(|p| p.category == "travel"));
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `pipelines/reference/card_products.csv`, verbatim.
pub const CARD_PRODUCTS_CSV: &str = include_str!("../../../pipelines/reference/card_products.csv");

/// `pipelines/reference/fx_rates.csv`, verbatim.
pub const FX_RATES_CSV: &str = include_str!("../../../pipelines/reference/fx_rates.csv");

/// `pipelines/reference/mcc_categories.csv`, verbatim: merchant category
/// code to the spending category features group it under.
pub const MCC_CATEGORIES_CSV: &str =
    include_str!("../../../pipelines/reference/mcc_categories.csv");

/// A card product a campaign can offer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CardProduct {
    /// Offer and product code.
    pub offer_id: String,
    /// Marketing name.
    pub name: String,
    /// classic | gold | platinum | signature
    pub tier: String,
    /// travel | cashback | dining | student | premium
    pub category: String,
    /// Annual fee in CNY.
    pub annual_fee: f64,
    /// Lowest eligible income band.
    pub min_income_band: u8,
}

fn read_csv<T: serde::de::DeserializeOwned>(table: &'static str, text: &str) -> Result<Vec<T>> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.map_err(|e| Error::Reference {
                table,
                row: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The card products, in file order.
pub fn card_products() -> Result<Vec<CardProduct>> {
    read_csv("card_products", CARD_PRODUCTS_CSV)
}

/// CNY per unit, by ISO 4217 currency code.
pub fn fx_rates() -> Result<BTreeMap<String, f64>> {
    #[derive(Deserialize)]
    struct Row {
        currency: String,
        cny_per_unit: f64,
    }
    Ok(read_csv::<Row>("fx_rates", FX_RATES_CSV)?
        .into_iter()
        .map(|r| (r.currency, r.cny_per_unit))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contracts;

    #[test]
    fn card_products_follow_their_contract() {
        let contract = Contracts::embedded().get("card_products").unwrap();
        let mut reader = csv::Reader::from_reader(CARD_PRODUCTS_CSV.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let layout = contract.csv_layout(&header).unwrap();
        for record in reader.byte_records() {
            let record = record.unwrap();
            contract.validate_csv(&layout, record.iter()).unwrap();
        }
        assert_eq!(card_products().unwrap().len(), 6);
    }

    #[test]
    fn fx_covers_the_currencies_with_positive_rates() {
        let fx = fx_rates().unwrap();
        assert!(fx.len() >= 8);
        assert!(fx.values().all(|r| *r > 0.0));
    }
}
