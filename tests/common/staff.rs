//! Staff in tests: an active person with a password and an authenticator, the codes it
//! shows, signing in through the pages, and sessions made directly.

use paydesk::audit::Actor;
use paydesk::clock::Clock;
use paydesk::identity::permissions::Role;
use paydesk::identity::{accounts, totp};
use rocket::http::Cookie;
use rocket::local::asynchronous::LocalResponse;

use super::app::TestApp;
use super::forms::{input_value, location};

pub const PASSWORD: &str = "correct horse battery staple";

/// A member of staff with a password and an authenticator.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub secret: Vec<u8>,
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

impl TestApp {
    /// Send a set-up or password-reset page's form: `password` typed twice, with the page's
    /// CSRF token.
    pub async fn post_password(&self, link: &str, csrf: &str, password: &str) -> LocalResponse<'_> {
        self.post_form(
            link,
            &[
                ("csrf_token", csrf),
                ("password", password),
                ("password_confirmation", password),
            ],
        )
        .await
    }
}
