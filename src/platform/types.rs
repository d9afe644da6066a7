//! The GOV.UK Pay v1 wire format (`govuk-pay-publicapi.json`): what the client reads and the
//! sandbox writes. Optional fields are left out when absent, as the platform does; unknown
//! fields are ignored when reading, so a newer platform does not break paydesk.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Where a payment is in its life (`state.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    Created,
    Started,
    Submitted,
    Capturable,
    Success,
    Failed,
    Cancelled,
    Error,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::Created,
        PaymentStatus::Started,
        PaymentStatus::Submitted,
        PaymentStatus::Capturable,
        PaymentStatus::Success,
        PaymentStatus::Failed,
        PaymentStatus::Cancelled,
        PaymentStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Created => "created",
            PaymentStatus::Started => "started",
            PaymentStatus::Submitted => "submitted",
            PaymentStatus::Capturable => "capturable",
            PaymentStatus::Success => "success",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// A payment in a finished state never changes state again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            PaymentStatus::Success
                | PaymentStatus::Failed
                | PaymentStatus::Cancelled
                | PaymentStatus::Error
        )
    }

    /// How far along its life a payment in this state is. A journey's state only ever moves
    /// to a higher rank, so late or reordered news cannot move it backwards.
    pub fn rank(self) -> i32 {
        match self {
            PaymentStatus::Created => 0,
            PaymentStatus::Started => 1,
            PaymentStatus::Submitted => 2,
            PaymentStatus::Capturable => 3,
            _ => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub finished: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_retry: Option<bool>,
}

impl PaymentState {
    pub fn of(status: PaymentStatus) -> PaymentState {
        let (code, message) = match status {
            PaymentStatus::Cancelled => {
                (Some("P0040"), Some("Payment was cancelled by the service"))
            }
            PaymentStatus::Error => (Some("P0050"), Some("Payment provider returned an error")),
            _ => (None, None),
        };
        PaymentState {
            status,
            finished: status.is_finished(),
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            can_retry: None,
        }
    }

    /// A failed state with one of the platform's failure codes (P0010, P0020, P0030).
    pub fn failed(code: &str) -> PaymentState {
        let message = match code {
            "P0010" => "Payment method rejected",
            "P0020" => "Payment expired",
            "P0030" => "Payment was cancelled by the user",
            _ => "Payment failed",
        };
        PaymentState {
            status: PaymentStatus::Failed,
            finished: true,
            code: Some(code.to_string()),
            message: Some(message.to_string()),
            can_retry: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    pub method: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostLink {
    pub href: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// The card as the platform reports it: never more than the first 6 and last 4 digits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_digits_card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_digits_card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardholder_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
    /// `debit`, `credit` or `null` (a string) when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundSummary {
    /// `pending`, `available`, `full` or `unavailable`.
    pub status: String,
    pub amount_available: i64,
    pub amount_submitted: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettlementSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_submit_time: Option<String>,
    /// A date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_date: Option<String>,
    /// A date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_date: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentLinks {
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_url: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_url_post: Option<PostLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunds: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<PostLink>,
}

/// A payment (`GET /v1/payments/{id}`, search results, webhook `resource`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub amount: i64,
    pub description: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Up to 15 keys; values are strings, numbers or booleans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub state: PaymentState,
    #[serde(with = "wire_time")]
    pub created_date: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_details: Option<CardDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_summary: Option<RefundSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_summary: Option<SettlementSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed_capture: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moto: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corporate_card_surcharge: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_amount: Option<i64>,
    /// `true` once the payer has disputed the payment (its refunds are then unavailable,
    /// P0603). DOMAIN.md §6 and the ledger give it; the public spec 1.0.3 does not, so a
    /// platform may leave it out: absent is read as "not known to be disputed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disputed: Option<bool>,
    /// The recurring agreement the payment was taken under (DOMAIN.md §6), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_id: Option<String>,
    /// `agreement` for a payment taken under an agreement (DOMAIN.md §6; the spec's enum
    /// lists only `web`, `moto_api` and `external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorisation_mode: Option<String>,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<PaymentLinks>,
}

/// `POST /v1/payments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatePayment {
    pub amount: i64,
    pub reference: String,
    pub description: String,
    pub return_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed_capture: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moto: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    Submitted,
    Success,
    Error,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Submitted => "submitted",
            RefundStatus::Success => "success",
            RefundStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Submitted,
            RefundStatus::Success,
            RefundStatus::Error,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// `submitted` moves on to `success` or `error`, never back.
    pub fn rank(self) -> i32 {
        match self {
            RefundStatus::Submitted => 0,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundSettlement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_date: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundLinks {
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Link>,
}

/// A refund (`GET …/refunds/{id}`, `POST …/refunds`, refund search results).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    #[serde(with = "wire_time")]
    pub created_date: OffsetDateTime,
    pub amount: i64,
    pub status: RefundStatus,
    /// Present in refund search results; filled in by the client otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_summary: Option<RefundSettlement>,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<RefundLinks>,
}

/// `POST /v1/payments/{id}/refunds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_amount_available: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedRefunds {
    pub refunds: Vec<Refund>,
}

/// `GET /v1/payments/{id}/refunds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunds {
    pub payment_id: String,
    #[serde(rename = "_embedded")]
    pub embedded: EmbeddedRefunds,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<RefundLinks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_url: Option<Link>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    pub state: PaymentState,
    #[serde(with = "wire_time")]
    pub updated: OffsetDateTime,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<EventLinks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfLinks {
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Link>,
}

/// `GET /v1/payments/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentEvents {
    pub payment_id: String,
    pub events: Vec<PaymentEvent>,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLinks>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchLinks {
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_page: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_page: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_page: Option<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<Link>,
}

/// One page of a search (`GET /v1/payments`, `GET /v1/refunds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage<T> {
    pub total: i64,
    pub count: i64,
    pub page: i64,
    pub results: Vec<T>,
    #[serde(rename = "_links", default)]
    pub links: SearchLinks,
}

/// The platform's error body (`RequestError` / `ErrorResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// Query for `GET /v1/payments`. Dates are UTC; `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentSearch {
    pub reference: Option<String>,
    pub email: Option<String>,
    pub state: Option<PaymentStatus>,
    pub card_brand: Option<String>,
    pub cardholder_name: Option<String>,
    pub first_digits_card_number: Option<String>,
    pub last_digits_card_number: Option<String>,
    pub from_date: Option<OffsetDateTime>,
    pub to_date: Option<OffsetDateTime>,
    pub from_settled_date: Option<time::Date>,
    pub to_settled_date: Option<time::Date>,
    pub page: Option<u32>,
    pub display_size: Option<u32>,
}

impl PaymentSearch {
    /// The query string pairs, in the platform's names.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k, v));
            }
        };
        put("reference", self.reference.clone());
        put("email", self.email.clone());
        put("state", self.state.map(|s| s.as_str().to_string()));
        put("card_brand", self.card_brand.clone());
        put("cardholder_name", self.cardholder_name.clone());
        put(
            "first_digits_card_number",
            self.first_digits_card_number.clone(),
        );
        put(
            "last_digits_card_number",
            self.last_digits_card_number.clone(),
        );
        put("from_date", self.from_date.map(wire_time::format));
        put("to_date", self.to_date.map(wire_time::format));
        put("from_settled_date", self.from_settled_date.map(format_date));
        put("to_settled_date", self.to_settled_date.map(format_date));
        put("page", self.page.map(|p| p.to_string()));
        put("display_size", self.display_size.map(|p| p.to_string()));
        q
    }
}

/// Query for `GET /v1/refunds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefundSearch {
    pub from_date: Option<OffsetDateTime>,
    pub to_date: Option<OffsetDateTime>,
    pub from_settled_date: Option<time::Date>,
    pub to_settled_date: Option<time::Date>,
    pub page: Option<u32>,
    pub display_size: Option<u32>,
}

impl RefundSearch {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(d) = self.from_date {
            q.push(("from_date", wire_time::format(d)));
        }
        if let Some(d) = self.to_date {
            q.push(("to_date", wire_time::format(d)));
        }
        if let Some(d) = self.from_settled_date {
            q.push(("from_settled_date", format_date(d)));
        }
        if let Some(d) = self.to_settled_date {
            q.push(("to_settled_date", format_date(d)));
        }
        if let Some(p) = self.page {
            q.push(("page", p.to_string()));
        }
        if let Some(p) = self.display_size {
            q.push(("display_size", p.to_string()));
        }
        q
    }
}

/// A platform webhook (DOMAIN.md §2). The message id comes as `webhook_message_id` or `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
}

impl WebhookMessage {
    pub fn message_id(&self) -> Option<&str> {
        self.webhook_message_id
            .as_deref()
            .or(self.id.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub fn parse_date(s: &str) -> Option<time::Date> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.get(..10)?, f).ok()
}

/// The platform's timestamps: `2016-01-21T17:15:00.000Z` (UTC, milliseconds). Reading accepts
/// any RFC 3339 time.
pub mod wire_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    pub fn format(t: OffsetDateTime) -> String {
        let t = t.to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }

    pub fn parse(s: &str) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(|t| t.to_offset(UtcOffset::UTC))
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_payment_as_the_platform_writes_it() {
        let body = r#"{
          "amount": 1200, "description": "Pay your council tax", "reference": "12345",
          "language": "en", "email": "sherlock.holmes@example.com",
          "state": {"status": "success", "finished": true},
          "payment_id": "hu20sqlact5260q2nanm0q8u93", "payment_provider": "stripe",
          "created_date": "2016-01-21T17:15:00.000Z",
          "refund_summary": {"status": "available", "amount_available": 1200, "amount_submitted": 0},
          "settlement_summary": {"capture_submit_time": "2016-01-21T17:15:00.000Z", "captured_date": "2016-01-21", "settled_date": "2016-01-22"},
          "card_details": {"last_digits_card_number": "1234", "first_digits_card_number": "123456",
             "cardholder_name": "Sherlock Holmes", "expiry_date": "04/24", "card_brand": "Visa", "card_type": "debit"},
          "metadata": {"ledger_code": "AB100", "an_internal_reference_number": 200},
          "fee": 5, "net_amount": 1195, "some_future_field": {"x": 1}
        }"#;
        let p: Payment = serde_json::from_str(body).unwrap();
        assert_eq!(p.state.status, PaymentStatus::Success);
        assert_eq!(p.refund_summary.as_ref().unwrap().amount_available, 1200);
        assert_eq!(
            wire_time::format(p.created_date),
            "2016-01-21T17:15:00.000Z"
        );
        let again = serde_json::to_value(&p).unwrap();
        assert!(again.get("_links").is_none() && again.get("corporate_card_surcharge").is_none());
        assert_eq!(again["metadata"]["an_internal_reference_number"], 200);
    }

    #[test]
    fn states_only_rank_forwards() {
        assert!(PaymentStatus::Started.rank() > PaymentStatus::Created.rank());
        assert!(PaymentStatus::Success.rank() > PaymentStatus::Capturable.rank());
        assert_eq!(PaymentStatus::Failed.rank(), PaymentStatus::Success.rank());
        assert!(PaymentStatus::ALL
            .iter()
            .all(|s| PaymentStatus::parse(s.as_str()) == Some(*s)));
    }

    #[test]
    fn webhook_message_id_accepts_either_name() {
        let a: WebhookMessage = serde_json::from_str(
            r#"{"webhook_message_id":"m1","resource_id":"p","event_type":"card_payment_succeeded"}"#,
        )
        .unwrap();
        let b: WebhookMessage = serde_json::from_str(
            r#"{"id":"m2","resource_id":"p","event_type":"card_payment_succeeded"}"#,
        )
        .unwrap();
        assert_eq!(a.message_id(), Some("m1"));
        assert_eq!(b.message_id(), Some("m2"));
    }
}
