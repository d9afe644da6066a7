//! Staff identity: who a person is, what they may do, and in which services.
//! `permissions` is the one place that names permissions and says which role holds which.

pub mod password;
pub mod permissions;
pub mod sessions;
pub mod totp;
