//! What a person holds *now*, for things they set up that act later: an API token, a
//! background export, an event endpoint, a pending refund request, an invitation. Each acts
//! with its owner's permissions at the moment it acts, never with those they held when it
//! was set up: read afresh on every use (one query), so a removal or a demotion takes effect
//! at once.

use crate::identity::permissions::{Permission, Role};
use crate::store::standing::{self as standing_store, HolderRow};
use crate::store::{Db, StoreError, Tx};

/// Where the owner of something stands in its service now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// They hold every permission asked about.
    Holds,
    /// The account is disabled (or gone).
    Disabled,
    /// They hold no role in the service any more.
    Removed,
    /// They still work in the service, but without these permissions.
    Lacks(Vec<Permission>),
}

impl Standing {
    pub fn holds(&self) -> bool {
        matches!(self, Standing::Holds)
    }

    /// Why it stopped, in words for the page ("maker" or "owner" says whose).
    pub fn reason(&self, whose: &str, service_name: &str) -> Option<String> {
        match self {
            Standing::Holds => None,
            Standing::Disabled => Some(format!("{whose} disabled")),
            Standing::Removed => Some(format!("{whose} removed from {service_name}")),
            Standing::Lacks(missing) => Some(format!(
                "{whose} no longer has {} in {service_name}",
                missing
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    }
}

/// The roles a stored standing names (unknown names are ignored).
pub fn roles_of(row: &HolderRow) -> Vec<Role> {
    row.roles
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|r| r.parse().ok())
        .collect()
}

/// Whether the person holds `permission` through `roles`.
pub fn allows(roles: &[Role], permission: Permission) -> bool {
    roles.iter().any(|r| r.allows(permission))
}

/// Judge a stored standing against the permissions `needs` (pure).
pub fn judge(row: &HolderRow, needs: &[Permission]) -> Standing {
    match row.status.as_deref() {
        None | Some("disabled") => return Standing::Disabled,
        _ => {}
    }
    let roles = roles_of(row);
    if roles.is_empty() {
        return Standing::Removed;
    }
    let missing: Vec<Permission> = needs
        .iter()
        .copied()
        .filter(|p| !allows(&roles, *p))
        .collect();
    if missing.is_empty() {
        Standing::Holds
    } else {
        Standing::Lacks(missing)
    }
}

/// Where `staff_id` stands in `service_id` now, against `needs`.
pub async fn of(
    db: &Db,
    staff_id: i64,
    service_id: i64,
    needs: &[Permission],
) -> Result<Standing, StoreError> {
    let row = standing_store::holder(db, staff_id, service_id).await?;
    Ok(judge(&row, needs))
}

/// The same, inside a transaction.
pub async fn of_in(
    tx: &mut Tx,
    staff_id: i64,
    service_id: i64,
    needs: &[Permission],
) -> Result<Standing, StoreError> {
    let row = standing_store::holder_in(tx, staff_id, service_id).await?;
    Ok(judge(&row, needs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: Option<&str>, roles: Option<&str>) -> HolderRow {
        HolderRow {
            status: status.map(str::to_string),
            roles: roles.map(str::to_string),
        }
    }

    #[test]
    fn standing_is_judged_on_what_is_held_now() {
        use Permission::*;
        assert_eq!(
            judge(&row(Some("active"), Some("caseworker")), &[RefundsRequest]),
            Standing::Holds
        );
        assert_eq!(
            judge(&row(Some("active"), Some("viewer")), &[RefundsRequest]),
            Standing::Lacks(vec![RefundsRequest])
        );
        assert_eq!(
            judge(&row(Some("active"), None), &[PaymentsRead]),
            Standing::Removed
        );
        assert_eq!(
            judge(
                &row(Some("disabled"), Some("service_admin")),
                &[PaymentsRead]
            ),
            Standing::Disabled
        );
        assert_eq!(judge(&row(None, None), &[]), Standing::Disabled);
        assert_eq!(
            judge(
                &row(Some("active"), Some("platform_admin")),
                &Permission::ALL
            ),
            Standing::Holds
        );
        assert_eq!(
            Standing::Lacks(vec![RefundsRequest])
                .reason("maker", "Parking")
                .as_deref(),
            Some("maker no longer has refunds:request in Parking")
        );
    }
}
