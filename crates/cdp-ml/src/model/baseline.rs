//! PLACEHOLDER (helper B replaces this file): smartcore baselines.

use crate::error::{Error, Result};
use crate::model::{Algo, Dataset, Learner, Model, Objective, Params};

/// Fits smartcore's random forest.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomForestLearner;
/// Fits smartcore's logistic regression.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogisticLearner;

impl Learner for RandomForestLearner {
    fn algo(&self) -> Algo {
        Algo::RandomForest
    }
    fn fit(&self, _: &Dataset, _: Option<&Dataset>, _: &Params) -> Result<Box<dyn Model>> {
        Err(Error::Unsupported {
            algo: Algo::RandomForest,
            what: "fitting yet",
        })
    }
}
impl Learner for LogisticLearner {
    fn algo(&self) -> Algo {
        Algo::Logistic
    }
    fn fit(&self, _: &Dataset, _: Option<&Dataset>, _: &Params) -> Result<Box<dyn Model>> {
        Err(Error::Unsupported {
            algo: Algo::Logistic,
            what: "fitting yet",
        })
    }
}

/// Rebuild a baseline model from its document payload.
pub fn from_payload(
    algo: Algo,
    _features: Vec<String>,
    _objective: Objective,
    _params: Params,
    _payload: &serde_json::Value,
) -> Result<Box<dyn Model>> {
    Err(Error::Unsupported {
        algo,
        what: "loading yet",
    })
}
