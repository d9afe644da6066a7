//! Answers a person has given on one step of a form and not yet confirmed, kept on the server
//! so that the page after a POST is reached by GET (post/redirect/get): the browser's Back
//! button then never offers to send a form again, and a refresh loses nothing. A draft
//! belongs to one person and one kind of form, lasts an hour, and is deleted once used.
//! Drafts can hold what a payer told a caseworker (a refund's comment), so they never last
//! longer than that hour.

use serde::de::DeserializeOwned;
use serde::Serialize;
use time::OffsetDateTime;

use crate::store::{drafts as store, to_micros, Db, StoreResult};

/// How long a draft lasts.
pub const LIFETIME: time::Duration = time::Duration::hours(1);

/// Keep `answers` under `key` (a form's one-time key) for this person.
pub async fn keep<T: Serialize>(
    db: &Db,
    now: OffsetDateTime,
    staff_id: i64,
    kind: &str,
    key: &str,
    answers: &T,
) -> StoreResult<()> {
    let body = serde_json::to_string(answers)
        .map_err(|e| crate::store::StoreError::Invalid(format!("draft: {e}")))?;
    store::put(
        db,
        key,
        staff_id,
        kind,
        &body,
        to_micros(now),
        to_micros(now + LIFETIME),
    )
    .await
}

/// The answers kept under `key` for this person, if they are still there.
pub async fn read<T: DeserializeOwned>(
    db: &Db,
    now: OffsetDateTime,
    staff_id: i64,
    kind: &str,
    key: &str,
) -> StoreResult<Option<T>> {
    Ok(store::get(db, key, staff_id, kind, to_micros(now))
        .await?
        .and_then(|body| serde_json::from_str(&body).ok()))
}

/// Forget the draft under `key`: it was used.
pub async fn forget(db: &Db, staff_id: i64, key: &str) -> StoreResult<()> {
    store::delete(db, key, staff_id).await
}
