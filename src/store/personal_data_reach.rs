//! The places a payer's data reaches beyond the journey (`crate::personal_data`): recurring
//! agreements, uploaded bulk refund files, form drafts, job attempts' errors, export files and
//! the bytes PostgreSQL keeps of dead rows. `store::personal_data::redact` calls the parts that
//! follow a journey; the retention run calls the rest once per run.

use super::{Db, StoreResult, Tx};

fn placeholders(from: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("${}", from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Agreements whose payer data was removed, and cancellation reasons emptied with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgreementsRemoved {
    pub agreements: u64,
    pub cancellation_reasons: u64,
}

/// An agreement that keeps its payer data although one of these journeys was redacted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeptAgreement {
    pub agreement_id: String,
    pub status: String,
}

/// The service's identifier for the payer, the description (NOT NULL: emptied) and staff's
/// cancellation reasons of ended agreements (`cancelled`, `inactive`, or `created` and never
/// set up) none of whose payments still holds payer data.
const ENDED_AND_EMPTY: &str = "a.redacted_at IS NULL AND a.status <> 'active' \
    AND NOT EXISTS (SELECT 1 FROM agreement_payments ap JOIN journeys j \
                    ON j.service_id = ap.service_id AND j.payment_id = ap.payment_id \
                    WHERE ap.service_id = a.service_id AND ap.agreement_id = a.agreement_id \
                      AND j.redacted_at IS NULL)";

async fn redact_agreement_rows(
    tx: &mut Tx,
    where_sql: &str,
    binds: &[i64],
    texts: &[&str],
    now: i64,
) -> StoreResult<AgreementsRemoved> {
    let sql = format!(
        "UPDATE agreements SET description = '', user_identifier = NULL, redacted_at = $1, updated_at = $1 \
         WHERE id IN (SELECT a.id FROM agreements a WHERE {ENDED_AND_EMPTY} AND {where_sql})"
    );
    let agreements = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql).bind(now);
        for b in binds { q = q.bind(*b); }
        for t in texts { q = q.bind(*t); }
        q.execute(&mut *conn).await?.rows_affected()
    });
    let mut out = AgreementsRemoved {
        agreements,
        cancellation_reasons: 0,
    };
    if agreements > 0 {
        out.cancellation_reasons = crate::on_tx!(tx, conn => sqlx::query(
            "UPDATE agreement_cancellations SET reason = '' WHERE reason <> '' AND EXISTS \
             (SELECT 1 FROM agreements a WHERE a.service_id = agreement_cancellations.service_id \
              AND a.agreement_id = agreement_cancellations.agreement_id AND a.redacted_at = $1)")
            .bind(now).execute(&mut *conn).await?.rows_affected());
    }
    Ok(out)
}

/// After these journeys were redacted (in the same transaction): redact the ended agreements
/// they were taken under whose payments now all lack payer data; the agreements that keep it
/// (still active, or with a payment a hold keeps) are returned.
pub async fn redact_agreements_of(
    tx: &mut Tx,
    journeys: &[i64],
    now: i64,
) -> StoreResult<(AgreementsRemoved, Vec<KeptAgreement>)> {
    if journeys.is_empty() {
        return Ok(Default::default());
    }
    let ids = placeholders(1, journeys.len());
    let sql = format!(
        "SELECT DISTINCT ap.service_id, ap.agreement_id FROM journeys j JOIN agreement_payments ap \
         ON ap.service_id = j.service_id AND ap.payment_id = j.payment_id WHERE j.id IN ({ids})"
    );
    let linked: Vec<(i64, String)> = crate::on_tx!(tx, conn => {
        let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
        for id in journeys { q = q.bind(*id); }
        q.fetch_all(&mut *conn).await?
    });
    let mut out = AgreementsRemoved::default();
    let mut kept = Vec::new();
    for (service_id, agreement_id) in linked {
        let r = redact_agreement_rows(
            tx,
            "a.service_id = $2 AND a.agreement_id = $3",
            &[service_id],
            &[&agreement_id],
            now,
        )
        .await?;
        out.agreements += r.agreements;
        out.cancellation_reasons += r.cancellation_reasons;
        if r.agreements == 0 {
            let still: Option<KeptAgreement> = crate::on_tx!(tx, conn => sqlx::query_as::<_, KeptAgreement>(
                "SELECT agreement_id, status FROM agreements WHERE service_id = $1 AND agreement_id = $2 \
                 AND redacted_at IS NULL")
                .bind(service_id).bind(&agreement_id).fetch_optional(&mut *conn).await?);
            kept.extend(still);
        }
    }
    Ok((out, kept))
}

/// Retention for agreements of a service: those that ended (or were created and never set up)
/// before `cutoff`, none of whose payments still holds payer data.
pub async fn redact_ended_agreements(
    tx: &mut Tx,
    service_id: i64,
    cutoff: i64,
    now: i64,
) -> StoreResult<AgreementsRemoved> {
    redact_agreement_rows(
        tx,
        "a.service_id = $2 AND COALESCE(a.cancelled_at, a.created_at) < $3",
        &[service_id, cutoff],
        &[],
        now,
    )
    .await
}

/// Drop the stored bytes of finished bulk refund files (sent or cancelled) with a row naming
/// one of these journeys, just redacted (in the same transaction). The file's SHA-256, its
/// rows' outcomes and the audit entries stay, so what was approved stays provable. How many.
pub async fn drop_batch_files_of(tx: &mut Tx, journeys: &[i64], now: i64) -> StoreResult<u64> {
    if journeys.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE refund_batches SET file_bytes = $1, file_removed_at = $2, updated_at = $2 \
         WHERE file_removed_at IS NULL AND state IN ('sent', 'cancelled') \
           AND id IN (SELECT r.batch_id FROM refund_batch_rows r WHERE r.journey_id IN ({}))",
        placeholders(3, journeys.len())
    );
    let empty: Vec<u8> = Vec::new();
    Ok(crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql).bind(empty).bind(now);
        for id in journeys { q = q.bind(*id); }
        q.execute(&mut *conn).await?.rows_affected()
    }))
}

/// Once a run: drop the bytes of finished bulk refund files that name a redacted payment (a
/// batch that finished after its payments were redacted), or that were uploaded before `past`
/// (past every service's retention period: `checked` batches never sent too); rows of such
/// files that found no payment lose their input and comment. How many files.
pub async fn drop_batch_files(tx: &mut Tx, past: i64, now: i64) -> StoreResult<u64> {
    let empty: Vec<u8> = Vec::new();
    let dropped = crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE refund_batches SET file_bytes = $1, file_removed_at = $2, updated_at = $2 \
         WHERE file_removed_at IS NULL AND (\
           (state IN ('sent', 'cancelled') AND EXISTS (SELECT 1 FROM refund_batch_rows r \
              JOIN journeys j ON j.id = r.journey_id WHERE r.batch_id = refund_batches.id \
              AND j.redacted_at IS NOT NULL)) \
           OR (state IN ('sent', 'cancelled', 'checked') AND uploaded_at < $3))")
        .bind(empty).bind(now).bind(past).execute(&mut *conn).await?.rows_affected());
    crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE refund_batch_rows SET comment = NULL, input = '{}' \
         WHERE journey_id IS NULL AND (comment IS NOT NULL OR input <> '{}') \
           AND batch_id IN (SELECT id FROM refund_batches WHERE file_removed_at IS NOT NULL AND uploaded_at < $1)")
        .bind(past).execute(&mut *conn).await?.rows_affected());
    Ok(dropped)
}

/// Delete form drafts past their time, and any (even unexpired) that name one of these
/// payments. How many went.
pub async fn delete_drafts(tx: &mut Tx, payment_ids: &[String], now: i64) -> StoreResult<u64> {
    let mut gone = crate::on_tx!(tx, conn => sqlx::query(
        "DELETE FROM form_drafts WHERE expires_at < $1")
        .bind(now).execute(&mut *conn).await?.rows_affected());
    if payment_ids.is_empty() {
        return Ok(gone);
    }
    let live: Vec<(String, String)> = crate::on_tx!(tx, conn => sqlx::query_as::<_, (String, String)>(
        "SELECT draft_key, body FROM form_drafts").fetch_all(&mut *conn).await?);
    for (key, body) in live {
        if payment_ids
            .iter()
            .any(|p| !p.is_empty() && body.contains(p.as_str()))
        {
            gone += crate::on_tx!(tx, conn => sqlx::query(
                "DELETE FROM form_drafts WHERE draft_key = $1")
                .bind(&key).execute(&mut *conn).await?.rows_affected());
        }
    }
    Ok(gone)
}

/// Errors of mail jobs whose mail was emptied (an SMTP answer can quote the address).
pub async fn scrub_mail_errors(tx: &mut Tx) -> StoreResult<u64> {
    let redacted = "{\"redacted\":true}";
    Ok(crate::on_tx!(tx, conn => sqlx::query(
        "UPDATE job_attempts SET error = NULL WHERE error IS NOT NULL AND job_id IN \
         (SELECT id FROM jobs WHERE kind = 'mail_send' AND payload = $1)")
        .bind(redacted).execute(&mut *conn).await?.rows_affected()))
}

/// A finished export whose file is still kept.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeptExport {
    pub id: i64,
    pub service_ids: String,
    pub filter: String,
    pub created_at: i64,
}

/// Finished exports made before `before` whose file is still kept.
pub async fn exports_made_before(db: &Db, before: i64) -> StoreResult<Vec<KeptExport>> {
    let sql = "SELECT id, service_ids, filter, created_at FROM exports \
               WHERE state = 'finished' AND created_at < $1 ORDER BY id";
    Ok(
        crate::on_db!(db, pool => sqlx::query_as::<_, KeptExport>(sql)
        .bind(before).fetch_all(pool).await?),
    )
}

/// Bring these exports' expiry forward to `now`: the export cleaner deletes their files (and
/// audits it) on its next pass, on whichever instance gets there first.
pub async fn expire_exports(tx: &mut Tx, ids: &[i64], now: i64) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE exports SET expires_at = $1, updated_at = $1 \
         WHERE state = 'finished' AND (expires_at IS NULL OR expires_at > $1) AND id IN ({})",
        placeholders(2, ids.len())
    );
    Ok(crate::on_tx!(tx, conn => {
        let mut q = sqlx::query(&sql).bind(now);
        for id in ids { q = q.bind(*id); }
        q.execute(&mut *conn).await?.rows_affected()
    }))
}

/// On PostgreSQL, VACUUM the journeys and their metadata index part-way through a long
/// retention run. Each redacted journey leaves a dead row version and, because the columns it
/// empties are indexed, a second entry in every index; until a VACUUM, searches step over
/// them and visit the table for rows they could otherwise count from an index alone, and the
/// new versions go to the table's end instead of into the freed space. One worker
/// (`PARALLEL 0`), so people's searches keep the other cores.
pub async fn vacuum_journeys(db: &Db) -> StoreResult<()> {
    if let Db::Postgres(pool, _) = db {
        sqlx::raw_sql("VACUUM (PARALLEL 0) journeys, journey_metadata")
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Tables a redaction rewrites: PostgreSQL's VACUUM prunes their dead row versions.
const REWRITTEN: &[&str] = &[
    "journeys",
    "journey_metadata",
    "journey_events",
    "refund_requests",
    "refund_batch_rows",
    "refund_batches",
    "agreements",
    "agreement_cancellations",
    "api_idempotency",
    "jobs",
    "job_attempts",
    "audit_personal",
    "form_drafts",
    "erasure_requests",
];

/// On PostgreSQL, VACUUM the tables a redaction rewrote (outside any transaction), so dead
/// row versions holding the old values are pruned from heap pages and indexes now rather than
/// at autovacuum's next visit. It does not zero the freed space nor shrink the files, and WAL
/// and backups keep their copies: see the README. Without the table's ownership PostgreSQL
/// skips it with a warning. SQLite needs none of this (`secure_delete`, `scrub`).
pub async fn vacuum(db: &Db) -> StoreResult<()> {
    if let Db::Postgres(pool, _) = db {
        // The simple query protocol: VACUUM cannot run inside a transaction block.
        let sql = format!("VACUUM {}", REWRITTEN.join(", "));
        sqlx::raw_sql(&sql).execute(pool).await?;
    }
    Ok(())
}
