//! Progress reporting for long work, without tying libraries to a terminal:
//! libraries call a [`Progress`]; the binary draws it (or not, with `--json`).

/// Receives progress of one long task at a time.
pub trait Progress: Send + Sync {
    /// A stage starts; `total` units of work are expected (0 when unknown).
    fn begin(&self, stage: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The stage is over.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _stage: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
