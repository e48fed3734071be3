//! Clean rows of each source for one person on one business day.
//!
//! Each function appends `(delivery day, row)` pairs: rows are delivered on
//! their own business day, except refunds, which are born with the purchase
//! and delivered on the day they happen.

use chrono::{Datelike, Duration, FixedOffset, SecondsFormat, Weekday};
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use cdp_core::identity::{email_sha256, phone_sha256};
use cdp_core::time::BusinessCalendar;

use crate::catalog::{
    self, ANDROID_VERSIONS, APP_VERSIONS, CATEGORIES, CITIES, CN_IP_OCTETS, COUNTRIES,
    IOS_VERSIONS, PLATFORMS, Persona, TRIP_MIX, WEB_VERSIONS,
};
use crate::row::{Cell, Row};
use crate::world::{Change, Os, Person, Role, SocialLink, World, base36, customer_id};

/// The five daily sources, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Customers = 0,
    Transactions = 1,
    DeviceEvents = 2,
    SocialProfiles = 3,
    OfferEvents = 4,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Customers,
        Source::Transactions,
        Source::DeviceEvents,
        Source::SocialProfiles,
        Source::OfferEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Customers => "customers",
            Source::Transactions => "transactions",
            Source::DeviceEvents => "device_events",
            Source::SocialProfiles => "social_profiles",
            Source::OfferEvents => "offer_events",
        }
    }

    /// Event sources may deliver rows late.
    pub fn is_event(self) -> bool {
        matches!(self, Source::Transactions | Source::DeviceEvents)
    }
}

/// Rows produced for one person-day: `(source, delivery day, row)`.
pub type Out = Vec<(Source, u32, Row)>;

/// One person on one business day: what every source generator reads.
#[derive(Clone, Copy)]
pub struct PersonDay<'a> {
    pub world: &'a World,
    pub clock: &'a Clock,
    pub person: &'a Person,
    /// Day index from the start.
    pub d: u32,
}

impl PersonDay<'_> {
    /// True before the person's first customer_id is opened: no cards, no
    /// app login yet.
    pub fn before_onboarding(&self) -> bool {
        (self.d as i32) < self.person.onboard[0]
    }
}

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Formats instants the way the bank's systems do.
pub struct Clock {
    cal: BusinessCalendar,
    world_start: chrono::DateTime<chrono::Utc>,
}

impl Clock {
    pub fn new(world: &World) -> Clock {
        let cal = BusinessCalendar::default();
        Clock {
            cal,
            world_start: cal.day_start(world.start),
        }
    }

    /// RFC 3339 text for `secs` after the start of business day `d`, in
    /// the given UTC offset (hours), or with `Z` when `offset` is `None`.
    pub fn ts(&self, d: u32, secs: i64, offset: Option<i32>) -> String {
        let instant = self.world_start + Duration::seconds(i64::from(d) * DAY + secs);
        match offset {
            None => instant.to_rfc3339_opts(SecondsFormat::Secs, true),
            Some(h) => instant
                .with_timezone(&FixedOffset::east_opt(h * 3600).expect("valid offset"))
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        }
    }

    /// A domestic timestamp: `+08:00` or, from some systems, UTC `Z`.
    pub fn domestic(&self, d: u32, secs: i64, r: &mut ChaCha8Rng) -> String {
        let offset = if r.random_bool(0.4) { None } else { Some(8) };
        self.ts(d, secs, offset)
    }

    /// The business calendar.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.cal
    }
}

fn hour_secs(weights: &[f64; 24], r: &mut ChaCha8Rng) -> i64 {
    let total: f64 = weights.iter().sum();
    let mut x = r.random_range(0.0..total);
    let mut hour = 23;
    for (h, w) in weights.iter().enumerate() {
        x -= w;
        if x < 0.0 {
            hour = h;
            break;
        }
    }
    hour as i64 * 3600 + r.random_range(0..3600)
}

fn weighted(items: &[(usize, f64)], r: &mut ChaCha8Rng) -> usize {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = r.random_range(0.0..total);
    for (k, w) in items {
        x -= w;
        if x < 0.0 {
            return *k;
        }
    }
    items[items.len() - 1].0
}

fn poisson(mean: f64, r: &mut ChaCha8Rng) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).expect("positive mean").sample(r) as u32
}

/// The customer_id a person uses on day `d` for an everyday action.
fn acting_id(p: &Person, d: u32, r: &mut ChaCha8Rng) -> String {
    let alternates: Vec<u8> = (1..p.role.ids())
        .filter(|&s| p.onboard[s as usize] <= d as i32)
        .collect();
    match alternates.choose(r) {
        Some(&slot) if r.random_bool(0.2) => customer_id(p.index, slot),
        _ => customer_id(p.index, 0),
    }
}

/// Card transactions of person `p` on day `d`.
pub fn transactions(day: PersonDay, r: &mut ChaCha8Rng, out: &mut Out) {
    let PersonDay {
        world: w,
        clock,
        person: p,
        d,
    } = day;
    if day.before_onboarding() {
        return;
    }
    let date = w.date(d);
    let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
    let payday = matches!(date.day(), 10 | 11 | 25 | 26);
    let trip = p.trip_on(d);
    let spec = p.persona.spec();
    let mut rate = spec.txn_rate * p.activity;
    if trip.is_some() {
        rate *= 1.3;
    }
    if payday {
        rate *= 1.4;
    }
    let mix: Vec<(usize, f64)> = match trip {
        Some(_) => TRIP_MIX.to_vec(),
        None => spec
            .mix
            .iter()
            .map(|&(c, wgt)| {
                let mut wgt = wgt;
                if matches!(c, catalog::RESTAURANT | catalog::BAR) {
                    wgt *= 0.5 + p.dining;
                    if weekend {
                        wgt *= 1.5;
                    }
                }
                if matches!(
                    c,
                    catalog::ONLINE | catalog::CLOTHING | catalog::ELECTRONICS
                ) {
                    wgt *= 0.5 + p.online;
                    if payday {
                        wgt *= 1.6;
                    }
                }
                if c == catalog::TRANSPORT && weekend {
                    wgt *= 0.5;
                }
                (c, wgt)
            })
            .collect(),
    };
    let n = poisson(rate, r).min(30);
    let amount_noise = LogNormal::new(0.0, 0.6).expect("valid");
    for k in 0..n {
        let cat = &CATEGORIES[weighted(&mix, r)];
        let secs = hour_secs(cat.hours.weights(), r);
        let cny = (cat.median * p.spend * amount_noise.sample(r)).clamp(1.0, 900_000.0);
        let online = cat.online > 0.0 && r.random_bool((cat.online * (0.3 + p.online)).min(1.0));
        let channel = if online { "ecom" } else { cat.channel };
        let abroad = match trip {
            Some(t) => Some(&COUNTRIES[t.country]),
            None if online && r.random_bool(p.foreign * 0.25) => {
                Some(&COUNTRIES[[2usize, 8, 0].choose(r).copied().expect("non-empty")])
            }
            None => None,
        };
        let (country, currency, decimals, fx) = match abroad {
            Some(c) => (c.code, c.currency, c.decimals, fx_rate(c.currency)),
            None => ("CN", "CNY", 2, 1.0),
        };
        let amount = round_to(cny / fx, decimals);
        let status = match r.random_range(0..1000) {
            0..10 => "reversed",
            x if x < 40 + if abroad.is_some() { 50 } else { 0 } => "declined",
            _ => "approved",
        };
        let favourite = r.random_bool(0.7);
        let m = if favourite {
            (u64::from(p.index) * 31
                + u64::from(r.random_range(0..3u32)) * 7
                + cat.mcc.len() as u64)
                % 400
        } else {
            r.random_range(0..400)
        };
        let (merchant_id, merchant_name) = merchant(cat, m, abroad.map(|c| c.code));
        let ts = match trip {
            Some(t) => clock.ts(d, secs, Some(COUNTRIES[t.country].offset_hours)),
            None => clock.domestic(d, secs, r),
        };
        let slot = if p.role.ids() > 1 && p.onboard[1] <= d as i32 && r.random_bool(0.15) {
            1
        } else {
            0
        };
        let cid = customer_id(p.index, slot);
        let card = format!("CD{}", base36(u64::from(p.index) * 4 + u64::from(slot) * 2));
        let row = |id: String, ts: String, amount: f64, status: &str| -> Row {
            vec![
                Cell::Text(id),
                Cell::text(&cid),
                Cell::text(&card),
                Cell::Text(ts),
                Cell::Dec(amount, decimals),
                Cell::text(currency),
                Cell::text(cat.mcc),
                Cell::text(&merchant_id),
                Cell::text(&merchant_name),
                Cell::text(channel),
                Cell::text(country),
                Cell::text(status),
            ]
        };
        let id = txn_id(w, d, p.index, k);
        if cat.refundable && status == "approved" && r.random_bool(0.04) {
            let later = d + r.random_range(1..=10);
            if later < w.days {
                let part = if r.random_bool(0.6) {
                    1.0
                } else {
                    r.random_range(0.2..0.9)
                };
                let refund_secs = hour_secs(catalog::Hours::Daytime.weights(), r);
                let refund_ts = clock.domestic(later, refund_secs, r);
                let refund = row(
                    txn_id(w, d, p.index, k + 32),
                    refund_ts,
                    -round_to(amount * part, decimals),
                    "approved",
                );
                out.push((Source::Transactions, later, refund));
            }
        }
        out.push((Source::Transactions, d, row(id, ts, amount, status)));
    }
}

fn txn_id(w: &World, d: u32, i: u32, k: u32) -> String {
    let n = (u64::from(d) * u64::from(w.persons) + u64::from(i)) * 64 + u64::from(k);
    format!("TX{}", base36(n))
}

fn round_to(x: f64, decimals: usize) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (x * f).round() / f
}

fn fx_rate(currency: &str) -> f64 {
    static FX: std::sync::LazyLock<std::collections::BTreeMap<String, f64>> =
        std::sync::LazyLock::new(|| {
            cdp_core::reference::fx_rates().expect("embedded FX table parses")
        });
    FX.get(currency).copied().unwrap_or(1.0)
}

fn merchant(cat: &catalog::Category, m: u64, country: Option<&str>) -> (String, String) {
    let base = cat.names[(m as usize) % cat.names.len()];
    let name = if (m as usize) < cat.names.len() {
        base.to_string()
    } else {
        format!("{base} #{}", m)
    };
    match country {
        Some(cc) => (format!("M{}{cc}{m:04}", cat.mcc), name),
        None => (format!("M{}{m:05}", cat.mcc), name),
    }
}

/// A device a person uses.
struct Device {
    id: String,
    os: Os,
    rooted: Option<bool>,
    bind_day: Option<u32>,
    weight: f64,
}

fn devices(p: &Person, d: u32) -> Vec<Device> {
    let own = |slot: u64| format!("DV{}", base36(u64::from(p.index) * 4 + slot));
    let mut list = Vec::new();
    let phone_slot = match p.new_phone {
        Some(day) if d >= day => 3,
        _ => 0,
    };
    list.push(Device {
        id: own(phone_slot),
        os: p.phone_os,
        rooted: p.rooted,
        bind_day: (phone_slot == 3).then_some(p.new_phone).flatten(),
        weight: 6.0,
    });
    if p.has_web {
        list.push(Device {
            id: own(1),
            os: Os::Web,
            rooted: None,
            bind_day: None,
            weight: 2.0,
        });
    }
    if p.has_tablet && p.tablet_bind.is_none_or(|b| d >= b) {
        list.push(Device {
            id: own(2),
            os: Os::Ios,
            rooted: Some(false),
            bind_day: p.tablet_bind,
            weight: 1.0,
        });
    }
    if let Some(f) = p.family {
        list.push(Device {
            id: family_tablet(f),
            os: if f % 2 == 0 { Os::Android } else { Os::Ios },
            rooted: Some(false),
            bind_day: None,
            weight: 1.5,
        });
    }
    list
}

/// The tablet a family shares.
pub fn family_tablet(f: u32) -> String {
    format!("DF{}", base36(u64::from(f)))
}

/// Device ids of a person over the horizon, with whether they are shared.
pub fn device_ids(w: &World, p: &Person) -> Vec<(String, bool)> {
    let mut ids: Vec<(String, bool)> = Vec::new();
    for d in [0, w.days.saturating_sub(1)] {
        for dev in devices(p, d) {
            let shared = dev.id.starts_with("DF");
            if !ids.iter().any(|(id, _)| *id == dev.id) {
                ids.push((dev.id, shared));
            }
        }
    }
    ids
}

/// App and web telemetry of person `p` on day `d`.
pub fn device_events(day: PersonDay, r: &mut ChaCha8Rng, out: &mut Out) {
    let PersonDay {
        world: w,
        clock,
        person: p,
        d,
    } = day;
    if day.before_onboarding() {
        return;
    }
    let spec = p.persona.spec();
    let sessions = poisson(spec.sessions * (0.2 + p.digital) * 1.2, r).min(8);
    let devs = devices(p, d);
    let trip = p.trip_on(d);
    let mut seq = 0u64;
    let mut event = |dev: &Device, secs: i64, cid: Option<&str>, kind: &str, r: &mut ChaCha8Rng| {
        seq += 1;
        let id = (u64::from(d) * u64::from(w.persons) + u64::from(p.index)) * 256 + seq;
        let (os_version, app_version) = match dev.os {
            Os::Ios => (
                IOS_VERSIONS[(p.index as usize) % 5],
                Some(APP_VERSIONS[(p.index as usize + d as usize / 30) % 4]),
            ),
            Os::Android => (
                ANDROID_VERSIONS[(p.index as usize) % 4],
                Some(APP_VERSIONS[(p.index as usize + d as usize / 30) % 4]),
            ),
            Os::Web => (WEB_VERSIONS[(p.index as usize) % 4], None),
        };
        let (geo, octet, offset) = match trip {
            Some(t) => {
                let c = &COUNTRIES[t.country];
                (c.code, c.ip_octet, Some(c.offset_hours))
            }
            None => (
                "CN",
                CN_IP_OCTETS[(p.index as usize + d as usize) % CN_IP_OCTETS.len()],
                None,
            ),
        };
        let ip = format!(
            "{octet}.{}.{}.{}",
            (p.index >> 8) % 256,
            p.index % 256,
            1 + (d + seq as u32) % 254
        );
        let ts = match offset {
            Some(h) => clock.ts(d, secs, Some(h)),
            None => clock.domestic(d, secs, r),
        };
        let row = vec![
            Cell::Text(format!("EV{}", base36(id))),
            Cell::Text(ts),
            Cell::text(&dev.id),
            cid.map_or(Cell::Null, Cell::text),
            Cell::text(kind),
            Cell::text(dev.os.name()),
            Cell::text(os_version),
            app_version.map_or(Cell::Null, Cell::text),
            Cell::Text(ip),
            Cell::text(geo),
            dev.rooted.map_or(Cell::Null, Cell::Bool),
        ];
        out.push((Source::DeviceEvents, d, row));
    };
    let weights: Vec<(usize, f64)> = devs
        .iter()
        .enumerate()
        .map(|(k, dv)| (k, dv.weight))
        .collect();
    let mut bound = false;
    for _ in 0..sessions {
        let dev = &devs[weighted(&weights, r)];
        let mut t = hour_secs(catalog::Hours::Evening.weights(), r).min(DAY - 600);
        event(dev, t, None, "app_open", r);
        if r.random_bool(0.03) {
            continue; // browsed without logging in
        }
        let cid = acting_id(p, d, r);
        if r.random_bool(0.04) {
            for _ in 0..r.random_range(1..=2) {
                t += r.random_range(3..20);
                event(dev, t, Some(&cid), "login_failed", r);
            }
        }
        t += r.random_range(3..40);
        event(dev, t, Some(&cid), "login", r);
        if dev.bind_day == Some(d) && !bound {
            bound = true;
            t += r.random_range(5..60);
            event(dev, t, Some(&cid), "device_bind", r);
        }
        for _ in 0..2 {
            if r.random_bool(0.35) {
                t += r.random_range(10..300);
                event(dev, t, Some(&cid), "payment_auth", r);
            }
        }
        if r.random_bool(0.3) {
            t += r.random_range(30..900);
            event(dev, t, Some(&cid), "logout", r);
        }
    }
    if p.attack_day == Some(d) {
        let dev = &devs[0];
        let cid = customer_id(p.index, 0);
        let mut t = r.random_range(0..20 * 3600);
        for _ in 0..r.random_range(6..=12) {
            t += r.random_range(2..30);
            event(dev, t, Some(&cid), "login_failed", r);
        }
        t += r.random_range(60..600);
        event(dev, t, Some(&cid), "password_reset", r);
    }
}

/// Consented social-profile observations on day `d`: the person's own
/// profiles and, for every fifth person, one stranger's.
pub fn social_profiles(day: PersonDay, r: &mut ChaCha8Rng, out: &mut Out) {
    let PersonDay {
        world: w,
        clock,
        person: p,
        d,
    } = day;
    let entities = u64::from(w.persons) * 2;
    for s in &p.socials {
        if d < s.phase || !(d - s.phase).is_multiple_of(30) {
            continue;
        }
        let email = p.email();
        let phone_hash = phone_sha256(&p.phone());
        let email_hash = email.as_deref().and_then(email_sha256);
        let (ph, eh, cid) = match s.link {
            SocialLink::Phone => (phone_hash, None, None),
            SocialLink::Email if email_hash.is_some() => (None, email_hash, None),
            SocialLink::Email => (phone_hash, None, None),
            SocialLink::Both => (phone_hash, email_hash, None),
            SocialLink::CustomerId => (None, None, Some(customer_id(p.index, 0))),
            SocialLink::None => (None, None, None),
        };
        let record = (u64::from(d) * entities + u64::from(p.index)) * 8 + s.platform as u64;
        out.push((
            Source::SocialProfiles,
            d,
            social_row(
                clock,
                d,
                record,
                s.platform,
                &handle(p.index, s.platform),
                ph,
                eh,
                cid,
                p.persona,
                p.digital,
                r,
            ),
        ));
    }
    if let Some(j) = w.stranger_of(p.index) {
        let platform = (j as usize) % PLATFORMS.len();
        if d >= j % 30 && (d - j % 30).is_multiple_of(30) {
            let phone = Person::mobile(j, 9);
            let (ph, eh) = if j % 5 == 0 {
                (
                    None,
                    email_sha256(&format!("s{}@stranger-mail.com", base36(u64::from(j)))),
                )
            } else {
                (phone_sha256(&phone), None)
            };
            let record = (u64::from(d) * entities + u64::from(w.persons) + u64::from(j)) * 8
                + platform as u64;
            let persona = Persona::ALL[(j as usize) % Persona::ALL.len()];
            out.push((
                Source::SocialProfiles,
                d,
                social_row(
                    clock,
                    d,
                    record,
                    platform,
                    &stranger_handle(j),
                    ph,
                    eh,
                    None,
                    persona,
                    0.5,
                    r,
                ),
            ));
        }
    }
}

/// A person's public handle on a platform.
pub fn handle(i: u32, platform: usize) -> String {
    format!(
        "@u{}_{}",
        base36(u64::from(i) * 7 + 3),
        PLATFORMS[platform].len()
    )
}

/// A stranger's public handle.
pub fn stranger_handle(j: u32) -> String {
    format!("@s{}", base36(u64::from(j) * 11 + 5))
}

#[allow(clippy::too_many_arguments)]
fn social_row(
    clock: &Clock,
    d: u32,
    record: u64,
    platform: usize,
    handle: &str,
    phone_hash: Option<String>,
    email_hash: Option<String>,
    cid: Option<String>,
    persona: Persona,
    digital: f64,
    r: &mut ChaCha8Rng,
) -> Row {
    let followers = (LogNormal::new(4.0 + 2.0 * digital, 1.3)
        .expect("valid")
        .sample(r)) as i64;
    let pool = catalog::interests(persona);
    let n = r.random_range(1..=pool.len().min(3));
    let interests: Vec<String> = pool.choose_multiple(r, n).map(|s| s.to_string()).collect();
    vec![
        Cell::Text(format!("SP{}", base36(record))),
        Cell::text(PLATFORMS[platform]),
        Cell::text(handle),
        phone_hash.map_or(Cell::Null, Cell::Text),
        email_hash.map_or(Cell::Null, Cell::Text),
        cid.map_or(Cell::Null, Cell::Text),
        Cell::Text(clock.domestic(d, r.random_range(0..DAY), r)),
        Cell::Int(followers.min(1_000_000_000)),
        Cell::Int((followers as f64 * r.random_range(0.05..2.0)) as i64 % 5000),
        Cell::Int(i64::from(poisson(8.0 * digital + 0.5, r))),
        Cell::Dec(r.random_range(0.0..0.25), 4),
        Cell::List(interests),
        if r.random_bool(0.1) {
            Cell::Null
        } else {
            Cell::Dec(r.random_range(-0.4..0.8), 3)
        },
    ]
}

/// Offers sent to person `p` on day `d` (campaign days only).
pub fn offer_events(day: PersonDay, r: &mut ChaCha8Rng, out: &mut Out) {
    let PersonDay {
        world: w,
        clock,
        person: p,
        d,
    } = day;
    let horizon = i64::from(w.days) * DAY;
    for o in p.offers.iter().filter(|o| w.campaign_day(o.campaign) == d) {
        let sent = i64::from(o.sent);
        let mut seen = |after: Option<u32>| {
            after
                .map(|a| sent + i64::from(a))
                .filter(|t| i64::from(d) * DAY + t < horizon)
                .map_or(Cell::Null, |t| Cell::Text(clock.domestic(d, t, r)))
        };
        let opened = seen(o.opened);
        let accepted = seen(o.accepted);
        let id = o.campaign as u64 * u64::from(w.persons) + u64::from(p.index);
        out.push((
            Source::OfferEvents,
            d,
            vec![
                Cell::Text(format!("OE{}", base36(id * 7 + 1))),
                Cell::Text(customer_id(p.index, 0)),
                Cell::text(&w.products[o.product].offer_id),
                Cell::text(o.channel),
                Cell::Text(clock.domestic(d, sent, r)),
                opened,
                accepted,
            ],
        ));
    }
}

/// The business day on which an offer was accepted, if within the horizon.
pub fn accepted_day(w: &World, o: &crate::world::Offer) -> Option<u32> {
    let at =
        i64::from(w.campaign_day(o.campaign)) * DAY + i64::from(o.sent) + i64::from(o.accepted?);
    let day = (at / DAY) as u32;
    (day < w.days).then_some(day)
}

/// Core-banking records delivered on day `d`: on day 0 every customer_id
/// already open; later, new customer_ids and changed records.
pub fn customers(day: PersonDay, r: &mut ChaCha8Rng, out: &mut Out) {
    let PersonDay {
        world: w,
        clock,
        person: p,
        d,
    } = day;
    for slot in 0..p.role.ids() {
        let onboard = p.onboard[slot as usize];
        let accepted_today = slot == 0 && p.offers.iter().any(|o| accepted_day(w, o) == Some(d));
        let updated_today = p.updates.iter().any(|u| u.slot == slot && u.day == d);
        let (deliver, updated_at) = if d == 0 && onboard <= 0 {
            // the full extract: the record as last written before the start
            let secs = i64::from(onboard) * DAY + r.random_range(8 * 3600..20 * 3600);
            (true, secs)
        } else if d > 0 && onboard == d as i32 {
            (true, r.random_range(8 * 3600..20 * 3600))
        } else if d > 0 && (updated_today || accepted_today) {
            (true, r.random_range(0..DAY))
        } else {
            (false, 0)
        };
        if deliver {
            let ts = if d == 0 {
                clock.ts(
                    0,
                    updated_at,
                    if r.random_bool(0.5) { None } else { Some(8) },
                )
            } else {
                clock.domestic(d, updated_at, r)
            };
            let partial = d > 0 && onboard != d as i32;
            out.push((
                Source::Customers,
                d,
                customer_record(w, p, slot, d, ts, partial, r),
            ));
        }
    }
}

/// The record of customer_id `slot` of `p` as it stands on day `d`.
/// `partial` records come from a system that fills only some optional columns.
fn customer_record(
    w: &World,
    p: &Person,
    slot: u8,
    d: u32,
    updated_at: String,
    partial: bool,
    r: &mut ChaCha8Rng,
) -> Row {
    let mut income = p.income;
    let mut city = p.city;
    let mut opt_in = p.opt_in;
    let mut kyc = if slot == 0 { p.kyc } else { p.kyc.min(2) };
    let mut insurance = false;
    let mut phone_changed = false;
    let mut email_changed = false;
    for u in p.updates.iter().filter(|u| u.slot == slot && u.day <= d) {
        match u.change {
            Change::Income => {
                income = if u.day % 2 == 0 {
                    (income + 1).min(10)
                } else {
                    income.saturating_sub(1).max(1)
                }
            }
            Change::Phone => phone_changed = true,
            Change::Email => email_changed = true,
            Change::City => city = (city + 1 + u.day as usize) % CITIES.len(),
            Change::OptOut => opt_in = !opt_in,
            Change::Kyc => kyc = (kyc + 1).min(3),
            Change::Insurance => insurance = true,
        }
    }
    let mut products = p.base_products(&w.products);
    if insurance && !products.iter().any(|c| c == "insurance") {
        products.push("insurance".into());
    }
    if slot == 0 {
        for o in &p.offers {
            if accepted_day(w, o).is_some_and(|a| a <= d) {
                products.push(w.products[o.product].offer_id.clone());
            }
        }
    }
    if slot > 0 {
        products.retain(|c| c == "debit");
    }

    let phone_text = |n: &str, style: u32| -> String {
        match style % 5 {
            0 => n.to_string(),
            1 => format!("+86 {} {} {}", &n[..3], &n[3..7], &n[7..]),
            2 => format!("{}-{}-{}", &n[..3], &n[3..7], &n[7..]),
            3 => format!("+86{n}"),
            _ => format!("0086 {n}"),
        }
    };
    let own_phone = p.phone();
    let style = p.index + u32::from(slot);
    let (id_number, phone, email) = match (p.role, slot) {
        (_, 0) => {
            let phone = if phone_changed {
                Person::mobile(p.index, 6)
            } else {
                own_phone.clone()
            };
            let email = if email_changed {
                p.email().map(|e| e.replacen('@', ".new@", 1))
            } else {
                p.email()
            };
            (p.id_number(), Some(phone_text(&phone, style)), email)
        }
        (Role::DupIdNumber, _) => (
            p.id_number(),
            r.random_bool(0.5).then(|| Person::mobile(p.index, 7)),
            None,
        ),
        (Role::DupPhone, _) => (
            p.passport(slot),
            Some(phone_text(&own_phone, style + 1)),
            None,
        ),
        (Role::DupEmail, _) => {
            let email = p.email().expect("dup_email persons have an e-mail");
            (
                p.passport(slot),
                Some(Person::mobile(p.index, 7)),
                Some(format!("  {}  ", email.to_uppercase())),
            )
        }
        (Role::DupChain, 1) => (
            p.passport(slot),
            Some(phone_text(&own_phone, style + 2)),
            Some(p.work_email()),
        ),
        (Role::DupChain, _) => (
            p.passport(slot),
            Some(Person::mobile(p.index, 4)),
            Some(format!(" {}", p.work_email().to_uppercase())),
        ),
        (Role::Single, _) => unreachable!("single persons have one customer_id"),
    };
    let keep = |r: &mut ChaCha8Rng| !partial || r.random_bool(0.8);
    let onboard = w.date(0) + chrono::Days::new(0);
    let onboard_date = if p.onboard[slot as usize] >= 0 {
        onboard + chrono::Days::new(p.onboard[slot as usize] as u64)
    } else {
        onboard - chrono::Days::new((-p.onboard[slot as usize]) as u64)
    };
    let segment = match income {
        10 if p.spend > 2.5 => "private",
        8..=10 => "premier",
        6 | 7 => "affluent",
        _ => "mass",
    };
    let city_cell = if keep(r) && (p.index + u32::from(slot)) % 20 != 7 {
        Cell::text(CITIES[city].0)
    } else {
        Cell::Null
    };
    vec![
        Cell::Text(customer_id(p.index, slot)),
        Cell::Text(p.full_name()),
        Cell::Text(id_number),
        phone.filter(|_| keep(r)).map_or(Cell::Null, Cell::Text),
        email.filter(|_| keep(r)).map_or(Cell::Null, Cell::Text),
        Cell::Text(p.birth.to_string()),
        Cell::text(["M", "F", "U"][p.gender as usize]),
        city_cell,
        Cell::text(segment),
        if keep(r) && p.index % 17 != 5 {
            Cell::Int(i64::from(income))
        } else {
            Cell::Null
        },
        Cell::Text(onboard_date.to_string()),
        Cell::Int(i64::from(kyc)),
        Cell::Bool(opt_in),
        if keep(r) {
            Cell::List(products)
        } else {
            Cell::Null
        },
        Cell::Text(updated_at),
    ]
}
