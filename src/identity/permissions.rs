//! Permissions (`resource:action`), roles, and the rules for granting roles. Pure: no I/O.
//!
//! Roles are held per service; one person may be a caseworker in one service and finance in
//! another. The platform admin role is global and holds every permission in every service.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Everything a route or an action can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    PaymentsRead,
    PaymentsCancel,
    RefundsRequest,
    RefundsApprove,
    RefundsBulk,
    ExportsCreate,
    AuditRead,
    StaffManage,
    ServicesManage,
    IntegrationsManage,
    DisputesRead,
    /// Subject access and erasure of payers' personal data.
    PersonalDataManage,
    AgreementsRead,
    AgreementsCancel,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::PaymentsRead,
        Permission::PaymentsCancel,
        Permission::RefundsRequest,
        Permission::RefundsApprove,
        Permission::RefundsBulk,
        Permission::ExportsCreate,
        Permission::AuditRead,
        Permission::StaffManage,
        Permission::ServicesManage,
        Permission::IntegrationsManage,
        Permission::DisputesRead,
        Permission::PersonalDataManage,
        Permission::AgreementsRead,
        Permission::AgreementsCancel,
    ];

    /// The permission's name as staff and logs see it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::PaymentsRead => "payments:read",
            Permission::PaymentsCancel => "payments:cancel",
            Permission::RefundsRequest => "refunds:request",
            Permission::RefundsApprove => "refunds:approve",
            Permission::RefundsBulk => "refunds:bulk",
            Permission::ExportsCreate => "exports:create",
            Permission::AuditRead => "audit:read",
            Permission::StaffManage => "staff:manage",
            Permission::ServicesManage => "services:manage",
            Permission::IntegrationsManage => "integrations:manage",
            Permission::DisputesRead => "disputes:read",
            Permission::PersonalDataManage => "personal_data:manage",
            Permission::AgreementsRead => "agreements:read",
            Permission::AgreementsCancel => "agreements:cancel",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// A role. All but `PlatformAdmin` are held in one service at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Caseworker,
    Finance,
    ServiceAdmin,
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Caseworker,
        Role::Finance,
        Role::ServiceAdmin,
        Role::PlatformAdmin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Caseworker => "caseworker",
            Role::Finance => "finance",
            Role::ServiceAdmin => "service_admin",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    /// How the role is shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Caseworker => "Caseworker",
            Role::Finance => "Finance",
            Role::ServiceAdmin => "Service admin",
            Role::PlatformAdmin => "Platform admin",
        }
    }

    /// Whether the role is held across every service rather than in one.
    pub fn is_global(self) -> bool {
        self == Role::PlatformAdmin
    }

    /// What the role allows, in the service where it is held.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Viewer => &[PaymentsRead],
            Role::Caseworker => &[
                PaymentsRead,
                RefundsRequest,
                AgreementsRead,
                AgreementsCancel,
            ],
            Role::Finance => &[
                PaymentsRead,
                ExportsCreate,
                RefundsApprove,
                DisputesRead,
                RefundsBulk,
            ],
            // Everything about their own service: its settings, staff and integrations.
            // Creating new services needs the platform admin role.
            Role::ServiceAdmin => &[
                PaymentsRead,
                PaymentsCancel,
                RefundsRequest,
                RefundsApprove,
                RefundsBulk,
                ExportsCreate,
                AuditRead,
                StaffManage,
                ServicesManage,
                IntegrationsManage,
                DisputesRead,
                PersonalDataManage,
                AgreementsRead,
                AgreementsCancel,
            ],
            Role::PlatformAdmin => &Permission::ALL,
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

/// One role held by one person: in a service (by id), or globally.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub role: Role,
    /// None for a global role.
    pub service_id: Option<i64>,
}

/// Everything one person holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    pub fn is_platform_admin(&self) -> bool {
        self.0.iter().any(|g| g.role.is_global())
    }

    /// The permissions this person has in `service_id`.
    pub fn permissions_in(&self, service_id: i64) -> BTreeSet<Permission> {
        self.0
            .iter()
            .filter(|g| g.role.is_global() || g.service_id == Some(service_id))
            .flat_map(|g| g.role.permissions().iter().copied())
            .collect()
    }

    pub fn can(&self, permission: Permission, service_id: i64) -> bool {
        self.permissions_in(service_id).contains(&permission)
    }

    /// Whether the person has `permission` in at least one service (enough to see a page
    /// that then lists only those services).
    pub fn can_somewhere(&self, permission: Permission) -> bool {
        self.0.iter().any(|g| g.role.allows(permission))
    }

    /// The services in which the person has `permission`; None means every service.
    pub fn services_with(&self, permission: Permission) -> Option<BTreeSet<i64>> {
        if self.is_platform_admin() {
            return None;
        }
        Some(
            self.0
                .iter()
                .filter(|g| g.role.allows(permission))
                .filter_map(|g| g.service_id)
                .collect(),
        )
    }
}

/// Why a role change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("You cannot change your own role")]
    OwnRole,
    #[error("You do not have permission to manage staff in this service")]
    NotStaffManager,
    #[error("You cannot give someone a role you do not hold yourself")]
    RoleNotHeld,
    #[error("Only a platform admin can make someone a platform admin")]
    GlobalRole,
}

/// Whether `granter` may give (or take away) `role` in `service_id` (None for a global role)
/// to the person `grantee_id`. Nobody changes their own role; nobody grants a role that allows
/// more than they hold in that service.
pub fn check_grant(
    granter_id: i64,
    granter: &Grants,
    grantee_id: i64,
    role: Role,
    service_id: Option<i64>,
) -> Result<(), GrantRefusal> {
    if granter_id == grantee_id {
        return Err(GrantRefusal::OwnRole);
    }
    if role.is_global() || service_id.is_none() {
        return if granter.is_platform_admin() {
            Ok(())
        } else {
            Err(GrantRefusal::GlobalRole)
        };
    }
    let service_id = service_id.unwrap_or_default();
    let held = granter.permissions_in(service_id);
    if !held.contains(&Permission::StaffManage) {
        return Err(GrantRefusal::NotStaffManager);
    }
    if role.permissions().iter().all(|p| held.contains(p)) {
        Ok(())
    } else {
        Err(GrantRefusal::RoleNotHeld)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[(Role, Option<i64>)]) -> Grants {
        Grants(
            list.iter()
                .map(|&(role, service_id)| Grant { role, service_id })
                .collect(),
        )
    }

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>().unwrap(), p);
            assert!(p.name().contains(':'));
        }
        for r in Role::ALL {
            assert_eq!(r.name().parse::<Role>().unwrap(), r);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn the_role_table_matches_the_issue() {
        use Permission::*;
        assert_eq!(Role::Viewer.permissions(), [PaymentsRead]);
        assert!(
            Role::Caseworker.allows(RefundsRequest) && !Role::Caseworker.allows(RefundsApprove)
        );
        assert!(
            Role::Finance.allows(RefundsApprove)
                && Role::Finance.allows(ExportsCreate)
                && !Role::Finance.allows(RefundsRequest)
        );
        assert!(!Role::Caseworker.allows(ExportsCreate));
        // Issue 19: finance, service admins and platform admins read disputes; viewers and
        // caseworkers see a dispute only on its payment's page.
        assert!(Role::Finance.allows(DisputesRead) && Role::ServiceAdmin.allows(DisputesRead));
        assert!(!Role::Viewer.allows(DisputesRead) && !Role::Caseworker.allows(DisputesRead));
        // Issue 19: caseworkers and admins read and cancel recurring agreements.
        for role in [Role::Caseworker, Role::ServiceAdmin, Role::PlatformAdmin] {
            assert!(role.allows(AgreementsRead) && role.allows(AgreementsCancel));
        }
        assert!(!Role::Viewer.allows(AgreementsRead) && !Role::Finance.allows(AgreementsCancel));
        for p in Permission::ALL {
            assert!(Role::PlatformAdmin.allows(p));
        }
    }

    #[test]
    fn permissions_are_per_service() {
        let g = grants(&[(Role::Caseworker, Some(1)), (Role::Finance, Some(2))]);
        assert!(g.can(Permission::RefundsRequest, 1));
        assert!(!g.can(Permission::RefundsRequest, 2));
        assert!(g.can(Permission::RefundsApprove, 2));
        assert!(
            !g.can(Permission::PaymentsRead, 3),
            "nothing in a service not held"
        );
        assert_eq!(
            g.services_with(Permission::PaymentsRead),
            Some([1, 2].into())
        );
        assert_eq!(
            grants(&[(Role::PlatformAdmin, None)]).services_with(Permission::PaymentsRead),
            None
        );
    }

    #[test]
    fn nobody_changes_their_own_role_or_grants_more_than_they_hold() {
        let admin = grants(&[(Role::ServiceAdmin, Some(1))]);
        assert_eq!(
            check_grant(7, &admin, 7, Role::Viewer, Some(1)),
            Err(GrantRefusal::OwnRole)
        );
        assert_eq!(check_grant(7, &admin, 8, Role::Finance, Some(1)), Ok(()));
        assert_eq!(
            check_grant(7, &admin, 8, Role::Finance, Some(2)),
            Err(GrantRefusal::NotStaffManager)
        );
        assert_eq!(
            check_grant(7, &admin, 8, Role::PlatformAdmin, None),
            Err(GrantRefusal::GlobalRole)
        );
        let finance = grants(&[(Role::Finance, Some(1))]);
        assert_eq!(
            check_grant(7, &finance, 8, Role::Viewer, Some(1)),
            Err(GrantRefusal::NotStaffManager)
        );
        let platform = grants(&[(Role::PlatformAdmin, None)]);
        assert_eq!(
            check_grant(1, &platform, 8, Role::PlatformAdmin, None),
            Ok(())
        );
        assert_eq!(
            check_grant(1, &platform, 8, Role::ServiceAdmin, Some(5)),
            Ok(())
        );
    }
}
