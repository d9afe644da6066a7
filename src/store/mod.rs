//! The store owns every SQL statement paydesk runs, on SQLite and on PostgreSQL.
//! `Db` holds one pool chosen by the URL scheme; `Tx` is a write transaction on either.
//! Capability modules call the functions in the files below and never write SQL themselves.

pub mod agreements;
pub mod api_tokens;
pub mod audit;
pub mod audit_search;
pub mod bench;
pub mod dashboard;
pub mod disputes;
pub mod drafts;
pub mod events;
pub mod exports;
pub mod jobs;
pub mod journeys;
pub mod personal_data;
pub mod personal_data_reach;
pub mod refund_batches;
pub mod refund_list;
pub mod refunds;
pub mod scratch;
pub mod search;
pub mod service_admin;
pub mod services;
pub mod sql;
pub mod staff;
pub mod staff_admin;
pub mod standing;
pub mod subject_access;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

/// Run the same body against whichever pool a `Db` holds. The body is compiled once per
/// backend, so one SQL text with `$n` placeholders serves both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool, _) => $body,
            $crate::store::Db::Postgres($pool, _) => $body,
        }
    };
}

/// Run the same body against the connection of a write transaction, whichever backend.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t, _) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a `Db` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Settings for opening a pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The database, SQLite or PostgreSQL. Cloning is cheap.
///
/// SQLite gets two pools: one for reads, and a single connection for every write
/// transaction. SQLite admits one writer at a time anyway; queueing this process's writers for
/// one connection is far cheaper than SQLite's sleeping busy handler, and that connection's page
/// cache stays warm. Other processes are held off by `BEGIN IMMEDIATE` plus `busy_timeout`.
#[derive(Clone, Debug)]
pub enum Db {
    /// (readers, the writer)
    Sqlite(SqlitePool, Writer),
    Postgres(PgPool, Arc<HeadHint>),
}

/// The SQLite writer connection, with this process's hint of the audit chain's head.
#[derive(Clone, Debug)]
pub struct Writer {
    pub pool: SqlitePool,
    pub hint: Arc<HeadHint>,
}

/// The audit chain's head as this process last saw it: (sequence, hash). Only a hint: every
/// append that uses it checks it against the database in the same statement. Standalone
/// appends hold it across their one statement, which queues this process's appends instead
/// of letting them race each other for the same sequence number.
///
/// It also carries the key that links the chain (`audit::chain_key`), set once from the
/// configuration; it never enters the database.
#[derive(Debug, Default)]
pub struct HeadHint {
    pub head: tokio::sync::Mutex<Option<(i64, String)>>,
    key: std::sync::OnceLock<[u8; 32]>,
}

impl HeadHint {
    pub fn chain_key(&self) -> Option<&[u8; 32]> {
        self.key.get()
    }
}

/// A write transaction. Commit it, or drop it to roll back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>, Arc<HeadHint>),
    Postgres(sqlx::Transaction<'static, Postgres>, Arc<HeadHint>),
}

impl Db {
    /// Open a pool for `url`, creating the SQLite file (and its folder) when missing.
    pub async fn connect(url: &str, settings: &PoolSettings) -> StoreResult<Db> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL survives a killed process; only a power cut can lose the last
                // commits. FULL would cost an fsync on every commit.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                // Freed space is zeroed, so payer data removed under retention or erasure
                // (`personal_data`) is gone from the file's bytes, not only from its tables.
                .pragma("secure_delete", "ON")
                // 64 MiB of page cache (allocated only as used): SQLite's default 2 MiB makes
                // every insert into a large index a cache miss.
                .pragma("cache_size", "-65536")
                // Checkpoint the WAL every ~40 MiB rather than every 4 MiB: fewer, larger
                // checkpoints when a backfill writes a lot at once.
                .pragma("wal_autocheckpoint", "10000");
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Invalid(format!(
                            "cannot create folder {}: {e}",
                            parent.display()
                        ))
                    })?;
                }
            }
            // The writer first: opening it creates the file and switches it to WAL.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                // Writers queue here for as long as the longest write transaction takes.
                .acquire_timeout(settings.acquire_timeout * 6)
                .connect_with(options.clone())
                .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                // A failed connection shows up as an error on first use; pinging on every
                // checkout would cost a round trip per transaction.
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(
                readers,
                Writer {
                    pool: writer,
                    hint: Arc::default(),
                },
            ))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?
                .application_name("paydesk")
                // Plan each statement for its values: a generic plan cannot use an index for
                // `LIKE $1` prefixes or judge how selective a search value is, and paydesk's
                // statements are cheap to plan next to what a wrong plan costs.
                .options([("plan_cache_mode", "force_custom_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                // A failed connection shows up as an error on first use; pinging on every
                // checkout would cost a round trip per transaction.
                .test_before_acquire(false)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool, Arc::default()))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(..) => Backend::Sqlite,
            Db::Postgres(..) => Backend::Postgres,
        }
    }

    fn head_hint(&self) -> &Arc<HeadHint> {
        match self {
            Db::Sqlite(_, writer) => &writer.hint,
            Db::Postgres(_, hint) => hint,
        }
    }

    /// Set the key that links the audit chain (once; a second, different key is refused).
    pub fn set_audit_chain_key(&self, key: [u8; 32]) -> StoreResult<()> {
        let hint = self.head_hint();
        if *hint.key.get_or_init(|| key) != key {
            return Err(StoreError::Invalid(
                "this database handle already links the audit chain with another key".into(),
            ));
        }
        Ok(())
    }

    /// The key that links the audit chain, when one was set.
    pub fn audit_chain_key(&self) -> Option<[u8; 32]> {
        self.head_hint().chain_key().copied()
    }

    /// Apply every migration for this backend that has not run yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Db::Sqlite(_, writer) => {
                sqlx::migrate!("migrations/sqlite")
                    .run(&writer.pool)
                    .await?
            }
            Db::Postgres(pool, _) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Begin a write transaction: `BEGIN IMMEDIATE` on SQLite so that a transaction that
    /// reads and then writes never fails half-way on a lock upgrade.
    pub async fn begin(&self) -> StoreResult<Tx> {
        match self {
            Db::Sqlite(_, writer) => Ok(Tx::Sqlite(
                writer.pool.begin_with("BEGIN IMMEDIATE").await?,
                writer.hint.clone(),
            )),
            Db::Postgres(pool, hint) => Ok(Tx::Postgres(pool.begin().await?, hint.clone())),
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_db!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Connections in the pool: (open, idle, maximum).
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        on_db!(self, pool => (pool.size(), pool.num_idle() as u32, pool.options().get_max_connections()))
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(readers, writer) => {
                readers.close().await;
                writer.pool.close().await;
            }
            Db::Postgres(pool, _) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx, _) => tx.commit().await?,
            Tx::Postgres(tx, _) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx, _) => tx.rollback().await?,
            Tx::Postgres(tx, _) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Let this transaction commit without waiting for its WAL flush on PostgreSQL. Only for
    /// writes that can be derived again (a backfill page re-read from the platform): a crash
    /// may lose the last moments of them, never half of one, and never anything else.
    pub async fn relax_durability(&mut self) -> StoreResult<()> {
        if let Tx::Postgres(t, _) = self {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(..) => Backend::Postgres,
        }
    }

    /// The key that links the audit chain, when one was set on the database handle.
    pub fn audit_chain_key(&self) -> Option<[u8; 32]> {
        match self {
            Tx::Sqlite(_, hint) | Tx::Postgres(_, hint) => hint.chain_key().copied(),
        }
    }
}

/// A database URL without its password, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Times are stored as whole microseconds since the Unix epoch (UTC) on both backends, so
/// ordering and comparison are plain integer comparisons and the audit encoding is exact.
pub fn to_micros(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(us: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_in_url() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("sqlite://var/paydesk.db"),
            "sqlite://var/paydesk.db"
        );
    }

    #[test]
    fn micros_round_trip() {
        let t = time::macros::datetime!(2026-11-20 12:34:56.123456 UTC);
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
