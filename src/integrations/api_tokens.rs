//! API tokens: how a CRM or case-management system proves itself to paydesk's API. A token is
//! `pdk_` and 32 random bytes (base64url), shown once when it is made; paydesk keeps only its
//! SHA-256 (a fast hash is enough for a secret with 256 bits of entropy: there is nothing to
//! guess). Each token belongs to one service, carries scopes, may expire, and can be revoked.
//! Making and revoking one are audited.

use base64::Engine;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::audit::{self, Actor, AuditError, AuditEvent};
use crate::identity::permissions::{Grants, Permission};
use crate::identity::standing;
use crate::store::api_tokens::{
    self as token_store, NewToken as NewTokenRow, TokenRow, TokenWithMaker,
};
use crate::store::{self, Db, StoreError};

pub use token_store::TokenRow as Token;

/// What every token starts with, so that a leaked one is easy to recognise (and to scan for).
pub const PREFIX: &str = "pdk_";
/// Random bytes in a token.
const RANDOM_BYTES: usize = 32;
/// Characters of a token shown in lists: `pdk_` and 6 more.
const SHOWN: usize = 10;
/// The longest token name.
pub const NAME_MAX: usize = 100;
/// How often "last used" is written at most: every use would be a write per API call.
const TOUCH_EVERY: Duration = Duration::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    PaymentsRead,
    RefundsRequest,
    CasesLink,
    DisputesRead,
    AgreementsRead,
    AgreementsCancel,
    RefundsBulk,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::PaymentsRead,
        Scope::RefundsRequest,
        Scope::CasesLink,
        Scope::DisputesRead,
        Scope::AgreementsRead,
        Scope::AgreementsCancel,
        Scope::RefundsBulk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::PaymentsRead => "payments:read",
            Scope::RefundsRequest => "refunds:request",
            Scope::CasesLink => "cases:link",
            Scope::DisputesRead => "disputes:read",
            Scope::AgreementsRead => "agreements:read",
            Scope::AgreementsCancel => "agreements:cancel",
            Scope::RefundsBulk => "refunds:bulk",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::PaymentsRead => "Read payments and refunds (payments:read)",
            Scope::RefundsRequest => "Ask for refunds (refunds:request)",
            Scope::CasesLink => "Link payments to cases (cases:link)",
            Scope::DisputesRead => "Read disputes (disputes:read)",
            Scope::AgreementsRead => "Read recurring agreements (agreements:read)",
            Scope::AgreementsCancel => "Cancel recurring agreements (agreements:cancel)",
            Scope::RefundsBulk => "Send files of refunds (refunds:bulk)",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The permission a person must hold in the service to give a token this scope: nobody
    /// makes a token that can do more than they can.
    pub fn needs(self) -> Permission {
        match self {
            Scope::PaymentsRead | Scope::CasesLink => Permission::PaymentsRead,
            Scope::RefundsRequest => Permission::RefundsRequest,
            Scope::DisputesRead => Permission::DisputesRead,
            Scope::AgreementsRead => Permission::AgreementsRead,
            Scope::AgreementsCancel => Permission::AgreementsCancel,
            Scope::RefundsBulk => Permission::RefundsBulk,
        }
    }
}

/// The scopes stored on a token ("payments:read cases:link"); unknown names are dropped.
pub fn scopes_of(stored: &str) -> Vec<Scope> {
    let mut out: Vec<Scope> = stored.split_whitespace().filter_map(Scope::parse).collect();
    out.sort();
    out.dedup();
    out
}

/// A token asked for.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub service_id: i64,
    pub name: String,
    /// Scope names as submitted.
    pub scopes: Vec<String>,
    /// Days until it expires; None: it does not expire.
    pub expires_in_days: Option<i64>,
}

/// A field's problem: (field, message).
pub type Problem = (&'static str, String);

/// The longest life a token may be given.
pub const MAX_DAYS: i64 = 366 * 2;

/// Check a new token's fields (pure).
pub fn check(new: &NewToken) -> Result<(String, Vec<Scope>), Vec<Problem>> {
    let mut problems = Vec::new();
    let name = new.name.trim();
    if name.is_empty() {
        problems.push(("name", "Enter a name for the token".to_string()));
    } else if name.chars().count() > NAME_MAX {
        problems.push((
            "name",
            format!("The name must be {NAME_MAX} characters or fewer"),
        ));
    } else if name.chars().any(char::is_control) {
        problems.push((
            "name",
            "The name must only contain letters, numbers, spaces and punctuation".to_string(),
        ));
    }
    let mut scopes = Vec::new();
    for s in &new.scopes {
        match Scope::parse(s) {
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
            None => {
                problems.push((
                    "scopes",
                    "Choose what the token may do from the list".into(),
                ));
                break;
            }
        }
    }
    if new.scopes.is_empty() {
        problems.push((
            "scopes",
            "Choose at least one thing the token may do".into(),
        ));
    }
    scopes.sort();
    if let Some(days) = new.expires_in_days {
        if !(1..=MAX_DAYS).contains(&days) {
            problems.push((
                "expires",
                format!("A token can last from 1 to {MAX_DAYS} days"),
            ));
        }
    }
    if problems.is_empty() {
        Ok((name.to_string(), scopes))
    } else {
        Err(problems)
    }
}

/// Whether someone holding `grants` may make a token with `scopes` in `service_id`, or
/// revoke one there (then with no scopes).
pub fn may_manage(grants: &Grants, service_id: i64, scopes: &[Scope]) -> bool {
    grants.can(Permission::IntegrationsManage, service_id)
        && scopes.iter().all(|s| grants.can(s.needs(), service_id))
}

/// A token just made: the secret itself (shown this once) and its row.
#[derive(Debug, Clone)]
pub struct Created {
    pub secret: String,
    pub token: TokenRow,
}

fn new_secret() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token: lower-case hex SHA-256.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Make a token for `created_by` (a member of staff, who must already have been checked
/// with `may_manage`), as `actor`.
pub async fn create(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    created_by: i64,
    ip: Option<String>,
    new: &NewToken,
) -> Result<Result<Created, Vec<Problem>>, TokenError> {
    let (name, scopes) = match check(new) {
        Ok(c) => c,
        Err(p) => return Ok(Err(p)),
    };
    let secret = new_secret();
    let hashed = hash(&secret);
    let prefix: String = secret.chars().take(SHOWN).collect();
    let scope_text = scopes
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(" ");
    let expires_at = new
        .expires_in_days
        .map(|d| store::to_micros(now + Duration::days(d)));
    let mut tx = db.begin().await?;
    if token_store::live_name_taken(&mut tx, new.service_id, &name).await? {
        tx.rollback().await?;
        return Ok(Err(vec![(
            "name",
            "A token with this name already exists in this service. Choose another name".into(),
        )]));
    }
    let id = token_store::insert(
        &mut tx,
        &NewTokenRow {
            service_id: new.service_id,
            name: &name,
            token_hash: &hashed,
            token_prefix: &prefix,
            scopes: &scope_text,
            created_by,
            expires_at,
        },
        store::to_micros(now),
    )
    .await?;
    // Never the secret or its hash: the prefix is enough to tell tokens apart.
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(actor, "api_token_created", format!("api_token:{id}"))
            .from_ip(ip)
            .details(json!({
                "service_id": new.service_id,
                "name": name,
                "scopes": scope_text,
                "expires_at": expires_at,
                "prefix": prefix,
            })),
    )
    .await?;
    tx.commit().await?;
    let token = token_store::by_id(db, id)
        .await?
        .ok_or_else(|| StoreError::Invalid("a token just made cannot be read".into()))?;
    Ok(Ok(Created { secret, token }))
}

/// Revoke a token as `actor` (staff `by`, already checked with `may_manage`); false when it
/// was already revoked.
pub async fn revoke(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    by: i64,
    ip: Option<String>,
    token: &TokenRow,
) -> Result<bool, TokenError> {
    let mut tx = db.begin().await?;
    if !token_store::revoke(&mut tx, token.id, by, store::to_micros(now)).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "api_token_revoked",
            format!("api_token:{}", token.id),
        )
        .from_ip(ip)
        .details(json!({
            "service_id": token.service_id,
            "name": token.name,
            "prefix": token.token_prefix,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Expired,
    Revoked,
}

impl Standing {
    pub fn of(token: &TokenRow, now: OffsetDateTime) -> Standing {
        if token.revoked_at.is_some() {
            Standing::Revoked
        } else if token.expires_at.is_some_and(|e| e <= store::to_micros(now)) {
            Standing::Expired
        } else {
            Standing::Active
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Standing::Active => "Active",
            Standing::Expired => "Expired",
            Standing::Revoked => "Revoked",
        }
    }
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a paydesk token at all.
    Malformed,
    Unknown,
    Revoked,
    Expired,
    /// The member of staff it acts for has been disabled: what they made stops with them.
    MakerDisabled,
    /// The member of staff it acts for holds no role in the token's service any more.
    MakerRemoved,
}

impl Refused {
    /// What the API says about it.
    pub fn said(self) -> &'static str {
        match self {
            Refused::Revoked => "The token has been revoked",
            Refused::Expired => "The token has expired",
            Refused::MakerDisabled => {
                "The token's maker can no longer use paydesk, so neither can the token"
            }
            Refused::MakerRemoved => {
                "The token's maker no longer works in this service, so neither can the token"
            }
            Refused::Malformed | Refused::Unknown => "The token is not valid",
        }
    }

    /// Whether the refused token is one paydesk made (revoked, expired, or its maker's access
    /// ended): such a refusal names a credential and is audited on its own, while tokens that
    /// are not paydesk's at all are only counted and summarised per source and minute.
    pub fn names_a_token(self) -> bool {
        !matches!(self, Refused::Malformed | Refused::Unknown)
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::Unknown => "unknown",
            Refused::Revoked => "revoked",
            Refused::Expired => "expired",
            Refused::MakerDisabled => "maker disabled",
            Refused::MakerRemoved => "maker removed from service",
        }
    }
}

/// What a token may do now: its scopes whose permission its maker still holds in its
/// service (`usable`), those whose permission they no longer hold (`lapsed`), and where the
/// maker stands. A token never does more than the person it acts for could do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub usable: Vec<Scope>,
    pub lapsed: Vec<Scope>,
    pub maker: MakerStanding,
}

pub use crate::identity::standing::Standing as MakerStanding;

/// Judge a token's reach from its scopes and its maker's standing as read with it (pure).
pub fn reach(t: &TokenWithMaker) -> Reach {
    let scopes = scopes_of(&t.token.scopes);
    let needs: Vec<Permission> = scopes.iter().map(|s| s.needs()).collect();
    let maker = standing::judge(&t.maker(), &needs);
    let (usable, lapsed) = match &maker {
        MakerStanding::Holds => (scopes, Vec::new()),
        MakerStanding::Lacks(missing) => scopes
            .into_iter()
            .partition(|s| !missing.contains(&s.needs())),
        MakerStanding::Disabled | MakerStanding::Removed => (Vec::new(), scopes),
    };
    Reach {
        usable,
        lapsed,
        maker,
    }
}

/// A caller that proved itself with a live token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenRow,
    /// The scopes it may use now: those it carries whose permission its maker holds now.
    pub scopes: Vec<Scope>,
    /// Scopes it carries that its maker no longer holds the permission for.
    pub lapsed: Vec<Scope>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        actor_of(&self.token)
    }

    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the token carries `scope` but its maker no longer holds what it needs.
    pub fn lapsed(&self, scope: Scope) -> bool {
        self.lapsed.contains(&scope)
    }

    /// Why none of `scopes` may be used: (the audit entry's details, the problem's detail).
    /// A scope the token carries but whose permission its maker no longer holds says so.
    pub fn refusal(&self, scopes: &[Scope]) -> (serde_json::Value, String) {
        let names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
        let lapsed: Vec<&str> = scopes
            .iter()
            .filter(|s| self.lapsed(**s))
            .map(|s| s.needs().name())
            .collect();
        let details = json!({"needs": names.join(" or "), "maker_lacks": lapsed.join(" or ")});
        let detail = if lapsed.is_empty() {
            format!("This token does not have the {} scope", names.join(" or "))
        } else {
            format!(
                "The token's maker no longer has {} in this service, so neither has the token. Ask your service's administrator to hand the token to someone who does",
                lapsed.join(" or ")
            )
        };
        (details, detail)
    }
}

/// How the audit log names a token.
pub fn actor_of(token: &TokenRow) -> Actor {
    Actor::ApiToken {
        id: token.id.to_string(),
        label: format!("{} ({}…)", token.name, token.token_prefix),
    }
}

/// Whether `s` has a token's shape: the prefix and 43 base64url characters.
fn well_formed(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Check a presented token, and note that it was used. The token and its maker's standing
/// in its service now are read in one query, on every request.
pub async fn authenticate(
    db: &Db,
    now: OffsetDateTime,
    presented: &str,
) -> Result<Result<Caller, Refused>, TokenError> {
    if !well_formed(presented) {
        return Ok(Err(Refused::Malformed));
    }
    let Some(found) = token_store::by_hash_with_maker(db, &hash(presented)).await? else {
        return Ok(Err(Refused::Unknown));
    };
    match Standing::of(&found.token, now) {
        Standing::Revoked => return Ok(Err(Refused::Revoked)),
        Standing::Expired => return Ok(Err(Refused::Expired)),
        Standing::Active => {}
    }
    let Reach {
        usable,
        lapsed,
        maker,
    } = reach(&found);
    match maker {
        MakerStanding::Disabled => return Ok(Err(Refused::MakerDisabled)),
        MakerStanding::Removed => return Ok(Err(Refused::MakerRemoved)),
        MakerStanding::Holds | MakerStanding::Lacks(_) => {}
    }
    let token = found.token;
    let at = store::to_micros(now);
    if token
        .last_used_at
        .is_none_or(|last| last <= store::to_micros(now - TOUCH_EVERY))
    {
        token_store::touch(db, token.id, at).await?;
    }
    Ok(Ok(Caller {
        token,
        scopes: usable,
        lapsed,
    }))
}

/// Whom `token` may be handed to: active people holding, in its service now, every
/// permission its scopes need (not the person it acts for already), by name.
pub async fn hand_over_candidates(
    db: &Db,
    token: &TokenRow,
) -> Result<Vec<crate::store::standing::CandidateRow>, StoreError> {
    let needs: Vec<Permission> = scopes_of(&token.scopes).iter().map(|s| s.needs()).collect();
    Ok(crate::store::standing::active_holders(db, token.service_id)
        .await?
        .into_iter()
        .filter(|p| p.id != token.created_by)
        .filter(|p| {
            let row = crate::store::standing::HolderRow {
                status: Some("active".into()),
                roles: p.roles.clone(),
            };
            standing::judge(&row, &needs).holds()
        })
        .collect())
}

/// Why a token could not be handed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandOverRefusal {
    #[error("Choose a person from the list")]
    NoSuchPerson,
    #[error("{0} does not hold {1} in this service, so the token cannot act for them")]
    Lacks(String, String),
    #[error("This token has been revoked, so it cannot be handed over")]
    Revoked,
    #[error("This token already acts for that person")]
    Unchanged,
}

/// Hand a token to `to` (a member of staff who must be active and hold, in the token's
/// service, every permission its scopes need), as `actor` (staff `by`, already checked with
/// `may_manage` for the token's scopes). From then on it acts for them, with their
/// permissions. Audited with the person it acted for before.
pub async fn hand_over(
    db: &Db,
    now: OffsetDateTime,
    actor: Actor,
    ip: Option<String>,
    token: &TokenRow,
    to: i64,
) -> Result<Result<(), HandOverRefusal>, TokenError> {
    if to == token.created_by {
        return Ok(Err(HandOverRefusal::Unchanged));
    }
    let needs: Vec<Permission> = scopes_of(&token.scopes).iter().map(|s| s.needs()).collect();
    let mut tx = db.begin().await?;
    let Some(person) = crate::store::staff::staff_for_update(&mut tx, to).await? else {
        tx.rollback().await?;
        return Ok(Err(HandOverRefusal::NoSuchPerson));
    };
    let judged = standing::of_in(&mut tx, to, token.service_id, &needs).await?;
    let refusal = match (person.status.as_str(), &judged) {
        ("active", MakerStanding::Holds) => None,
        ("active", MakerStanding::Lacks(missing)) => Some(HandOverRefusal::Lacks(
            person.name.clone(),
            missing
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(" and "),
        )),
        _ => Some(HandOverRefusal::NoSuchPerson),
    };
    if let Some(r) = refusal {
        tx.rollback().await?;
        return Ok(Err(r));
    }
    if !token_store::set_owner(&mut tx, token.id, to).await? {
        tx.rollback().await?;
        return Ok(Err(HandOverRefusal::Revoked));
    }
    audit::append(
        &mut tx,
        now,
        AuditEvent::new(
            actor,
            "api_token_handed_over",
            format!("api_token:{}", token.id),
        )
        .from_ip(ip)
        .details(json!({
            "service_id": token.service_id,
            "name": token.name,
            "prefix": token.token_prefix,
            "from": token.created_by,
            "to": to,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::permissions::{Grant, Role};

    #[test]
    fn secrets_have_their_shape_and_are_different_each_time() {
        let a = new_secret();
        let b = new_secret();
        assert!(well_formed(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert!(!well_formed("pdk_short"));
        assert!(!well_formed(&format!("xyz_{}", &a[4..])));
        assert!(!well_formed(&format!("{a}=")));
    }

    #[test]
    fn new_tokens_are_checked() {
        let ok = NewToken {
            service_id: 1,
            name: " CRM ".into(),
            scopes: vec!["cases:link".into(), "payments:read".into()],
            expires_in_days: Some(90),
        };
        let (name, scopes) = check(&ok).unwrap();
        assert_eq!(name, "CRM");
        assert_eq!(scopes, vec![Scope::PaymentsRead, Scope::CasesLink]);
        let fields = |n: NewToken| -> Vec<&'static str> {
            check(&n).unwrap_err().into_iter().map(|p| p.0).collect()
        };
        assert_eq!(
            fields(NewToken {
                name: "".into(),
                ..ok.clone()
            }),
            ["name"]
        );
        assert_eq!(
            fields(NewToken {
                scopes: vec![],
                ..ok.clone()
            }),
            ["scopes"]
        );
        assert_eq!(
            fields(NewToken {
                scopes: vec!["admin".into()],
                ..ok.clone()
            }),
            ["scopes"]
        );
        assert_eq!(
            fields(NewToken {
                expires_in_days: Some(0),
                ..ok.clone()
            }),
            ["expires"]
        );
    }

    #[test]
    fn a_token_reaches_only_what_its_maker_holds_now() {
        let token = |status: Option<&str>, roles: Option<&str>| TokenWithMaker {
            token: TokenRow {
                id: 1,
                service_id: 1,
                name: "CRM".into(),
                token_prefix: "pdk_abcdef".into(),
                scopes: "payments:read refunds:request cases:link".into(),
                created_by: 7,
                created_at: 0,
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
                revoked_by: None,
            },
            maker_status: status.map(str::to_string),
            maker_roles: roles.map(str::to_string),
        };
        let all = reach(&token(Some("active"), Some("caseworker")));
        assert_eq!(
            all.usable,
            [Scope::PaymentsRead, Scope::RefundsRequest, Scope::CasesLink]
        );
        assert!(all.lapsed.is_empty());
        let viewer = reach(&token(Some("active"), Some("viewer")));
        assert_eq!(viewer.usable, vec![Scope::PaymentsRead, Scope::CasesLink]);
        assert_eq!(viewer.lapsed, vec![Scope::RefundsRequest]);
        for (status, roles) in [
            (Some("active"), None),
            (Some("disabled"), Some("service_admin")),
            (None, None),
        ] {
            let gone = reach(&token(status, roles));
            assert!(gone.usable.is_empty(), "{status:?} {roles:?}");
            assert_eq!(gone.lapsed.len(), 3);
        }
    }

    #[test]
    fn nobody_gives_a_token_more_than_they_hold() {
        let admin = Grants(vec![Grant {
            role: Role::ServiceAdmin,
            service_id: Some(1),
        }]);
        assert!(may_manage(&admin, 1, &Scope::ALL));
        assert!(!may_manage(&admin, 2, &[Scope::PaymentsRead]));
        let caseworker = Grants(vec![Grant {
            role: Role::Caseworker,
            service_id: Some(1),
        }]);
        assert!(!may_manage(&caseworker, 1, &[Scope::PaymentsRead]));
    }
}
