//! The error outbound events and their endpoints' owners share.

use crate::audit;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}
