//! Shared test harness: an app on a fresh database per test. `TEST_DATABASE_URL` unset →
//! a SQLite file in a temporary folder; set to a PostgreSQL server URL → a fresh database on
//! that server, dropped when the test ends. The same tests run on both.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paydesk::clock::{ManualClock, SharedClock};
use paydesk::config::Config;
use paydesk::store::scratch::ScratchDb;
use paydesk::store::{Db, PoolSettings};
use paydesk::AppState;
use rocket::local::asynchronous::Client;

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

pub fn start_time() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-20 09:00:00 UTC)
}

/// The application on a fresh database with a manual clock, reached through Rocket's local
/// client. The job worker is off: tests drive it with `state.job_runner().run_due()`.
pub struct TestApp {
    pub client: Client,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub db: TestDb,
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::build(|_| {}, |r| r).await
    }

    pub async fn with_config(configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::build(configure, |r| r).await
    }

    pub async fn build(
        configure: impl FnOnce(&mut Config),
        extend: impl FnOnce(rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build>,
    ) -> TestApp {
        let db = TestDb::new().await;
        let mut config = Config::for_tests(db.url());
        configure(&mut config);
        let clock = ManualClock::new(start_time());
        let shared: SharedClock = clock.clone();
        let state = AppState::open(config, shared)
            .await
            .expect("open the app state");
        let client = Client::tracked(extend(paydesk::app(state.clone())))
            .await
            .expect("a valid rocket");
        TestApp {
            client,
            state,
            clock,
            db,
        }
    }
}

/// A port nobody is listening on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn paydesk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paydesk"))
}

/// `paydesk` with a clean environment pointing at `database_url`.
pub fn paydesk_command(database_url: &str) -> Command {
    let mut cmd = Command::new(paydesk_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYDESK_DATABASE_URL", database_url)
        .env(
            "PAYDESK_SECRET_KEY",
            "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70",
        )
        .env("RUST_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// A `paydesk serve` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = paydesk_command(database_url);
        cmd.arg("serve")
            .env("PAYDESK_PORT", port.to_string())
            .env("PAYDESK_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start paydesk serve");
        let server = Server { child, port };
        server.wait_healthy(Duration::from_secs(30));
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_healthy(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "paydesk did not become healthy on port {} within {:?}",
            self.port, limit
        );
    }

    /// `kill -9`: no shutdown hooks, no chance to tidy up.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("paydesk did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
