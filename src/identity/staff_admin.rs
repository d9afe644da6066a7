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

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::accounts;
use super::email::{email_key, is_valid_email};
use super::permissions::{check_grant, GrantRefusal, Grants, Permission, Role};
use super::{sessions, IdentityError};
use crate::audit::{self, Actor, AuditEvent};
use crate::mail;
use crate::store::staff::{self as staff_store, LinkRow, StaffRow};
use crate::store::staff_admin as admin_store;
use crate::store::{self, Db};
use crate::AppState;

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

/// Every service, by id.
async fn services_by_id(db: &Db) -> Result<BTreeMap<i64, ServiceRef>, IdentityError> {
    Ok(store::services::all(db)
        .await?
        .into_iter()
        .map(|s| {
            (
                s.id,
                ServiceRef {
                    id: s.id,
                    slug: s.slug,
                    name: s.name,
                },
            )
        })
        .collect())
}

/// The services whose staff `admin` manages, by name.
pub async fn managed_services(db: &Db, admin: &Admin) -> Result<Vec<ServiceRef>, IdentityError> {
    let scope = admin.scope();
    let mut list: Vec<ServiceRef> = services_by_id(db)
        .await?
        .into_values()
        .filter(|s| scope.covers(Some(s.id)))
        .collect();
    list.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()));
    Ok(list)
}

/// The service a form names (a slug, or `*` for the global role), if `admin` manages it.
async fn resolve_service(
    db: &Db,
    admin: &Admin,
    key: &str,
) -> Result<Result<Option<ServiceRef>, Refusal>, IdentityError> {
    let key = key.trim();
    if key == EVERY_SERVICE {
        return Ok(if admin.scope() == Scope::Every {
            Ok(None)
        } else {
            Err(Refusal::Grant(GrantRefusal::GlobalRole))
        });
    }
    Ok(managed_services(db, admin)
        .await?
        .into_iter()
        .find(|s| s.slug == key)
        .map(Some)
        .ok_or(Refusal::NoSuchService))
}

fn build_person(
    scope: &Scope,
    services: &BTreeMap<i64, ServiceRef>,
    staff: PersonCore,
    held: Vec<(Option<i64>, Role)>,
) -> Option<Person> {
    let ids: Vec<Option<i64>> = held.iter().map(|(s, _)| *s).collect();
    if !visible(scope, &ids) {
        return None;
    }
    let mut access = Vec::new();
    let mut elsewhere = false;
    for (service_id, role) in held {
        if !scope.covers(service_id) {
            elsewhere = true;
            continue;
        }
        let service = match service_id {
            Some(id) => match services.get(&id) {
                Some(s) => Some(s.clone()),
                None => continue,
            },
            None => None,
        };
        access.push(Access { service, role });
    }
    access.sort_by(|a, b| {
        (a.service.is_some(), a.service_name().to_lowercase())
            .cmp(&(b.service.is_some(), b.service_name().to_lowercase()))
    });
    Some(Person {
        id: staff.id,
        email: staff.email,
        name: staff.name,
        status: staff.status,
        last_sign_in_at: staff.last_sign_in_at,
        created_at: staff.created_at,
        has_totp: staff.has_totp,
        access,
        access_elsewhere: elsewhere,
    })
}

struct PersonCore {
    id: i64,
    email: String,
    name: String,
    status: String,
    last_sign_in_at: Option<i64>,
    created_at: i64,
    has_totp: bool,
}

/// Everyone `admin` may see, by name.
pub async fn people(db: &Db, admin: &Admin) -> Result<Vec<Person>, IdentityError> {
    let scope = admin.scope();
    let services = services_by_id(db).await?;
    let rows = admin_store::people_with_grants(db).await?;
    let mut out = Vec::new();
    let mut current: Option<(PersonCore, Vec<(Option<i64>, Role)>)> = None;
    for row in rows {
        if current.as_ref().is_some_and(|(p, _)| p.id != row.id) {
            if let Some((core, held)) = current.take() {
                out.extend(build_person(&scope, &services, core, held));
            }
        }
        let entry = current.get_or_insert_with(|| {
            (
                PersonCore {
                    id: row.id,
                    email: row.email.clone(),
                    name: row.name.clone(),
                    status: row.status.clone(),
                    last_sign_in_at: row.last_sign_in_at,
                    created_at: row.created_at,
                    has_totp: row.has_totp,
                },
                Vec::new(),
            )
        });
        if let Some(role) = row.role.as_deref().and_then(|r| r.parse::<Role>().ok()) {
            entry.1.push((row.service_id, role));
        }
    }
    if let Some((core, held)) = current.take() {
        out.extend(build_person(&scope, &services, core, held));
    }
    Ok(out)
}

/// One person, if `admin` may see them (None answers 404: someone of another service looks
/// exactly like nobody).
pub async fn person(db: &Db, admin: &Admin, id: i64) -> Result<Option<Person>, IdentityError> {
    let Some(staff) = staff_store::staff_by_id(db, id).await? else {
        return Ok(None);
    };
    let held: Vec<(Option<i64>, Role)> = staff_store::grants(db, id)
        .await?
        .into_iter()
        .filter_map(|g| g.role.parse::<Role>().ok().map(|r| (g.service_id, r)))
        .collect();
    let services = services_by_id(db).await?;
    Ok(build_person(
        &admin.scope(),
        &services,
        PersonCore {
            id: staff.id,
            email: staff.email,
            name: staff.name,
            status: staff.status,
            last_sign_in_at: staff.last_sign_in_at,
            created_at: staff.created_at,
            has_totp: staff.totp_secret.is_some(),
        },
        held,
    ))
}

/// A person's latest invitation link, for their page.
pub async fn invitation(db: &Db, person_id: i64) -> Result<Option<LinkRow>, IdentityError> {
    Ok(admin_store::latest_setup_link(db, person_id).await?)
}

/// How many places a person is signed in.
pub async fn session_count(db: &Db, person_id: i64) -> Result<usize, IdentityError> {
    Ok(staff_store::sessions_of(db, person_id).await?.len())
}

fn role_of(name: &str) -> Result<Role, Refusal> {
    name.trim().parse::<Role>().map_err(|_| Refusal::NoSuchRole)
}

/// What a role change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChanged {
    pub service: String,
    pub from: Option<Role>,
    pub to: Role,
}

/// Give `person` `role` in the service named `service_key` (a slug, or `*` for the platform
/// admin role), replacing the role they held there.
pub async fn set_role(
    state: &AppState,
    admin: &Admin,
    person: &Person,
    service_key: &str,
    role: &str,
) -> Result<Result<RoleChanged, Refusal>, IdentityError> {
    if person.id == admin.id {
        return Ok(Err(Refusal::OwnAccount));
    }
    let service = match resolve_service(&state.db, admin, service_key).await? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let role = match role_of(role) {
        Ok(r) => r,
        Err(r) => return Ok(Err(r)),
    };
    let service_id = service.as_ref().map(|s| s.id);
    if role.is_global() != service_id.is_none() {
        return Ok(Err(Refusal::NoSuchRole));
    }
    if let Err(e) = check_grant(admin.id, &admin.grants, person.id, role, service_id) {
        return Ok(Err(e.into()));
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let old = admin_store::grant_in(&mut tx, person.id, service_id)
        .await?
        .and_then(|r| r.parse::<Role>().ok());
    if let Some(old) = old {
        let refusal = if old == role {
            Some(Refusal::Unchanged)
        } else {
            // Taking the old role away is a change of its own: the same rule applies.
            check_grant(admin.id, &admin.grants, person.id, old, service_id)
                .err()
                .map(Refusal::from)
        };
        if let Some(r) = refusal {
            tx.rollback().await?;
            return Ok(Err(r));
        }
    }
    admin_store::put_grant(
        &mut tx,
        person.id,
        service_id,
        role.name(),
        &admin.actor().reference(),
        store::to_micros(now),
    )
    .await?;
    let service_name = service
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "Every service".into());
    let action = if old.is_some() {
        "user_role_changed"
    } else {
        "user_access_granted"
    };
    audit::append(
        &mut tx,
        now,
        admin.event(action, person.id).details(json!({
            "service": service.as_ref().map(|s| s.slug.clone()),
            "from": old.map(Role::name),
            "to": role.name(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(RoleChanged {
        service: service_name,
        from: old,
        to: role,
    }))
}

/// Take away `person`'s role in the service named `service_key`.
pub async fn remove_access(
    state: &AppState,
    admin: &Admin,
    person: &Person,
    service_key: &str,
) -> Result<Result<String, Refusal>, IdentityError> {
    if person.id == admin.id {
        return Ok(Err(Refusal::OwnAccount));
    }
    let service = match resolve_service(&state.db, admin, service_key).await? {
        Ok(s) => s,
        Err(r) => return Ok(Err(r)),
    };
    let service_id = service.as_ref().map(|s| s.id);
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let Some(old) = admin_store::grant_in(&mut tx, person.id, service_id)
        .await?
        .and_then(|r| r.parse::<Role>().ok())
    else {
        tx.rollback().await?;
        return Ok(Err(Refusal::NoAccess));
    };
    if let Err(e) = check_grant(admin.id, &admin.grants, person.id, old, service_id) {
        tx.rollback().await?;
        return Ok(Err(e.into()));
    }
    admin_store::delete_grant(&mut tx, person.id, service_id).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_access_removed", person.id)
            .details(json!({
                "service": service.as_ref().map(|s| s.slug.clone()),
                "role": old.name(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(service
        .map(|s| s.name)
        .unwrap_or_else(|| "Every service".into())))
}

/// The checks every whole-account action makes. Whole-account actions act on a person's
/// account as a whole rather than on their role in one service (disabling and re-enabling it,
/// resetting its authenticator, signing it out everywhere, sending its invitation again). An
/// administrator may take one only on someone else whose every role is in services they
/// manage: a service admin of A cannot reach a person's work in B.
pub fn whole_account(admin: &Admin, person: &Person) -> Result<(), Refusal> {
    if person.id == admin.id {
        Err(Refusal::OwnAccount)
    } else if !person.wholly_managed() {
        Err(Refusal::OtherServices)
    } else {
        Ok(())
    }
}

/// Disable an account: it cannot sign in, its sessions end at once and its unused links die.
pub async fn disable(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = state.clock.now();
    let at = store::to_micros(now);
    let mut tx = state.db.begin().await?;
    let current = staff_store::staff_for_update(&mut tx, person.id).await?;
    if current.as_ref().is_none_or(|s| s.status == "disabled") {
        tx.rollback().await?;
        return Ok(Err(Refusal::AlreadyDisabled));
    }
    staff_store::set_status(&mut tx, person.id, "disabled", at).await?;
    let ended = staff_store::delete_sessions_of(&mut tx, person.id, None).await?;
    let links = admin_store::expire_links(&mut tx, person.id, at).await?;
    audit::append(
        &mut tx,
        now,
        admin.event("user_disabled", person.id).details(json!({
            "sessions_ended": ended,
            "links_ended": links,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(ended))
}

/// The status a re-enabled account returns to: active if it was ever set up, else invited.
fn status_after_enable(staff: &StaffRow) -> &'static str {
    if staff.last_sign_in_at.is_some() || staff.password_hash.is_some() {
        "active"
    } else {
        "invited"
    }
}

/// Re-enable a disabled account. The 90-day inactivity check counts from now. Returns the
/// status it returned to.
pub async fn enable(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<&'static str, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let Some(current) = staff_store::staff_for_update(&mut tx, person.id)
        .await?
        .filter(|s| s.status == "disabled")
    else {
        tx.rollback().await?;
        return Ok(Err(Refusal::NotDisabled));
    };
    let status = status_after_enable(&current);
    admin_store::reactivate(&mut tx, person.id, status, store::to_micros(now)).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_enabled", person.id)
            .details(json!({"status": status})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(status))
}

/// End every session of a person at once (a whole-account action).
pub async fn sign_out_everywhere(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let ended =
        accounts::end_sessions(state, admin.actor(), person.id, None, admin.ip.clone()).await?;
    Ok(Ok(ended))
}

/// Forget a person's authenticator and end their sessions: at their next sign-in, after the
/// password, they set up an authenticator again.
pub async fn reset_authenticator(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<u64, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    admin_store::clear_totp(&mut tx, person.id, store::to_micros(now)).await?;
    let ended = staff_store::delete_sessions_of(&mut tx, person.id, None).await?;
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_mfa_reset", person.id)
            .details(json!({"sessions_ended": ended})),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(ended))
}

/// An invitation email for `staff`, with a new one-time link; the link's token is returned
/// to be stored (hashed) in the same transaction that queues the message.
fn invitation_mail(
    state: &AppState,
    admin: &Admin,
    email: &str,
    name: &str,
    access: &[String],
) -> Result<(String, mail::Mail), IdentityError> {
    let token = sessions::new_session_id();
    let link = format!("{}/setup/{token}", state.config.public_url);
    let message = state.mail.render(
        "staff_invite",
        email,
        &json!({
            "name": name,
            "link": link,
            "hours": INVITE_VALID.whole_hours(),
            "service_name": state.config.service_name,
            "invited_by": admin.name,
            "access": access,
        }),
    )?;
    Ok((token, message))
}

fn describe(access: &[Access]) -> Vec<String> {
    access
        .iter()
        .map(|a| format!("{} in {}", a.role.label(), a.service_name()))
        .collect()
}

/// Send an invited person a new link; the old one stops working. The 90-day inactivity check
/// counts from now.
pub async fn resend_invitation(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<OffsetDateTime, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    if person.status != "invited" {
        return Ok(Err(Refusal::NotInvited));
    }
    let now = state.clock.now();
    let expires_at = now + INVITE_VALID;
    let (token, message) = invitation_mail(
        state,
        admin,
        &person.email,
        &person.name,
        &describe(&person.access),
    )?;
    let at = store::to_micros(now);
    let mut tx = state.db.begin().await?;
    let current = staff_store::staff_for_update(&mut tx, person.id).await?;
    if current.as_ref().is_none_or(|s| s.status != "invited") {
        tx.rollback().await?;
        return Ok(Err(Refusal::NotInvited));
    }
    staff_store::insert_link(
        &mut tx,
        &sessions::id_hash(&token),
        person.id,
        "setup",
        store::to_micros(expires_at),
        at,
    )
    .await?;
    admin_store::touch_reactivated(&mut tx, person.id, at).await?;
    mail::enqueue(&mut tx, &message, now).await?;
    audit::append(
        &mut tx,
        now,
        admin.event("user_invite_resent", person.id).details(json!({
            "expires_at": expires_at.unix_timestamp(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(expires_at))
}

/// What withdrawing an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The account holds nothing any more: its links ended and it is disabled.
    pub account_closed: bool,
}

/// Withdraw an invitation from the services `admin` manages. If the person is left with no
/// role anywhere, their link stops working and the account is disabled; an invitation from
/// another service's admin stands.
pub async fn revoke_invitation(
    state: &AppState,
    admin: &Admin,
    person: &Person,
) -> Result<Result<Revoked, Refusal>, IdentityError> {
    if person.status != "invited" {
        return Ok(Err(Refusal::NotInvited));
    }
    for a in &person.access {
        if let Err(e) = check_grant(admin.id, &admin.grants, person.id, a.role, a.service_id()) {
            return Ok(Err(e.into()));
        }
    }
    let now = state.clock.now();
    let at = store::to_micros(now);
    let mut tx = state.db.begin().await?;
    let current = staff_store::staff_for_update(&mut tx, person.id).await?;
    if current.as_ref().is_none_or(|s| s.status != "invited") {
        tx.rollback().await?;
        return Ok(Err(Refusal::NotInvited));
    }
    let mut removed = Vec::new();
    for a in &person.access {
        if admin_store::delete_grant(&mut tx, person.id, a.service_id()).await? {
            removed.push(json!({"service": a.service.as_ref().map(|s| s.slug.clone()), "role": a.role.name()}));
        }
    }
    let closed = admin_store::grant_count(&mut tx, person.id).await? == 0;
    if closed {
        admin_store::expire_links(&mut tx, person.id, at).await?;
        staff_store::set_status(&mut tx, person.id, "disabled", at).await?;
    }
    audit::append(
        &mut tx,
        now,
        admin
            .event("user_invite_revoked", person.id)
            .details(json!({
                "removed": removed,
                "account_closed": closed,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Revoked {
        account_closed: closed,
    }))
}

/// An invitation as the form sent it.
#[derive(Debug, Clone, Default)]
pub struct InviteForm {
    pub email: String,
    pub name: String,
    /// (service slug, role name); an empty role means no access to that service.
    pub roles: Vec<(String, String)>,
    /// Also make them a platform admin (platform admins only).
    pub platform_admin: bool,
}

/// A problem with an invitation: the field (`email`, `name`, `roles`, or `role-<slug>`) and
/// the words.
pub type InviteProblem = (String, String);

/// What an invitation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invited {
    /// A new account, emailed a set-up link valid for 48 hours.
    New { staff_id: i64 },
    /// The address already had an account (invited or active): the new roles were added to
    /// it and no email was sent.
    AddedTo { staff_id: i64, status: String },
}

/// Invite someone by email with a role per service, or (if the address already has an
/// account) give that account the roles asked for. Nothing changes when any part of the
/// invitation is refused.
pub async fn invite(
    state: &AppState,
    admin: &Admin,
    form: &InviteForm,
) -> Result<Result<Invited, Vec<InviteProblem>>, IdentityError> {
    let email = form.email.trim();
    let name = form.name.trim();
    let mut problems: Vec<InviteProblem> = Vec::new();
    let problem = |field: &str, message: String| (field.to_string(), message);
    if !is_valid_email(email) {
        problems.push(problem(
            "email",
            "Enter an email address in the correct format, like name@example.gov.uk".into(),
        ));
    }
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        problems.push(problem(
            "name",
            "Enter a name of 200 characters or fewer, with letters, spaces and punctuation only"
                .into(),
        ));
    }
    let managed = managed_services(&state.db, admin).await?;
    let mut wanted: Vec<Access> = Vec::new();
    for (slug, role) in &form.roles {
        if role.trim().is_empty() {
            continue;
        }
        let field = format!("role-{slug}");
        let Some(service) = managed.iter().find(|s| &s.slug == slug) else {
            problems.push(problem(
                "roles",
                "Choose roles only in services you manage".into(),
            ));
            continue;
        };
        let Ok(role) = role.trim().parse::<Role>().map_err(|_| ()).and_then(|r| {
            if r.is_global() {
                Err(())
            } else {
                Ok(r)
            }
        }) else {
            problems.push(problem(
                &field,
                format!("Choose a role in {}", service.name),
            ));
            continue;
        };
        if let Err(e) = check_grant(admin.id, &admin.grants, 0, role, Some(service.id)) {
            problems.push(problem(&field, format!("{e} ({})", service.name)));
            continue;
        }
        wanted.push(Access {
            service: Some(service.clone()),
            role,
        });
    }
    if form.platform_admin {
        if admin.scope() == Scope::Every {
            wanted.push(Access {
                service: None,
                role: Role::PlatformAdmin,
            });
        } else {
            problems.push(problem("roles", GrantRefusal::GlobalRole.to_string()));
        }
    }
    if wanted.is_empty() && problems.iter().all(|(f, _)| !f.starts_with("role")) {
        problems.push(problem(
            "roles",
            "Choose a role in at least one service".into(),
        ));
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    let now = state.clock.now();
    let at = store::to_micros(now);
    let by = admin.actor().reference();
    let access_words = describe(&wanted);

    let existing = staff_store::staff_by_email_key(&state.db, &email_key(email)).await?;
    if let Some(existing) = existing {
        return add_to_existing(state, admin, existing, &wanted, now).await;
    }
    if name.is_empty() {
        return Ok(Err(vec![problem("name", "Enter their full name".into())]));
    }
    let (token, message) = invitation_mail(state, admin, email, name, &access_words)?;
    let mut tx = state.db.begin().await?;
    let Some(staff_id) =
        staff_store::insert_staff(&mut tx, email, &email_key(email), name, at).await?
    else {
        // Someone else invited the address a moment ago.
        tx.rollback().await?;
        return Ok(Err(vec![problem(
            "email",
            "Someone has just been invited with that email address. Find them in the list of staff"
                .into(),
        )]));
    };
    for a in &wanted {
        staff_store::insert_grant(&mut tx, staff_id, a.service_id(), a.role.name(), &by, at)
            .await?;
    }
    staff_store::insert_link(
        &mut tx,
        &sessions::id_hash(&token),
        staff_id,
        "setup",
        store::to_micros(now + INVITE_VALID),
        at,
    )
    .await?;
    mail::enqueue(&mut tx, &message, now).await?;
    audit::append(
        &mut tx,
        now,
        admin.event("user_invited", staff_id).details(json!({
            "email": email,
            "name": name,
            "access": wanted.iter().map(|a| json!({
                "service": a.service.as_ref().map(|s| s.slug.clone()),
                "role": a.role.name(),
            })).collect::<Vec<_>>(),
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(Invited::New { staff_id }))
}

/// An invitation to an address that already has an account: the roles are added to it,
/// unless it is the administrator's own, disabled, or already has access to one of the
/// services (then nothing changes and the administrator is told why).
async fn add_to_existing(
    state: &AppState,
    admin: &Admin,
    existing: StaffRow,
    wanted: &[Access],
    now: OffsetDateTime,
) -> Result<Result<Invited, Vec<InviteProblem>>, IdentityError> {
    let problem = |field: &str, message: String| vec![(field.to_string(), message)];
    if existing.id == admin.id {
        return Ok(Err(problem("email", Refusal::OwnAccount.to_string())));
    }
    if existing.status == "disabled" {
        return Ok(Err(problem(
            "email",
            format!(
                "{} has an account that is disabled. It must be re-enabled before they can be given access",
                existing.email
            ),
        )));
    }
    let at = store::to_micros(now);
    let by = admin.actor().reference();
    let mut tx = state.db.begin().await?;
    let mut problems = Vec::new();
    for a in wanted {
        if let Some(held) = admin_store::grant_in(&mut tx, existing.id, a.service_id()).await? {
            let held = held
                .parse::<Role>()
                .map(Role::label)
                .unwrap_or("another role");
            let field = match &a.service {
                Some(s) => format!("role-{}", s.slug),
                None => "roles".into(),
            };
            problems.push((
                field,
                format!(
                    "{} already has access to {} as {held}. Change their role on their page instead",
                    existing.email,
                    a.service_name()
                ),
            ));
        }
    }
    if !problems.is_empty() {
        tx.rollback().await?;
        return Ok(Err(problems));
    }
    for a in wanted {
        staff_store::insert_grant(&mut tx, existing.id, a.service_id(), a.role.name(), &by, at)
            .await?;
        audit::append(
            &mut tx,
            now,
            admin
                .event("user_access_granted", existing.id)
                .details(json!({
                    "service": a.service.as_ref().map(|s| s.slug.clone()),
                    "from": null,
                    "to": a.role.name(),
                    "via": "invitation",
                })),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(Invited::AddedTo {
        staff_id: existing.id,
        status: existing.status,
    }))
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
