//! SQL for "what does this person hold now": the status of a member of staff and the roles
//! they hold in one service (or everywhere), read afresh each time something they set up
//! acts (a token, an export, an event endpoint, a pending refund, an invitation).

use super::{Backend, Db, StoreResult, Tx};
use crate::{on_db, on_tx};

/// A person's standing in one service as stored: their status (None when there is no such
/// account) and the roles they hold there or everywhere, space-separated.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct HolderRow {
    pub status: Option<String>,
    pub roles: Option<String>,
}

/// The roles aggregated into one space-separated text, for `staff_expr` (an SQL expression
/// naming the person) in `service_expr` (an SQL expression naming the service).
pub fn roles_sql(backend: Backend, staff_expr: &str, service_expr: &str) -> String {
    let agg = match backend {
        Backend::Sqlite => "group_concat(g.role, ' ')",
        Backend::Postgres => "string_agg(g.role, ' ')",
    };
    format!(
        "(SELECT {agg} FROM staff_grants g WHERE g.staff_id = {staff_expr} \
         AND (g.service_id = {service_expr} OR g.service_id IS NULL))"
    )
}

fn holder_sql(backend: Backend) -> String {
    format!(
        "SELECT st.status AS status, {} AS roles FROM (SELECT 1 AS one) x \
         LEFT JOIN staff st ON st.id = $1",
        roles_sql(backend, "$1", "$2")
    )
}

/// The standing of `staff_id` in `service_id`, in one query.
pub async fn holder(db: &Db, staff_id: i64, service_id: i64) -> StoreResult<HolderRow> {
    let sql = holder_sql(db.backend());
    Ok(on_db!(db, pool => sqlx::query_as::<_, HolderRow>(&sql)
        .bind(staff_id).bind(service_id).fetch_one(pool).await?))
}

/// The same, inside a transaction.
pub async fn holder_in(tx: &mut Tx, staff_id: i64, service_id: i64) -> StoreResult<HolderRow> {
    let sql = holder_sql(tx.backend());
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, HolderRow>(&sql)
        .bind(staff_id).bind(service_id).fetch_one(conn).await?))
}

/// A member of staff who may be handed something in a service: active, holding a role
/// there (or everywhere).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub roles: Option<String>,
}

/// Active staff holding any role in `service_id` or everywhere, by name.
pub async fn active_holders(db: &Db, service_id: i64) -> StoreResult<Vec<CandidateRow>> {
    let sql = format!(
        "SELECT st.id, st.name, st.email, {} AS roles FROM staff st \
         WHERE st.status = 'active' AND EXISTS (SELECT 1 FROM staff_grants h WHERE h.staff_id = st.id \
         AND (h.service_id = $1 OR h.service_id IS NULL)) ORDER BY st.name, st.id",
        roles_sql(db.backend(), "st.id", "$1")
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, CandidateRow>(&sql)
        .bind(service_id).fetch_all(pool).await?))
}

/// A role someone holds, with who gave it (`staff:<id>`, `system:…`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GivenRow {
    pub service_id: Option<i64>,
    pub role: String,
    pub granted_by: String,
}

/// Every role `staff_id` holds, with who gave it.
pub async fn given(tx: &mut Tx, staff_id: i64) -> StoreResult<Vec<GivenRow>> {
    Ok(on_tx!(tx, conn => sqlx::query_as::<_, GivenRow>(
        "SELECT service_id, role, granted_by FROM staff_grants WHERE staff_id = $1 ORDER BY service_id")
        .bind(staff_id).fetch_all(conn).await?))
}

/// A person's status (None: no such account) and every role they hold, read in a transaction.
pub async fn status_and_roles(
    tx: &mut Tx,
    staff_id: i64,
) -> StoreResult<(Option<String>, Vec<GivenRow>)> {
    let status = on_tx!(tx, conn => sqlx::query_scalar::<_, String>(
        "SELECT status FROM staff WHERE id = $1").bind(staff_id).fetch_optional(conn).await?);
    Ok((status, given(tx, staff_id).await?))
}
