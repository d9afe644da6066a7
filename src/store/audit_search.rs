//! SQL for searching the audit log: by person, action, object and time, newest first, paged
//! by sequence number (keyset), within the services a person may read.

use super::audit::AuditRow;
use super::sql::{bound, Builder, Built};
use super::{Backend, Db, StoreResult};
use crate::on_db;

/// Which entries, and which page of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The actor's label, exactly (a member of staff's email address).
    pub actor_label: Option<String>,
    pub action: Option<String>,
    /// The object, exactly (`payment:…`, `service:3`, `staff:12`).
    pub target: Option<String>,
    /// Microseconds, from inclusive.
    pub from: Option<i64>,
    /// Microseconds, to exclusive.
    pub to: Option<i64>,
    /// Only entries older than this one (the next page).
    pub before_seq: Option<i64>,
    /// Only entries newer than this one (the previous page).
    pub after_seq: Option<i64>,
    /// None: every entry. Some: only entries about these services (see `scope_clause`).
    pub services: Option<Vec<i64>>,
    pub limit: i64,
}

/// An entry is about a service when its object is the service itself, or a payment of the
/// service. Entries about nothing in particular (sign-ins, the process starting) belong to
/// no service, and only a person holding the permission everywhere sees them.
fn scope_clause(b: &mut Builder, services: &[i64]) -> String {
    if services.is_empty() {
        return "1 = 0".into();
    }
    let targets: Vec<String> = services
        .iter()
        .map(|id| b.text(&format!("service:{id}")))
        .collect();
    let ids = b.ids(services);
    format!(
        "(a.target IN ({}) OR (a.target LIKE 'payment:%' AND EXISTS (SELECT 1 FROM journeys j \
         WHERE j.service_id IN ({ids}) AND j.payment_id = substr(a.target, 9))))",
        targets.join(", ")
    )
}

fn build(backend: Backend, q: &AuditQuery) -> Built {
    let mut b = Builder::new(backend);
    let mut clauses = Vec::new();
    for (column, v) in [
        ("actor_label", &q.actor_label),
        ("action", &q.action),
        ("target", &q.target),
    ] {
        if let Some(v) = v {
            clauses.push(format!("a.{column} = {}", b.text(v)));
        }
    }
    clauses.extend(b.half_open("a.occurred_at", q.from, q.to));
    if let Some(v) = q.before_seq {
        clauses.push(format!("a.seq < {}", b.int(v)));
    }
    if let Some(v) = q.after_seq {
        clauses.push(format!("a.seq > {}", b.int(v)));
    }
    if let Some(services) = &q.services {
        let clause = scope_clause(&mut b, services);
        clauses.push(clause);
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    // The previous page is the entries just newer than the cursor, found oldest first.
    let order = if q.after_seq.is_some() && q.before_seq.is_none() {
        "ASC"
    } else {
        "DESC"
    };
    let lim = b.int(q.limit);
    b.finish(format!(
        "SELECT a.seq, a.occurred_at, a.actor_type, a.actor_id, a.actor_label, a.action, a.target, \
         a.outcome, a.origin_ip, a.details, a.hash FROM audit_log a{filter} ORDER BY a.seq {order} LIMIT {lim}"
    ))
}

/// The entries matching `q`, newest first, at most `q.limit`.
pub async fn search(db: &Db, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let built = build(db.backend(), q);
    let mut rows = on_db!(db, pool => bound!(sqlx::query_as::<_, AuditRow>(&built.sql), &built.binds)
        .fetch_all(pool)
        .await?);
    if q.after_seq.is_some() && q.before_seq.is_none() {
        rows.reverse();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_bound_and_scope_limits_to_services() {
        let q = AuditQuery {
            actor_label: Some("a@example.gov.uk' OR 1=1 --".into()),
            action: Some("x".into()),
            target: None,
            from: Some(1),
            to: Some(2),
            before_seq: Some(10),
            after_seq: None,
            services: Some(vec![4, 5]),
            limit: 21,
        };
        let Built { sql, binds } = build(Backend::Sqlite, &q);
        assert!(!sql.contains("OR 1=1"));
        assert!(sql.contains("a.target IN ($6, $7)"), "{sql}");
        assert!(sql.contains("j.service_id IN ($8, $9)"), "{sql}");
        assert!(sql.ends_with("ORDER BY a.seq DESC LIMIT $10"), "{sql}");
        assert_eq!(binds.len(), 10);
        let none = build(
            Backend::Postgres,
            &AuditQuery {
                services: Some(vec![]),
                limit: 5,
                ..Default::default()
            },
        )
        .sql;
        assert!(none.contains("1 = 0"));
    }
}
