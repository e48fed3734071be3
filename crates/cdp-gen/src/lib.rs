//! # cdp-gen
//!
//! A synthetic retail bank that looks real: the raw files of DESIGN.md's
//! six source contracts, one file per source and business day, with the
//! situations that make the later stages meaningful, and a ground-truth
//! sidecar for tests.
//!
//! Entry point: [`generate`] with a [`GenConfig`]; it returns a [`Summary`].
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let config = cdp_gen::GenConfig {
//!     customers: 120,
//!     days: 5,
//!     dirty_rate: 0.05,
//!     ..cdp_gen::GenConfig::new(dir.path())
//! };
//! let summary = cdp_gen::generate(&config, &cdp_core::progress::Silent).unwrap();
//! let txns = &summary.sources["transactions"];
//! assert_eq!(txns.read, txns.accepted + txns.duplicates + txns.quarantined);
//! assert!(dir.path().join("_truth/counts.json").exists());
//! ```
//!
//! What the data holds:
//!
//! * **Identity traps** ([`world`]): people with two or three customer_ids
//!   (same id_number; same phone in another format; same e-mail in other case
//!   with spaces; a chain phone → e-mail), same-name strangers (same name,
//!   birth date and city), and families sharing a tablet.
//! * **Behaviour**: seven personas (commuter, online shopper, diner,
//!   traveller, student, affluent, dormant) with daily and weekly rhythm,
//!   paydays, trips abroad in foreign currency and local time offsets,
//!   cross-border online shopping, refunds, declines and reversals; device
//!   sessions with anonymous pre-login events, several devices, rooted
//!   phones, failed-login bursts; social profiles linked only through phone or
//!   e-mail hashes, plus strangers; weekly offer campaigns whose acceptance
//!   follows a non-linear rule of behaviour.
//! * **Time**: domestic timestamps in `+08:00` or UTC `Z`, abroad in the local
//!   offset; night-time spending around midnight, so business-day bucketing
//!   matters.
//! * **Dirt** ([`dirt`]) at the dirty rate: exact re-sent duplicates, late
//!   events, and one contract violation per bad row; quoted commas and quotes
//!   and UTF-8 names are clean data.
//! * **Truth** (`DIR/_truth/`): `counts.json` (read / accepted / duplicates /
//!   quarantined per source, as ingest must report them), `dirty.csv` (every
//!   planted row: file, line, kind, expected reason), `persons.csv` (the true
//!   person behind every customer_id), `devices.csv`, `social.csv`.
//!
//! The same configuration gives byte-identical files. Rows are generated day
//! by day in chunks of persons on all cores and streamed to disk, so memory
//! holds the population's traits, not the data set.

pub mod catalog;
pub mod dirt;
pub mod error;
pub mod rng;
pub mod row;
pub mod sink;
pub mod sources;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;
use tracing::instrument;

use cdp_core::contract::{Contract, Contracts};
use cdp_core::progress::Progress;

pub use error::{Error, Result};
pub use sink::Counts;

use dirt::{Kind, LineOp};
use rng::{Stream, rng};
use row::Row;
use sink::{Buffer, DayFile, Truth};
use sources::{Clock, Out, Source};
use world::{Person, World, customer_id};

/// Largest population the identity scheme keeps collision-free.
pub const MAX_CUSTOMERS: u32 = 5_000_000;

/// Persons per unit of parallel work.
const CHUNK: u32 = 2048;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Output folder.
    pub out: PathBuf,
    /// Number of people (customer_ids are a few percent more).
    pub customers: u32,
    /// Number of business days.
    pub days: u32,
    /// Random seed.
    pub seed: u64,
    /// Share of rows that are dirty (duplicates, late events, violations).
    pub dirty_rate: f64,
    /// Write `.gz` files.
    pub gzip: bool,
    /// First business day.
    pub start: NaiveDate,
    /// Remove earlier generated files from `out` first.
    pub force: bool,
}

impl GenConfig {
    /// Defaults: 1,000 customers, 30 days from 2026-01-01, seed 42, clean.
    pub fn new(out: impl Into<PathBuf>) -> GenConfig {
        GenConfig {
            out: out.into(),
            customers: 1000,
            days: 30,
            seed: 42,
            dirty_rate: 0.0,
            gzip: false,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
            force: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |option, value: String, reason| {
            Err(Error::Option {
                option,
                value,
                reason,
            })
        };
        if self.customers == 0 || self.customers > MAX_CUSTOMERS {
            return bad(
                "customers",
                self.customers.to_string(),
                "must be 1 to 5,000,000",
            );
        }
        if self.days == 0 || self.days > 3660 {
            return bad("days", self.days.to_string(), "must be 1 to 3660");
        }
        if !(0.0..=0.5).contains(&self.dirty_rate) {
            return bad(
                "dirty-rate",
                self.dirty_rate.to_string(),
                "must be between 0 and 0.5",
            );
        }
        Ok(())
    }
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Output folder.
    pub out: PathBuf,
    /// People.
    pub persons: u32,
    /// customer_ids.
    pub customer_ids: u64,
    /// First and last business day.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Files written (data files, not the truth sidecar).
    pub files: usize,
    /// Bytes written (data files).
    pub bytes: u64,
    /// Rows per source, as ingest must count them.
    pub sources: BTreeMap<String, Counts>,
    /// Planted rows per source and kind.
    pub planted: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Offers sent, and accepted within 30 days (the training label).
    pub offers_sent: u64,
    pub offers_accepted_30d: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// One chunk of persons and the rows it owes to later days.
struct Chunk {
    index: u64,
    persons: std::ops::Range<u32>,
    pending: BTreeMap<u32, Vec<Pending>>,
}

enum Pending {
    /// A new row for that day (a refund): goes through dirt like any other.
    Fresh(Source, Row),
    /// A row delivered again or late: written as it is.
    Ready(Source, Row, Kind),
}

/// The five buffers of one chunk-day.
type DayBuffers = [Buffer; 5];

struct Ctx<'a> {
    world: &'a World,
    clock: &'a Clock,
    persons: &'a [Person],
    contracts: [&'a Contract; 5],
    applicable: [Vec<Kind>; 5],
    rate: f64,
}

impl Chunk {
    fn day(&mut self, ctx: &Ctx, d: u32) -> DayBuffers {
        let mut bufs: DayBuffers = Default::default();
        let mut dirt_rng = rng(ctx.world.seed, Stream::Dirt, self.index, u64::from(d));
        let mut resend_today: Vec<(Source, Row)> = Vec::new();
        for pending in self.pending.remove(&d).unwrap_or_default() {
            match pending {
                Pending::Fresh(s, row) => {
                    self.emit(ctx, d, s, row, &mut bufs, &mut resend_today, &mut dirt_rng)
                }
                Pending::Ready(s, row, kind) => bufs[s as usize].push(
                    ctx.contracts[s as usize],
                    &row,
                    LineOp::Keep,
                    Some(kind),
                    &mut dirt_rng,
                ),
            }
        }
        let mut out: Out = Vec::new();
        for i in self.persons.clone() {
            let p = &ctx.persons[i as usize];
            out.clear();
            let (w, key, day) = (ctx.world, u64::from(i), u64::from(d));
            let pd = sources::PersonDay {
                world: w,
                clock: ctx.clock,
                person: p,
                d,
            };
            let stream = |stream, b| rng(w.seed, stream, key, b);
            sources::customers(pd, &mut stream(Stream::Update, 1000 + day), &mut out);
            sources::transactions(pd, &mut stream(Stream::Transactions, day), &mut out);
            sources::device_events(pd, &mut stream(Stream::Devices, day), &mut out);
            sources::social_profiles(pd, &mut stream(Stream::Social, day), &mut out);
            sources::offer_events(pd, &mut stream(Stream::Offer, 1000 + day), &mut out);
            for (s, deliver, row) in out.drain(..) {
                if deliver > d {
                    self.pending
                        .entry(deliver)
                        .or_default()
                        .push(Pending::Fresh(s, row));
                } else {
                    self.emit(ctx, d, s, row, &mut bufs, &mut resend_today, &mut dirt_rng);
                }
            }
        }
        for (s, row) in resend_today {
            bufs[s as usize].push(
                ctx.contracts[s as usize],
                &row,
                LineOp::Keep,
                Some(Kind::Duplicate),
                &mut dirt_rng,
            );
        }
        bufs
    }

    /// Writes one clean row, planting dirt at the configured rate.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        ctx: &Ctx,
        d: u32,
        s: Source,
        mut row: Row,
        bufs: &mut DayBuffers,
        resend_today: &mut Vec<(Source, Row)>,
        r: &mut ChaCha8Rng,
    ) {
        let k = s as usize;
        let contract = ctx.contracts[k];
        let roll: f64 = r.random();
        let days = ctx.world.days;
        if roll < ctx.rate {
            if r.random_bool(1.0 / 3.0) || ctx.applicable[k].is_empty() {
                bufs[k].push(contract, &row, LineOp::Keep, None, r);
                if d + 1 < days && r.random_bool(0.5) {
                    self.pending.entry(d + 1).or_default().push(Pending::Ready(
                        s,
                        row,
                        Kind::Duplicate,
                    ));
                } else {
                    resend_today.push((s, row));
                }
            } else {
                let kind = ctx.applicable[k][r.random_range(0..ctx.applicable[k].len())];
                let op = dirt::plant(kind, contract, &mut row, r);
                bufs[k].push(contract, &row, op, Some(kind), r);
            }
        } else if s.is_event() && roll < 2.0 * ctx.rate {
            let late = d + r.random_range(1..=3);
            if late < days {
                self.pending
                    .entry(late)
                    .or_default()
                    .push(Pending::Ready(s, row, Kind::Late));
            } else {
                bufs[k].push(contract, &row, LineOp::Keep, None, r);
            }
        } else {
            bufs[k].push(contract, &row, LineOp::Keep, None, r);
        }
    }
}

/// Generates the data set described by `config`.
#[instrument(skip_all, fields(out = %config.out.display(), customers = config.customers, days = config.days, seed = config.seed))]
pub fn generate(config: &GenConfig, progress: &dyn Progress) -> Result<Summary> {
    let started = Instant::now();
    config.validate()?;
    prepare_folder(&config.out, config.force)?;
    let contracts = Contracts::embedded();
    let world = World {
        seed: config.seed,
        persons: config.customers,
        days: config.days,
        start: config.start,
        products: cdp_core::reference::card_products()?,
    };
    let clock = Clock::new(&world);

    progress.begin("people", u64::from(config.customers));
    let persons: Vec<Person> = (0..config.customers)
        .into_par_iter()
        .map(|i| world.person(i))
        .collect();
    progress.advance(u64::from(config.customers));
    progress.finish();

    let source_contracts = Source::ALL.map(|s| contracts.get(s.name()));
    let [c0, c1, c2, c3, c4] = source_contracts;
    let ctx = Ctx {
        world: &world,
        clock: &clock,
        persons: &persons,
        contracts: [c0?, c1?, c2?, c3?, c4?],
        applicable: Source::ALL.map(|s| {
            contracts
                .get(s.name())
                .map(dirt::applicable)
                .unwrap_or_default()
        }),
        rate: config.dirty_rate,
    };

    let mut truth = Truth::create(&config.out)?;
    let mut files = 0usize;
    let products = contracts.get("card_products")?;
    write_reference(&config.out, products, config.gzip, &mut truth)?;
    files += 1;

    let mut chunks: Vec<Chunk> = (0..config.customers.div_ceil(CHUNK))
        .map(|c| Chunk {
            index: u64::from(c),
            persons: c * CHUNK..((c + 1) * CHUNK).min(config.customers),
            pending: BTreeMap::new(),
        })
        .collect();
    let group = rayon::current_num_threads().max(1) * 4;

    progress.begin("days", u64::from(config.days));
    for d in 0..config.days {
        let date = world.date(d);
        let mut day_files = Vec::with_capacity(5);
        for (k, s) in Source::ALL.iter().enumerate() {
            let ext = match ctx.contracts[k].format {
                cdp_core::contract::Format::Csv => "csv",
                cdp_core::contract::Format::Ndjson => "ndjson",
            };
            day_files.push(DayFile::create(
                &config.out,
                &format!("{}_{date}.{ext}", s.name()),
                ctx.contracts[k],
                config.gzip,
            )?);
            truth.touch(s.name());
        }
        for batch in chunks.chunks_mut(group) {
            let outputs: Vec<DayBuffers> = batch.par_iter_mut().map(|c| c.day(&ctx, d)).collect();
            for bufs in outputs {
                for (k, buf) in bufs.into_iter().enumerate() {
                    day_files[k].append(
                        Source::ALL[k].name(),
                        ctx.contracts[k],
                        buf,
                        &mut truth,
                    )?;
                }
            }
        }
        for f in day_files {
            f.finish()?;
            files += 1;
        }
        progress.advance(1);
    }
    progress.finish();
    truth.finish()?;

    let customer_ids = write_identity_truth(&world, &persons, truth.dir())?;
    let offers_sent = persons.iter().map(|p| p.offers.len() as u64).sum();
    let offers_accepted_30d = persons
        .iter()
        .flat_map(|p| &p.offers)
        .filter(|o| o.accepted.is_some_and(|a| a < 30 * 86_400))
        .count() as u64;
    let bytes = std::fs::read_dir(&config.out)
        .map_err(|source| Error::Write {
            path: config.out.clone(),
            source,
        })?
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();

    let summary = Summary {
        out: config.out.clone(),
        persons: config.customers,
        customer_ids,
        first_day: world.date(0),
        last_day: world.date(config.days - 1),
        files,
        bytes,
        sources: truth.counts(),
        planted: truth.kinds(),
        offers_sent,
        offers_accepted_30d,
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json(
        &truth.dir().join("counts.json"),
        &CountsFile::from(config, &summary),
    )?;
    tracing::info!(files, bytes, seconds = summary.seconds, "generated");
    Ok(summary)
}

/// `_truth/counts.json`: the generator's arguments and the exact counts.
#[derive(Serialize)]
struct CountsFile<'a> {
    generator: GeneratorArgs,
    sources: &'a BTreeMap<String, Counts>,
    planted: &'a BTreeMap<String, BTreeMap<&'static str, u64>>,
    persons: u32,
    customer_ids: u64,
    offers_sent: u64,
    offers_accepted_30d: u64,
}

#[derive(Serialize)]
struct GeneratorArgs {
    customers: u32,
    days: u32,
    seed: u64,
    dirty_rate: f64,
    start: NaiveDate,
    gzip: bool,
}

impl<'a> CountsFile<'a> {
    fn from(config: &GenConfig, s: &'a Summary) -> Self {
        CountsFile {
            generator: GeneratorArgs {
                customers: config.customers,
                days: config.days,
                seed: config.seed,
                dirty_rate: config.dirty_rate,
                start: config.start,
                gzip: config.gzip,
            },
            sources: &s.sources,
            planted: &s.planted,
            persons: s.persons,
            customer_ids: s.customer_ids,
            offers_sent: s.offers_sent,
            offers_accepted_30d: s.offers_accepted_30d,
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).expect("plain data serialises");
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.into(),
        source,
    })
}

/// Refuses a folder with files in it, unless `force`, which removes what an
/// earlier run generated (and nothing else).
fn prepare_folder(out: &Path, force: bool) -> Result<()> {
    let io = |source| Error::Write {
        path: out.into(),
        source,
    };
    std::fs::create_dir_all(out).map_err(io)?;
    let entries: Vec<_> = std::fs::read_dir(out)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(Error::NotEmpty {
            path: out.into(),
            entries: entries.len(),
        });
    }
    let contracts = Contracts::embedded();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name == "_truth" {
            std::fs::remove_dir_all(&path).map_err(|source| Error::Write { path, source })?;
        } else if contracts.for_file(&name).is_some() {
            std::fs::remove_file(&path).map_err(|source| Error::Write { path, source })?;
        }
    }
    Ok(())
}

fn write_reference(out: &Path, contract: &Contract, gzip: bool, truth: &mut Truth) -> Result<()> {
    let mut file = DayFile::create(out, "card_products.csv", contract, gzip)?;
    let mut buf = Buffer::default();
    let mut reader = csv::Reader::from_reader(cdp_core::reference::CARD_PRODUCTS_CSV.as_bytes());
    let mut r = rng(0, Stream::Dirt, u64::MAX, 0);
    for record in reader.records() {
        let record = record.expect("embedded reference CSV parses");
        let row: Row = record.iter().map(row::Cell::text).collect();
        buf.push(contract, &row, LineOp::Keep, None, &mut r);
    }
    file.append("card_products", contract, buf, truth)?;
    file.finish()?;
    Ok(())
}

/// Writes one CSV file of the truth sidecar.
fn write_truth_csv<I>(dir: &Path, name: &str, header: &[&str], rows: I) -> Result<()>
where
    I: IntoIterator<Item = Vec<String>>,
{
    let path = dir.join(name);
    let csv_err = |source| Error::Csv {
        path: path.clone(),
        source,
    };
    let mut w = csv::Writer::from_path(&path).map_err(csv_err)?;
    w.write_record(header).map_err(csv_err)?;
    for row in rows {
        w.write_record(&row).map_err(csv_err)?;
    }
    w.flush().map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })
}

/// Writes `persons.csv`, `devices.csv` and `social.csv`; returns the number
/// of customer_ids.
fn write_identity_truth(world: &World, persons: &[Person], dir: &Path) -> Result<u64> {
    let person_rows = persons.iter().flat_map(|p| {
        (0..p.role.ids()).map(move |slot| {
            vec![
                customer_id(p.index, slot),
                format!("P{}", p.index),
                p.persona.name().to_string(),
                p.role.name().to_string(),
                p.family.map(|f| format!("F{f}")).unwrap_or_default(),
                p.twin_of.map(|t| format!("P{t}")).unwrap_or_default(),
                p.onboard[slot as usize].to_string(),
            ]
        })
    });
    let header = [
        "customer_id",
        "person_id",
        "persona",
        "role",
        "family_id",
        "same_name_as",
        "onboard_day",
    ];
    write_truth_csv(dir, "persons.csv", &header, person_rows)?;

    let device_rows = persons.iter().flat_map(|p| {
        sources::device_ids(world, p)
            .into_iter()
            .map(move |(device, shared)| vec![device, format!("P{}", p.index), shared.to_string()])
    });
    write_truth_csv(
        dir,
        "devices.csv",
        &["device_id", "person_id", "shared"],
        device_rows,
    )?;

    let social_rows = persons.iter().flat_map(|p| {
        let own = p.socials.iter().map(move |s| {
            vec![
                catalog::PLATFORMS[s.platform].to_string(),
                sources::handle(p.index, s.platform),
                format!("P{}", p.index),
                s.link.name().to_string(),
            ]
        });
        let stranger = world.stranger_of(p.index).map(|j| {
            vec![
                catalog::PLATFORMS[(j as usize) % catalog::PLATFORMS.len()].to_string(),
                sources::stranger_handle(j),
                String::new(),
                "stranger".to_string(),
            ]
        });
        own.chain(stranger)
    });
    write_truth_csv(
        dir,
        "social.csv",
        &["platform", "handle", "person_id", "link"],
        social_rows,
    )?;
    Ok(persons.iter().map(|p| u64::from(p.role.ids())).sum())
}
