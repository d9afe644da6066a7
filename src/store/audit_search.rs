//! SQL for searching the audit log: by person, action, object and time, newest first, paged
//! by sequence number (keyset), within the services a person may read.

use super::audit::AuditRow;
use super::{Db, StoreResult};
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

enum Bind {
    Int(i64),
    Text(String),
}

/// An entry is about a service when its object is the service itself, or a payment of the
/// service. Entries about nothing in particular (sign-ins, the process starting) belong to
/// no service, and only a person holding the permission everywhere sees them.
fn scope_clause(services: &[i64], binds: &mut Vec<Bind>) -> String {
    if services.is_empty() {
        return "1 = 0".into();
    }
    let mut targets = Vec::new();
    for id in services {
        binds.push(Bind::Text(format!("service:{id}")));
        targets.push(format!("${}", binds.len()));
    }
    let mut ids = Vec::new();
    for id in services {
        binds.push(Bind::Int(*id));
        ids.push(format!("${}", binds.len()));
    }
    format!(
        "(a.target IN ({}) OR (a.target LIKE 'payment:%' AND EXISTS (SELECT 1 FROM journeys j \
         WHERE j.service_id IN ({}) AND j.payment_id = substr(a.target, 9))))",
        targets.join(", "),
        ids.join(", ")
    )
}

fn build(q: &AuditQuery) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut clauses = Vec::new();
    let mut text = |binds: &mut Vec<Bind>, column: &str, v: &Option<String>| {
        if let Some(v) = v {
            binds.push(Bind::Text(v.clone()));
            clauses.push(format!("a.{column} = ${}", binds.len()));
        }
    };
    text(&mut binds, "actor_label", &q.actor_label);
    text(&mut binds, "action", &q.action);
    text(&mut binds, "target", &q.target);
    let mut int = |binds: &mut Vec<Bind>, cond: &str, v: Option<i64>| {
        if let Some(v) = v {
            binds.push(Bind::Int(v));
            clauses.push(format!("{cond} ${}", binds.len()));
        }
    };
    int(&mut binds, "a.occurred_at >=", q.from);
    int(&mut binds, "a.occurred_at <", q.to);
    int(&mut binds, "a.seq <", q.before_seq);
    int(&mut binds, "a.seq >", q.after_seq);
    if let Some(services) = &q.services {
        let clause = scope_clause(services, &mut binds);
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
    binds.push(Bind::Int(q.limit));
    let sql = format!(
        "SELECT a.seq, a.occurred_at, a.actor_type, a.actor_id, a.actor_label, a.action, a.target, \
         a.outcome, a.origin_ip, a.details, a.hash FROM audit_log a{filter} ORDER BY a.seq {order} LIMIT ${}",
        binds.len()
    );
    (sql, binds)
}

/// The entries matching `q`, newest first, at most `q.limit`.
pub async fn search(db: &Db, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
    let (sql, binds) = build(q);
    let mut rows = on_db!(db, pool => {
        let mut query = sqlx::query_as::<_, AuditRow>(&sql);
        for b in &binds {
            query = match b {
                Bind::Int(v) => query.bind(*v),
                Bind::Text(v) => query.bind(v.as_str()),
            };
        }
        query.fetch_all(pool).await?
    });
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
        let (sql, binds) = build(&q);
        assert!(!sql.contains("OR 1=1"));
        assert!(sql.contains("a.target IN ($6, $7)"), "{sql}");
        assert!(sql.contains("j.service_id IN ($8, $9)"), "{sql}");
        assert!(sql.ends_with("ORDER BY a.seq DESC LIMIT $10"), "{sql}");
        assert_eq!(binds.len(), 10);
        let none = build(&AuditQuery {
            services: Some(vec![]),
            limit: 5,
            ..Default::default()
        })
        .0;
        assert!(none.contains("1 = 0"));
    }
}
