//! Password reset by email, through a real SMTP server process.

use paydesk::identity::permissions::Role;
use rocket::http::Status;
use time::Duration;

use crate::common::*;

fn reset_path(message: &str) -> Option<String> {
    let text = unfold_quoted_printable(message);
    let start = text.find("/reset-password/")?;
    let token: String = text[start + "/reset-password/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("/reset-password/{token}"))
}

#[tokio::test]
async fn forgot_password_mails_a_single_use_link_and_answers_the_same_for_unknown_addresses() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let app = TestApp::with_config(|c| c.mail_url = smtp.url()).await;
    app.service("parking").await;
    let person = app
        .person("ada@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;

    let ask = |email: &'static str| {
        let app = &app;
        async move {
            let token = app.signed_out_token("/forgot-password").await;
            let r = app
                .post_form(
                    "/forgot-password",
                    &[("csrf_token", &token), ("email", email)],
                )
                .await;
            // Post/redirect/get: the page after the form is read by GET.
            let status = r.status();
            let to = crate::common::location(&r);
            let page = app.client.get(to.clone()).dispatch().await;
            (
                status,
                to,
                page.into_string().await.unwrap().replace(&token, "TOKEN"),
            )
        }
    };
    let unknown = ask("nobody@example.gov.uk").await;
    let known = ask("ada@example.gov.uk").await;
    assert_eq!(known.0, Status::SeeOther);
    assert_eq!(known.1, "/forgot-password/sent");
    assert_eq!(
        unknown, known,
        "the same answer whether or not the address has an account"
    );
    assert!(known.2.contains("Check your email"));

    // The mail goes out through the job queue, to the real SMTP server.
    let pass = app.state.job_runner().run_due().await.unwrap();
    if pass.succeeded != 1 {
        let jobs = paydesk::store::jobs::list(&app.state.db, None, 10)
            .await
            .unwrap();
        panic!("{pass:?}: {jobs:?}");
    }
    let messages = eventually(std::time::Duration::from_secs(10), || async {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    })
    .await
    .expect("a message reached the SMTP server");
    assert_eq!(
        messages.len(),
        1,
        "nothing was sent for the unknown address"
    );
    let message = &messages[0];
    assert!(message.contains("To: ada@example.gov.uk"), "{message}");
    assert!(
        message.contains("Subject: Reset your paydesk password"),
        "{message}"
    );
    assert!(
        message.contains("text/plain") && message.contains("text/html"),
        "plain text and HTML"
    );
    let path = reset_path(message).expect("a reset link");
    // The queue keeps no copy of the link once the message is delivered.
    let jobs = paydesk::store::jobs::list(&app.state.db, None, 10)
        .await
        .unwrap();
    assert!(
        jobs.iter().all(|j| !j.payload.contains("reset-password")),
        "{jobs:?}"
    );

    // Follow the link and choose a new password.
    let html = app
        .client
        .get(path.as_str())
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Choose a new password"), "{html}");
    let token = input_value(&html, "csrf_token").unwrap();
    let new = "a completely new passphrase";
    let r = app.post_password(&path, &token, new).await;
    assert_eq!(location(&r), "/login?reason=password_changed");
    // Single use.
    assert_eq!(
        app.client.get(path.as_str()).dispatch().await.status(),
        Status::NotFound
    );
    let r = app.post_password(&path, &token, new).await;
    assert_eq!(r.status(), Status::NotFound);
    // The new password works; the old one does not.
    let mut updated = person.clone();
    updated.password = new.into();
    app.sign_in(&updated).await;

    // A link left for more than 90 minutes has expired.
    ask("ada@example.gov.uk").await;
    app.state.job_runner().run_due().await.unwrap();
    let messages = eventually(std::time::Duration::from_secs(10), || async {
        let m = smtp.messages();
        (m.len() >= 2).then_some(m)
    })
    .await
    .expect("a second message");
    let second = messages
        .iter()
        .filter_map(|m| reset_path(m))
        .find(|p| *p != path)
        .expect("another link");
    app.clock.advance(Duration::minutes(91));
    assert_eq!(
        app.client.get(second.as_str()).dispatch().await.status(),
        Status::NotFound
    );
}
