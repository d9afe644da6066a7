//! Pure rules: how a platform payment or refund becomes the row paydesk keeps, where a case
//! reference is found, and when a journey counts as stuck.

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::card_data;
use crate::platform::types::{wire_time, Payment, PaymentStatus, Refund};

/// The columns of a journey, as read from the platform at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyRecord {
    pub payment_id: String,
    pub status: PaymentStatus,
    pub state_code: Option<String>,
    pub state_message: Option<String>,
    pub amount: i64,
    pub description: String,
    pub reference: String,
    pub email: Option<String>,
    pub language: Option<String>,
    pub cardholder_name: Option<String>,
    pub card_brand: Option<String>,
    pub card_type: Option<String>,
    pub first_digits: Option<String>,
    pub last_digits: Option<String>,
    pub expiry_date: Option<String>,
    pub wallet_type: Option<String>,
    pub payment_provider: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub capture_submitted_at: Option<OffsetDateTime>,
    pub captured_date: Option<String>,
    pub settled_date: Option<String>,
    pub fee: Option<i64>,
    pub net_amount: Option<i64>,
    pub corporate_surcharge: Option<i64>,
    pub total_amount: Option<i64>,
    pub refund_status: Option<String>,
    pub refund_available: Option<i64>,
    pub refund_submitted: Option<i64>,
    pub metadata: Option<String>,
    pub case_reference: Option<String>,
    pub delayed_capture: Option<bool>,
    pub moto: Option<bool>,
}

/// Metadata keys that hold a case reference, in the order they are looked at.
const CASE_KEYS: [&str; 4] = ["case_reference", "case_ref", "caseReference", "case_number"];

/// The case reference in a payment's metadata, if it has one.
pub fn case_reference(metadata: Option<&serde_json::Map<String, Value>>) -> Option<String> {
    let m = metadata?;
    CASE_KEYS.iter().find_map(|k| match m.get(*k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Keep only the first 6 / last 4 digits, whatever a platform sends: a longer value is cut,
/// anything that is not digits is dropped.
fn digits(value: Option<&String>, keep: usize, from_end: bool) -> Option<String> {
    let v: String = value?.chars().filter(char::is_ascii_digit).collect();
    if v.is_empty() {
        return None;
    }
    if v.len() <= keep {
        return Some(v);
    }
    Some(if from_end {
        v[v.len() - keep..].to_string()
    } else {
        v[..keep].to_string()
    })
}

fn clean(value: Option<&String>, max: usize) -> Option<String> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    Some(v.chars().take(max).collect())
}

/// Payer-typed text cut to `max` characters, with any card number in it masked to first 6 /
/// last 4 (`card_data::mask`) first, so a full card number is never stored.
fn payer_text(text: &str, max: usize) -> String {
    card_data::mask(text).chars().take(max).collect()
}

impl JourneyRecord {
    /// The row paydesk keeps for a platform payment. Text the payer typed (description,
    /// reference, email, cardholder name, metadata values and the case reference read from
    /// them) has card numbers masked here, before anything stores, logs or shows it.
    pub fn from_payment(p: &Payment) -> JourneyRecord {
        let metadata = p
            .metadata
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| card_data::mask_json(&Value::Object(m.clone())));
        let card = p.card_details.as_ref();
        let settlement = p.settlement_summary.as_ref();
        let refunds = p.refund_summary.as_ref();
        JourneyRecord {
            payment_id: p.payment_id.clone(),
            status: p.state.status,
            state_code: p.state.code.clone(),
            state_message: clean(p.state.message.as_ref(), 500),
            amount: p.amount,
            description: payer_text(&p.description, 1000),
            reference: payer_text(&p.reference, 255),
            email: card_data::mask_opt(clean(p.email.as_ref(), 254)),
            language: p.language.clone(),
            cardholder_name: card_data::mask_opt(clean(
                card.and_then(|c| c.cardholder_name.as_ref()),
                255,
            )),
            card_brand: clean(card.and_then(|c| c.card_brand.as_ref()), 64),
            card_type: card
                .and_then(|c| c.card_type.clone())
                .filter(|t| t != "null"),
            first_digits: digits(
                card.and_then(|c| c.first_digits_card_number.as_ref()),
                6,
                false,
            ),
            last_digits: digits(
                card.and_then(|c| c.last_digits_card_number.as_ref()),
                4,
                true,
            ),
            expiry_date: clean(card.and_then(|c| c.expiry_date.as_ref()), 7),
            wallet_type: card.and_then(|c| c.wallet_type.clone()),
            payment_provider: p.payment_provider.clone(),
            provider_id: clean(p.provider_id.as_ref(), 255),
            created_at: p.created_date,
            capture_submitted_at: settlement
                .and_then(|s| s.capture_submit_time.as_deref())
                .and_then(wire_time::parse),
            captured_date: settlement.and_then(|s| s.captured_date.clone()),
            settled_date: settlement.and_then(|s| s.settled_date.clone()),
            fee: p.fee,
            net_amount: p.net_amount,
            corporate_surcharge: p.corporate_card_surcharge,
            total_amount: p.total_amount,
            refund_status: refunds.map(|r| r.status.clone()),
            refund_available: refunds.map(|r| r.amount_available),
            refund_submitted: refunds.map(|r| r.amount_submitted),
            case_reference: case_reference(metadata.as_ref().and_then(Value::as_object)),
            metadata: metadata.map(|m| m.to_string()),
            delayed_capture: p.delayed_capture,
            moto: p.moto,
        }
    }
}

/// The columns of a platform refund.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRecord {
    pub refund_id: String,
    pub payment_id: String,
    pub amount: i64,
    pub status: crate::platform::types::RefundStatus,
    pub created_at: OffsetDateTime,
    pub settled_date: Option<String>,
}

impl RefundRecord {
    /// `None` when the platform did not say which payment the refund belongs to.
    pub fn from_refund(r: &Refund, payment_id: Option<&str>) -> Option<RefundRecord> {
        Some(RefundRecord {
            refund_id: r.refund_id.clone(),
            payment_id: r.payment_id.as_deref().or(payment_id)?.to_string(),
            amount: r.amount,
            status: r.status,
            created_at: r.created_date,
            settled_date: r
                .settlement_summary
                .as_ref()
                .and_then(|s| s.settled_date.clone()),
        })
    }
}

/// How long an unpaid payment lives on the platform.
pub const PAYMENT_LIFETIME: Duration = Duration::minutes(90);

/// Journeys created before this moment that still have no final state are stuck: the
/// platform should have expired them `grace` ago.
pub fn stuck_before(now: OffsetDateTime, grace: Duration) -> OffsetDateTime {
    now - PAYMENT_LIFETIME - grace
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::types::{CardDetails, PaymentState};
    use serde_json::json;

    fn payment() -> Payment {
        serde_json::from_value(json!({
            "payment_id": "p1", "amount": 1500, "description": "Permit", "reference": "REF-1",
            "state": {"status": "success", "finished": true},
            "created_date": "2026-03-01T10:00:00.000Z",
            "metadata": {"case_reference": " CASE-42 ", "ledger": 7},
            "refund_summary": {"status": "available", "amount_available": 1500, "amount_submitted": 0}
        }))
        .unwrap()
    }

    #[test]
    fn maps_a_payment_and_finds_its_case() {
        let r = JourneyRecord::from_payment(&payment());
        assert_eq!(r.case_reference.as_deref(), Some("CASE-42"));
        assert_eq!(r.refund_available, Some(1500));
        assert_eq!(r.status, PaymentStatus::Success);
        assert!(r.metadata.unwrap().contains("ledger"));
    }

    #[test]
    fn never_keeps_more_than_first_six_and_last_four() {
        let mut p = payment();
        p.card_details = Some(CardDetails {
            first_digits_card_number: Some("4111111111111111".into()),
            last_digits_card_number: Some("4111 1111 1111 1234".into()),
            card_type: Some("null".into()),
            ..Default::default()
        });
        let r = JourneyRecord::from_payment(&p);
        assert_eq!(r.first_digits.as_deref(), Some("411111"));
        assert_eq!(r.last_digits.as_deref(), Some("1234"));
        assert_eq!(r.card_type, None);
    }

    #[test]
    fn payer_typed_card_numbers_are_masked_before_storing() {
        let pan = "4012-8888-8888-1881";
        let mut p: Payment = serde_json::from_value(json!({
            "payment_id": "p1", "amount": 1500,
            "description": format!("Permit {pan}"), "reference": pan,
            "email": "4012888888881881@example.com",
            "state": {"status": "success", "finished": true},
            "created_date": "2026-03-01T10:00:00.000Z",
            "metadata": {"case_reference": pan, "note": format!("card {pan}"), "n": 4012888888881881u64}
        }))
        .unwrap();
        p.card_details = Some(CardDetails {
            cardholder_name: Some("A 4012 8888 8888 1881".into()),
            ..Default::default()
        });
        let r = JourneyRecord::from_payment(&p);
        assert_eq!(r.reference, "401288******1881");
        assert_eq!(r.description, "Permit 401288******1881");
        assert_eq!(r.email.as_deref(), Some("401288******1881@example.com"));
        assert_eq!(r.cardholder_name.as_deref(), Some("A 401288******1881"));
        assert_eq!(r.case_reference.as_deref(), Some("401288******1881"));
        let meta = r.metadata.unwrap();
        assert!(meta.contains("card 401288******1881"), "{meta}");
        assert!(!meta.contains("8888"), "{meta}");
    }

    #[test]
    fn case_reference_keys_and_types() {
        let m = json!({"case_number": 991}).as_object().cloned();
        assert_eq!(case_reference(m.as_ref()).as_deref(), Some("991"));
        let m = json!({"case_reference": "  ", "case_ref": "C-1"})
            .as_object()
            .cloned();
        assert_eq!(case_reference(m.as_ref()).as_deref(), Some("C-1"));
        assert_eq!(case_reference(None), None);
        let _ = PaymentState::of(PaymentStatus::Created);
    }

    #[test]
    fn stuck_means_past_expiry_plus_grace() {
        let now = time::macros::datetime!(2026-11-20 12:00 UTC);
        assert_eq!(
            stuck_before(now, Duration::minutes(15)),
            time::macros::datetime!(2026-11-20 10:15 UTC)
        );
    }
}
