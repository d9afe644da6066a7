//! Signing in, second factors, lockout, sessions and CSRF, through HTTP as a person (or an
//! attacker) would, on a manual clock.

use paydesk::identity::permissions::Role;
use paydesk::identity::totp;
use paydesk::store::audit as audit_store;
use rocket::http::{ContentType, Header, Status};
use time::Duration;

use crate::common::*;

async fn actions(app: &TestApp, action: &str) -> usize {
    audit_store::by_action(&app.state.db, action)
        .await
        .expect("audit")
        .len()
}

#[tokio::test]
async fn a_new_admin_follows_the_set_up_link_to_the_console() {
    let app = TestApp::new().await;
    let account = paydesk::identity::accounts::add_staff(
        &app.state,
        paydesk::audit::Actor::System,
        "Grace.Hopper@Example.gov.uk",
        "Grace Hopper",
        Role::PlatformAdmin,
        None,
    )
    .await
    .unwrap()
    .unwrap();
    let link = format!("/setup/{}", account.setup_token);

    // The set-up page, then a password that breaks a rule: a clear message, nothing changed.
    let html = app
        .client
        .get(link.as_str())
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Create your password"), "{html}");
    let token = input_value(&html, "csrf_token").unwrap();
    let r = app.post_password(&link, &token, "short").await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    let html = r.into_string().await.unwrap();
    assert!(
        html.contains("Password must be 12 characters or more"),
        "{html}"
    );
    assert!(html.contains("<title>Error: "), "title says Error:");

    // A good password moves on to enrolling an authenticator.
    let r = app.post_password(&link, &token, PASSWORD).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), "/login/enrol");
    // The link worked once.
    let r = app.client.get(link.as_str()).dispatch().await;
    assert_eq!(r.status(), Status::NotFound);

    let html = app
        .client
        .get("/login/enrol")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("<svg"), "an inline QR code");
    let key = between(&html, "<code class=\"paydesk-secret\">", "</code>").unwrap();
    let secret = totp::base32_decode(key).unwrap();
    assert_eq!(secret.len(), 20);
    let token = input_value(&html, "csrf_token").unwrap();
    let r = app
        .post_form(
            "/login/enrol",
            &[("csrf_token", &token), ("code", "000000")],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity, "a wrong code");
    let code = app.code_now(&secret);
    let r = app
        .post_form("/login/enrol", &[("csrf_token", &token), ("code", &code)])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), "/");
    let html = app
        .client
        .get("/")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Welcome, Grace Hopper"), "{html}");
    assert!(html.contains("Platform admin in Every service"), "{html}");
    assert_eq!(actions(&app, "authn_mfa_enrolled").await, 1);
    assert_eq!(actions(&app, "authn_login_success").await, 1);

    // Signing in again later: password and a fresh code (the email matched ignoring case).
    let person = Person {
        id: account.staff_id,
        email: "grace.hopper@example.gov.uk".into(),
        password: PASSWORD.into(),
        secret,
    };
    let token = app.token();
    app.post_form("/logout", &[("csrf_token", &token)]).await;
    app.sign_in(&person).await;
    assert!(app
        .client
        .get("/")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap()
        .contains("Welcome"));
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_account_and_nothing_tells_known_from_unknown() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;

    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let token = app.signed_out_token("/login").await;
            let r = app
                .post_form(
                    "/login",
                    &[
                        ("csrf_token", &token),
                        ("email", email),
                        ("password", password),
                    ],
                )
                .await;
            let status = r.status();
            let body = r.into_string().await.unwrap();
            // The page echoes the email typed and carries a per-visitor token: mask both.
            let body = body.replace(email, "EMAIL").replace(&token, "TOKEN");
            (status, body)
        }
    };
    let unknown = attempt("nobody@example.gov.uk", "wrong password here").await;
    let known = attempt("ada@example.gov.uk", "wrong password here").await;
    assert_eq!(unknown.0, Status::UnprocessableEntity);
    assert_eq!(
        unknown, known,
        "an unknown email and a wrong password answer identically"
    );

    for _ in 0..9 {
        attempt("ada@example.gov.uk", "wrong password here").await;
    }
    assert_eq!(actions(&app, "authn_login_lock").await, 1);
    // Locked: even the right password is refused, with the same words as ever.
    let locked = attempt("ada@example.gov.uk", PASSWORD).await;
    assert_eq!(locked, known, "a locked account looks like any refusal");

    // 30 minutes later the right password works again.
    app.clock.advance(Duration::minutes(30));
    app.sign_in(&person).await;
    assert_eq!(app.client.get("/").dispatch().await.status(), Status::Ok);
}

#[tokio::test]
async fn wrong_codes_count_towards_the_lockout_and_each_code_works_once() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    app.sign_in(&person).await;
    let used_code = app.code_now(&person.secret);
    let token = app.token();
    app.post_form("/logout", &[("csrf_token", &token)]).await;

    // The same code again (same 30-second window): refused.
    let token = app.signed_out_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &person.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(location(&r), "/login/code");
    let token = input_value(
        &app.client
            .get("/login/code")
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
        "csrf_token",
    )
    .unwrap();
    let r = app
        .post_form(
            "/login/code",
            &[("csrf_token", &token), ("code", &used_code)],
        )
        .await;
    assert_eq!(
        r.status(),
        Status::UnprocessableEntity,
        "a code is accepted once"
    );

    // Nine more wrong codes: the tenth failure locks, ends the pending sign-in.
    let mut last = None;
    for _ in 0..9 {
        let r = app
            .post_form("/login/code", &[("csrf_token", &token), ("code", "123456")])
            .await;
        last = Some((r.status(), location(&r)));
    }
    assert_eq!(
        last,
        Some((Status::SeeOther, "/login?reason=locked".to_string()))
    );
    assert_eq!(actions(&app, "authn_login_lock").await, 1);
    assert_eq!(
        app.client.get("/login/code").dispatch().await.status(),
        Status::SeeOther,
        "pending sign-in ended"
    );
}

#[tokio::test]
async fn sessions_end_when_idle_at_twelve_hours_on_sign_out_and_everywhere() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    app.sign_in(&person).await;

    // Active use keeps it alive; the page carries the timeout warning's figures.
    app.clock.advance(Duration::minutes(14));
    let html = app
        .client
        .get("/account")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(
        html.contains("data-seconds-left=\"900\""),
        "restarted idle timer"
    );
    assert!(html.contains("data-warn-seconds=\"120\""));

    // 15 idle minutes: the next request asks to sign in again and keeps the way back.
    app.clock.advance(Duration::minutes(15));
    let r = app.client.get("/account?notice=x").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        location(&r),
        "/login?next=/account%3Fnotice%3Dx&reason=timeout"
    );
    let html = app
        .client
        .get(location(&r))
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("You were signed out because you did nothing for 15 minutes"));
    assert_eq!(
        input_value(&html, "next").as_deref(),
        Some("/account?notice=x")
    );
    assert_eq!(actions(&app, "session_expired").await, 1);

    // Signing in from there returns to that page.
    let token = input_value(&html, "csrf_token").unwrap();
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &person.email),
                ("password", PASSWORD),
                ("next", "/account?notice=x"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/login/code");
    app.next_code_window();
    let token = input_value(
        &app.client
            .get("/login/code")
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
        "csrf_token",
    )
    .unwrap();
    let r = app
        .post_form(
            "/login/code",
            &[
                ("csrf_token", &token),
                ("code", &app.code_now(&person.secret)),
            ],
        )
        .await;
    assert_eq!(location(&r), "/account?notice=x");

    // "Stay signed in" keeps it going; twelve hours is the end whatever happens.
    for _ in 0..60 {
        app.clock.advance(Duration::minutes(14));
        let token = app.token();
        let r = app
            .client
            .post("/session/extend")
            .header(ContentType::Form)
            .header(Header::new("Accept", "application/json"))
            .body(form_body(&[("csrf_token", &token)]))
            .dispatch()
            .await;
        if r.status() != Status::NoContent {
            assert_eq!(
                r.status(),
                Status::SeeOther,
                "ends with a redirect to sign in"
            );
            break;
        }
    }
    assert_eq!(
        app.client.get("/").dispatch().await.status(),
        Status::SeeOther,
        "absolute timeout"
    );

    // Sign out deletes the session: the old cookie is worthless afterwards.
    app.sign_in(&person).await;
    let old = app.session_cookie().unwrap();
    let token = app.token();
    let r = app.post_form("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(location(&r), "/login?reason=signed_out");
    let cookie_name = paydesk::web::session::session_cookie_name(&app.state.config);
    let r = app
        .client
        .get("/")
        .cookie(rocket::http::Cookie::new(cookie_name, old.clone()))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);

    // Sign out everywhere else: another device's session ends, this one carries on.
    let other = app.session_for(&person).await;
    app.sign_in(&person).await;
    let token = app.token();
    let r = app
        .post_form("/account/sessions/end-others", &[("csrf_token", &token)])
        .await;
    assert_eq!(location(&r), "/account?notice=others_ended");
    assert_eq!(
        app.client.get("/").cookie(other).dispatch().await.status(),
        Status::SeeOther
    );
    assert_eq!(app.client.get("/").dispatch().await.status(), Status::Ok);
}

#[tokio::test]
async fn disabling_a_person_ends_their_sessions_at_once() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    app.sign_in(&person).await;
    assert_eq!(app.client.get("/").dispatch().await.status(), Status::Ok);
    paydesk::identity::accounts::disable_staff(
        &app.state,
        paydesk::audit::Actor::System,
        person.id,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        app.client.get("/").dispatch().await.status(),
        Status::SeeOther
    );
    // And they cannot sign in again.
    let token = app.signed_out_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &person.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
}

#[tokio::test]
async fn forms_without_the_right_token_or_from_another_site_are_refused_and_audited() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;

    // The login form needs its token too.
    app.signed_out_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", "forged"),
                ("email", &person.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("This form has expired"));

    app.sign_in(&person).await;
    let token = app.token();
    // Missing token.
    let r = app.post_form("/logout", &[]).await;
    assert_eq!(r.status(), Status::Forbidden);
    // Right token, but the browser says another site sent it.
    let r = app
        .client
        .post("/logout")
        .header(ContentType::Form)
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .body(form_body(&[("csrf_token", &token)]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    let r = app
        .client
        .post("/logout")
        .header(ContentType::Form)
        .header(Header::new("Origin", "https://evil.example"))
        .body(form_body(&[("csrf_token", &token)]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    // The signed-out refusal is summarised (per source and minute) when its minute closes.
    assert_eq!(actions(&app, "csrf_fail").await, 3);
    app.clock.advance(time::Duration::minutes(1));
    app.state
        .refusals
        .flush(&app.state.db, app.state.clock.now(), false)
        .await
        .unwrap();
    assert_eq!(actions(&app, "csrf_fail").await, 4);
    // Still signed in: nothing happened.
    assert_eq!(app.client.get("/").dispatch().await.status(), Status::Ok);
    // A token from another session does not work either.
    let other = app.session_for(&person).await;
    let other_token = paydesk::web::csrf::token_for(&app.state.config.csrf_key(), other.value());
    let r = app
        .post_form("/logout", &[("csrf_token", &other_token)])
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    // Bad bodies get a clear 4xx, never a 500.
    let r = app
        .client
        .post("/logout")
        .header(ContentType::Form)
        .body(vec![0xff, 0xfe, b'=', 0x80])
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    let r = app
        .client
        .post("/logout")
        .header(ContentType::JSON)
        .body("{}")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::UnsupportedMediaType);
    let huge = "a".repeat(200 * 1024);
    let r = app
        .client
        .post("/logout")
        .header(ContentType::Form)
        .body(form_body(&[("x", &huge)]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::PayloadTooLarge);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_refuses_the_last_four_and_can_sign_out_elsewhere(
) {
    let app = TestApp::new().await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let elsewhere = app.session_for(&person).await;
    app.sign_in(&person).await;
    let token = app.token();
    let change = |current: &str, new: &str, others: bool| {
        let mut fields = vec![
            ("csrf_token".to_string(), token.clone()),
            ("current_password".to_string(), current.to_string()),
            ("password".to_string(), new.to_string()),
            ("password_confirmation".to_string(), new.to_string()),
        ];
        if others {
            fields.push(("sign_out_others".into(), "yes".into()));
        }
        let app = &app;
        async move {
            let refs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            let r = app.post_form("/account/password", &refs).await;
            (
                r.status(),
                location(&r),
                r.into_string().await.unwrap_or_default(),
            )
        }
    };
    let (status, _, html) = change("not my password", "a brand new passphrase", false).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("Your current password is not correct"));
    let (status, _, html) = change(PASSWORD, PASSWORD, false).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("last 4 passwords"), "{html}");

    let passwords = [
        "first new passphrase",
        "second new passphrase",
        "third new passphrase",
    ];
    let mut current = PASSWORD;
    for p in passwords {
        let (status, loc, _) = change(current, p, false).await;
        assert_eq!(
            (status, loc.as_str()),
            (Status::SeeOther, "/account?notice=password")
        );
        current = p;
    }
    // The original is now the fourth most recent but one: still refused; then allowed.
    let (status, _, _) = change(current, PASSWORD, false).await;
    assert_eq!(
        status,
        Status::UnprocessableEntity,
        "the 4th most recent is refused"
    );
    let (status, loc, _) = change(current, "fourth new passphrase", true).await;
    assert_eq!(loc, "/account?notice=password_others", "{status}");
    assert_eq!(
        app.client
            .get("/")
            .cookie(elsewhere)
            .dispatch()
            .await
            .status(),
        Status::SeeOther,
        "other sessions ended"
    );
    assert_eq!(
        app.client.get("/account").dispatch().await.status(),
        Status::Ok,
        "this one carries on"
    );
    let (_, loc, _) = change("fourth new passphrase", PASSWORD, false).await;
    assert_eq!(
        loc, "/account?notice=password",
        "five passwords ago is allowed again"
    );
}

#[tokio::test]
async fn cookies_are_host_prefixed_secure_http_only_and_rotated_at_sign_in() {
    let app = TestApp::with_config(|c| c.secure_cookies = true).await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let r = app.client.get("/login").dispatch().await;
    let pre = r.headers().get_one("Set-Cookie").unwrap().to_string();
    assert!(pre.starts_with("__Host-paydesk_csrf="), "{pre}");
    let token = input_value(&r.into_string().await.unwrap(), "csrf_token").unwrap();
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &person.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    let set = r.headers().get_one("Set-Cookie").unwrap().to_string();
    assert!(set.starts_with("__Host-paydesk_session="), "{set}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    let pending = app.session_cookie().unwrap();
    app.next_code_window();
    let token = input_value(
        &app.client
            .get("/login/code")
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
        "csrf_token",
    )
    .unwrap();
    app.post_form(
        "/login/code",
        &[
            ("csrf_token", &token),
            ("code", &app.code_now(&person.secret)),
        ],
    )
    .await;
    let active = app.session_cookie().unwrap();
    assert_ne!(pending, active, "a new id at sign-in");
    assert!(active.len() >= 43, "256 bits, base64url");
    // Only a hash is stored.
    assert!(
        paydesk::store::staff::session_by_hash(&app.state.db, &active)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn too_many_attempts_from_one_address_are_slowed_down() {
    let app = TestApp::with_config(|c| c.sign_in_rate_per_minute = 3).await;
    let token = app.signed_out_token("/login").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .post_form(
                "/login",
                &[
                    ("csrf_token", &token),
                    ("email", "x@example.gov.uk"),
                    ("password", "whatever it is"),
                ],
            )
            .await;
        statuses.push(r.status().code);
    }
    assert_eq!(statuses, vec![422, 422, 422, 429, 429]);
}
