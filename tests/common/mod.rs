//! Shared test harness: an app on a fresh database per test. `TEST_DATABASE_URL` unset →
//! a SQLite file in a temporary folder; set to a PostgreSQL server URL → a fresh database on
//! that server, dropped when the test ends. The same tests run on both.
#![allow(dead_code)]

pub mod sandbox;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paydesk::clock::{Clock, ManualClock, SharedClock};
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
        // Tests' sandboxes and listeners are on this machine (loopback is never allowed in
        // the release profile).
        .env(
            "PAYDESK_PLATFORM_HOSTS",
            "publicapi.payments.service.gov.uk,publicapi.example,127.0.0.1,localhost",
        )
        .env(
            "PAYDESK_AUDIT_CHECKPOINT_DIR",
            std::env::temp_dir().join("paydesk-test-checkpoints"),
        )
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

// ---- people, sign-in and forms ------------------------------------------------------------

use paydesk::audit::Actor;
use paydesk::identity::permissions::Role;
use paydesk::identity::{accounts, totp};
use rocket::http::{ContentType, Cookie};
use rocket::local::asynchronous::LocalResponse;

pub const PASSWORD: &str = "correct horse battery staple";

/// A member of staff with a password and an authenticator.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub secret: Vec<u8>,
}

/// Percent-encode for a form body or a query string.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `<input name="…" value="…">` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&#x2F;", "/")
            .replace("&amp;", "&"),
    )
}

/// The text between `start` and the next `end` after it.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let s = html.find(start)? + start.len();
    let e = html[s..].find(end)? + s;
    Some(&html[s..e])
}

pub fn location(response: &LocalResponse<'_>) -> String {
    response
        .headers()
        .get_one("Location")
        .unwrap_or_default()
        .to_string()
}

impl TestApp {
    /// The code an authenticator with `secret` shows now (by the app's clock).
    pub fn code_now(&self, secret: &[u8]) -> String {
        let now = self.clock.now().unix_timestamp();
        totp::code_for_step(secret, totp::step_at(now))
    }

    /// Move to the start of the next 30-second step, so a fresh code is accepted.
    pub fn next_code_window(&self) {
        self.clock.advance(time::Duration::seconds(31));
    }

    pub async fn service(&self, slug: &str) -> i64 {
        let new = paydesk::services::NewService {
            slug: slug.into(),
            name: format!("Service {slug}"),
            time_zone: "Europe/London".into(),
            ..Default::default()
        };
        paydesk::services::add(&self.state, Actor::System, &new)
            .await
            .expect("add service")
            .expect("a valid service")
    }

    /// An active account with a password and an authenticator, made through the same rules
    /// a person follows (set-up link, then enrolment), without going through pages.
    pub async fn person(&self, email: &str, role: Role, service: Option<&str>) -> Person {
        let account = accounts::add_staff(
            &self.state,
            Actor::System,
            email,
            "Test Person",
            role,
            service,
        )
        .await
        .expect("add staff")
        .expect("valid staff");
        match accounts::set_password_with_link(
            &self.state,
            &account.setup_token,
            "setup",
            PASSWORD,
            PASSWORD,
            None,
        )
        .await
        .expect("set password")
        {
            accounts::PasswordOutcome::Done { .. } => {}
            other => panic!("password refused: {other:?}"),
        }
        let secret = totp::generate_secret();
        let key = self.state.config.totp_key();
        let sealed = paydesk::crypto::seal(
            &key,
            &paydesk::identity::totp::totp_context(account.staff_id),
            &secret,
        );
        let mut tx = self.state.db.begin().await.expect("begin");
        paydesk::store::staff::set_totp(&mut tx, account.staff_id, &sealed, 0, 0)
            .await
            .expect("totp");
        paydesk::store::staff::set_status(&mut tx, account.staff_id, "active", 0)
            .await
            .expect("status");
        tx.commit().await.expect("commit");
        Person {
            id: account.staff_id,
            email: email.to_string(),
            password: PASSWORD.to_string(),
            secret,
        }
    }

    /// The CSRF token a signed-out visitor's form carries (fetching a page sets the cookie).
    pub async fn signed_out_token(&self, page: &str) -> String {
        let html = self
            .client
            .get(page)
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap_or_default();
        input_value(&html, "csrf_token").expect("a csrf_token field")
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> LocalResponse<'_> {
        self.client
            .post(path.to_string())
            .header(ContentType::Form)
            .body(form_body(fields))
            .dispatch()
            .await
    }

    /// Sign in through the pages (password, then code); the tracked client keeps the cookie.
    pub async fn sign_in(&self, person: &Person) {
        let token = self.signed_out_token("/login").await;
        let r = self
            .post_form(
                "/login",
                &[
                    ("csrf_token", &token),
                    ("email", &person.email),
                    ("password", &person.password),
                ],
            )
            .await;
        assert_eq!(r.status().code, 303, "password step");
        assert_eq!(location(&r), "/login/code");
        self.next_code_window();
        let html = self
            .client
            .get("/login/code")
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap_or_default();
        let token = input_value(&html, "csrf_token").expect("csrf on the code page");
        let code = self.code_now(&person.secret);
        let r = self
            .post_form("/login/code", &[("csrf_token", &token), ("code", &code)])
            .await;
        assert_eq!(r.status().code, 303, "code step");
    }

    /// The session cookie's value, if the client holds one.
    pub fn session_cookie(&self) -> Option<String> {
        let name = paydesk::web::session::session_cookie_name(&self.state.config);
        self.client
            .cookies()
            .get(name)
            .map(|c| c.value().to_string())
    }

    /// The CSRF token for the signed-in session the client holds.
    pub fn token(&self) -> String {
        let id = self.session_cookie().expect("signed in");
        paydesk::web::csrf::token_for(&self.state.config.csrf_key(), &id)
    }

    /// A session cookie for `person` made directly in the database (for tests that are not
    /// about signing in).
    pub async fn session_for(&self, person: &Person) -> Cookie<'static> {
        let id = paydesk::identity::signin::start_active(
            &self.state,
            &paydesk::store::staff::staff_by_id(&self.state.db, person.id)
                .await
                .unwrap()
                .unwrap(),
            "password",
            &Default::default(),
            serde_json::json!({}),
        )
        .await
        .expect("session");
        let name = paydesk::web::session::session_cookie_name(&self.state.config);
        Cookie::new(name, id)
    }
}

// ---- real peer processes: an SMTP server and an OpenID provider ----------------------------

/// Whether a missing test tool must fail the run (CI) rather than skip the test.
pub fn tools_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("PAYDESK_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn skip_or_fail(what: &str) -> Option<std::convert::Infallible> {
    if tools_required() {
        panic!("{what} is required under CI=true but is not available");
    }
    eprintln!("skipping: {what} is not available (set CI=true to make this a failure)");
    None
}

fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A real SMTP server (Python's aiosmtpd) that stores what it receives in a maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// None (the test skips) when no Python with aiosmtpd is installed, outside CI.
    pub fn start() -> Option<SmtpServer> {
        let candidates = [
            std::env::var("PAYDESK_TEST_PYTHON").unwrap_or_default(),
            "/usr/bin/python3".to_string(),
            "python3".to_string(),
        ];
        let python = candidates.into_iter().filter(|p| !p.is_empty()).find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let Some(python) = python else {
            skip_or_fail("python3 with aiosmtpd (Debian package python3-aiosmtpd)")?;
            return None;
        };
        let dir = tempfile::tempdir().expect("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("maildir folders");
        }
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let server = SmtpServer { child, port, dir };
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "aiosmtpd did not start"
        );
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undo quoted-printable soft line breaks and `=3D`, enough to find links in a message.
pub fn unfold_quoted_printable(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// A real OpenID Connect provider (tests/tools/oidc-provider.mjs on oauth2-mock-server),
/// with a control port to choose what its next ID tokens say.
pub struct OidcProvider {
    child: Child,
    pub port: u16,
    pub control_port: u16,
}

impl OidcProvider {
    pub fn start() -> Option<OidcProvider> {
        use std::io::BufRead;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("tests/tools/oidc-provider.mjs");
        let installed = root
            .join("tests/tools/node_modules/oauth2-mock-server")
            .exists();
        let node_ok = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !node_ok {
            skip_or_fail("node with tests/tools installed (npm ci --prefix tests/tools)")?;
            return None;
        }
        let mut child = Command::new("node")
            .arg(script)
            .args(["--port", "0", "--control-port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the OpenID provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("READY line");
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"READY"), "provider said {line:?}");
        let port = parts[1].parse().expect("port");
        let control_port = parts[2].parse().expect("control port");
        Some(OidcProvider {
            child,
            port,
            control_port,
        })
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Set what the next ID tokens say (see the script's header for the fields).
    pub async fn scenario(&self, scenario: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/scenario", self.control_port))
            .json(&scenario)
            .send()
            .await
            .expect("control API");
        assert!(
            r.status().is_success(),
            "scenario refused: {:?}",
            r.text().await
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A successful card payment with plain values, as the platform would report it; tests change
/// what they need.
pub fn journey_record(
    payment_id: &str,
    reference: &str,
    created_at: time::OffsetDateTime,
) -> paydesk::journeys::record::JourneyRecord {
    paydesk::journeys::record::JourneyRecord {
        payment_id: payment_id.into(),
        status: paydesk::platform::types::PaymentStatus::Success,
        state_code: None,
        state_message: None,
        amount: 1000,
        description: "Parking permit".into(),
        reference: reference.into(),
        email: Some("someone@example.org".into()),
        language: Some("en".into()),
        cardholder_name: Some("Sam Person".into()),
        card_brand: Some("visa".into()),
        card_type: Some("debit".into()),
        first_digits: Some("424242".into()),
        last_digits: Some("4242".into()),
        expiry_date: Some("12/30".into()),
        wallet_type: None,
        payment_provider: Some("sandbox".into()),
        provider_id: None,
        created_at,
        capture_submitted_at: None,
        captured_date: None,
        settled_date: None,
        fee: None,
        net_amount: None,
        corporate_surcharge: None,
        total_amount: None,
        refund_status: None,
        refund_available: None,
        refund_submitted: None,
        metadata: None,
        case_reference: None,
        delayed_capture: None,
        moto: None,
    }
}

/// Store journeys as a sync would.
pub async fn store_journeys(
    app: &TestApp,
    service_id: i64,
    records: &[paydesk::journeys::record::JourneyRecord],
) {
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.expect("begin");
    paydesk::store::journeys::upsert_journeys(&mut tx, service_id, records, now, now)
        .await
        .expect("store journeys");
    tx.commit().await.expect("commit");
}
