//! A person's list of refund requests (`/refunds/requests`): who sees which (every request of
//! a service where they approve refunds, only their own where they just ask for them, nothing
//! of other services), a page of them newest first, and the count and total of every request
//! the filters match, so the page never adds anything up itself.

use super::list_filters::{Cursor, Filters, Page};
use super::RefundError;
use crate::identity::permissions::{Grants, Permission};
use crate::store::refund_list::{self as list_store, ListQuery};
use crate::store::{services as service_store, Db};

pub use list_store::ListedRow as ListedRequest;

/// Requests on one page.
pub const PAGE_SIZE: i64 = 50;

/// A service whose requests the person may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedService {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Every request of the service (the person approves refunds there), not only their own.
    pub every_request: bool,
}

/// Whose requests a person sees, service by service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub staff_id: i64,
    /// By name.
    pub services: Vec<ListedService>,
}

impl Scope {
    /// The person's services as (id, slug), for reading the filters.
    pub fn offered(&self) -> Vec<(i64, &str)> {
        self.services
            .iter()
            .map(|s| (s.id, s.slug.as_str()))
            .collect()
    }

    /// Whether the person sees other people's requests anywhere.
    pub fn sees_others(&self) -> bool {
        self.services.iter().any(|s| s.every_request)
    }
}

/// The scope of a person holding `grants`, among `services` (id, slug, name).
pub fn scope_of(grants: &Grants, staff_id: i64, services: &[(i64, String, String)]) -> Scope {
    let approve = grants.services_with(Permission::RefundsApprove);
    let request = grants.services_with(Permission::RefundsRequest);
    let holds = |set: &Option<std::collections::BTreeSet<i64>>, id: i64| {
        set.as_ref().is_none_or(|s| s.contains(&id))
    };
    let services = services
        .iter()
        .filter_map(|(id, slug, name)| {
            let every_request = holds(&approve, *id);
            (every_request || holds(&request, *id)).then(|| ListedService {
                id: *id,
                slug: slug.clone(),
                name: name.clone(),
                every_request,
            })
        })
        .collect();
    Scope { staff_id, services }
}

/// The scope of a person holding `grants`.
pub async fn scope(db: &Db, grants: &Grants, staff_id: i64) -> Result<Scope, RefundError> {
    let all: Vec<(i64, String, String)> = service_store::all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s.slug, s.name))
        .collect();
    Ok(scope_of(grants, staff_id, &all))
}

/// A page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub rows: Vec<ListedRequest>,
    /// Every request the filters match, on any page, and the sum of their amounts.
    pub count: i64,
    pub total: i64,
    /// Where the pages before (newer requests) and after (older) start, when there are such.
    pub newer: Option<Cursor>,
    pub older: Option<Cursor>,
}

fn cursor(r: &ListedRequest) -> Cursor {
    Cursor {
        at: r.requested_at,
        id: r.id,
    }
}

/// The page of `scope`'s requests that `filters` ask for.
pub async fn list(db: &Db, scope: &Scope, filters: &Filters) -> Result<Listing, RefundError> {
    let chosen = |every: bool| -> Vec<i64> {
        scope
            .services
            .iter()
            .filter(|s| s.every_request == every && filters.service.is_none_or(|id| id == s.id))
            .map(|s| s.id)
            .collect()
    };
    let mut q = ListQuery {
        all_of: chosen(true),
        own_in: chosen(false),
        requester: scope.staff_id,
        only_mine: filters.only_mine,
        states: filters
            .states
            .iter()
            .map(|s| s.name().to_string())
            .collect(),
        from: filters.from,
        to: filters.to,
        older_than: None,
        newer_than: None,
        // One more than a page, to know whether there is another.
        limit: PAGE_SIZE + 1,
    };
    let (count, total) = list_store::totals(db, &q).await?;
    let mut page = filters.page;
    loop {
        let (older_than, newer_than) = match page {
            Page::Newest => (None, None),
            Page::OlderThan(c) => (Some((c.at, c.id)), None),
            Page::NewerThan(c) => (None, Some((c.at, c.id))),
        };
        q.older_than = older_than;
        q.newer_than = newer_than;
        let mut rows = list_store::page(db, &q).await?;
        let more = rows.len() as i64 > PAGE_SIZE;
        let (newer, older) = match page {
            // Past the end (a link to a page that has since emptied): the newest instead.
            Page::OlderThan(_) if rows.is_empty() => {
                page = Page::Newest;
                continue;
            }
            // The newest requests fill less than a page: the first page, filled.
            Page::NewerThan(_) if !more => {
                page = Page::Newest;
                continue;
            }
            Page::NewerThan(_) => {
                // Found oldest first and turned round: the extra one is the newest.
                rows.remove(0);
                (rows.first().map(cursor), rows.last().map(cursor))
            }
            Page::Newest | Page::OlderThan(_) => {
                rows.truncate(PAGE_SIZE as usize);
                let newer = match page {
                    Page::Newest => None,
                    _ => rows.first().map(cursor),
                };
                (newer, if more { rows.last().map(cursor) } else { None })
            }
        };
        return Ok(Listing {
            rows,
            count,
            total,
            newer,
            older,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::permissions::{Grant, Role};

    fn services() -> Vec<(i64, String, String)> {
        [(1, "parking"), (2, "permits"), (3, "council")]
            .into_iter()
            .map(|(id, slug)| (id, slug.to_string(), format!("Service {slug}")))
            .collect()
    }

    fn grants(roles: &[(Role, Option<i64>)]) -> Grants {
        Grants(
            roles
                .iter()
                .map(|(role, service_id)| Grant {
                    role: *role,
                    service_id: *service_id,
                })
                .collect(),
        )
    }

    fn seen(scope: &Scope) -> Vec<(i64, bool)> {
        scope
            .services
            .iter()
            .map(|s| (s.id, s.every_request))
            .collect()
    }

    #[test]
    fn finance_sees_every_request_a_caseworker_their_own_and_nobody_other_services() {
        let caseworker = scope_of(&grants(&[(Role::Caseworker, Some(1))]), 7, &services());
        assert_eq!(seen(&caseworker), vec![(1, false)]);
        assert!(!caseworker.sees_others());
        let finance = scope_of(&grants(&[(Role::Finance, Some(2))]), 7, &services());
        assert_eq!(seen(&finance), vec![(2, true)]);
        assert!(finance.sees_others());
        let both = scope_of(
            &grants(&[(Role::Caseworker, Some(1)), (Role::Finance, Some(2))]),
            7,
            &services(),
        );
        assert_eq!(seen(&both), vec![(1, false), (2, true)]);
        assert_eq!(both.offered(), vec![(1, "parking"), (2, "permits")]);
        let viewer = scope_of(&grants(&[(Role::Viewer, Some(1))]), 7, &services());
        assert!(viewer.services.is_empty());
        let admin = scope_of(&grants(&[(Role::PlatformAdmin, None)]), 7, &services());
        assert_eq!(seen(&admin), vec![(1, true), (2, true), (3, true)]);
    }
}
