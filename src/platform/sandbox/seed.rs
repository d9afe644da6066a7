//! Seed data: each account's payments, generated from (random seed, account id, index) alone,
//! so the same settings always give the same payments and a restart with `--data` only has to
//! store what changed since. Payments spread over the 13 months before an anchor time;
//! in-progress ones exist only among those created in the last 90 minutes before it.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Number;

use super::data::{
    Brand, CardRec, CardType, EventRec, Id, Language, MetaVal, Millis, PayRec, Provider, RefundRec,
    St, DAY, EXPIRY, HOUR, MINUTE, SECOND,
};
use crate::platform::types::RefundStatus;

/// What a kind of council service sells: a reference prefix and (description, min, max pence).
struct Service {
    keywords: &'static [&'static str],
    slug: &'static str,
    prefix: &'static str,
    items: &'static [(&'static str, i64, i64)],
}

const SERVICES: &[Service] = &[
    Service {
        keywords: &["parking"],
        slug: "parking",
        prefix: "PRK",
        items: &[
            ("Resident parking permit (12 months)", 3_500, 15_000),
            ("Visitor parking vouchers", 500, 3_000),
            ("Penalty charge notice", 3_500, 13_000),
            ("Business parking permit", 20_000, 60_000),
        ],
    },
    Service {
        keywords: &["planning"],
        slug: "planning",
        prefix: "PLN",
        items: &[
            ("Householder planning application", 25_800, 25_800),
            ("Full planning application", 57_800, 231_200),
            ("Lawful development certificate", 12_900, 28_900),
            ("Pre-application advice", 15_000, 90_000),
        ],
    },
    Service {
        keywords: &["pest"],
        slug: "pest-control",
        prefix: "PST",
        items: &[
            ("Rat and mouse treatment", 6_000, 12_000),
            ("Wasp nest treatment", 5_500, 8_500),
            ("Bed bug treatment", 15_000, 35_000),
            ("Cockroach treatment", 9_000, 20_000),
        ],
    },
    Service {
        keywords: &["licen"],
        slug: "licensing",
        prefix: "LIC",
        items: &[
            ("Premises licence application", 10_000, 190_500),
            ("Temporary event notice", 2_100, 2_100),
            ("Taxi driver licence renewal", 15_000, 30_000),
            ("Street trading licence", 30_000, 150_000),
        ],
    },
    Service {
        keywords: &["waste", "bin", "recycl"],
        slug: "waste",
        prefix: "WST",
        items: &[
            ("Bulky waste collection", 2_500, 9_000),
            ("Garden waste subscription", 4_500, 7_500),
            ("Replacement wheelie bin", 2_000, 6_000),
        ],
    },
    Service {
        keywords: &["regist", "certificate"],
        slug: "registration",
        prefix: "REG",
        items: &[
            ("Copy of birth certificate", 1_100, 3_800),
            ("Copy of marriage certificate", 1_100, 3_800),
            ("Citizenship ceremony booking", 8_000, 18_000),
        ],
    },
];

/// The default account names, in order (`account-1` is the first).
pub const DEFAULT_NAMES: &[&str] = &[
    "Parking permits",
    "Planning applications",
    "Pest control",
    "Licensing",
    "Waste services",
    "Registration services",
];

const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Freya",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Muhammad",
    "Leo",
    "Harry",
    "Oscar",
    "Archie",
    "Henry",
    "Theo",
    "Jack",
    "Siân",
    "Zoë",
    "José",
    "Chloé",
    "Aoife",
    "Niamh",
    "Rhys",
    "Dafydd",
    "Seán",
    "Zainab",
    "Priya",
    "Wei",
    "Olusegun",
    "Agnieszka",
    "Björn",
    "Renée",
    "Margaret",
    "David",
    "Susan",
    "Peter",
    "Fatima",
    "Tomasz",
];

const LAST_NAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Thomas",
    "Clarke",
    "Jackson",
    "Wood",
    "Harris",
    "Edwards",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Hughes",
    "O'Brien",
    "O'Connor",
    "D'Souza",
    "Ní Bhriain",
    "Müller",
    "Núñez",
    "Kowalski",
    "Nguyen",
    "Okafor",
    "Ahmed",
    "Khan",
    "Llewellyn",
    "MacDonald",
    "Fitzgerald-Smith",
    "Ó Súilleabháin",
    "Lefèvre",
];

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "example.co.uk",
    "mail.example.com",
];

/// Card ranges seeded payments use: brand, type, first six digits.
const BINS: &[(Brand, CardType, &str)] = &[
    (Brand::Visa, CardType::Debit, "424242"),
    (Brand::Visa, CardType::Debit, "476173"),
    (Brand::Visa, CardType::Credit, "411111"),
    (Brand::Mastercard, CardType::Credit, "555555"),
    (Brand::Mastercard, CardType::Debit, "535522"),
    (Brand::Amex, CardType::Credit, "378282"),
    (Brand::Amex, CardType::Credit, "371449"),
    (Brand::Maestro, CardType::Debit, "675964"),
    (Brand::Maestro, CardType::Debit, "676770"),
];

/// What every payment of one account shares.
pub struct SeedPlan {
    pub random_seed: u64,
    pub account_hash: u64,
    pub anchor: Millis,
    pub count: usize,
    service: &'static Service,
    descriptions: Vec<Arc<str>>,
    return_url: Arc<str>,
    recent_share: f64,
}

impl SeedPlan {
    pub fn new(
        random_seed: u64,
        account_id: &str,
        account_name: &str,
        count: usize,
        anchor: Millis,
    ) -> SeedPlan {
        let account_hash = fnv1a(account_id.as_bytes());
        let lower = account_name.to_lowercase();
        let service = SERVICES
            .iter()
            .find(|s| s.keywords.iter().any(|k| lower.contains(k)))
            .unwrap_or(&SERVICES[(account_hash % SERVICES.len() as u64) as usize]);
        let descriptions = service
            .items
            .iter()
            .map(|(d, _, _)| Arc::from(*d))
            .collect();
        let return_url = Arc::from(format!(
            "https://{}.council.example.gov.uk/payments/complete",
            service.slug
        ));
        // Enough recent payments that some are always in progress, without a million of
        // them landing in the last 90 minutes.
        let recent_share = if count == 0 {
            0.0
        } else {
            (500.0 / count as f64).min(0.02)
        };
        SeedPlan {
            random_seed,
            account_hash,
            anchor,
            count,
            service,
            descriptions,
            return_url,
            recent_share,
        }
    }

    pub fn return_url(&self) -> Arc<str> {
        self.return_url.clone()
    }

    fn rng_for(&self, index: usize) -> StdRng {
        let mixed = splitmix(
            self.random_seed
                ^ splitmix(self.account_hash)
                ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        StdRng::seed_from_u64(mixed)
    }

    /// Every payment, in index order, generated on as many threads as there are cores.
    pub fn generate(&self) -> Vec<PayRec> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        if self.count < 20_000 || threads == 1 {
            return (0..self.count).map(|i| self.payment(i)).collect();
        }
        let chunk = self.count.div_ceil(threads);
        let parts: Vec<Vec<PayRec>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let start = (t * chunk).min(self.count);
                    let end = ((t + 1) * chunk).min(self.count);
                    scope.spawn(move || (start..end).map(|i| self.payment(i)).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut all = Vec::with_capacity(self.count);
        for p in parts {
            all.extend(p);
        }
        if all.len() != self.count {
            // A generator thread panicked; fall back to one thread rather than lose payments.
            return (0..self.count).map(|i| self.payment(i)).collect();
        }
        all
    }

    /// Payment number `index` of this account.
    pub fn payment(&self, index: usize) -> PayRec {
        let mut rng = self.rng_for(index);
        let anchor = self.anchor;
        let id = Id::random(&mut rng);
        let recent = rng.gen_bool(self.recent_share);
        let created = if recent {
            anchor - rng.gen_range(MINUTE..EXPIRY - MINUTE)
        } else {
            anchor - rng.gen_range(EXPIRY + MINUTE..395 * DAY)
        };

        let item = rng.gen_range(0..self.service.items.len());
        let (_, lo, hi) = self.service.items[item];
        let amount = if lo == hi {
            lo
        } else if rng.gen_bool(0.5) {
            // Round pounds, as most fees are.
            rng.gen_range(lo / 100..=hi / 100) * 100
        } else {
            rng.gen_range(lo..=hi)
        };
        let reference = format!(
            "{}-{:08}",
            self.service.prefix,
            rng.gen_range(0..100_000_000u32)
        );

        let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
        let email = rng.gen_bool(0.92).then(|| email_for(&mut rng, first, last));
        let holder = holder_for(&mut rng, first, last);

        let st = pick_state(&mut rng, recent);
        let provider = match rng.gen_range(0..100) {
            0..=49 => Provider::Stripe,
            50..=84 => Provider::Worldpay,
            _ => Provider::Sandbox,
        };
        let language = if rng.gen_bool(0.05) {
            Language::Cy
        } else {
            Language::En
        };
        let moto = rng.gen_bool(0.02);
        let metadata = rng.gen_bool(0.3).then(|| metadata_for(&mut rng, created));

        let events = events_for(&mut rng, st, created, anchor);
        let card_seen = matches!(st, St::Submitted | St::Success | St::Declined | St::Error);
        let card = card_seen.then(|| Box::new(card_for(&mut rng, &holder, created)));
        let token = (!st.is_finished()).then(|| Box::from(Id::random(&mut rng).as_str()));
        let disputed = st == St::Success && rng.gen_bool(0.004);
        let settle_days = rng.gen_range(1..=3u8);

        let mut rec = PayRec {
            id,
            created,
            amount,
            reference: reference.into(),
            description: self.descriptions[item].clone(),
            email: email.map(Into::into),
            return_url: self.return_url.clone(),
            language,
            provider,
            st,
            delayed_capture: false,
            moto,
            disputed,
            dispute: None,
            agreement: None,
            settle_days,
            metadata,
            card,
            token,
            events,
            refunds: Vec::new(),
        };
        if st == St::Success && !disputed && rng.gen_bool(0.08) {
            rec.refunds = refunds_for(&mut rng, &rec, anchor);
        }
        if disputed {
            rec.dispute = super::disputes::seeded(&rec.id, rec.captured_at(), anchor).map(Box::new);
        } else if st == St::Success {
            // From the id alone, so the payments' random streams stay as they were.
            rec.agreement = super::agreements::seeded_slot(&rec.id).map(|slot| {
                Box::new(super::agreements::seeded_id(
                    self.random_seed,
                    self.account_hash,
                    slot,
                ))
            });
        }
        rec
    }
}

fn pick_state(rng: &mut StdRng, recent: bool) -> St {
    if recent && rng.gen_bool(0.45) {
        return match rng.gen_range(0..10) {
            0..=3 => St::Created,
            4..=7 => St::Started,
            _ => St::Submitted,
        };
    }
    let roll = rng.gen_range(0..1000);
    match roll {
        0..=749 => St::Success,
        750..=829 => St::Declined,
        // A recent payment cannot have expired yet.
        830..=899 if recent => St::Success,
        830..=899 => St::Expired,
        900..=949 => St::UserCancelled,
        950..=969 => St::Cancelled,
        _ => St::Error,
    }
}

/// A consistent history ending in `st`, every step at or before `anchor`.
fn events_for(rng: &mut StdRng, st: St, created: Millis, anchor: Millis) -> Vec<EventRec> {
    let mut events = vec![EventRec {
        st: St::Created,
        at: created,
    }];
    let mut t = created;
    let mut step = |rng: &mut StdRng, lo: i64, hi: i64| {
        t = (t + rng.gen_range(lo..=hi)).min(anchor);
        t
    };
    let push = |events: &mut Vec<EventRec>, st: St, at: Millis| events.push(EventRec { st, at });
    match st {
        St::Created => {}
        St::Started => {
            let at = step(rng, 5 * SECOND, 120 * SECOND);
            push(&mut events, St::Started, at);
        }
        St::Expired => {
            if rng.gen_bool(0.5) {
                let at = step(rng, 5 * SECOND, 600 * SECOND);
                push(&mut events, St::Started, at);
            }
            push(&mut events, St::Expired, created + EXPIRY);
        }
        St::Cancelled => {
            if rng.gen_bool(0.5) {
                let at = step(rng, 5 * SECOND, 600 * SECOND);
                push(&mut events, St::Started, at);
            }
            let at = step(rng, MINUTE, 60 * MINUTE);
            push(&mut events, St::Cancelled, at);
        }
        St::UserCancelled => {
            let at = step(rng, 5 * SECOND, 120 * SECOND);
            push(&mut events, St::Started, at);
            let at = step(rng, 10 * SECOND, 600 * SECOND);
            push(&mut events, St::UserCancelled, at);
        }
        St::Submitted | St::Success | St::Declined | St::Error => {
            let at = step(rng, 5 * SECOND, 120 * SECOND);
            push(&mut events, St::Started, at);
            let at = step(rng, 30 * SECOND, 300 * SECOND);
            push(&mut events, St::Submitted, at);
            if st != St::Submitted {
                let at = step(rng, SECOND, 10 * SECOND);
                push(&mut events, st, at);
            }
        }
    }
    events
}

fn refunds_for(rng: &mut StdRng, p: &PayRec, anchor: Millis) -> Vec<RefundRec> {
    let Some(captured) = p.captured_at() else {
        return Vec::new();
    };
    let mut refunds: Vec<RefundRec> = Vec::new();
    let mut at = captured;
    let wanted = if rng.gen_bool(0.2) { 2 } else { 1 };
    for _ in 0..wanted {
        let available = p.amount
            - refunds
                .iter()
                .filter(|r| r.status != RefundStatus::Error)
                .map(|r| r.amount)
                .sum::<i64>();
        if available <= 0 {
            break;
        }
        at += rng.gen_range(HOUR..=45 * DAY);
        if at >= anchor {
            break;
        }
        let mut amount = if rng.gen_bool(0.35) {
            available
        } else {
            rng.gen_range(1..=available)
        };
        let id = Id::random(rng);
        let settle_days = rng.gen_range(1..=3u8);
        let (status, settle_at) = if at >= anchor - HOUR {
            // Still with the provider when the sandbox starts; settles a little later.
            (
                RefundStatus::Submitted,
                anchor + rng.gen_range(MINUTE..=30 * MINUTE),
            )
        } else if rng.gen_bool(0.05) {
            // Keep the documented test rule true of seed data too: errors end in 13p.
            let with_13 = amount / 100 * 100 + 13;
            if with_13 <= available {
                amount = with_13;
            }
            (
                RefundStatus::Error,
                (at + rng.gen_range(SECOND..=120 * SECOND)).min(anchor),
            )
        } else {
            if amount % 100 == 13 {
                amount -= 1;
            }
            (
                RefundStatus::Success,
                (at + rng.gen_range(SECOND..=120 * SECOND)).min(anchor),
            )
        };
        if amount < 1 {
            break;
        }
        refunds.push(RefundRec {
            id,
            created: at,
            amount,
            status,
            settle_at,
            settle_days,
        });
    }
    refunds
}

fn metadata_for(rng: &mut StdRng, created: Millis) -> super::data::Metadata {
    let year = super::data::date_of(created).year();
    let mut meta: Vec<(Box<str>, MetaVal)> = Vec::with_capacity(4);
    // Keys in sorted order, as a JSON object read back from the data file has them.
    if rng.gen_bool(0.8) {
        meta.push((
            "case_reference".into(),
            MetaVal::Str(format!("CASE-{year}-{:06}", rng.gen_range(0..1_000_000u32)).into()),
        ));
    }
    if rng.gen_bool(0.4) {
        meta.push((
            "fund_code".into(),
            MetaVal::Num(Number::from(rng.gen_range(1000..10_000u32))),
        ));
    }
    if rng.gen_bool(0.6) {
        meta.push((
            "ledger_code".into(),
            MetaVal::Str(format!("LC{:03}", rng.gen_range(100..1000u32)).into()),
        ));
    }
    if rng.gen_bool(0.3) || meta.is_empty() {
        meta.push(("reminder_sent".into(), MetaVal::Bool(rng.gen_bool(0.5))));
    }
    meta.into_boxed_slice()
}

fn card_for(rng: &mut StdRng, holder: &str, created: Millis) -> CardRec {
    let weights = rng.gen_range(0..100);
    let brand = match weights {
        0..=54 => Brand::Visa,
        55..=84 => Brand::Mastercard,
        85..=92 => Brand::Amex,
        _ => Brand::Maestro,
    };
    let choices: Vec<&(Brand, CardType, &str)> = BINS.iter().filter(|b| b.0 == brand).collect();
    let (_, card_type, first6) = choices[rng.gen_range(0..choices.len())];
    let last4 = format!("{:04}", rng.gen_range(0..10_000u32));
    let year = (super::data::date_of(created).year() % 100) as u32 + rng.gen_range(1..=5u32);
    let expiry = format!("{:02}/{:02}", rng.gen_range(1..=12u32), year % 100);
    CardRec::new(brand, *card_type, first6, &last4, &expiry, holder).unwrap_or(CardRec {
        brand,
        card_type: *card_type,
        first6: *b"424242",
        last4: *b"4242",
        expiry: *b"12/30",
        holder: holder.into(),
    })
}

fn email_for(rng: &mut StdRng, first: &str, last: &str) -> String {
    let f = fold(first);
    let l = fold(last);
    let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
    match rng.gen_range(0..5) {
        0 => format!("{f}.{l}@{domain}"),
        1 => format!("{}.{l}@{domain}", &f[..1.min(f.len())]),
        2 => format!("{f}{l}{}@{domain}", rng.gen_range(1..100)),
        3 => format!("{l}.{f}@{domain}"),
        _ => format!("{f}_{l}@{domain}"),
    }
}

fn holder_for(rng: &mut StdRng, first: &str, last: &str) -> String {
    match rng.gen_range(0..20) {
        0..=12 => format!("{first} {last}"),
        13..=15 => format!("{}. {last}", first.chars().next().unwrap_or('A')),
        16..=17 => format!("{first} {last}").to_uppercase(),
        18 => format!("Mr {first} {last}"),
        _ => format!("Dr {first} {last}"),
    }
}

/// An e-mail-safe, lower-case ASCII form of a name.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let plain = match c {
            'á' | 'à' | 'â' | 'ä' | 'Á' => 'a',
            'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'Ó' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            '-' => '-',
            _ => continue,
        };
        out.push(plain);
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn the_same_seed_gives_the_same_payments() {
        let a = SeedPlan::new(7, "account-1", "Parking permits", 400, ANCHOR).generate();
        let b = SeedPlan::new(7, "account-1", "Parking permits", 400, ANCHOR).generate();
        assert_eq!(a, b);
        let other_seed = SeedPlan::new(8, "account-1", "Parking permits", 400, ANCHOR).generate();
        assert_ne!(a[0].id, other_seed[0].id);
        let other_account =
            SeedPlan::new(7, "account-2", "Parking permits", 400, ANCHOR).generate();
        assert_ne!(a[0].id, other_account[0].id);
        // One payment does not depend on how many come before it.
        let plan = SeedPlan::new(7, "account-1", "Parking permits", 400, ANCHOR);
        assert_eq!(plan.payment(123), a[123]);
    }

    #[test]
    fn the_threaded_generator_matches_the_simple_one() {
        let plan = SeedPlan::new(3, "account-9", "Pest control", 25_000, ANCHOR);
        let all = plan.generate();
        assert_eq!(all.len(), 25_000);
        for i in [0, 1, 12_499, 12_500, 24_999] {
            assert_eq!(all[i], plan.payment(i));
        }
    }

    #[test]
    fn seed_data_is_realistic_and_consistent() {
        let plan = SeedPlan::new(1, "account-1", "Planning applications", 5_000, ANCHOR);
        let all = plan.generate();
        let success = all.iter().filter(|p| p.st == St::Success).count();
        assert!((3_300..=4_100).contains(&success), "{success} successes");
        for st in St::ALL {
            assert!(all.iter().any(|p| p.st == st), "no payment is {st:?}");
        }
        for p in &all {
            assert!(p.created < ANCHOR && p.created > ANCHOR - 396 * DAY);
            assert!((1..=10_000_000).contains(&p.amount));
            // The history starts at creation, only moves forwards and ends in the state.
            assert_eq!(p.events[0].st, St::Created);
            assert_eq!(p.events[0].at, p.created);
            assert!(p.events.windows(2).all(|w| w[0].at <= w[1].at));
            assert_eq!(p.events.last().map(|e| e.st), Some(p.st));
            assert!(p.events.iter().all(|e| e.at <= ANCHOR));
            if !p.st.is_finished() {
                assert!(p.created > ANCHOR - EXPIRY, "in progress only when recent");
                assert!(p.token.is_some());
            }
            if p.st == St::Expired {
                assert_eq!(p.events.last().map(|e| e.at), Some(p.created + EXPIRY));
            }
            assert!(p.refunded() <= p.amount);
            assert!(p.refunds.is_empty() || p.st == St::Success);
            for r in &p.refunds {
                assert!(r.created < ANCHOR);
                if r.status == RefundStatus::Error {
                    assert!(r.amount >= 1);
                }
            }
            if let Some(meta) = &p.metadata {
                assert!(!meta.is_empty() && meta.len() <= 15);
            }
            assert_eq!(
                p.card.is_some(),
                matches!(p.st, St::Submitted | St::Success | St::Declined | St::Error)
            );
        }
        assert!(all.iter().any(|p| p.refunds.len() == 2));
        assert!(all.iter().any(|p| p.refund_summary().status == "full"));
        assert!(all.iter().any(|p| p.metadata.is_some()));
        assert!(all
            .iter()
            .any(|p| p.card.as_ref().is_some_and(|c| c.holder.contains('\''))));
    }

    #[test]
    fn emails_are_plain_ascii() {
        assert_eq!(fold("Ní Bhriain"), "nibhriain");
        assert_eq!(fold("O'Brien"), "obrien");
        assert_eq!(fold("Zoë"), "zoe");
    }
}
