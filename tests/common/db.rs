//! A fresh, empty database per test: a SQLite file in a temporary folder, or (with
//! `TEST_DATABASE_URL` set to a PostgreSQL server) a fresh database on that server, dropped
//! when the test ends.

use paydesk::config::Config;
use paydesk::store::scratch::ScratchDb;
use paydesk::store::{Db, PoolSettings};

pub fn postgres_server() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn on_postgres() -> bool {
    postgres_server().is_some()
}

/// A fresh, empty database for one test; dropped (PostgreSQL) or deleted (SQLite) at the end.
pub struct TestDb {
    pub scratch: Option<ScratchDb>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let server = postgres_server();
        let scratch = ScratchDb::create(server.as_deref(), "paydesk_test")
            .await
            .expect("create a scratch database (is TEST_DATABASE_URL reachable?)");
        TestDb {
            scratch: Some(scratch),
        }
    }

    pub fn url(&self) -> &str {
        &self.scratch.as_ref().expect("scratch").url
    }

    /// A new pool on this database, migrated: as another paydesk process would have.
    pub async fn connect(&self) -> Db {
        let db = Db::connect(
            self.url(),
            &PoolSettings {
                max_connections: 5,
                ..Default::default()
            },
        )
        .await
        .expect("connect");
        db.migrate().await.expect("migrate");
        // Links keyed as the test configuration (and the binary run by tests) key them.
        db.set_audit_chain_key(Config::for_tests(self.url()).audit_chain_key())
            .expect("chain key");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(scratch) = self.scratch.take() {
            // Dropping a PostgreSQL database is async; do it on a thread of its own so it
            // works whichever runtime (if any) the test is on.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(scratch.destroy());
                }
            })
            .join();
        }
    }
}
