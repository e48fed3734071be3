//! PLACEHOLDER (helper A replaces this file): gradient-boosted trees (hessboost).

use crate::error::{Error, Result};
use crate::model::{Algo, Dataset, Learner, Model, Params};

/// Fits gradient-boosted trees.
#[derive(Debug, Clone, Copy, Default)]
pub struct GbdtLearner;

impl Learner for GbdtLearner {
    fn algo(&self) -> Algo {
        Algo::Gbdt
    }
    fn fit(&self, _: &Dataset, _: Option<&Dataset>, _: &Params) -> Result<Box<dyn Model>> {
        Err(Error::Unsupported {
            algo: Algo::Gbdt,
            what: "fitting yet",
        })
    }
}
