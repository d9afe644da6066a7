//! Erasure on request (UK GDPR Art. 17): one person with `personal_data:manage` asks, with a
//! reason and a case reference; a second one approves (never the person who asked). Approval
//! redacts the payer's payments exactly as retention does (`retention::redact`); held payments
//! are skipped and listed with why. Asking, approving and rejecting are audited; who the payer
//! was is kept beside the chain and cleared from the request once it is decided.

use serde_json::json;
use time::OffsetDateTime;

use super::access::{self, Payer};
use super::retention::{self, BY_ERASURE};
use super::PersonalDataError;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::subject_access::{self as sa_store, NewErasure};
use crate::store::{self, Db};

/// Who is acting, with the services where they hold `personal_data:manage`.
pub struct Manager {
    pub staff_id: i64,
    pub actor: Actor,
    pub ip: Option<String>,
    pub service_ids: Vec<i64>,
}

/// Read the request's reason and case reference: both required, no card numbers.
pub fn parse_request(
    reason: &str,
    case_reference: &str,
) -> Result<(String, String), Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let (reason, case_reference) = (reason.trim(), case_reference.trim());
    if reason.is_empty() {
        problems.push((
            "reason",
            "Enter why the payer's data is being erased".to_string(),
        ));
    } else if reason.chars().count() > 1000 {
        problems.push((
            "reason",
            "The reason must be 1,000 characters or fewer".to_string(),
        ));
    }
    if case_reference.is_empty() {
        problems.push((
            "case_reference",
            "Enter the case reference of the payer's request".to_string(),
        ));
    } else if case_reference.chars().count() > 100 {
        problems.push((
            "case_reference",
            "The case reference must be 100 characters or fewer".to_string(),
        ));
    }
    for (field, text) in [("reason", reason), ("case_reference", case_reference)] {
        if crate::card_data::holds_card_number(text) {
            problems.push((field, "This must not contain a card number".to_string()));
        }
    }
    if problems.is_empty() {
        Ok((reason.to_string(), case_reference.to_string()))
    } else {
        Err(problems)
    }
}

/// Ask for a payer's data to be erased in the asker's services; the request's id.
pub async fn request(
    db: &Db,
    now: OffsetDateTime,
    who: &Manager,
    payer: &Payer,
    reason: &str,
    case_reference: &str,
) -> Result<i64, PersonalDataError> {
    let (reason, case_reference) = parse_request(reason, case_reference).map_err(|p| {
        PersonalDataError::Refused(p.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join(". "))
    })?;
    if who.service_ids.is_empty() {
        return Err(PersonalDataError::NotFound);
    }
    let (email, last4, name) = match payer {
        Payer::Email(e) => (Some(e.as_str()), None, None),
        Payer::Card { last4, name } => (None, Some(last4.as_str()), Some(name.as_str())),
    };
    let services = serde_json::to_string(&who.service_ids).unwrap_or_else(|_| "[]".into());
    let mut tx = db.begin().await?;
    let id = sa_store::insert_erasure(
        &mut tx,
        &NewErasure {
            requested_by: who.staff_id,
            service_ids: &services,
            email_key: email,
            last4,
            name_key: name,
            reason: &reason,
            case_reference: &case_reference,
        },
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(who.actor.clone(), "personal_data_erasure_requested", format!("erasure:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"services": who.service_ids, "case_reference": case_reference, "reason": reason}))
            .personal("payer", &payer.describe()),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// What an approved erasure did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub redacted: u64,
    /// (payment id, why it was kept)
    pub held: Vec<(String, String)>,
}

fn why(held_by: &str) -> String {
    match held_by {
        "hold" => "an admin has placed a legal hold on it".into(),
        "refund" => "a refund of it is still open".into(),
        "dispute" => "a dispute of it is still open".into(),
        other => other.to_string(),
    }
}

/// Approve (carry out) or reject a waiting request. The person who asked cannot decide it, nor
/// can someone who may not manage personal data in every service it covers.
pub async fn decide(
    db: &Db,
    now: OffsetDateTime,
    who: &Manager,
    id: i64,
    approve: bool,
) -> Result<Option<Done>, PersonalDataError> {
    let Some(req) = sa_store::erasure(db, id).await? else {
        return Err(PersonalDataError::NotFound);
    };
    let services: Vec<i64> = serde_json::from_str(&req.service_ids).unwrap_or_default();
    if !services.iter().all(|s| who.service_ids.contains(s)) {
        return Err(PersonalDataError::NotFound);
    }
    if req.state != "awaiting_approval" {
        return Err(PersonalDataError::Refused(
            "This request has already been decided".into(),
        ));
    }
    if req.requested_by == who.staff_id {
        return Err(PersonalDataError::Refused(
            "You asked for this erasure, so someone else must approve it".into(),
        ));
    }
    let at = store::to_micros(now);
    if !approve {
        let mut tx = db.begin().await?;
        if !sa_store::decide_erasure(&mut tx, id, "rejected", who.staff_id, "{}", at).await? {
            tx.rollback().await?;
            return Err(PersonalDataError::Refused(
                "This request has already been decided".into(),
            ));
        }
        audit::append(
            &mut tx,
            now,
            AuditEvent::new(
                who.actor.clone(),
                "personal_data_erasure_rejected",
                format!("erasure:{id}"),
            )
            .from_ip(who.ip.clone()),
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    }
    let payer = match (&req.email_key, &req.last4, &req.name_key) {
        (Some(e), _, _) => Payer::Email(e.clone()),
        (None, Some(l), Some(n)) => Payer::Card {
            last4: l.clone(),
            name: n.clone(),
        },
        _ => {
            return Err(PersonalDataError::Refused(
                "This request no longer says who the payer is".into(),
            ))
        }
    };
    let found = access::find(db, &services, &payer).await?;
    let (held, free): (Vec<_>, Vec<_>) = found.into_iter().partition(|d| d.held_by.is_some());
    let mut held: Vec<(String, String)> = held
        .iter()
        .map(|d| {
            (
                d.payment_id.clone(),
                why(d.held_by.as_deref().unwrap_or_default()),
            )
        })
        .collect();
    let mut redacted = 0;
    if !free.is_empty() {
        let removed = retention::redact(
            db,
            now,
            who.actor.clone(),
            who.ip.clone(),
            &format!("erasure:{id}"),
            &free,
            at + 1,
            BY_ERASURE,
            json!({"reason": BY_ERASURE, "erasure": id, "held_skipped": held.len()}),
        )
        .await?;
        redacted = removed.journeys;
        // Agreements the payer's payments were taken under that keep their data.
        held.extend(removed.kept_agreements.iter().map(|(agreement, status)| {
            (
                format!("agreement {agreement}"),
                if status == "active" {
                    "the recurring agreement is still active: once it is cancelled, ask again"
                        .to_string()
                } else {
                    "another payment under the recurring agreement is held".to_string()
                },
            )
        }));
        super::reach::expire_exports(db, now, &services, None).await?;
    }
    let done = Done { redacted, held };
    let outcome = serde_json::to_string(&done).unwrap_or_else(|_| "{}".into());
    let mut tx = db.begin().await?;
    if !sa_store::decide_erasure(&mut tx, id, "done", who.staff_id, &outcome, at).await? {
        tx.rollback().await?;
        return Err(PersonalDataError::Refused(
            "This request has already been decided".into(),
        ));
    }
    // Who the payer was, as the request's audit entry kept it beside the chain.
    sa_store::erase_audit_values(&mut tx, &format!("erasure:{id}"), at).await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(who.actor.clone(), "personal_data_erasure_approved", format!("erasure:{id}"))
            .from_ip(who.ip.clone())
            .details(json!({"redacted": done.redacted, "held": done.held.iter().map(|(p, w)| json!({"payment_id": p, "why": w})).collect::<Vec<_>>()})),
    )
    .await?;
    tx.commit().await?;
    if done.redacted > 0 {
        crate::store::personal_data::scrub(db).await?;
    }
    Ok(Some(done))
}

/// Requests waiting for a second person, in the services this person manages.
pub async fn waiting(db: &Db, who: &Manager) -> Result<Vec<sa_store::Erasure>, PersonalDataError> {
    Ok(sa_store::erasures_waiting(db)
        .await?
        .into_iter()
        .filter(|r| {
            serde_json::from_str::<Vec<i64>>(&r.service_ids)
                .map(|s| s.iter().all(|id| who.service_ids.contains(id)))
                .unwrap_or(false)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_erasure_needs_reason_and_case_reference() {
        assert!(parse_request("Payer asked", "CASE-1").is_ok());
        assert_eq!(parse_request(" ", " ").map_err(|e| e.len()), Err(2));
        assert!(parse_request("card 4242424242424242", "C").is_err());
    }
}
