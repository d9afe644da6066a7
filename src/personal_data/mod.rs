//! Payer personal data: where it lives (`inventory`), how long it is kept and how it is
//! removed (`retention`: a service's retention period, the daily redaction, the removal of one
//! journey's data everywhere it was copied), and what keeps it (`holds`: an admin's legal hold,
//! an open refund). See the README's "Where personal data lives".
//!
//! Redaction keeps amounts, dates, states, references, card brand and last 4 and every id, so
//! reconciliation and month-end figures do not change; it empties the payer's email, name,
//! description and metadata on the journey, its search text and metadata index, comments on its
//! refunds and timeline, stored API answers that name it, mail sent to the payer, and the
//! personal values audit entries about it keep beside the chain.

pub mod access;
pub mod erasure;
pub mod holds;
pub mod inventory;
pub mod reach;
pub mod retention;

use crate::audit::AuditError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PersonalDataError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Something the person asked for cannot be done; the message says why, for the page.
    #[error("{0}")]
    Refused(String),
    #[error("not found")]
    NotFound,
}

/// This capability's job handlers: the daily retention run.
pub fn handlers() -> Vec<std::sync::Arc<dyn crate::jobs::JobHandler>> {
    vec![std::sync::Arc::new(retention::RetentionRun)]
}

/// This capability's periodic work: once a day across instances, redact the payer data of
/// journeys past their service's retention period.
pub fn periodic() -> Vec<crate::schedule::Periodic> {
    vec![crate::schedule::Periodic::each_tick(
        "personal data retention",
        |db, now| async move { retention::schedule(&db, now).await.map(|_| ()) },
    )]
}
