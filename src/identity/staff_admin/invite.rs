//! Invitations: inviting someone by email with a role per service (or adding the roles to
//! the account the address already has), sending a new link, and withdrawing an invitation.

use serde_json::json;
use time::OffsetDateTime;

use super::account::whole_account;
use super::people::managed_services;
use super::{Access, Admin, Person, Refusal, Scope, INVITE_VALID};
use crate::audit::{self};
use crate::context::Context;
use crate::identity::email::{email_key, is_valid_email};
use crate::identity::permissions::{check_grant, GrantRefusal, Role};
use crate::identity::{sessions, IdentityError};
use crate::mail;
use crate::store::staff::{self as staff_store, StaffRow};
use crate::store::staff_admin as admin_store;
use crate::store::{self};

/// An invitation email for `staff`, with a new one-time link; the link's token is returned
/// to be stored (hashed) in the same transaction that queues the message.
fn invitation_mail(
    ctx: &Context,
    admin: &Admin,
    email: &str,
    name: &str,
    access: &[String],
) -> Result<(String, mail::Mail), IdentityError> {
    let token = sessions::new_session_id();
    let link = format!("{}/setup/{token}", ctx.config.public_url);
    let message = ctx.mail.render(
        "staff_invite",
        email,
        &json!({
            "name": name,
            "link": link,
            "hours": INVITE_VALID.whole_hours(),
            "service_name": ctx.config.service_name,
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
    ctx: &Context,
    admin: &Admin,
    person: &Person,
) -> Result<Result<OffsetDateTime, Refusal>, IdentityError> {
    if let Err(r) = whole_account(admin, person) {
        return Ok(Err(r));
    }
    if person.status != "invited" {
        return Ok(Err(Refusal::NotInvited));
    }
    let now = ctx.clock.now();
    let expires_at = now + INVITE_VALID;
    let (token, message) = invitation_mail(
        ctx,
        admin,
        &person.email,
        &person.name,
        &describe(&person.access),
    )?;
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await?;
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
    ctx: &Context,
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
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let mut tx = ctx.db.begin().await?;
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
    ctx: &Context,
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
    let managed = managed_services(&ctx.db, admin).await?;
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
    let now = ctx.clock.now();
    let at = store::to_micros(now);
    let by = admin.actor().reference();
    let access_words = describe(&wanted);

    let existing = staff_store::staff_by_email_key(&ctx.db, &email_key(email)).await?;
    if let Some(existing) = existing {
        return add_to_existing(ctx, admin, existing, &wanted, now).await;
    }
    if name.is_empty() {
        return Ok(Err(vec![problem("name", "Enter their full name".into())]));
    }
    let (token, message) = invitation_mail(ctx, admin, email, name, &access_words)?;
    let mut tx = ctx.db.begin().await?;
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
    ctx: &Context,
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
    let mut tx = ctx.db.begin().await?;
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
