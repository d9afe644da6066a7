//! Staff administration (`staff:manage`): who works in the services an administrator
//! manages, inviting people by email, changing and removing their roles, disabling and
//! re-enabling accounts, signing people out everywhere and resetting their authenticator.
//!
//! The rules: an administrator sees only people holding a role in a service they manage (a
//! platform admin sees everyone); nobody changes their own access here; nobody gives or takes
//! away a role they do not hold themselves (`permissions::check_grant`); and actions on the
//! whole account (disable, re-enable, reset the authenticator) need authority over every role
//! the person holds, so that the admin of one service cannot lock someone out of another.
//! Every change is audited in the transaction that makes it.

mod account;
mod invite;
mod people;
mod roles;

pub use account::{disable, enable, reset_authenticator, sign_out_everywhere, whole_account};
pub use invite::{
    invite, resend_invitation, revoke_invitation, InviteForm, InviteProblem, Invited, Revoked,
};
pub use people::{invitation, managed_services, people, person, session_count};
pub use roles::{remove_access, set_role, RoleChanged};

use std::collections::BTreeSet;

use time::Duration;

use super::accounts;
use super::permissions::{check_grant, GrantRefusal, Grants, Permission, Role};
use crate::audit::{Actor, AuditEvent};

/// How long an invitation's link works.
pub const INVITE_VALID: Duration = accounts::SETUP_LINK_VALID;

/// What the forms call the global (platform admin) "service".
pub const EVERY_SERVICE: &str = "*";

/// An administrator at work: who they are, what they hold, where the request came from.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub grants: Grants,
    pub ip: Option<String>,
}

impl Admin {
    pub fn actor(&self) -> Actor {
        Actor::staff(self.id, &self.email)
    }

    /// The services whose staff this administrator manages.
    pub fn scope(&self) -> Scope {
        match self.grants.services_with(Permission::StaffManage) {
            None => Scope::Every,
            Some(ids) => Scope::Services(ids),
        }
    }

    fn event(&self, action: &str, person_id: i64) -> AuditEvent {
        AuditEvent::new(self.actor(), action, format!("staff:{person_id}")).from_ip(self.ip.clone())
    }
}

/// Where an administrator's authority over staff reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every service, and the global role: a platform admin.
    Every,
    Services(BTreeSet<i64>),
}

impl Scope {
    /// Whether a role held in `service_id` (None: the global role) is within reach.
    pub fn covers(&self, service_id: Option<i64>) -> bool {
        match (self, service_id) {
            (Scope::Every, _) => true,
            (Scope::Services(ids), Some(id)) => ids.contains(&id),
            (Scope::Services(_), None) => false,
        }
    }
}

/// A service as these pages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub id: i64,
    pub slug: String,
    pub name: String,
}

/// One role a person holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// None for the global role.
    pub service: Option<ServiceRef>,
    pub role: Role,
}

impl Access {
    pub fn service_id(&self) -> Option<i64> {
        self.service.as_ref().map(|s| s.id)
    }

    pub fn service_name(&self) -> &str {
        self.service
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or("Every service")
    }

    /// The form value naming the service: its slug, or `*` for the global role.
    pub fn service_key(&self) -> &str {
        self.service
            .as_ref()
            .map(|s| s.slug.as_str())
            .unwrap_or(EVERY_SERVICE)
    }
}

/// A person as an administrator sees them.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: String,
    pub last_sign_in_at: Option<i64>,
    pub created_at: i64,
    pub has_totp: bool,
    /// The roles within the administrator's reach (every role, for a platform admin).
    pub access: Vec<Access>,
    /// Whether they also hold roles beyond the administrator's reach.
    pub access_elsewhere: bool,
}

impl Person {
    /// Whether the administrator may act on the whole account.
    pub fn wholly_managed(&self) -> bool {
        !self.access_elsewhere
    }
}

/// Whether someone holding `held` is visible to an administrator with `scope`: a platform
/// admin sees everyone; anyone else sees people holding a role in a service they manage.
pub fn visible(scope: &Scope, held: &[Option<i64>]) -> bool {
    match scope {
        Scope::Every => true,
        Scope::Services(_) => held.iter().any(|s| scope.covers(*s)),
    }
}

/// The roles `admin` may give in `service_id` (None: the global role), mildest first.
pub fn grantable_roles(admin: &Grants, service_id: Option<i64>) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|r| r.is_global() == service_id.is_none())
        // Checked as if for someone else (id 0 is never an account).
        .filter(|r| check_grant(-1, admin, 0, *r, service_id).is_ok())
        .collect()
}

/// Why an action was refused; the words are for the administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("You cannot change your own access or account here. Use Your account to manage your own sign-in")]
    OwnAccount,
    #[error("{0}")]
    Grant(#[from] GrantRefusal),
    #[error("This person also has access to services you do not manage, so only a platform admin can do that")]
    OtherServices,
    #[error("This account is already disabled")]
    AlreadyDisabled,
    #[error("This account is not disabled")]
    NotDisabled,
    #[error("This person has already set up their account, so there is no invitation to send again or withdraw")]
    NotInvited,
    #[error("Choose a service you manage")]
    NoSuchService,
    #[error("Choose a role")]
    NoSuchRole,
    #[error("This person does not have access to that service")]
    NoAccess,
    #[error("This person already has that role in that service")]
    Unchanged,
}

impl Refusal {
    /// Refused for who is asking (403), rather than for what was asked (422).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Refusal::OwnAccount | Refusal::Grant(_) | Refusal::OtherServices
        )
    }

    /// The form field the problem is about, if any.
    pub fn field(&self) -> &'static str {
        match self {
            Refusal::NoSuchService => "service",
            Refusal::NoSuchRole
            | Refusal::Unchanged
            | Refusal::Grant(GrantRefusal::RoleNotHeld) => "role",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::permissions::Grant;

    fn grants(list: &[(Role, Option<i64>)]) -> Grants {
        Grants(
            list.iter()
                .map(|&(role, service_id)| Grant { role, service_id })
                .collect(),
        )
    }

    #[test]
    fn a_service_admin_sees_people_of_their_services_only() {
        let scope = Scope::Services([1, 2].into());
        assert!(visible(&scope, &[Some(2), Some(7)]));
        assert!(!visible(&scope, &[Some(7)]));
        assert!(!visible(&scope, &[None]), "a platform admin is not theirs");
        assert!(!visible(&scope, &[]), "nor someone holding nothing");
        assert!(visible(&Scope::Every, &[]));
        assert!(Scope::Every.covers(None));
    }

    #[test]
    fn the_roles_offered_are_the_roles_held() {
        let admin = grants(&[(Role::ServiceAdmin, Some(1))]);
        assert_eq!(
            grantable_roles(&admin, Some(1)),
            vec![
                Role::Viewer,
                Role::Caseworker,
                Role::Finance,
                Role::ServiceAdmin
            ]
        );
        assert!(grantable_roles(&admin, Some(2)).is_empty());
        assert!(grantable_roles(&admin, None).is_empty());
        let platform = grants(&[(Role::PlatformAdmin, None)]);
        assert_eq!(grantable_roles(&platform, None), vec![Role::PlatformAdmin]);
        assert_eq!(grantable_roles(&platform, Some(9)).len(), 4);
    }

    #[test]
    fn refusals_say_who_may_not_and_what_is_wrong() {
        assert!(Refusal::OwnAccount.is_forbidden());
        assert!(Refusal::Grant(GrantRefusal::RoleNotHeld).is_forbidden());
        assert!(!Refusal::NoSuchRole.is_forbidden());
        assert_eq!(Refusal::NoSuchService.field(), "service");
    }
}
