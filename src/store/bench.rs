//! The SQL the benchmarks run beside the console's own: counting and sampling the seeded
//! journeys, making and dropping the bench database, running the generator's INSERT text,
//! parking the indexes during a bulk load, and the databases' own bulk CSV export.

use std::time::{Duration, Instant};

use sqlx::Connection;

use super::sql::{inline, Built};
use super::{Backend, Db, StoreError, StoreResult, Tx};
use crate::on_db;

/// A bench-owned table holding the definitions of the indexes dropped for a bulk load, so
/// that a load interrupted half-way can still rebuild them; dropped once they are rebuilt.
pub const DROPPED_INDEXES: &str = "paydesk_bench_dropped_indexes";

/// How many journeys the database holds.
pub async fn count_journeys(db: &Db) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM journeys")
        .fetch_one(pool)
        .await?),
    )
}

/// The created times of the first and the last journey by id.
pub async fn first_and_last_created(db: &Db) -> StoreResult<(i64, i64)> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT (SELECT created_at FROM journeys ORDER BY id LIMIT 1), \
                (SELECT created_at FROM journeys ORDER BY id DESC LIMIT 1)")
        .fetch_one(pool)
        .await?))
}

/// The newest journey's created time, and the created time of the `n`th newest (counting
/// from 0), if there are that many.
pub async fn newest_and_nth_created(db: &Db, n: i64) -> StoreResult<(i64, Option<i64>)> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, (i64, Option<i64>)>(
        "SELECT (SELECT MAX(created_at) FROM journeys), \
                (SELECT created_at FROM journeys ORDER BY created_at DESC LIMIT 1 OFFSET $1)")
        .bind(n)
        .fetch_one(pool)
        .await?))
}

/// The oldest journey's created time.
pub async fn oldest_created(db: &Db) -> StoreResult<i64> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT MIN(created_at) FROM journeys")
        .fetch_one(pool)
        .await?),
    )
}

/// Drop the database `name` on the PostgreSQL server `server`, if it exists.
pub async fn drop_postgres_database(server: &str, name: &str) -> StoreResult<()> {
    let mut conn = sqlx::PgConnection::connect(server).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Create the database `name` on `server` unless it exists (`creating` is called just before
/// it is created).
pub async fn create_postgres_database(
    server: &str,
    name: &str,
    creating: impl FnOnce(),
) -> StoreResult<()> {
    let mut conn = sqlx::PgConnection::connect(server).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        creating();
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(())
}

/// Run one chunk of the generator's INSERT text in `tx`. On SQLite the connection gets a
/// large page cache first, for while the indexes grow.
pub async fn run_seed_chunk(tx: &mut Tx, sql: &str) -> StoreResult<()> {
    let sqlite = tx.backend() == Backend::Sqlite;
    crate::on_tx!(tx, conn => {
        if sqlite {
            sqlx::raw_sql("PRAGMA cache_size = -1048576").execute(&mut *conn).await?;
        }
        sqlx::raw_sql(sql).execute(&mut *conn).await?;
    });
    Ok(())
}

/// After seeding SQLite: fold the write-ahead log into the file and give the writer back
/// its usual page cache. Nothing to do on PostgreSQL.
pub async fn checkpoint(db: &Db) -> StoreResult<()> {
    if let Db::Sqlite(_, writer) = db {
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA cache_size = -65536;")
            .execute(&writer.pool)
            .await?;
    }
    Ok(())
}

/// Drop every index on journeys and journey_metadata that does not back a constraint,
/// saving each one's definition as PostgreSQL prints it, in one transaction: the indexes
/// rebuilt afterwards are exactly those the migrations made, whichever migration made them.
/// Nothing to do on SQLite.
pub async fn drop_indexes_for_load(db: &Db) -> StoreResult<()> {
    let Db::Postgres(pool, _) = db else {
        return Ok(());
    };
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS {DROPPED_INDEXES} (name TEXT PRIMARY KEY, definition TEXT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x \
         JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         WHERE t.relname IN ('journeys', 'journey_metadata') \
         AND t.relnamespace = current_schema()::regnamespace \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, definition) in &indexes {
        sqlx::query(&format!(
            "INSERT INTO {DROPPED_INDEXES} (name, definition) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(name)
        .bind(definition)
        .execute(&mut *tx)
        .await?;
        sqlx::raw_sql(&format!("DROP INDEX \"{name}\""))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuild the indexes a bulk load dropped (also after an interrupted one); a no-op when
/// none are pending. `building` hears of each index built: its name before, and its name and
/// how long it took after.
pub async fn restore_dropped_indexes(
    db: &Db,
    mut building: impl FnMut(&str, Option<Duration>),
) -> StoreResult<()> {
    let Db::Postgres(pool, _) = db else {
        return Ok(());
    };
    let pending: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(DROPPED_INDEXES)
        .fetch_one(pool)
        .await?;
    if !pending {
        return Ok(());
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT name, definition FROM {DROPPED_INDEXES} ORDER BY name"
    ))
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SET maintenance_work_mem = '1GB'")
        .execute(&mut *conn)
        .await?;
    for (name, definition) in indexes {
        let present: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await?;
        if !present {
            building(&name, None);
            let t = Instant::now();
            sqlx::raw_sql(&definition).execute(&mut *conn).await?;
            building(&name, Some(t.elapsed()));
        }
        sqlx::query(&format!("DELETE FROM {DROPPED_INDEXES} WHERE name = $1"))
            .bind(&name)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::raw_sql(&format!(
        "RESET maintenance_work_mem; DROP TABLE {DROPPED_INDEXES}"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A real journey to take search values from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Sample {
    pub payment_id: String,
    pub reference: String,
    pub email: Option<String>,
    pub last_digits: Option<String>,
    pub first_digits: Option<String>,
    pub case_reference: Option<String>,
    pub cardholder_name: Option<String>,
}

/// The first successful journey with a case reference from row `from_id` on, in `service_id`.
pub async fn sample_journey(db: &Db, service_id: i64, from_id: i64) -> StoreResult<Option<Sample>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Sample>(
        "SELECT payment_id, reference, email, last_digits, first_digits, case_reference, cardholder_name \
         FROM journeys WHERE service_id = $1 AND id >= $2 AND status = 'success' \
         AND case_reference IS NOT NULL ORDER BY id LIMIT 1")
        .bind(service_id)
        .bind(from_id)
        .fetch_optional(pool)
        .await?))
}

/// The (created_at, id) keyset position of the newest journey made at or before `micros`.
pub async fn newest_key_at_or_before(
    db: &Db,
    service_id: i64,
    micros: i64,
) -> StoreResult<Option<(i64, i64)>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, (i64, i64)>(
        "SELECT created_at, id FROM journeys WHERE service_id = $1 AND created_at <= $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1")
        .bind(service_id)
        .bind(micros)
        .fetch_optional(pool)
        .await?))
}

/// VACUUM (ANALYZE) the journeys' tables (and the disputes' and agreements') on PostgreSQL;
/// nothing on SQLite.
pub async fn vacuum_analyze(db: &Db) -> StoreResult<()> {
    if let Db::Postgres(pool, _) = db {
        for table in [
            "journeys",
            "journey_metadata",
            "disputes",
            "agreements",
            "agreement_payments",
        ] {
            sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// PostgreSQL's own CSV export of `statements` (`COPY … TO STDOUT WITH CSV`), on one
/// connection: how long it took from the first statement, and the bytes it wrote.
pub async fn copy_csv(db: &Db, statements: &[Built]) -> StoreResult<(Duration, u64)> {
    use futures::StreamExt;
    let Db::Postgres(pool, _) = db else {
        return Err(StoreError::Invalid("COPY is PostgreSQL's".into()));
    };
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    let mut bytes = 0u64;
    for s in statements {
        let sql = format!(
            "COPY ({}) TO STDOUT WITH CSV",
            inline(Backend::Postgres, s)?
        );
        let mut stream = conn.copy_out_raw(&sql).await?;
        while let Some(chunk) = stream.next().await {
            bytes += chunk?.len() as u64;
        }
    }
    Ok((started.elapsed(), bytes))
}

/// How many disputes and agreements the bench database holds.
pub async fn count_disputes_and_agreements(db: &Db) -> StoreResult<(i64, i64)> {
    Ok(on_db!(db, pool => {
        let d: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM disputes").fetch_one(pool).await?;
        let a: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agreements").fetch_one(pool).await?;
        (d, a)
    }))
}

/// Seed disputes and recurring agreements in proportion to the journeys held, in one
/// transaction: a dispute on one successful journey in `dispute_every` (needing a response,
/// under review, won and lost in turn, the first due three weeks after it was raised), and an
/// agreement for one journey in `agreement_every` (created, active, cancelled and inactive in
/// turn, each with the journey's card) with every twentieth journey after it, in the same service,
/// taken under it (none under one still only created). Rows already there are kept.
pub async fn seed_disputes_and_agreements(
    db: &Db,
    dispute_every: i64,
    agreement_every: i64,
    now: i64,
) -> StoreResult<()> {
    const DAY: i64 = 86_400_000_000;
    let disputes = format!(
        "INSERT INTO disputes (service_id, dispute_id, payment_id, journey_id, amount, fee, net_amount, \
           reason, status, status_rank, evidence_due_at, created_at, settled_date, observed_at, first_seen_at, updated_at) \
         SELECT service_id, 'du' || payment_id, payment_id, id, amount, 1500, \
           CASE WHEN (id / {de}) % 4 = 3 THEN -(amount + 1500) END, \
           CASE (id / {de}) % 3 WHEN 0 THEN 'fraudulent' WHEN 1 THEN 'product_not_received' ELSE 'duplicate' END, \
           CASE (id / {de}) % 4 WHEN 0 THEN 'needs_response' WHEN 1 THEN 'under_review' WHEN 2 THEN 'won' ELSE 'lost' END, \
           CASE (id / {de}) % 4 WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE 2 END, \
           CASE WHEN (id / {de}) % 4 = 0 THEN created_at + {due} END, \
           created_at + {raised}, NULL, {now}, {now}, {now} \
         FROM journeys WHERE id % {de} = 0 AND status = 'success' \
         ON CONFLICT (service_id, dispute_id) DO NOTHING",
        de = dispute_every,
        due = 28 * DAY,
        raised = 7 * DAY,
    );
    let agreements = format!(
        "INSERT INTO agreements (service_id, agreement_id, reference, description, user_identifier, status, \
           status_rank, card_brand, card_last4, card_expiry, card_type, created_at, cancelled_at, observed_at, \
           first_seen_at, updated_at) \
         SELECT service_id, 'ag' || payment_id, 'AGR-' || id, 'Monthly permit renewal', 'payer-' || id, \
           CASE (id / {ae}) % 4 WHEN 0 THEN 'created' WHEN 1 THEN 'active' WHEN 2 THEN 'cancelled' ELSE 'inactive' END, \
           CASE (id / {ae}) % 4 WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE 2 END, \
           CASE WHEN (id / {ae}) % 4 = 0 THEN NULL ELSE card_brand END, \
           CASE WHEN (id / {ae}) % 4 = 0 THEN NULL ELSE last_digits END, \
           CASE WHEN (id / {ae}) % 4 = 0 THEN NULL ELSE '12/29' END, \
           CASE WHEN (id / {ae}) % 4 = 0 THEN NULL ELSE 'debit' END, \
           created_at, CASE WHEN (id / {ae}) % 4 = 2 THEN created_at + {later} END, {now}, {now}, {now} \
         FROM journeys WHERE id % {ae} = 0 \
         ON CONFLICT (service_id, agreement_id) DO NOTHING",
        ae = agreement_every,
        later = 90 * DAY,
    );
    let under = format!(
        "INSERT INTO agreement_payments (service_id, payment_id, agreement_id) \
         SELECT j.service_id, j.payment_id, 'ag' || a.payment_id FROM journeys j \
           JOIN journeys a ON a.id = j.id - (j.id % {ae}) AND a.service_id = j.service_id \
         WHERE j.id % 20 = 0 AND j.id % {ae} <> 0 AND (a.id / {ae}) % 4 <> 0 \
         ON CONFLICT (service_id, payment_id) DO NOTHING",
        ae = agreement_every,
    );
    let mut tx = db.begin().await?;
    crate::on_tx!(&mut tx, conn => {
        for sql in [&disputes, &agreements, &under] {
            sqlx::query(sql).execute(&mut *conn).await?;
        }
    });
    tx.commit().await?;
    Ok(())
}

/// An agreement's reference to search for: the one whose journey is nearest `from_id`.
pub async fn sample_agreement_reference(db: &Db, from_id: i64) -> StoreResult<Option<String>> {
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT reference FROM agreements WHERE id >= $1 ORDER BY id LIMIT 1")
        .bind(from_id)
        .fetch_optional(pool)
        .await?))
}
