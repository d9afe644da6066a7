//! The sandbox's records: payments with their state history and refunds, kept compact (ids
//! inline, small enums, shared descriptions) so an account with a million payments stays
//! within a few hundred megabytes, and how a record is shown on the wire (`types::Payment`,
//! `types::Refund`).

use std::sync::Arc;

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};
use time::Date;

pub use super::primitives::{
    date_of, from_time, get_link, start_of, to_time, Id, Millis, DAY, HOUR, MINUTE, SECOND,
};
use crate::platform::types::{
    CardDetails, Payment, PaymentLinks, PaymentState, PaymentStatus, PostLink, Refund, RefundLinks,
    RefundSettlement, RefundStatus, RefundSummary, SettlementSummary,
};

/// Unpaid payments expire (failed, P0020) this long after they were created.
pub const EXPIRY: Millis = 90 * MINUTE;

/// The platform's largest payment and refund amount, in pence.
pub const MAX_AMOUNT: i64 = 10_000_000;

/// A payment's state: the platform's status with its failure code folded in, one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum St {
    Created,
    Started,
    Submitted,
    Success,
    /// failed, P0010: the card was refused.
    Declined,
    /// failed, P0020: nobody paid within 90 minutes.
    Expired,
    /// failed, P0030: the payer pressed Cancel.
    UserCancelled,
    /// cancelled, P0040: the service cancelled it.
    Cancelled,
    /// error, P0050: the provider failed.
    Error,
}

impl St {
    pub const ALL: [St; 9] = [
        St::Created,
        St::Started,
        St::Submitted,
        St::Success,
        St::Declined,
        St::Expired,
        St::UserCancelled,
        St::Cancelled,
        St::Error,
    ];

    pub fn status(self) -> PaymentStatus {
        match self {
            St::Created => PaymentStatus::Created,
            St::Started => PaymentStatus::Started,
            St::Submitted => PaymentStatus::Submitted,
            St::Success => PaymentStatus::Success,
            St::Declined | St::Expired | St::UserCancelled => PaymentStatus::Failed,
            St::Cancelled => PaymentStatus::Cancelled,
            St::Error => PaymentStatus::Error,
        }
    }

    pub fn code(self) -> Option<&'static str> {
        match self {
            St::Declined => Some("P0010"),
            St::Expired => Some("P0020"),
            St::UserCancelled => Some("P0030"),
            St::Cancelled => Some("P0040"),
            St::Error => Some("P0050"),
            _ => None,
        }
    }

    pub fn from_parts(status: PaymentStatus, code: Option<&str>) -> Option<St> {
        Some(match (status, code) {
            (PaymentStatus::Created, _) => St::Created,
            (PaymentStatus::Started, _) => St::Started,
            (PaymentStatus::Submitted, _) => St::Submitted,
            (PaymentStatus::Success, _) => St::Success,
            (PaymentStatus::Failed, Some("P0010")) => St::Declined,
            (PaymentStatus::Failed, Some("P0020")) => St::Expired,
            (PaymentStatus::Failed, Some("P0030")) => St::UserCancelled,
            (PaymentStatus::Cancelled, _) => St::Cancelled,
            (PaymentStatus::Error, _) => St::Error,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        self.status().is_finished()
    }

    pub fn wire(self) -> PaymentState {
        match self {
            St::Declined | St::Expired | St::UserCancelled => {
                PaymentState::failed(self.code().unwrap_or("P0010"))
            }
            other => PaymentState::of(other.status()),
        }
    }

    /// The webhook this change of state sends, if any. Every unsuccessful end but expiry is
    /// reported as `card_payment_failed`: the platform has no other event type for them.
    pub fn webhook_event(self) -> Option<&'static str> {
        match self {
            St::Created | St::Submitted => None,
            St::Started => Some("card_payment_started"),
            St::Success => Some("card_payment_succeeded"),
            St::Expired => Some("card_payment_expired"),
            St::Declined | St::UserCancelled | St::Cancelled | St::Error => {
                Some("card_payment_failed")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRec {
    pub st: St,
    pub at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Maestro,
}

impl Brand {
    pub const ALL: [Brand; 4] = [Brand::Visa, Brand::Mastercard, Brand::Amex, Brand::Maestro];

    /// As the platform spells it in `card_brand`.
    pub fn label(self) -> &'static str {
        match self {
            Brand::Visa => "Visa",
            Brand::Mastercard => "Mastercard",
            Brand::Amex => "American Express",
            Brand::Maestro => "Maestro",
        }
    }

    /// The platform's brand key (as used in search filters).
    pub fn key(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "master-card",
            Brand::Amex => "american-express",
            Brand::Maestro => "maestro",
        }
    }

    pub fn parse(s: &str) -> Option<Brand> {
        Brand::ALL
            .into_iter()
            .find(|b| b.key().eq_ignore_ascii_case(s) || b.label().eq_ignore_ascii_case(s))
    }

    /// Which brand a card number belongs to, by its leading digits.
    pub fn of_number(digits: &str) -> Option<Brand> {
        let two: u32 = digits.get(..2)?.parse().ok()?;
        let four: u32 = digits.get(..4)?.parse().ok()?;
        match two {
            40..=49 => Some(Brand::Visa),
            34 | 37 => Some(Brand::Amex),
            51..=55 => Some(Brand::Mastercard),
            _ if (2221..=2720).contains(&four) => Some(Brand::Mastercard),
            50 | 56..=69 => Some(Brand::Maestro),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    Debit,
    Credit,
}

impl CardType {
    pub fn as_str(self) -> &'static str {
        match self {
            CardType::Debit => "debit",
            CardType::Credit => "credit",
        }
    }

    pub fn parse(s: &str) -> Option<CardType> {
        match s {
            "debit" => Some(CardType::Debit),
            "credit" => Some(CardType::Credit),
            _ => None,
        }
    }
}

/// What the platform keeps of a card: never more than the first six and last four digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRec {
    pub brand: Brand,
    pub card_type: CardType,
    pub first6: [u8; 6],
    pub last4: [u8; 4],
    /// `MM/YY`.
    pub expiry: [u8; 5],
    pub holder: Box<str>,
}

impl CardRec {
    pub fn first6(&self) -> &str {
        std::str::from_utf8(&self.first6).unwrap_or_default()
    }

    pub fn last4(&self) -> &str {
        std::str::from_utf8(&self.last4).unwrap_or_default()
    }

    pub fn expiry(&self) -> &str {
        std::str::from_utf8(&self.expiry).unwrap_or_default()
    }

    /// Built from validated parts; `None` when a part has the wrong shape.
    pub fn new(
        brand: Brand,
        card_type: CardType,
        first6: &str,
        last4: &str,
        expiry: &str,
        holder: &str,
    ) -> Option<CardRec> {
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let exp = expiry.as_bytes();
        let expiry_ok = exp.len() == 5
            && exp[2] == b'/'
            && exp[..2].iter().all(u8::is_ascii_digit)
            && exp[3..].iter().all(u8::is_ascii_digit);
        if !(digits(first6) && digits(last4) && expiry_ok) {
            return None;
        }
        Some(CardRec {
            brand,
            card_type,
            first6: first6.as_bytes().try_into().ok()?,
            last4: last4.as_bytes().try_into().ok()?,
            expiry: exp.try_into().ok()?,
            holder: holder.into(),
        })
    }

    pub fn wire(&self) -> CardDetails {
        CardDetails {
            last_digits_card_number: Some(self.last4().to_string()),
            first_digits_card_number: Some(self.first6().to_string()),
            cardholder_name: Some(self.holder.to_string()),
            expiry_date: Some(self.expiry().to_string()),
            billing_address: None,
            card_brand: Some(self.brand.label().to_string()),
            card_type: Some(self.card_type.as_str().to_string()),
            wallet_type: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Sandbox,
    Stripe,
    Worldpay,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sandbox => "sandbox",
            Provider::Stripe => "stripe",
            Provider::Worldpay => "worldpay",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "sandbox" => Some(Provider::Sandbox),
            "stripe" => Some(Provider::Stripe),
            "worldpay" => Some(Provider::Worldpay),
            _ => None,
        }
    }

    /// The provider's own reference for a payment. It is a pure function of the payment id,
    /// so it needs no storage.
    pub fn reference_for(self, id: &Id) -> String {
        let hash = Sha256::digest(id.as_str().as_bytes());
        match self {
            Provider::Stripe => {
                const ALNUM: &[u8] =
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                let tail: String = hash
                    .iter()
                    .take(24)
                    .map(|b| ALNUM[usize::from(*b) % ALNUM.len()] as char)
                    .collect();
                format!("pi_{tail}")
            }
            Provider::Worldpay | Provider::Sandbox => {
                let h = hex::encode(&hash[..16]);
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
        }
    }

    /// The provider's fee: only Stripe reports one (1.5%, at least 1p).
    pub fn fee(self, amount: i64) -> Option<i64> {
        match self {
            Provider::Stripe => Some(((amount * 15 + 500) / 1000).max(1).min(amount)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetaVal {
    Str(Box<str>),
    Num(Number),
    Bool(bool),
}

impl MetaVal {
    pub fn from_value(v: &Value) -> Option<MetaVal> {
        match v {
            Value::String(s) => Some(MetaVal::Str(s.as_str().into())),
            Value::Number(n) => Some(MetaVal::Num(n.clone())),
            Value::Bool(b) => Some(MetaVal::Bool(*b)),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            MetaVal::Str(s) => Value::String(s.to_string()),
            MetaVal::Num(n) => Value::Number(n.clone()),
            MetaVal::Bool(b) => Value::Bool(*b),
        }
    }
}

pub type Metadata = Box<[(Box<str>, MetaVal)]>;

pub fn metadata_map(meta: &Metadata) -> Map<String, Value> {
    meta.iter()
        .map(|(k, v)| (k.to_string(), v.to_value()))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRec {
    pub id: Id,
    pub created: Millis,
    pub amount: i64,
    pub status: RefundStatus,
    /// While submitted: when it settles. Afterwards: when it settled.
    pub settle_at: Millis,
    /// A successful refund reaches the payer's bank this many days after it succeeded.
    pub settle_days: u8,
}

impl RefundRec {
    pub fn settled_date(&self, today: Date) -> Option<Date> {
        if self.status != RefundStatus::Success {
            return None;
        }
        let d =
            date_of(self.settle_at).checked_add(time::Duration::days(self.settle_days.into()))?;
        (d <= today).then_some(d)
    }

    pub fn wire(&self, payment: &Id, base: &str, today: Date, with_payment_id: bool) -> Refund {
        Refund {
            refund_id: self.id.to_string(),
            created_date: to_time(self.created),
            amount: self.amount,
            status: self.status,
            payment_id: with_payment_id.then(|| payment.to_string()),
            settlement_summary: Some(RefundSettlement {
                settled_date: self
                    .settled_date(today)
                    .map(crate::platform::types::format_date),
            }),
            links: Some(RefundLinks {
                self_link: Some(get_link(format!(
                    "{base}/v1/payments/{payment}/refunds/{}",
                    self.id
                ))),
                payment: Some(get_link(format!("{base}/v1/payments/{payment}"))),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Cy,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Cy => "cy",
        }
    }

    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "en" => Some(Language::En),
            "cy" => Some(Language::Cy),
            _ => None,
        }
    }
}

/// One payment as the sandbox keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct PayRec {
    pub id: Id,
    pub created: Millis,
    pub amount: i64,
    pub reference: Box<str>,
    pub description: Arc<str>,
    pub email: Option<Box<str>>,
    pub return_url: Arc<str>,
    pub language: Language,
    pub provider: Provider,
    pub st: St,
    pub delayed_capture: bool,
    pub moto: bool,
    /// A disputed payment cannot be refunded (`refund_summary.status` unavailable).
    pub disputed: bool,
    /// The dispute itself (`GET /v1/disputes`), on a disputed payment.
    pub dispute: Option<Box<super::disputes::DisputeRec>>,
    /// The recurring agreement it was taken under (`authorisation_mode: agreement`).
    pub agreement: Option<Box<Id>>,
    /// A successful payment is settled this many days after capture.
    pub settle_days: u8,
    pub metadata: Option<Metadata>,
    /// Recorded when the payer submits their card; its presence also means the provider
    /// has a reference for the payment.
    pub card: Option<Box<CardRec>>,
    /// The payer's card page is `/pay/{token}`.
    pub token: Option<Box<str>>,
    pub events: Vec<EventRec>,
    pub refunds: Vec<RefundRec>,
}

/// Which shape of payment an endpoint answers with: they differ in the links they carry and
/// in the fields the spec allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `GET /v1/payments/{id}` and webhooks.
    Full,
    /// A search result: no payer links.
    Search,
    /// `POST /v1/payments`.
    Created,
}

impl PayRec {
    /// The sum of refunds that hold money: submitted and successful ones. An errored refund
    /// frees its amount again.
    pub fn refunded(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| matches!(r.status, RefundStatus::Submitted | RefundStatus::Success))
            .map(|r| r.amount)
            .sum()
    }

    pub fn refund_summary(&self) -> RefundSummary {
        let refunded = self.refunded();
        let available = (self.amount - refunded).max(0);
        let status = match self.st {
            St::Success if self.disputed => "unavailable",
            St::Success if available == 0 => "full",
            St::Success => "available",
            s if !s.is_finished() => "pending",
            _ => "unavailable",
        };
        RefundSummary {
            status: status.to_string(),
            amount_available: available,
            amount_submitted: refunded,
        }
    }

    /// When the payment succeeded (its capture), if it did.
    pub fn captured_at(&self) -> Option<Millis> {
        if self.st != St::Success {
            return None;
        }
        self.events
            .iter()
            .rev()
            .find(|e| e.st == St::Success)
            .map(|e| e.at)
    }

    /// The settlement date, once it is in the past of `today`.
    pub fn settled_date(&self, today: Date) -> Option<Date> {
        let captured = self.captured_at()?;
        let d = date_of(captured).checked_add(time::Duration::days(self.settle_days.into()))?;
        (d <= today).then_some(d)
    }

    pub fn provider_id(&self) -> Option<String> {
        self.card
            .as_ref()
            .map(|_| self.provider.reference_for(&self.id))
    }

    pub fn wire(&self, base: &str, now: Millis, view: View) -> Payment {
        let id = self.id;
        let today = date_of(now);
        let unfinished = !self.st.is_finished();
        let payer_link = (view != View::Search && unfinished)
            .then_some(self.token.as_deref())
            .flatten();
        let links = PaymentLinks {
            self_link: Some(get_link(format!("{base}/v1/payments/{id}"))),
            next_url: payer_link.map(|t| get_link(format!("{base}/pay/{t}"))),
            next_url_post: payer_link.map(|t| {
                let mut params = Map::new();
                params.insert("chargeTokenId".into(), Value::String(t.to_string()));
                PostLink {
                    href: format!("{base}/pay"),
                    method: "POST".into(),
                    params: Some(params),
                    content_type: Some("application/x-www-form-urlencoded".into()),
                }
            }),
            events: Some(get_link(format!("{base}/v1/payments/{id}/events"))),
            refunds: Some(get_link(format!("{base}/v1/payments/{id}/refunds"))),
            cancel: unfinished.then(|| PostLink {
                href: format!("{base}/v1/payments/{id}/cancel"),
                method: "POST".into(),
                params: None,
                content_type: None,
            }),
        };
        let captured = self.captured_at();
        let settlement = SettlementSummary {
            capture_submit_time: captured
                .map(|t| crate::platform::types::wire_time::format(to_time(t))),
            captured_date: captured.map(|t| crate::platform::types::format_date(date_of(t))),
            settled_date: self
                .settled_date(today)
                .map(crate::platform::types::format_date),
        };
        // The create answer (CreatePaymentResult) has no fee fields.
        let fee = match (view, captured) {
            (View::Created, _) | (_, None) => None,
            _ => self.provider.fee(self.amount),
        };
        Payment {
            payment_id: id.to_string(),
            amount: self.amount,
            description: self.description.to_string(),
            reference: self.reference.to_string(),
            email: self.email.as_deref().map(str::to_string),
            language: Some(self.language.as_str().to_string()),
            metadata: self.metadata.as_ref().map(metadata_map),
            state: self.st.wire(),
            created_date: to_time(self.created),
            return_url: Some(self.return_url.to_string()),
            payment_provider: Some(self.provider.as_str().to_string()),
            provider_id: self.provider_id(),
            card_details: self.card.as_ref().map(|c| c.wire()),
            refund_summary: Some(self.refund_summary()),
            settlement_summary: Some(settlement),
            delayed_capture: Some(self.delayed_capture),
            moto: Some(self.moto),
            corporate_card_surcharge: None,
            total_amount: None,
            fee,
            net_amount: fee.map(|f| self.amount - f),
            disputed: self.disputed.then_some(true),
            agreement_id: self.agreement.as_deref().map(Id::to_string),
            authorisation_mode: self.agreement.is_some().then(|| "agreement".to_string()),
            links: Some(links),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PayRec {
        PayRec {
            id: Id::parse("hu20sqlact5260q2nanm0q8u93").unwrap(),
            created: 1_700_000_000_000,
            amount: 10_000,
            reference: "PMT-1".into(),
            description: Arc::from("Thing"),
            email: None,
            return_url: Arc::from("https://example.org/done"),
            language: Language::En,
            provider: Provider::Stripe,
            st: St::Success,
            delayed_capture: false,
            moto: false,
            disputed: false,
            dispute: None,
            agreement: None,
            settle_days: 2,
            metadata: None,
            card: None,
            token: None,
            events: vec![
                EventRec {
                    st: St::Created,
                    at: 1_700_000_000_000,
                },
                EventRec {
                    st: St::Success,
                    at: 1_700_000_100_000,
                },
            ],
            refunds: vec![],
        }
    }

    fn refund(amount: i64, status: RefundStatus) -> RefundRec {
        RefundRec {
            id: Id::random(&mut rand::thread_rng()),
            created: 1_700_000_200_000,
            amount,
            status,
            settle_at: 1_700_000_300_000,
            settle_days: 1,
        }
    }

    #[test]
    fn refund_summary_counts_submitted_and_successful_refunds_only() {
        let mut p = sample();
        assert_eq!(p.refund_summary().status, "available");
        assert_eq!(p.refund_summary().amount_available, 10_000);
        p.refunds.push(refund(2_500, RefundStatus::Success));
        p.refunds.push(refund(1_000, RefundStatus::Submitted));
        p.refunds.push(refund(4_013, RefundStatus::Error));
        let s = p.refund_summary();
        assert_eq!(
            (s.status.as_str(), s.amount_available, s.amount_submitted),
            ("available", 6_500, 3_500)
        );
        p.refunds.push(refund(6_500, RefundStatus::Success));
        assert_eq!(p.refund_summary().status, "full");
        assert_eq!(p.refund_summary().amount_available, 0);
        p.st = St::Declined;
        assert_eq!(p.refund_summary().status, "unavailable");
        p.st = St::Started;
        assert_eq!(p.refund_summary().status, "pending");
        let mut q = sample();
        q.disputed = true;
        assert_eq!(q.refund_summary().status, "unavailable");
    }

    #[test]
    fn settlement_date_appears_only_once_it_is_past() {
        let p = sample();
        let captured = date_of(1_700_000_100_000);
        assert_eq!(p.settled_date(captured), None);
        assert_eq!(
            p.settled_date(captured + time::Duration::days(2)),
            Some(captured + time::Duration::days(2))
        );
        let w = p.wire("http://x", 1_700_000_100_000 + 5 * DAY, View::Full);
        assert_eq!(w.fee, Some(150));
        assert_eq!(w.net_amount, Some(9_850));
        assert!(w.settlement_summary.unwrap().settled_date.is_some());
        let created = p.wire("http://x", 1_700_000_100_000, View::Created);
        assert_eq!(created.fee, None);
    }

    #[test]
    fn ids_round_trip_and_refuse_other_shapes() {
        let id = Id::random(&mut rand::thread_rng());
        assert_eq!(Id::parse(id.as_str()), Some(id));
        assert_eq!(Id::parse("short"), None);
        assert_eq!(Id::parse("HU20SQLACT5260Q2NANM0Q8U93"), None);
    }

    #[test]
    fn brands_by_leading_digits() {
        assert_eq!(Brand::of_number("4111111111111111"), Some(Brand::Visa));
        assert_eq!(
            Brand::of_number("5555555555554444"),
            Some(Brand::Mastercard)
        );
        assert_eq!(
            Brand::of_number("2221000000000009"),
            Some(Brand::Mastercard)
        );
        assert_eq!(Brand::of_number("378282246310005"), Some(Brand::Amex));
        assert_eq!(Brand::of_number("6759649826438453"), Some(Brand::Maestro));
        assert_eq!(Brand::parse("master-card"), Some(Brand::Mastercard));
        assert_eq!(Brand::parse("AMERICAN EXPRESS"), Some(Brand::Amex));
    }
}
