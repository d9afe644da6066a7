//! Payer personal data (`crate::personal_data`): which journeys are past their service's
//! retention period, what holds keep them, and the statements that remove a journey's payer
//! data everywhere paydesk copied it. See the README's "Where personal data lives".

use super::personal_data_reach as reach;
use super::{Backend, Db, StoreResult, Tx};

/// A service's retention setting.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Retention {
    pub id: i64,
    pub slug: String,
    pub retention_days: i64,
}

pub async fn retention_of_services(db: &Db) -> StoreResult<Vec<Retention>> {
    let sql = "SELECT id, slug, retention_days FROM services ORDER BY id";
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, Retention>(sql).fetch_all(pool).await?))
}

pub async fn retention_of(db: &Db, service_id: i64) -> StoreResult<Option<Retention>> {
    let sql = "SELECT id, slug, retention_days FROM services WHERE id = $1";
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, Retention>(sql).bind(service_id)
        .fetch_optional(pool).await?),
    )
}

/// Set a service's retention period; the days it had before.
pub async fn set_retention_days(
    tx: &mut Tx,
    service_id: i64,
    days: i64,
    now: i64,
) -> StoreResult<Option<i64>> {
    let before = crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT retention_days FROM services WHERE id = $1")
        .bind(service_id).fetch_optional(&mut *conn).await?);
    if before.is_some() {
        crate::on_tx!(tx, conn => sqlx::query(
            "UPDATE services SET retention_days = $2, updated_at = $3 WHERE id = $1")
            .bind(service_id).bind(days).bind(now).execute(conn).await?.rows_affected());
    }
    Ok(before)
}

/// A journey past its retention period, and what (if anything) holds its data.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub payment_id: String,
    pub created_at: i64,
    pub email_key: Option<String>,
    /// `hold`, `dispute`, `refund` or NULL.
    pub held_by: Option<String>,
}

/// Why a journey's data must be kept: an open hold placed by an admin, an open dispute (the
/// bank's chargeback still needs a response or is under review), or a refund not yet finished
/// (asked for, approved, being sent, or sent and not yet settled at the platform).
const HELD_BY: &str = "CASE \
    WHEN EXISTS (SELECT 1 FROM personal_data_holds h WHERE h.journey_id = j.id AND h.released_at IS NULL) THEN 'hold' \
    WHEN EXISTS (SELECT 1 FROM disputes d WHERE d.service_id = j.service_id AND d.payment_id = j.payment_id \
                 AND d.status IN ('needs_response', 'under_review')) THEN 'dispute' \
    WHEN EXISTS (SELECT 1 FROM refund_requests r WHERE r.journey_id = j.id \
                 AND r.state IN ('awaiting_approval', 'approved', 'submitting', 'submitted')) THEN 'refund' \
    WHEN EXISTS (SELECT 1 FROM platform_refunds p WHERE p.service_id = j.service_id \
                 AND p.payment_id = j.payment_id AND p.status = 'submitted') THEN 'refund' \
    ELSE NULL END";

/// Up to `limit` journeys of a service made before `cutoff` whose data is still there, after
/// the keyset position `(after_created, after_id)`, oldest first.
pub async fn due(
    db: &Db,
    service_id: i64,
    cutoff: i64,
    after: (i64, i64),
    limit: i64,
) -> StoreResult<Vec<Due>> {
    let sql = format!(
        "SELECT j.id, j.payment_id, j.created_at, j.email_key, {HELD_BY} AS held_by FROM journeys j \
         WHERE j.service_id = $1 AND j.redacted_at IS NULL AND j.created_at < $2 \
           AND (j.created_at > $3 OR (j.created_at = $3 AND j.id > $4)) \
         ORDER BY j.created_at, j.id LIMIT $5"
    );
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, Due>(&sql)
        .bind(service_id).bind(cutoff).bind(after.0).bind(after.1).bind(limit)
        .fetch_all(pool).await?))
}

/// The journeys of some services whose payer has this email (exact, ignoring case), or whose
/// card ends in `last4` and whose cardholder name is `name` (ignoring case), with their holds.
pub async fn of_payer(
    db: &Db,
    service_ids: &[i64],
    email_key: Option<&str>,
    card: Option<(&str, &str)>,
) -> StoreResult<Vec<Due>> {
    if service_ids.is_empty() {
        return Ok(Vec::new());
    }
    let (who, values): (&str, Vec<String>) = match (email_key, card) {
        (Some(e), _) => ("j.email_key = $1", vec![e.to_string()]),
        (None, Some((last4, name))) => (
            "j.last_digits = $1 AND lower(j.cardholder_name) = $2",
            vec![last4.to_string(), name.to_lowercase()],
        ),
        (None, None) => return Ok(Vec::new()),
    };
    let services = placeholders(values.len() + 1, service_ids.len());
    let sql = format!(
        "SELECT j.id, j.payment_id, j.created_at, j.email_key, {HELD_BY} AS held_by FROM journeys j \
         WHERE j.service_id IN ({services}) AND j.redacted_at IS NULL AND {who} \
         ORDER BY j.created_at, j.id"
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Due>(&sql);
        for v in &values {
            q = q.bind(v.as_str());
        }
        for id in service_ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(pool).await?)
    })
}

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one redaction removed, counted per place.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub journeys: u64,
    pub timeline_entries: u64,
    pub refund_comments: u64,
    pub stored_api_answers: u64,
    pub mail: u64,
    pub audit_values: u64,
    pub form_drafts: u64,
    pub job_errors: u64,
    pub agreements: u64,
    pub agreement_reasons: u64,
    pub bulk_files: u64,
    /// Agreements of these journeys that keep their data (still active, or another payment
    /// under them is held): `(agreement id, status)`.
    #[serde(skip)]
    pub kept_agreements: Vec<(String, String)>,
}

/// Remove the payer data of these journeys everywhere it was copied, inside the caller's
/// transaction. `emails` are the payers' lower-cased addresses: mail to them queued before
/// `mail_before` is emptied too. Journeys already redacted are left as they are.
pub async fn redact(
    tx: &mut Tx,
    journeys: &[(i64, String)],
    emails: &[String],
    mail_before: i64,
    now: i64,
    reason: &str,
) -> StoreResult<Removed> {
    let mut out = Removed::default();
    if journeys.is_empty() {
        return Ok(out);
    }
    let backend = tx.backend();
    let ids = placeholders(3, journeys.len());
    // The journey itself; SQLite's triggers (PostgreSQL's for metadata) empty its search
    // text and metadata index rows with it.
    let sql = format!(
        "UPDATE journeys SET description = '', email = NULL, email_key = NULL, \
         cardholder_name = NULL, metadata = NULL, redacted_at = $1, redacted_reason = $2, updated_at = $1 \
         WHERE redacted_at IS NULL AND id IN ({ids})"
    );
    out.journeys = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql).bind(now).bind(reason);
        for (id, _) in journeys { q = q.bind(*id); }
        q.execute(conn).await?.rows_affected()
    });
    // A staff note's comment in the timeline: in its detail, and in its words (a rejection
    // quotes it).
    let (strip, comment) = match backend {
        Backend::Sqlite => (
            "json_remove(detail, '$.comment')",
            "json_extract(detail, '$.comment')",
        ),
        Backend::Postgres => (
            "(detail::jsonb - 'comment')::text",
            "(detail::jsonb ->> 'comment')",
        ),
    };
    let ids1 = placeholders(1, journeys.len());
    let sql = format!(
        "UPDATE journey_events SET detail = {strip}, \
         message = CASE WHEN coalesce({comment}, '') <> '' AND message IS NOT NULL \
                   THEN replace(message, {comment}, '[comment removed]') ELSE message END \
         WHERE journey_id IN ({ids1}) AND detail LIKE '%\"comment\"%'"
    );
    out.timeline_entries = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql);
        for (id, _) in journeys { q = q.bind(*id); }
        q.execute(conn).await?.rows_affected()
    });
    let sql = format!(
        "UPDATE refund_requests SET comment = NULL, decision_comment = NULL \
         WHERE journey_id IN ({ids1}) AND (comment IS NOT NULL OR decision_comment IS NOT NULL)"
    );
    out.refund_comments = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql);
        for (id, _) in journeys { q = q.bind(*id); }
        q.execute(conn).await?.rows_affected()
    });
    // A bulk refund file's rows for these payments: the comment, and the row as the file
    // gave it (which holds the comment too).
    let sql = format!(
        "UPDATE refund_batch_rows SET comment = NULL, input = '{{}}' \
         WHERE journey_id IN ({ids1}) AND (comment IS NOT NULL OR input <> '{{}}')"
    );
    out.refund_comments += crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql);
        for (id, _) in journeys { q = q.bind(*id); }
        q.execute(conn).await?.rows_affected()
    });
    // Stored API answers (kept a day for idempotency) that name the payment.
    let stored = crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM api_idempotency WHERE body IS NOT NULL")
        .fetch_one(&mut *conn).await?);
    if stored > 0 {
        for (_, payment_id) in journeys {
            out.stored_api_answers += crate::on_tx!(tx, conn => sqlx::query(
                "UPDATE api_idempotency SET body = NULL WHERE body LIKE $1")
                .bind(format!("%{}%", like_escape(payment_id)))
                .execute(conn).await?.rows_affected());
        }
    }
    // Mail to these payers (a refund's confirmation), sent or waiting.
    if !emails.is_empty() {
        let to = match backend {
            Backend::Sqlite => "lower(json_extract(payload, '$.to'))",
            Backend::Postgres => "lower(payload::jsonb ->> 'to')",
        };
        let list = placeholders(3, emails.len());
        let sql = format!(
            "UPDATE jobs SET payload = '{{\"redacted\":true}}', last_error = NULL, \
             state = CASE WHEN state = 'queued' THEN 'dead' ELSE state END, updated_at = $1 \
             WHERE kind = 'mail_send' AND created_at < $2 AND {to} IN ({list})"
        );
        out.mail = crate::on_tx!(tx, conn => {
            let mut q = sqlx::query(&sql).bind(now).bind(mail_before);
            for e in emails { q = q.bind(e.as_str()); }
            q.execute(conn).await?.rows_affected()
        });
    }
    // Personal values that audit entries about these payments keep beside the chain.
    let targets = placeholders(2, journeys.len());
    let sql = format!(
        "UPDATE audit_personal SET value = NULL, salt = NULL, erased_at = $1 \
         WHERE erased_at IS NULL AND target IN ({targets})"
    );
    out.audit_values = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql).bind(now);
        for (_, p) in journeys { q = q.bind(format!("payment:{p}")); }
        q.execute(conn).await?.rows_affected()
    });
    // Errors of the mail jobs just emptied (an SMTP answer can quote the address).
    if out.mail > 0 {
        out.job_errors = reach::scrub_mail_errors(tx).await?;
    }
    // Answers typed into a form and never confirmed: past their hour, or naming a payment.
    let payment_ids: Vec<String> = journeys.iter().map(|(_, p)| p.clone()).collect();
    out.form_drafts = reach::delete_drafts(tx, &payment_ids, now).await?;
    // Recurring agreements these payments were taken under, once none of their payments keeps
    // payer data and they have ended.
    let ids: Vec<i64> = journeys.iter().map(|(id, _)| *id).collect();
    let (agreements, kept) = reach::redact_agreements_of(tx, &ids, now).await?;
    out.agreements = agreements.agreements;
    out.agreement_reasons = agreements.cancellation_reasons;
    out.kept_agreements = kept
        .into_iter()
        .map(|k| (k.agreement_id, k.status))
        .collect();
    // Finished bulk refund files naming one of these payments: the bytes go, the hash stays.
    out.bulk_files = reach::drop_batch_files_of(tx, &ids, now).await?;
    Ok(out)
}

fn like_escape(s: &str) -> String {
    s.replace(['%', '_'], "")
}

/// An open or released hold.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Hold {
    pub id: i64,
    pub service_id: i64,
    pub journey_id: i64,
    pub payment_id: String,
    pub reason: String,
    pub placed_by: i64,
    pub placed_at: i64,
    pub released_by: Option<i64>,
    pub released_at: Option<i64>,
}

pub async fn place_hold(
    tx: &mut Tx,
    service_id: i64,
    journey_id: i64,
    reason: &str,
    by: i64,
    now: i64,
) -> StoreResult<i64> {
    Ok(crate::on_tx!(tx, conn => sqlx::query_scalar::<_, i64>(
        "INSERT INTO personal_data_holds (service_id, journey_id, reason, placed_by, placed_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(service_id).bind(journey_id).bind(reason).bind(by).bind(now)
        .fetch_one(conn).await?))
}

/// Release an open hold of a service: false when there is none with that id.
pub async fn release_hold(
    tx: &mut Tx,
    service_id: i64,
    hold_id: i64,
    by: i64,
    now: i64,
) -> StoreResult<bool> {
    let n = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE personal_data_holds SET released_by = $3, released_at = $4 \
         WHERE id = $1 AND service_id = $2 AND released_at IS NULL")
        .bind(hold_id).bind(service_id).bind(by).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(n == 1)
}

/// The open holds of some services, newest first.
pub async fn open_holds(db: &Db, service_ids: &[i64]) -> StoreResult<Vec<Hold>> {
    if service_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT h.id, h.service_id, h.journey_id, j.payment_id, h.reason, h.placed_by, h.placed_at, \
         h.released_by, h.released_at FROM personal_data_holds h JOIN journeys j ON j.id = h.journey_id \
         WHERE h.released_at IS NULL AND h.service_id IN ({}) ORDER BY h.placed_at DESC, h.id DESC",
        placeholders(1, service_ids.len())
    );
    crate::on_db!(db, pool => {
        let mut q = sqlx::query_as::<_, Hold>(&sql);
        for id in service_ids { q = q.bind(*id); }
        Ok(q.fetch_all(pool).await?)
    })
}

/// The journey of a service with this platform payment id.
pub async fn journey_id(db: &Db, service_id: i64, payment_id: &str) -> StoreResult<Option<i64>> {
    Ok(crate::on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT id FROM journeys WHERE service_id = $1 AND payment_id = $2")
        .bind(service_id).bind(payment_id).fetch_optional(pool).await?))
}

/// Every text or byte column of every table (and, on SQLite, the search index's virtual table), as
/// `(table, column)`: what the inventory test holds against `personal_data::inventory`.
pub async fn text_columns(db: &Db) -> StoreResult<Vec<(String, String)>> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
               AND m.name NOT LIKE 'journey_text_%' \
               AND (upper(c.type) LIKE '%TEXT%' OR upper(c.type) LIKE '%CHAR%' \
                    OR upper(c.type) LIKE '%BLOB%' OR c.type = '' ) \
             ORDER BY m.name, c.cid"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%' \
               AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea') \
             ORDER BY table_name, ordinal_position"
        }
    };
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, (String, String)>(sql).fetch_all(pool).await?))
}

/// Reclaim the space and bytes of removed data: SQLite merges the search index (dropping
/// deleted entries; `secure_delete` zeroes the freed pages) and checkpoints the WAL so no old
/// page images remain; PostgreSQL VACUUMs the rewritten tables (`personal_data_reach::vacuum`).
pub async fn scrub(db: &Db) -> StoreResult<()> {
    reach::vacuum(db).await?;
    if let Db::Sqlite(_, writer) = db {
        let mut conn = writer.pool.acquire().await?;
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
        sqlx::query("INSERT INTO journey_text (journey_text) VALUES ('optimize')")
            .execute(&mut *conn)
            .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Part-way through a long run: prune the journeys' dead row versions (PostgreSQL;
/// `personal_data_reach::vacuum_journeys`). SQLite rewrites in place and needs nothing.
pub async fn tidy(db: &Db) -> StoreResult<()> {
    reach::vacuum_journeys(db).await
}

/// Keep one personal value of audit entry `seq` beside the chain (`audit::personal`).
pub async fn insert_audit_value(
    tx: &mut Tx,
    digest: &str,
    seq: i64,
    target: &str,
    salt: &str,
    value: &str,
    now: i64,
) -> StoreResult<()> {
    crate::on_tx!(tx, conn => sqlx::query(
        "INSERT INTO audit_personal (digest, seq, target, salt, value, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(digest).bind(seq).bind(target).bind(salt).bind(value).bind(now)
        .execute(conn).await?.rows_affected());
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditValue {
    pub digest: String,
    pub seq: i64,
    pub salt: Option<String>,
    pub value: Option<String>,
}

/// The personal values still kept beside the audit chain (not erased), in entry order.
pub async fn kept_audit_values(db: &Db) -> StoreResult<Vec<AuditValue>> {
    let sql = "SELECT digest, seq, salt, value FROM audit_personal \
               WHERE erased_at IS NULL ORDER BY seq, digest";
    Ok(crate::on_db!(db, pool => sqlx::query_as::<_, AuditValue>(sql).fetch_all(pool).await?))
}

/// One hold, open or released.
pub async fn hold(db: &Db, id: i64) -> StoreResult<Option<Hold>> {
    let sql = "SELECT h.id, h.service_id, h.journey_id, j.payment_id, h.reason, h.placed_by, h.placed_at, \
               h.released_by, h.released_at FROM personal_data_holds h JOIN journeys j ON j.id = h.journey_id \
               WHERE h.id = $1";
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, Hold>(sql).bind(id).fetch_optional(pool).await?),
    )
}

/// What keeps one journey's personal data past its retention period, if anything: `hold`,
/// `dispute` or `refund` (`HELD_BY`).
pub async fn held_by(db: &Db, journey_id: i64) -> StoreResult<Option<String>> {
    let sql = format!("SELECT {HELD_BY} FROM journeys j WHERE j.id = $1");
    Ok(
        crate::on_db!(db, pool => sqlx::query_scalar::<_, Option<String>>(&sql)
        .bind(journey_id).fetch_optional(pool).await?)
        .flatten(),
    )
}

/// The open holds an admin placed on one journey, newest first.
pub async fn holds_of_journey(db: &Db, journey_id: i64) -> StoreResult<Vec<Hold>> {
    let sql = "SELECT h.id, h.service_id, h.journey_id, j.payment_id, h.reason, h.placed_by, h.placed_at, \
               h.released_by, h.released_at FROM personal_data_holds h JOIN journeys j ON j.id = h.journey_id \
               WHERE h.journey_id = $1 AND h.released_at IS NULL ORDER BY h.placed_at DESC, h.id DESC";
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, Hold>(sql).bind(journey_id).fetch_all(pool).await?),
    )
}
