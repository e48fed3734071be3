//! The synthetic population: who each person is, their traits, identities,
//! devices, trips, social profiles, offers and record updates.
//!
//! Everything is a pure function of `(seed, person index)`, so any part of
//! the data can be generated in any order, in parallel, and again.
//!
//! Persons come in blocks of [`BLOCK`]; fixed offsets in a block carry the
//! identity traps, so every sample of a few hundred persons has all of them:
//!
//! | offset | trap |
//! |---|---|
//! | 0 .. 2–4 | a family sharing a tablet (must not merge) |
//! | 10 | a second customer_id with the same id_number |
//! | 11 | a second customer_id with the same phone in another format |
//! | 12 | a second customer_id with the same e-mail in other case, with spaces |
//! | 13 | three customer_ids chained: phone links the first two, e-mail the last two |
//! | 99 | a stranger with the same name, birth date and city as offset 98 of the next block |

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use crate::catalog::{
    BASE_PRODUCTS, CITIES, EMAIL_DOMAINS, GIVEN_NAMES, LATIN_NAMES, PERSONAS, PLATFORMS, Persona,
    SURNAMES,
};
use crate::rng::{Stream, rng};

/// Persons per block of planted traps.
pub const BLOCK: u32 = 100;

/// The customer_id of person `i`'s registration `slot` (0 = primary).
pub fn customer_id(i: u32, slot: u8) -> String {
    let base = match slot {
        0 => 100_000_000,
        1 => 600_000_000,
        _ => 700_000_000,
    };
    format!("C{:09}", base + i)
}

/// How a person's extra customer_ids link to the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// One customer_id.
    Single,
    /// Second id shares the id_number.
    DupIdNumber,
    /// Second id shares the phone, formatted differently.
    DupPhone,
    /// Second id shares the e-mail, in other case and with spaces.
    DupEmail,
    /// Three ids: 1–2 share the phone, 2–3 share the e-mail.
    DupChain,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::DupIdNumber => "dup_id_number",
            Role::DupPhone => "dup_phone",
            Role::DupEmail => "dup_email",
            Role::DupChain => "dup_chain",
        }
    }

    /// Number of customer_ids.
    pub fn ids(self) -> u8 {
        match self {
            Role::Single => 1,
            Role::DupChain => 3,
            _ => 2,
        }
    }
}

/// Phone operating system of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Ios,
    Android,
    Web,
}

impl Os {
    pub fn name(self) -> &'static str {
        match self {
            Os::Ios => "ios",
            Os::Android => "android",
            Os::Web => "web",
        }
    }
}

/// A trip abroad: business days `start .. start + len`.
#[derive(Debug, Clone, Copy)]
pub struct Trip {
    pub start: u32,
    pub len: u32,
    pub country: usize,
}

/// How a social profile can be linked to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocialLink {
    Phone,
    Email,
    Both,
    CustomerId,
    None,
}

impl SocialLink {
    pub fn name(self) -> &'static str {
        match self {
            SocialLink::Phone => "phone",
            SocialLink::Email => "email",
            SocialLink::Both => "both",
            SocialLink::CustomerId => "customer_id",
            SocialLink::None => "none",
        }
    }
}

/// One social profile of a person.
#[derive(Debug, Clone, Copy)]
pub struct Social {
    pub platform: usize,
    pub link: SocialLink,
    /// First observation day; then every 30 days.
    pub phase: u32,
}

/// One offer sent to a person, and its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// Index of the campaign (see [`World::campaign_day`]).
    pub campaign: usize,
    /// Index into the card products.
    pub product: usize,
    pub channel: &'static str,
    /// Seconds after the campaign day's start (business time).
    pub sent: u32,
    /// Seconds after `sent`.
    pub opened: Option<u32>,
    /// Seconds after `sent`.
    pub accepted: Option<u32>,
}

/// A change to a customer record on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Income,
    Phone,
    Email,
    City,
    OptOut,
    Kyc,
    Insurance,
}

/// One record update of one of a person's customer_ids.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    pub slot: u8,
    pub day: u32,
    pub change: Change,
}

/// Everything fixed about a person.
#[derive(Debug, Clone)]
pub struct Person {
    pub index: u32,
    pub persona: Persona,
    pub role: Role,
    pub city: usize,
    pub birth: NaiveDate,
    /// 0 = M, 1 = F, 2 = unknown.
    pub gender: u8,
    /// (surname, given name, style: 0 hanzi, 1 pinyin, 2 latin).
    pub name: (usize, usize, u8),
    pub income: u8,
    pub kyc: u8,
    pub opt_in: bool,
    pub spend: f64,
    pub activity: f64,
    pub digital: f64,
    pub foreign: f64,
    pub online: f64,
    pub dining: f64,
    /// Onboarding of each customer_id (days before the start are negative).
    pub onboard: [i32; 3],
    /// Base product holdings: bit i = BASE_PRODUCTS[i]; bit 8+k = card product k.
    pub products: u32,
    pub family: Option<u32>,
    pub twin_of: Option<u32>,
    pub phone_os: Os,
    pub rooted: Option<bool>,
    pub has_web: bool,
    pub has_tablet: bool,
    /// Day a personal tablet was bound (None: bound before the start).
    pub tablet_bind: Option<u32>,
    /// Day the person moved to a new phone.
    pub new_phone: Option<u32>,
    /// Day of a burst of failed logins.
    pub attack_day: Option<u32>,
    pub trips: Vec<Trip>,
    pub socials: Vec<Social>,
    pub offers: Vec<Offer>,
    pub updates: Vec<Update>,
}

/// The parameters every part of the generator reads.
#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    pub persons: u32,
    pub days: u32,
    pub start: NaiveDate,
    pub products: Vec<cdp_core::reference::CardProduct>,
}

/// Days between campaigns, and the first campaign day.
pub const CAMPAIGN_EVERY: u32 = 7;
const FIRST_CAMPAIGN: u32 = 3;

impl World {
    /// Business date of day index `d`.
    pub fn date(&self, d: u32) -> NaiveDate {
        self.start + Days::new(u64::from(d))
    }

    /// Day index of campaign `k`.
    pub fn campaign_day(&self, k: usize) -> u32 {
        FIRST_CAMPAIGN + CAMPAIGN_EVERY * k as u32
    }

    /// Number of campaigns inside the horizon.
    pub fn campaigns(&self) -> usize {
        if self.days <= FIRST_CAMPAIGN {
            0
        } else {
            ((self.days - 1 - FIRST_CAMPAIGN) / CAMPAIGN_EVERY + 1) as usize
        }
    }

    /// Stranger (non-customer) social profiles owned by person `i`'s chunk:
    /// one for every fifth person.
    pub fn stranger_of(&self, i: u32) -> Option<u32> {
        i.is_multiple_of(5).then_some(i / 5)
    }

    fn block_offset(i: u32) -> u32 {
        i % BLOCK
    }

    fn family_size(&self, block: u32) -> u32 {
        2 + (rng(self.seed, Stream::Person, u64::from(block), u64::MAX).random_range(0..3))
    }

    fn role(&self, i: u32) -> Role {
        match Self::block_offset(i) {
            10 => Role::DupIdNumber,
            11 => Role::DupPhone,
            12 => Role::DupEmail,
            13 => Role::DupChain,
            _ => Role::Single,
        }
    }

    /// The person this one copies name, birth date and city from.
    fn twin_target(&self, i: u32) -> Option<u32> {
        if Self::block_offset(i) != BLOCK - 1 {
            return None;
        }
        let target = (i / BLOCK + 1) * BLOCK + (BLOCK - 2);
        let target = if target < self.persons {
            target
        } else {
            BLOCK - 2
        };
        (target < self.persons && target != i).then_some(target)
    }

    /// The family of person `i`, if any.
    pub fn family(&self, i: u32) -> Option<u32> {
        let block = i / BLOCK;
        let size = self.family_size(block);
        let members_exist = block * BLOCK + size <= self.persons;
        (Self::block_offset(i) < size && members_exist).then_some(block)
    }

    /// Members of family `f`.
    pub fn family_members(&self, f: u32) -> std::ops::Range<u32> {
        f * BLOCK..f * BLOCK + self.family_size(f)
    }

    /// Generates person `i`.
    pub fn person(&self, i: u32) -> Person {
        let mut r = rng(self.seed, Stream::Person, u64::from(i), 0);
        let persona = pick_persona(&mut r);
        let spec = persona.spec();
        let (mut city, mut birth, mut gender, mut name) = self.civil(i, persona);
        let twin_of = self.twin_target(i);
        if let Some(t) = twin_of {
            let mut tr = rng(self.seed, Stream::Person, u64::from(t), 0);
            let tp = pick_persona(&mut tr);
            (city, birth, gender, name) = self.civil(t, tp);
        }
        let trait_in = |r: &mut ChaCha8Rng, (lo, hi): (f64, f64)| r.random_range(lo..=hi);
        let foreign = trait_in(&mut r, spec.foreign);
        let online = trait_in(&mut r, spec.online);
        let dining = trait_in(&mut r, spec.dining);
        let digital = trait_in(&mut r, spec.digital);
        let spend = spec.spend * LogNormal::new(0.0, 0.35).expect("valid").sample(&mut r);
        let activity = LogNormal::new(0.0, 0.3).expect("valid").sample(&mut r);
        let income = r.random_range(spec.income.0..=spec.income.1);
        let kyc = if persona == Persona::Affluent {
            3
        } else {
            *[1u8, 2, 2, 2, 3, 3, 3, 3, 3, 2]
                .choose(&mut r)
                .expect("non-empty")
        };
        let opt_in = r.random_bool(0.8);
        let role = self.role(i);

        let age_days = (self.start - birth).num_days() as i32;
        let adult_days = (age_days - 18 * 365).max(30);
        let tenure = if r.random_bool(0.04) {
            -(r.random_range(0..self.days.max(1)) as i32)
        } else {
            r.random_range(1..=adult_days.min(20 * 365))
        };
        let mut onboard = [-tenure, 0, 0];
        for slot in 1..role.ids() as usize {
            onboard[slot] = if r.random_bool(0.5) {
                r.random_range(onboard[0]..=onboard[0].max(-1))
            } else {
                r.random_range(0..self.days.max(1) as i32)
            }
            .max(onboard[slot - 1]);
        }

        let mut products = 1u32; // debit
        let mut hold = |bit: u32, p: f64, r: &mut ChaCha8Rng| {
            if r.random_bool(p) {
                products |= 1 << bit;
            }
        };
        hold(1, 0.35, &mut r);
        hold(
            2,
            if persona == Persona::Affluent {
                0.6
            } else {
                0.08
            },
            &mut r,
        );
        hold(3, 0.15, &mut r);
        hold(4, 0.2, &mut r);
        let card_hold: [f64; 6] = match persona {
            Persona::Traveller => [0.05, 0.12, 0.02, 0.02, 0.0, 0.03],
            Persona::Affluent => [0.08, 0.03, 0.02, 0.05, 0.0, 0.15],
            Persona::Student => [0.0, 0.0, 0.02, 0.0, 0.10, 0.0],
            _ => [0.0, 0.01, 0.05, 0.03, 0.0, 0.0],
        };
        for (k, p) in card_hold.iter().enumerate() {
            hold(8 + k as u32, *p, &mut r);
        }

        let phone_os = if r.random_bool(0.45) {
            Os::Ios
        } else {
            Os::Android
        };
        let rooted = match phone_os {
            Os::Android if r.random_bool(0.05) => None,
            Os::Android => Some(r.random_bool(0.04)),
            _ => Some(false),
        };
        let has_web = r.random_bool(0.4);
        let has_tablet = r.random_bool(0.15);
        let tablet_bind = (has_tablet && r.random_bool(0.2)).then(|| r.random_range(0..self.days));
        let new_phone = r
            .random_bool(0.05)
            .then(|| r.random_range(1..self.days.max(2)));
        let attack_day = r.random_bool(0.01).then(|| r.random_range(0..self.days));

        let mut trips = Vec::new();
        let trip_rate = foreign * foreign * 2.5 * f64::from(self.days) / 90.0;
        let n_trips = Poisson::new(trip_rate.max(1e-9))
            .expect("valid")
            .sample(&mut r) as u32;
        for _ in 0..n_trips.min(3) {
            let len = r.random_range(3..=10);
            let start = r.random_range(0..self.days);
            let country = r.random_range(0..crate::catalog::COUNTRIES.len());
            if trips
                .iter()
                .all(|t: &Trip| start + len < t.start || start > t.start + t.len)
            {
                trips.push(Trip {
                    start,
                    len,
                    country,
                });
            }
        }

        let mut socials = Vec::new();
        if r.random_bool((0.15 + 0.35 * digital).min(0.9)) {
            let n = if r.random_bool(0.3) { 2 } else { 1 };
            let first = r.random_range(0..PLATFORMS.len());
            for k in 0..n {
                let link = match r.random_range(0..100) {
                    0..50 => SocialLink::Phone,
                    50..70 => SocialLink::Email,
                    70..90 => SocialLink::Both,
                    90..96 => SocialLink::CustomerId,
                    _ => SocialLink::None,
                };
                socials.push(Social {
                    platform: (first + k) % PLATFORMS.len(),
                    link,
                    phase: r.random_range(0..30),
                });
            }
        }

        let mut person = Person {
            index: i,
            persona,
            role,
            city,
            birth,
            gender,
            name,
            income,
            kyc,
            opt_in,
            spend,
            activity,
            digital,
            foreign,
            online,
            dining,
            onboard,
            products,
            family: self.family(i),
            twin_of,
            phone_os,
            rooted,
            has_web,
            has_tablet,
            tablet_bind,
            new_phone,
            attack_day,
            trips,
            socials,
            offers: Vec::new(),
            updates: Vec::new(),
        };
        person.offers = self.offers(&person);
        person.updates = self.updates(&person);
        person
    }

    /// City, birth date, gender and name of person `i`.
    fn civil(&self, i: u32, persona: Persona) -> (usize, NaiveDate, u8, (usize, usize, u8)) {
        let mut r = rng(self.seed, Stream::Identity, u64::from(i), 0);
        let spec = persona.spec();
        let city = r.random_range(0..CITIES.len());
        let age = r.random_range(spec.age.0..=spec.age.1);
        let birth =
            self.start - Days::new(u64::from(age) * 365 + u64::from(r.random_range(0..365u32)));
        let gender = match r.random_range(0..100) {
            0..49 => 0,
            49..98 => 1,
            _ => 2,
        };
        let style = match r.random_range(0..100) {
            0..85 => 0,
            85..95 => 1,
            _ => 2,
        };
        let name = (
            r.random_range(0..SURNAMES.len()),
            r.random_range(0..GIVEN_NAMES.len()),
            style,
        );
        (city, birth, gender, name)
    }

    /// Campaign offers and their outcomes, campaign by campaign.
    fn offers(&self, p: &Person) -> Vec<Offer> {
        let mut offers: Vec<Offer> = Vec::new();
        if !p.opt_in {
            return offers;
        }
        let age = (self.start - p.birth).num_days() as f64 / 365.25;
        let mut held = p.products;
        for k in 0..self.campaigns() {
            let day = self.campaign_day(k);
            let mut r = rng(self.seed, Stream::Offer, u64::from(p.index), k as u64);
            if day as i32 <= p.onboard[0] || !r.random_bool(0.12) {
                continue;
            }
            for o in &offers {
                if let Some(acc) = o.accepted {
                    let when =
                        self.campaign_day(o.campaign) as u64 * 86_400 + u64::from(o.sent + acc);
                    if when < u64::from(day) * 86_400 {
                        held |= 1 << (8 + o.product);
                    }
                }
            }
            let eligible: Vec<(usize, f64)> = self
                .products
                .iter()
                .enumerate()
                .filter(|(j, prod)| held & (1 << (8 + j)) == 0 && p.income >= prod.min_income_band)
                .map(|(j, prod)| {
                    (
                        j,
                        (1.0 + affinity(p, age, &prod.category, &prod.offer_id)).max(0.1),
                    )
                })
                .collect();
            let total: f64 = eligible.iter().map(|(_, w)| w).sum();
            if eligible.is_empty() {
                continue;
            }
            let mut pick = r.random_range(0.0..total);
            let product = eligible
                .iter()
                .find(|(_, w)| {
                    pick -= w;
                    pick < 0.0
                })
                .map_or(eligible[eligible.len() - 1].0, |(j, _)| *j);
            let channel = match r.random_range(0..100) {
                0..5 => "branch",
                5..20 => "email",
                20..45 => "sms",
                _ if p.digital > 0.35 => "app_push",
                _ => "sms",
            };
            let sent = 9 * 3600 + r.random_range(0..10 * 3600);
            let open_p = match channel {
                "branch" => 1.0,
                "app_push" => 0.45,
                "sms" => 0.35,
                _ => 0.25,
            };
            let recent = offers
                .iter()
                .filter(|o| day - self.campaign_day(o.campaign) <= 30)
                .count() as f64;
            let prod = &self.products[product];
            let logit = -3.4
                + affinity(p, age, &prod.category, &prod.offer_id)
                + match channel {
                    "branch" => 0.8,
                    "app_push" => 0.3,
                    "sms" => -0.2,
                    _ => -0.4,
                }
                - 0.4 * recent;
            let accept = r.random_bool(1.0 / (1.0 + (-logit).exp()));
            let opened = (accept || r.random_bool(open_p)).then(|| {
                if channel == "branch" {
                    0
                } else {
                    r.random_range(60..12 * 3600)
                }
            });
            let accepted = accept.then(|| {
                let days = if r.random_bool(0.08) {
                    r.random_range(31..45)
                } else {
                    (rand_distr::Exp::new(0.2).expect("valid").sample(&mut r) as u32).min(29)
                };
                opened.unwrap_or(0) + days * 86_400 + r.random_range(0..3600)
            });
            offers.push(Offer {
                campaign: k,
                product,
                channel,
                sent,
                opened,
                accepted,
            });
        }
        offers
    }

    /// Record updates of each customer_id over the horizon: at most one per
    /// id and day, never on day 0 (the first delivery is the full extract).
    fn updates(&self, p: &Person) -> Vec<Update> {
        let mut updates = Vec::new();
        for slot in 0..p.role.ids() {
            let mut r = rng(
                self.seed,
                Stream::Update,
                u64::from(p.index),
                u64::from(slot),
            );
            let rate = 1.2 * f64::from(self.days) / 90.0;
            let n = Poisson::new(rate.max(1e-9)).expect("valid").sample(&mut r) as u32;
            let n = if self.days > 1 { n.min(4) } else { 0 };
            let mut days: Vec<u32> = (0..n)
                .map(|_| r.random_range(1..self.days))
                .filter(|d| *d as i32 > p.onboard[slot as usize])
                .collect();
            days.sort_unstable();
            days.dedup();
            for day in days {
                let change = match r.random_range(0..100) {
                    0..30 => Change::Income,
                    30..40 => Change::Phone,
                    40..45 => Change::Email,
                    45..55 => Change::City,
                    55..70 => Change::OptOut,
                    70..80 => Change::Kyc,
                    _ => Change::Insurance,
                };
                updates.push(Update { slot, day, change });
            }
        }
        updates
    }
}

fn pick_persona(r: &mut ChaCha8Rng) -> Persona {
    let mut x: f64 = r.random();
    for (k, spec) in PERSONAS.iter().enumerate() {
        x -= spec.weight;
        if x < 0.0 {
            return Persona::ALL[k];
        }
    }
    Persona::Dormant
}

/// How much a person's behaviour predisposes them to a product category.
/// Deliberately non-linear: thresholds and interactions that trees find
/// and a linear model only approximates.
pub fn affinity(p: &Person, age: f64, category: &str, offer_id: &str) -> f64 {
    match category {
        "travel" if p.foreign > 0.55 && p.income >= 6 => 3.0,
        "travel" if p.foreign > 0.55 => {
            if offer_id.ends_with("gold") {
                2.4
            } else {
                1.0
            }
        }
        "travel" if p.foreign > 0.3 => 0.6,
        "cashback" if p.online > 0.55 && (0.6..1.8).contains(&p.spend) => 2.6,
        "cashback" if p.online > 0.55 => 0.8,
        "cashback" => 0.2,
        "dining" if p.dining > 0.55 && p.digital > 0.5 => 2.8,
        "dining" if p.dining > 0.55 => 1.2,
        "student" if age < 25.0 => 3.0,
        "student" if age < 28.0 => 1.0,
        "student" => -1.0,
        "premium" if p.income >= 9 && p.spend > 1.4 => 3.2,
        "premium" if p.income >= 8 => 1.0,
        _ => 0.0,
    }
}

/// Identity attributes of a person's customer_ids.
impl Person {
    fn pinyin(&self) -> String {
        format!("{}.{}", SURNAMES[self.name.0].1, GIVEN_NAMES[self.name.1].1)
    }

    /// Full name as the core-banking system holds it.
    pub fn full_name(&self) -> String {
        let (s, g, style) = self.name;
        match style {
            0 => format!("{}{}", SURNAMES[s].0, GIVEN_NAMES[g].0),
            1 => format!(
                "{} {}",
                capitalise(SURNAMES[s].1),
                capitalise(GIVEN_NAMES[g].1)
            ),
            _ => LATIN_NAMES[(s + g) % LATIN_NAMES.len()].to_string(),
        }
    }

    /// Resident identity number (GB 11643, with its check digit).
    pub fn id_number(&self) -> String {
        let province = CITIES[self.city].1;
        let region = province * 10_000 + (self.index / 500) % 10_000;
        let seq = (self.index % 500) * 2 + u32::from(self.gender != 1);
        let body = format!(
            "{region:06}{:04}{:02}{:02}{seq:03}",
            self.birth.year(),
            self.birth.month(),
            self.birth.day()
        );
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = body
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let check = b"10X98765432"[(sum % 11) as usize] as char;
        format!("{body}{check}")
    }

    /// A passport number unique to this person and slot.
    pub fn passport(&self, slot: u8) -> String {
        format!(
            "E{:08}",
            (u64::from(self.index) * 37 + u64::from(slot)) % 100_000_000
        )
    }

    /// An 11-digit mobile number. `space` keeps numbers of different kinds
    /// apart: 3/5/8 primary phones, 7 second-registration phones, 6 changed
    /// phones, 4 the chain's third phone, 9 strangers.
    pub fn mobile(index: u32, space: u8) -> String {
        let n = (u64::from(index) * 7_919_923 + 12_345) % 1_000_000_000;
        format!("1{space}{n:09}")
    }

    /// The person's own mobile number.
    pub fn phone(&self) -> String {
        let space = [3u8, 5, 8][(self.index % 3) as usize];
        Self::mobile(self.index, space)
    }

    /// The person's e-mail, or none (a fifth of people give none).
    pub fn email(&self) -> Option<String> {
        (self.index % 5 != 4 || matches!(self.role, Role::DupEmail)).then(|| {
            let domain = EMAIL_DOMAINS[(self.index as usize / 7) % EMAIL_DOMAINS.len()];
            format!(
                "{}.{}@{domain}",
                self.pinyin(),
                base36(u64::from(self.index))
            )
        })
    }

    /// A second, work e-mail.
    pub fn work_email(&self) -> String {
        format!(
            "{}{}.w@corp-mail.cn",
            self.pinyin().replace('.', ""),
            base36(u64::from(self.index))
        )
    }

    /// The product codes held before any offer is accepted.
    pub fn base_products(&self, products: &[cdp_core::reference::CardProduct]) -> Vec<String> {
        let mut codes: Vec<String> = BASE_PRODUCTS
            .iter()
            .enumerate()
            .filter(|(b, _)| self.products & (1 << b) != 0)
            .map(|(_, c)| c.to_string())
            .collect();
        codes.extend(
            products
                .iter()
                .enumerate()
                .filter(|(k, _)| self.products & (1 << (8 + k)) != 0)
                .map(|(_, p)| p.offer_id.clone()),
        );
        codes
    }

    /// Whether the person is abroad on day `d`, and where.
    pub fn trip_on(&self, d: u32) -> Option<&Trip> {
        self.trips
            .iter()
            .find(|t| t.start <= d && d < t.start + t.len)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Lower-case base-36 digits of `n`.
pub fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(n: u32) -> World {
        World {
            seed: 7,
            persons: n,
            days: 60,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            products: cdp_core::reference::card_products().unwrap(),
        }
    }

    #[test]
    fn id_numbers_carry_a_valid_check_digit_and_are_unique() {
        let w = world(3000);
        let mut seen = std::collections::HashSet::new();
        for i in 0..3000 {
            let p = w.person(i);
            let id = p.id_number();
            assert_eq!(id.len(), 18);
            assert!(seen.insert(id), "duplicate id_number for person {i}");
        }
        // The published example 11010519491231002X.
        let sum: u32 = "11010519491231002"
            .bytes()
            .zip([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        assert_eq!(b"10X98765432"[(sum % 11) as usize], b'X');
    }

    #[test]
    fn phones_are_unique_within_and_across_spaces() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            for space in [3, 7, 6, 4, 9] {
                assert!(seen.insert(Person::mobile(i, space)));
            }
        }
    }

    #[test]
    fn traps_sit_at_their_block_offsets() {
        let w = world(300);
        assert_eq!(w.person(10).role, Role::DupIdNumber);
        assert_eq!(w.person(113).role, Role::DupChain);
        let twin = w.person(99);
        let target = w.person(198);
        assert_eq!(twin.twin_of, Some(198));
        assert_eq!(twin.full_name(), target.full_name());
        assert_eq!((twin.birth, twin.city), (target.birth, target.city));
        assert_ne!(twin.id_number(), target.id_number());
        assert!(w.person(0).family.is_some() && w.person(1).family.is_some());
        assert!(w.person(50).family.is_none());
    }

    #[test]
    fn base36_round_numbers() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }
}
