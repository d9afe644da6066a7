//! Who an administrator sees: the services they manage, the people holding a role in them
//! (each with the roles the administrator may see), a person's invitation link and sessions.

use std::collections::BTreeMap;

use super::{visible, Access, Admin, Person, Refusal, Scope, ServiceRef, EVERY_SERVICE};
use crate::identity::permissions::{GrantRefusal, Role};
use crate::identity::IdentityError;
use crate::store::staff::{self as staff_store, LinkRow};
use crate::store::staff_admin as admin_store;
use crate::store::{self, Db};

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
    list.sort_by_key(|s| s.name.to_lowercase());
    Ok(list)
}

/// The service a form names (a slug, or `*` for the global role), if `admin` manages it.
pub(super) async fn resolve_service(
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

/// The roles a person holds: (service, role), None for the global role.
type Held = Vec<(Option<i64>, Role)>;

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
    let mut current: Option<(PersonCore, Held)> = None;
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
