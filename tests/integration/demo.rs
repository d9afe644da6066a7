//! Demo mode: demo accounts sign in with the code the page shows, and only in demo mode.

use paydesk::config::Mode;

use crate::common::{between, input_value, location, TestApp};

async fn password_step(app: &TestApp, email: &str, password: &str) -> (u16, String) {
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
    (r.status().code, location(&r))
}

#[tokio::test]
async fn a_demo_account_signs_in_with_the_code_the_page_shows() {
    let app = TestApp::with_config(|c| c.mode = Mode::Demo).await;
    app.service("parking-permits").await;
    let accounts = paydesk::demo::ensure_accounts(&app.state, &["parking-permits"])
        .await
        .unwrap();
    let caseworker = accounts
        .iter()
        .find(|a| a.email.starts_with("caseworker@"))
        .unwrap();
    // Running it again creates nothing new.
    paydesk::demo::ensure_accounts(&app.state, &["parking-permits"])
        .await
        .unwrap();

    assert_eq!(
        password_step(&app, &caseworker.email, &caseworker.password).await,
        (303, "/login/code".into())
    );
    let html = app
        .client
        .get("/login/code")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Demo only"), "{html}");
    let shown = between(&html, "paydesk-secret\">", "</span>")
        .unwrap()
        .to_string();
    assert_eq!(shown.len(), 6);
    let token = input_value(&html, "csrf_token").unwrap();
    let r = app
        .post_form("/login/code", &[("csrf_token", &token), ("code", &shown)])
        .await;
    assert_eq!(r.status().code, 303);
    assert_eq!(location(&r), "/");
    let home = app.client.get("/").dispatch().await;
    assert_eq!(home.status().code, 200);
}

#[tokio::test]
async fn demo_accounts_exist_and_work_only_in_demo_mode() {
    let app = TestApp::new().await;
    assert!(paydesk::demo::ensure_accounts(&app.state, &[])
        .await
        .is_err());

    // Accounts made by a demo run on the same database are refused outside demo mode.
    let demo = TestApp::with_config(|c| c.mode = Mode::Demo).await;
    let accounts = paydesk::demo::ensure_accounts(&demo.state, &[])
        .await
        .unwrap();
    let admin = accounts.last().unwrap();
    let outside = TestApp::build(|c| c.database_url = demo.db.url().to_string(), |r| r).await;
    let (status, _) = password_step(&outside, &admin.email, &admin.password).await;
    assert_eq!(status, 422, "the sign-in page again, refused");
    let refused = paydesk::store::audit::by_action(&outside.state.db, "authn_login_fail")
        .await
        .unwrap();
    assert!(refused
        .iter()
        .any(|r| r.details.contains("demo account outside demo mode")));
}
