//! End-to-end tests of the `cdp` binary on freshly generated data and on
//! the committed sample in `data/samples/`.

mod audience;
mod build;
mod cli;
mod cluster;
mod gen_truth;
mod historical;
mod identity;
mod ingest;
mod model;
mod notebooks;
mod offers;
mod online;
mod refresh;
mod s3;
mod samples;
mod serve;
mod support;
mod tag;
mod timezones;
