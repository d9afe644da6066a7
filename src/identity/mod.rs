//! Staff identity: who a person is, what they may do, and in which services.
//! `permissions` is the one place that names permissions and says which role holds which;
//! `accounts` and `signin` hold the rules for accounts, passwords, sign-in and sessions;
//! `oidc` is single sign-on.

pub mod access_review;
pub mod accounts;
pub mod email;
pub mod inactivity;
pub mod invitation;
pub mod lockout;
pub mod oidc;
pub mod password;
pub mod permissions;
pub mod sessions;
pub mod signin;
pub mod staff_admin;
pub mod standing;
pub mod step_up;
pub mod totp;

use crate::audit::AuditError;
use crate::store::StoreError;

/// Something below the rules failed (the database, hashing, templates); shown to people as
/// "there is a problem with the service", with details in the log only.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    #[error("single sign-on: {0}")]
    Sso(String),
}

/// This capability's job handlers: the inactivity sweep.
pub fn handlers() -> Vec<std::sync::Arc<dyn crate::jobs::JobHandler>> {
    vec![std::sync::Arc::new(inactivity::InactivitySweep)]
}

/// This capability's periodic work: once a day across instances, disable staff accounts
/// unused for 90 days.
pub fn periodic() -> Vec<crate::schedule::Periodic> {
    vec![crate::schedule::Periodic::each_tick(
        "staff inactivity sweep",
        |db, now| async move { inactivity::schedule(&db, now).await.map(|_| ()) },
    )]
}
