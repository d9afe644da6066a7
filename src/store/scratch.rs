//! Throw-away databases for tests and benchmarks: a SQLite file in a temporary folder, or a
//! fresh PostgreSQL database created next to a given server URL and dropped afterwards.

use sqlx::Connection;

use super::{StoreError, StoreResult};

/// A database that exists only until `destroy` (or, for SQLite, until its folder goes).
#[derive(Debug)]
pub struct ScratchDb {
    pub url: String,
    postgres: Option<(String, String)>,
    folder: Option<std::path::PathBuf>,
}

impl ScratchDb {
    /// A new, empty database. `server_url` None → SQLite in a fresh temporary folder;
    /// Some(postgres URL) → a new database on that server named `{prefix}_{random}`.
    pub async fn create(server_url: Option<&str>, prefix: &str) -> StoreResult<ScratchDb> {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        match server_url {
            None => {
                let folder = std::env::temp_dir().join(format!("{prefix}-{suffix}"));
                std::fs::create_dir_all(&folder).map_err(|e| {
                    StoreError::Invalid(format!("cannot create {}: {e}", folder.display()))
                })?;
                Ok(ScratchDb {
                    url: format!("sqlite://{}", folder.join("paydesk.db").display()),
                    postgres: None,
                    folder: Some(folder),
                })
            }
            Some(server) => {
                let name = format!("{prefix}_{suffix}");
                let mut conn = sqlx::PgConnection::connect(server).await?;
                sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(ScratchDb {
                    url: with_database(server, &name),
                    postgres: Some((server.to_string(), name)),
                    folder: None,
                })
            }
        }
    }

    /// Remove the database and everything in it.
    pub async fn destroy(&self) -> StoreResult<()> {
        if let Some((server, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(server).await?;
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        if let Some(folder) = &self.folder {
            let _ = std::fs::remove_dir_all(folder);
        }
        Ok(())
    }

    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.folder.as_ref().map(|f| f.join("paydesk.db"))
    }
}

/// The same server URL pointing at another database.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
