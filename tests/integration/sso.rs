//! Single sign-on against a real OpenID Connect provider process: the happy paths and every
//! attack the issue lists.

use paydesk::config::{SsoProvider, SsoTotp};
use paydesk::identity::permissions::Role;
use rocket::http::Status;
use serde_json::json;

use crate::common::*;

pub(crate) async fn app_with(provider: &OidcProvider, totp: SsoTotp) -> TestApp {
    let issuer = provider.issuer();
    let app = TestApp::with_config(move |c| {
        c.public_url = "http://paydesk.test".into();
        c.sso_totp = totp;
        c.sso_providers = vec![SsoProvider {
            id: "council".into(),
            label: "Sign in with your council account".into(),
            issuer,
            client_id: "paydesk-client".into(),
            client_secret: "not-checked-by-the-mock".into(),
            scopes: vec!["email".into(), "profile".into()],
        }];
    })
    .await;
    app.service("parking").await;
    app
}

/// Press the button, follow the provider's redirect: the callback path paydesk will get.
pub(crate) async fn through_provider(app: &TestApp) -> String {
    let token = app.signed_out_token("/login").await;
    let html = app
        .client
        .get("/login")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Sign in with your council account"));
    let r = app
        .post_form("/login/sso/council", &[("csrf_token", &token)])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let authorize = location(&r);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce="), "{authorize}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http
        .get(&authorize)
        .send()
        .await
        .expect("provider reachable");
    assert_eq!(answer.status().as_u16(), 302);
    let back = answer.headers()["location"].to_str().unwrap().to_string();
    let back = back
        .strip_prefix("http://paydesk.test")
        .expect("back to our redirect URI")
        .to_string();
    assert!(back.starts_with("/login/sso/council/callback?"), "{back}");
    back
}

async fn refused(app: &TestApp, callback: &str) -> String {
    let r = app.client.get(callback.to_string()).dispatch().await;
    assert_eq!(r.status(), Status::Forbidden, "refused");
    let html = r.into_string().await.unwrap();
    assert!(html.contains("You could not be signed in"), "{html}");
    assert!(app.session_cookie().is_none(), "no session");
    html
}

#[tokio::test]
async fn sso_links_an_invited_person_then_signs_them_in_by_issuer_and_subject() {
    let Some(provider) = OidcProvider::start() else {
        return;
    };
    let app = app_with(&provider, SsoTotp::UnlessProviderMfa).await;
    paydesk::identity::accounts::add_staff(
        &app.state,
        paydesk::audit::Actor::System,
        "ada@example.gov.uk",
        "Ada",
        Role::Caseworker,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();

    // The provider did only a password: paydesk asks for its own second factor (enrolment
    // first, as this person has none yet).
    provider
        .scenario(json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "amr": ["pwd"]}))
        .await;
    let callback = through_provider(&app).await;
    let r = app.client.get(callback.clone()).dispatch().await;
    assert_eq!(location(&r), "/login/enrol");
    assert_eq!(
        paydesk::store::audit::by_action(&app.state.db, "authn_sso_linked")
            .await
            .unwrap()
            .len(),
        1
    );
    // Replaying the same callback (same state and code) is refused.
    let r = app.client.get(callback).dispatch().await;
    assert_eq!(r.status(), Status::Forbidden, "a state works once");

    // Once linked, the provider's multi-factor sign-in is enough, and the email no longer
    // matters: the person is known by (issuer, subject).
    provider
        .scenario(
            json!({"sub": "sub-ada", "email": "renamed@example.gov.uk", "amr": ["pwd", "otp"]}),
        )
        .await;
    let callback = through_provider(&app).await;
    let r = app.client.get(callback).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), "/");
    assert_eq!(app.client.get("/").dispatch().await.status(), Status::Ok);
}

#[tokio::test]
async fn sso_refuses_every_forged_or_unfit_token() {
    let Some(provider) = OidcProvider::start() else {
        return;
    };
    let app = app_with(&provider, SsoTotp::Never).await;
    paydesk::identity::accounts::add_staff(
        &app.state,
        paydesk::audit::Actor::System,
        "ada@example.gov.uk",
        "Ada",
        Role::Viewer,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();
    let ada = json!({"sub": "sub-ada", "email": "ada@example.gov.uk"});

    // Wrong state: a callback for a flow paydesk never started.
    refused(
        &app,
        "/login/sso/council/callback?state=made-up-state&code=whatever",
    )
    .await;

    let cases = [
        (
            "wrong nonce",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "nonce": "not-the-one-we-sent"}),
        ),
        (
            "wrong audience",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "aud": "another-client"}),
        ),
        (
            "wrong issuer",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "iss": "http://evil.example"}),
        ),
        (
            "expired",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "exp_offset_secs": -300}),
        ),
        (
            "bad signature",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "bad_signature": true}),
        ),
        (
            "alg none",
            json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "alg_none": true}),
        ),
    ];
    for (name, scenario) in cases {
        provider.scenario(scenario).await;
        let callback = through_provider(&app).await;
        let r = app.client.get(callback).dispatch().await;
        assert_eq!(r.status(), Status::Forbidden, "{name} must be refused");
        assert!(app.session_cookie().is_none(), "{name}: no session");
    }
    // An unverified email never links an account.
    provider
        .scenario(json!({"sub": "sub-ada", "email": "ada@example.gov.uk", "email_verified": false}))
        .await;
    let html = refused(&app, &through_provider(&app).await).await;
    assert!(
        html.contains("has not confirmed your email address"),
        "{html}"
    );
    // Someone the provider knows but paydesk does not.
    provider
        .scenario(json!({"sub": "sub-stranger", "email": "stranger@example.gov.uk"}))
        .await;
    let html = refused(&app, &through_provider(&app).await).await;
    assert!(html.contains("There is no paydesk account"), "{html}");
    let failures = paydesk::store::audit::by_action(&app.state.db, "authn_sso_fail")
        .await
        .unwrap();
    assert_eq!(failures.len(), 9, "every refusal is audited");

    // And with everything right, the same person gets in.
    provider.scenario(ada).await;
    let r = app
        .client
        .get(through_provider(&app).await)
        .dispatch()
        .await;
    assert_eq!(location(&r), "/");
}
