//! Whole-account actions: those that act on a person's account as a whole rather than on
//! their role in one service — disabling and re-enabling it, resetting its authenticator,
//! signing it out everywhere and sending its invitation (a set-up link for the whole
//! account) again. An administrator may take one only on someone else whose every role is
//! in services they manage: a service admin of A cannot reach a person's work in B.

use super::staff_admin::{Admin, Person, Refusal};

/// The checks every whole-account action makes.
pub fn whole_account(admin: &Admin, person: &Person) -> Result<(), Refusal> {
    if person.id == admin.id {
        Err(Refusal::OwnAccount)
    } else if !person.wholly_managed() {
        Err(Refusal::OtherServices)
    } else {
        Ok(())
    }
}
