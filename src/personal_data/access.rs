//! Subject access (UK GDPR Art. 15): find one payer by email (exact) or by card last 4 and
//! cardholder name across the services the person may manage personal data in, and answer with
//! one JSON document of everything paydesk holds about them, including who in the organisation
//! viewed their payments and when. Each search and download is audited (what was searched for
//! sits beside the chain, `audit::personal`).

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::PersonalDataError;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::personal_data::{self as pd_store, Due};
use crate::store::subject_access as sa_store;
use crate::store::{self, Db};

/// Who to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    Email(String),
    Card { last4: String, name: String },
}

impl Payer {
    /// Read the finder's fields: an email, or the card's last 4 digits and the name on it.
    /// Problems are `(field, message)`.
    pub fn parse(
        email: &str,
        last4: &str,
        name: &str,
    ) -> Result<Payer, Vec<(&'static str, String)>> {
        let (email, last4, name) = (email.trim(), last4.trim(), name.trim());
        if !email.is_empty() {
            if !email.contains('@') || email.chars().count() > 254 {
                return Err(vec![(
                    "email",
                    "Enter an email address in the correct format, like name@example.com".into(),
                )]);
            }
            return Ok(Payer::Email(email.to_lowercase()));
        }
        let mut problems = Vec::new();
        if last4.is_empty() && name.is_empty() {
            return Err(vec![("email", "Enter the payer's email address, or the last 4 digits of their card and the name on it".into())]);
        }
        if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
            problems.push((
                "last4",
                "Enter the last 4 digits of the card, like 4242".into(),
            ));
        }
        if name.is_empty() || name.chars().count() > 255 {
            problems.push(("name", "Enter the name on the card".into()));
        }
        if problems.is_empty() {
            Ok(Payer::Card {
                last4: last4.to_string(),
                name: name.to_lowercase(),
            })
        } else {
            Err(problems)
        }
    }

    /// How the payer was identified, for the bundle and the side of the audit entry.
    pub fn describe(&self) -> String {
        match self {
            Payer::Email(e) => format!("email {e}"),
            Payer::Card { last4, name } => format!("card ending {last4}, name {name}"),
        }
    }
}

/// The payer's journeys in these services that still hold their data.
pub async fn find(
    db: &Db,
    service_ids: &[i64],
    payer: &Payer,
) -> Result<Vec<Due>, PersonalDataError> {
    let found = match payer {
        Payer::Email(e) => pd_store::of_payer(db, service_ids, Some(e), None).await?,
        Payer::Card { last4, name } => {
            pd_store::of_payer(db, service_ids, None, Some((last4, name))).await?
        }
    };
    Ok(found)
}

fn when(micros: i64) -> String {
    store::from_micros(micros)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Everything paydesk holds about the payer, as one JSON document; audited as
/// `personal_data_access` (the search sits beside the chain).
pub async fn bundle(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    ip: Option<String>,
    service_ids: &[i64],
    payer: &Payer,
) -> Result<Value, PersonalDataError> {
    let found = find(db, service_ids, payer).await?;
    let ids: Vec<i64> = found.iter().map(|d| d.id).collect();
    let payment_ids: Vec<String> = found.iter().map(|d| d.payment_id.clone()).collect();
    let payments = sa_store::payments(db, &ids).await?;
    let refunds = sa_store::refunds(db, &ids).await?;
    let viewings = sa_store::viewings(db, &payment_ids).await?;
    let disputes = sa_store::disputes(db, &ids).await?;
    let mut agreements = Vec::new();
    for a in sa_store::agreements(db, &ids).await? {
        let cancellations = sa_store::cancellations(db, a.service_id, &a.agreement_id).await?;
        agreements.push(json!({
            "service_id": a.service_id, "agreement_id": a.agreement_id, "reference": a.reference,
            "description": a.description, "user_identifier": a.user_identifier, "status": a.status,
            "card_brand": a.card_brand, "card_last4": a.card_last4, "created": when(a.created_at),
            "cancelled": a.cancelled_at.map(when),
            "cancellation_requests": cancellations.iter().map(|(reason, state, at)| json!({
                "reason": reason, "state": state, "requested": when(*at),
            })).collect::<Vec<_>>(),
        }));
    }
    let mut emails: Vec<String> = found.iter().filter_map(|d| d.email_key.clone()).collect();
    emails.sort();
    emails.dedup();
    let mut mail = Vec::new();
    for e in &emails {
        for m in sa_store::mail_to(db, e).await? {
            let body: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
            mail.push(json!({
                "queued_at": when(m.created_at), "state": m.state,
                "to": body["to"], "subject": body["subject"], "text": body["text"],
            }));
        }
    }
    let document = json!({
        "format": "paydesk-subject-access/1",
        "generated_at": now.format(&Rfc3339).unwrap_or_default(),
        "searched_for": payer.describe(),
        "services": service_ids,
        "payments": payments.iter().map(|p| json!({
            "service_id": p.service_id, "payment_id": p.payment_id, "created": when(p.created_at),
            "status": p.status, "amount": p.amount, "description": p.description,
            "reference": p.reference, "email": p.email, "cardholder_name": p.cardholder_name,
            "card_brand": p.card_brand, "last_digits_card_number": p.last_digits,
            "metadata": p.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        })).collect::<Vec<_>>(),
        "refunds": refunds.iter().map(|r| json!({
            "payment_id": r.payment_id, "amount": r.amount, "reason": r.reason,
            "comment": r.comment, "case_reference": r.case_reference, "state": r.state,
            "requested": when(r.requested_at),
        })).collect::<Vec<_>>(),
        "disputes": disputes.iter().map(|d| json!({
            "service_id": d.service_id, "dispute_id": d.dispute_id, "payment_id": d.payment_id,
            "amount": d.amount, "reason": d.reason, "status": d.status, "raised": when(d.created_at),
            "evidence_due": d.evidence_due_at.map(when),
        })).collect::<Vec<_>>(),
        "agreements": agreements,
        "case_links": payments.iter().filter_map(|p| p.case_reference.as_ref().map(|c| json!({
            "payment_id": p.payment_id, "case_reference": c,
        }))).collect::<Vec<_>>(),
        "emails_sent": mail,
        "viewed_by": viewings.iter().map(|v| json!({
            "when": when(v.occurred_at), "who": v.actor_label,
            "payment_id": v.target.trim_start_matches("payment:"),
            "what": serde_json::from_str::<Value>(&v.details).ok().and_then(|d| d.get("what").cloned()),
        })).collect::<Vec<_>>(),
    });
    audit::record(
        db,
        now,
        AuditEvent::new(actor, "personal_data_access", "payer:subject_access")
            .from_ip(ip)
            .details(json!({"payments": payments.len(), "services": service_ids}))
            .personal("payer", &payer.describe()),
    )
    .await?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_payer_finder_fields() {
        assert_eq!(
            Payer::parse(" A@B.org ", "", ""),
            Ok(Payer::Email("a@b.org".into()))
        );
        assert_eq!(
            Payer::parse("", "4242", "Ann Lee"),
            Ok(Payer::Card {
                last4: "4242".into(),
                name: "ann lee".into()
            })
        );
        assert!(Payer::parse("", "", "").is_err());
        assert!(Payer::parse("nope", "", "").is_err());
        assert_eq!(Payer::parse("", "42a", "").map_err(|e| e.len()), Err(2));
    }
}
