//! Legal holds: an admin keeps a payment's personal data past its retention period (a legal
//! claim, an investigation), with a reason, until the hold is released. Open disputes and
//! open refunds hold a payment by themselves (`store::personal_data::due`). Placing and
//! releasing a hold are audited.

use serde_json::json;
use time::OffsetDateTime;

use super::PersonalDataError;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::personal_data::{self as pd_store, Hold};
use crate::store::{self, Db};

/// The longest reason kept.
pub const REASON_MAX: usize = 500;

/// Read a hold's reason: required, at most 500 characters, with no card number in it.
pub fn parse_reason(typed: &str) -> Result<String, String> {
    let reason = typed.trim();
    if reason.is_empty() {
        return Err("Enter why the payment's personal data must be kept".into());
    }
    if reason.chars().count() > REASON_MAX {
        return Err(format!(
            "The reason must be {REASON_MAX} characters or fewer"
        ));
    }
    if crate::card_data::holds_card_number(reason) {
        return Err("The reason must not contain a card number".into());
    }
    Ok(reason.to_string())
}

/// What a hold is placed on, and why.
#[derive(Debug, Clone, Copy)]
pub struct HoldOn<'a> {
    pub service_id: i64,
    pub payment_id: &'a str,
    pub reason: &'a str,
}

/// Place a hold on one payment of a service; its id.
pub async fn place(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    staff_id: i64,
    ip: Option<String>,
    on: HoldOn<'_>,
) -> Result<i64, PersonalDataError> {
    let HoldOn {
        service_id,
        payment_id,
        reason,
    } = on;
    let reason = parse_reason(reason).map_err(PersonalDataError::Refused)?;
    let journey = pd_store::journey_id(db, service_id, payment_id)
        .await?
        .ok_or(PersonalDataError::NotFound)?;
    let mut tx = db.begin().await?;
    let id = pd_store::place_hold(
        &mut tx,
        service_id,
        journey,
        &reason,
        staff_id,
        store::to_micros(now),
    )
    .await?;
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "personal_data_hold_placed",
            format!("payment:{payment_id}"),
        )
        .from_ip(ip)
        .details(json!({"hold": id, "service_id": service_id})),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Release an open hold of a service.
pub async fn release(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    staff_id: i64,
    ip: Option<String>,
    service_id: i64,
    hold_id: i64,
) -> Result<(), PersonalDataError> {
    let mut tx = db.begin().await?;
    if !pd_store::release_hold(
        &mut tx,
        service_id,
        hold_id,
        staff_id,
        store::to_micros(now),
    )
    .await?
    {
        tx.rollback().await?;
        return Err(PersonalDataError::NotFound);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "personal_data_hold_released",
            format!("hold:{hold_id}"),
        )
        .from_ip(ip)
        .details(json!({"service_id": service_id})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The open holds of these services, newest first.
pub async fn open(db: &Db, service_ids: &[i64]) -> Result<Vec<Hold>, PersonalDataError> {
    Ok(pd_store::open_holds(db, service_ids).await?)
}

/// One hold, open or released.
pub async fn get(db: &Db, id: i64) -> Result<Option<Hold>, PersonalDataError> {
    Ok(pd_store::hold(db, id).await?)
}

/// What keeps a journey's personal data past its retention period, in words, and the open
/// holds admins placed on it.
pub async fn of_journey(
    db: &Db,
    journey_id: i64,
) -> Result<(Option<&'static str>, Vec<Hold>), PersonalDataError> {
    let why = pd_store::held_by(db, journey_id)
        .await?
        .map(|w| match w.as_str() {
            "hold" => "an admin has placed a legal hold on it",
            "dispute" => "a dispute of it is still open",
            _ => "a refund of it is still open",
        });
    Ok((why, pd_store::holds_of_journey(db, journey_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_hold_reasons_are_checked() {
        assert_eq!(
            parse_reason("  Court claim 123 "),
            Ok("Court claim 123".into())
        );
        assert!(parse_reason(" ").is_err());
        assert!(parse_reason(&"x".repeat(501)).is_err());
        assert!(parse_reason("card 4242424242424242").is_err());
    }
}
