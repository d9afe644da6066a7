//! Staff administration (issue 8, item 2): the people pages, invitations by email through a
//! real SMTP server, role changes and their rules, disabling, signing out everywhere,
//! authenticator resets, the access review CSV and the daily 90-day inactivity job, on a
//! manual clock, on SQLite and PostgreSQL.

use paydesk::clock::Clock;
use paydesk::identity::inactivity;
use paydesk::identity::permissions::Role;
use paydesk::store::audit as audit_store;
use paydesk::store::staff as staff_store;
use rocket::http::{ContentType, Cookie, Status};
use rocket::local::asynchronous::LocalResponse;
use time::Duration;

use crate::common::*;

/// Someone signed in, making requests with their own cookie and CSRF token.
struct As<'a> {
    app: &'a TestApp,
    cookie: Cookie<'static>,
    token: String,
}

impl<'a> As<'a> {
    async fn new(app: &'a TestApp, person: &Person) -> As<'a> {
        let cookie = app.session_for(person).await;
        let token = paydesk::web::csrf::token_for(&app.state.config.csrf_key(), cookie.value());
        As { app, cookie, token }
    }

    async fn get(&self, path: &str) -> LocalResponse<'a> {
        self.app
            .client
            .get(path.to_string())
            .cookie(self.cookie.clone())
            .dispatch()
            .await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> LocalResponse<'a> {
        let mut all = vec![("csrf_token", self.token.as_str())];
        all.extend_from_slice(fields);
        self.app
            .client
            .post(path.to_string())
            .header(ContentType::Form)
            .cookie(self.cookie.clone())
            .body(form_body(&all))
            .dispatch()
            .await
    }

    async fn page(&self, path: &str) -> (Status, String) {
        let r = self.get(path).await;
        (r.status(), r.into_string().await.unwrap_or_default())
    }
}

async fn actions(app: &TestApp, action: &str) -> Vec<audit_store::AuditRow> {
    audit_store::by_action(&app.state.db, action)
        .await
        .expect("audit")
}

async fn status_of(app: &TestApp, id: i64) -> String {
    staff_store::staff_by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn roles_of(app: &TestApp, id: i64) -> Vec<(Option<String>, String)> {
    staff_store::grants(&app.state.db, id)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.service_name, g.role))
        .collect()
}

async fn sessions(app: &TestApp, id: i64) -> usize {
    staff_store::sessions_of(&app.state.db, id)
        .await
        .unwrap()
        .len()
}

fn person_path(p: &Person) -> String {
    format!("/admin/staff/{}", p.id)
}

/// Two services; an admin of parking; people of parking, of libraries, and of both.
struct World {
    app: TestApp,
    admin: Person,
    caseworker: Person,
    librarian: Person,
    both: Person,
}

async fn world_with(app: TestApp) -> World {
    app.service("parking").await;
    app.service("libraries").await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let caseworker = app
        .person("case@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let librarian = app
        .person("books@example.gov.uk", Role::Viewer, Some("libraries"))
        .await;
    let both = app
        .person("both@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let mut tx = app.state.db.begin().await.unwrap();
    let libraries = paydesk::store::services::by_slug(&app.state.db, "libraries")
        .await
        .unwrap()
        .unwrap();
    staff_store::insert_grant(&mut tx, both.id, Some(libraries.id), "finance", "test", 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    World {
        app,
        admin,
        caseworker,
        librarian,
        both,
    }
}

async fn world() -> World {
    world_with(TestApp::new().await).await
}

#[tokio::test]
async fn staff_pages_need_staff_manage_and_stay_within_the_admins_services() {
    let w = world().await;
    let app = &w.app;

    // Without staff:manage: 403, and no Staff link in the menu.
    let finance = app
        .person("money@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let as_finance = As::new(app, &finance).await;
    assert_eq!(
        as_finance.get("/admin/staff").await.status(),
        Status::Forbidden
    );
    assert_eq!(
        as_finance.get(&person_path(&w.caseworker)).await.status(),
        Status::Forbidden
    );
    let r = as_finance
        .post(&format!("{}/disable", person_path(&w.caseworker)), &[])
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    let (_, home) = as_finance.page("/").await;
    assert!(!home.contains(">Staff</a>"), "no Staff link");
    assert!(!actions(app, "authz_fail").await.is_empty(), "audited");

    // The parking admin sees parking's people only.
    let admin = As::new(app, &w.admin).await;
    let (status, html) = admin.page("/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains(">Staff</a>"), "a Staff link: {html}");
    let (status, html) = admin.page("/admin/staff").await;
    assert_eq!(status, Status::Ok, "{html}");
    assert!(html.contains("case@example.gov.uk"));
    assert!(html.contains("both@example.gov.uk"));
    assert!(html.contains("Caseworker in Service parking"), "{html}");
    assert!(
        !html.contains("books@example.gov.uk"),
        "a person of another service is not listed"
    );
    assert!(
        !html.contains("Finance in Service libraries"),
        "nor another service's roles"
    );

    // Another service's person answers 404 to every page and action, as a missing one does.
    for path in [person_path(&w.librarian), "/admin/staff/999999".into()] {
        assert_eq!(admin.get(&path).await.status(), Status::NotFound, "{path}");
        for action in [
            "role",
            "remove",
            "disable",
            "enable",
            "sign-out",
            "reset-authenticator",
            "resend",
            "revoke",
        ] {
            let r = admin
                .post(
                    &format!("{path}/{action}"),
                    &[("service", "libraries"), ("role", "viewer")],
                )
                .await;
            assert_eq!(r.status(), Status::NotFound, "{path}/{action}");
        }
    }
    assert_eq!(status_of(app, w.librarian.id).await, "active");
    assert_eq!(roles_of(app, w.librarian.id).await.len(), 1);

    // A person of parking: their page shows parking's role, not libraries'.
    let (status, html) = admin.page(&person_path(&w.both)).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Service parking"));
    assert!(!html.contains("Service libraries"), "{html}");
    assert!(html.contains("also has access to services you do not manage"));
}

#[tokio::test]
async fn nobody_changes_their_own_access_or_grants_a_role_they_do_not_hold() {
    let w = world().await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;
    let own = person_path(&w.admin);

    for (action, fields) in [
        ("role", vec![("service", "parking"), ("role", "viewer")]),
        ("remove", vec![("service", "parking")]),
        ("disable", vec![]),
        ("reset-authenticator", vec![]),
        ("sign-out", vec![]),
    ] {
        let r = admin.post(&format!("{own}/{action}"), &fields).await;
        assert_eq!(r.status(), Status::Forbidden, "{action}");
        let html = r.into_string().await.unwrap();
        assert!(
            html.contains("You cannot change your own access or account here"),
            "{action}: {html}"
        );
        assert!(html.contains("<title>Error: "), "{action}");
    }
    assert_eq!(
        roles_of(app, w.admin.id).await,
        vec![(Some("Service parking".into()), "service_admin".into())]
    );
    assert_eq!(status_of(app, w.admin.id).await, "active");
    let refused = actions(app, "authz_fail").await;
    assert_eq!(refused.len(), 5, "each refusal is audited");
    assert!(refused
        .iter()
        .all(|r| r.outcome == "failure" && r.target == format!("staff:{}", w.admin.id)));

    // A service admin cannot make anyone a platform admin, nor give roles in a service they
    // do not manage.
    let path = person_path(&w.caseworker);
    let r = admin
        .post(
            &format!("{path}/role"),
            &[("service", "*"), ("role", "platform_admin")],
        )
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("Only a platform admin can make someone a platform admin"));
    let r = admin
        .post(
            &format!("{path}/role"),
            &[("service", "libraries"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("Choose a service you manage"));
    let r = admin
        .post(
            &format!("{path}/role"),
            &[("service", "parking"), ("role", "superuser")],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert_eq!(
        roles_of(app, w.caseworker.id).await,
        vec![(Some("Service parking".into()), "caseworker".into())]
    );

    // Within their service they may give any role up to their own.
    let r = admin
        .post(
            &format!("{path}/role"),
            &[("service", "parking"), ("role", "service_admin")],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), format!("{path}?notice=role"));
    assert_eq!(
        roles_of(app, w.caseworker.id).await,
        vec![(Some("Service parking".into()), "service_admin".into())]
    );
    let changed = actions(app, "user_role_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor_id, w.admin.id.to_string());
    assert_eq!(changed[0].target, format!("staff:{}", w.caseworker.id));
    assert!(changed[0].details.contains("\"from\":\"caseworker\""));
    assert!(changed[0].details.contains("\"to\":\"service_admin\""));

    // The parking admin cannot disable "both" (whose libraries access they do not manage)
    // or reset their authenticator.
    let r = admin
        .post(&format!("{}/disable", person_path(&w.both)), &[])
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("also has access to services you do not manage"));
    let r = admin
        .post(
            &format!("{}/reset-authenticator", person_path(&w.both)),
            &[],
        )
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert_eq!(status_of(app, w.both.id).await, "active");

    // Removing someone from a service: their access there goes, the rest stays.
    let r = admin
        .post(
            &format!("{}/remove", person_path(&w.both)),
            &[("service", "parking")],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), "/admin/staff?notice=removed");
    assert_eq!(
        roles_of(app, w.both.id).await,
        vec![(Some("Service libraries".into()), "finance".into())]
    );
    assert_eq!(
        admin.get(&person_path(&w.both)).await.status(),
        Status::NotFound,
        "no longer theirs to see"
    );
    assert_eq!(actions(app, "user_access_removed").await.len(), 1);

    // A platform admin may give anything, anywhere, including the platform admin role.
    let platform = app
        .person("root@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let root = As::new(app, &platform).await;
    let r = root
        .post(
            &format!("{}/role", person_path(&w.librarian)),
            &[("service", "parking"), ("role", "finance")],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        location(&r),
        format!("{}?notice=granted", person_path(&w.librarian))
    );
    let r = root
        .post(
            &format!("{}/role", person_path(&w.librarian)),
            &[("service", "*"), ("role", "platform_admin")],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(roles_of(app, w.librarian.id).await.len(), 3);
    // And now the parking admin sees the librarian (finance in parking) but cannot touch
    // the platform admin role.
    let r = admin
        .post(
            &format!("{}/remove", person_path(&w.librarian)),
            &[("service", "*")],
        )
        .await;
    assert_eq!(r.status(), Status::Forbidden);
    assert_eq!(roles_of(app, w.librarian.id).await.len(), 3);
}

fn setup_path(message: &str) -> Option<String> {
    let text = unfold_quoted_printable(message);
    let start = text.find("/setup/")?;
    let token: String = text[start + "/setup/".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("/setup/{token}"))
}

async fn messages_for(smtp: &SmtpServer, count: usize) -> Vec<String> {
    eventually(std::time::Duration::from_secs(10), || async {
        let m = smtp.messages();
        (m.len() >= count).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("{count} messages at the SMTP server"))
}

#[tokio::test]
async fn an_invitation_arrives_by_email_with_a_48_hour_link_that_resending_replaces() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let w = world_with(TestApp::with_config(|c| c.mail_url = smtp.url()).await).await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;

    let (status, html) = admin.page("/admin/staff/invite").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Role in Service parking"));
    assert!(
        !html.contains("Role in Service libraries"),
        "only services they manage"
    );
    assert!(!html.contains("platform_admin"), "{html}");

    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "New.Person@Example.gov.uk"),
                ("name", "Nell Person"),
                ("roles[parking]", "caseworker"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let page = location(&r);
    assert!(page.ends_with("?notice=invited"), "{page}");
    let invitee = staff_store::staff_by_email_key(&app.state.db, "new.person@example.gov.uk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(invitee.status, "invited");
    assert_eq!(
        roles_of(app, invitee.id).await,
        vec![(Some("Service parking".into()), "caseworker".into())]
    );
    let (_, html) = admin.page(&page).await;
    assert!(
        html.contains("Invitation sent to New.Person@Example.gov.uk"),
        "{html}"
    );
    assert!(html.contains("Invited"));
    let invited = actions(app, "user_invited").await;
    assert_eq!(invited.len(), 1);
    assert!(invited[0].details.contains("caseworker"));

    // The mail goes out through the job queue, over SMTP.
    app.state.job_runner().run_due().await.unwrap();
    let messages = messages_for(&smtp, 1).await;
    let first = &messages[0];
    assert!(first.contains("To: New.Person@Example.gov.uk"), "{first}");
    assert!(
        first.contains("Subject: You have been invited to paydesk"),
        "{first}"
    );
    assert!(unfold_quoted_printable(first).contains("Caseworker in Service parking"));
    assert!(unfold_quoted_printable(first).contains("48 hours"));
    let old_link = setup_path(first).expect("a set-up link");
    let (status, html) = {
        let r = app.client.get(old_link.as_str()).dispatch().await;
        (r.status(), r.into_string().await.unwrap())
    };
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Create your password"));

    // Sending it again: a new link; the old one stops working at once.
    let base = page.split('?').next().unwrap_or_default().to_string();
    let r = admin.post(&format!("{base}/resend"), &[]).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(location(&r).ends_with("?notice=resent"));
    app.state.job_runner().run_due().await.unwrap();
    let messages = messages_for(&smtp, 2).await;
    let new_link = messages
        .iter()
        .filter_map(|m| setup_path(m))
        .find(|p| *p != old_link)
        .expect("a second, different link");
    assert_eq!(
        app.client.get(old_link.as_str()).dispatch().await.status(),
        Status::NotFound,
        "the old link died"
    );
    assert_eq!(actions(app, "user_invite_resent").await.len(), 1);

    // Good for 48 hours, not a moment more.
    app.clock.advance(Duration::hours(47));
    assert_eq!(
        app.client.get(new_link.as_str()).dispatch().await.status(),
        Status::Ok
    );
    app.clock.advance(Duration::hours(1) + Duration::seconds(1));
    assert_eq!(
        app.client.get(new_link.as_str()).dispatch().await.status(),
        Status::NotFound,
        "expired after 48 hours"
    );

    // A fresh link takes the invitee through password and authenticator to the console.
    let admin = As::new(app, &w.admin).await;
    let r = admin
        .post(&format!("/admin/staff/{}/resend", invitee.id), &[])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    app.state.job_runner().run_due().await.unwrap();
    let messages = messages_for(&smtp, 3).await;
    let links: Vec<String> = messages.iter().filter_map(|m| setup_path(m)).collect();
    let link = links
        .into_iter()
        .find(|l| *l != old_link && *l != new_link)
        .expect("a third link");
    let html = app
        .client
        .get(link.as_str())
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    let token = input_value(&html, "csrf_token").unwrap();
    let r = app.post_password(&link, &token, PASSWORD).await;
    assert_eq!(location(&r), "/login/enrol");
    let html = app
        .client
        .get("/login/enrol")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    let key = between(&html, "<code class=\"paydesk-secret\">", "</code>").unwrap();
    let secret = paydesk::identity::totp::base32_decode(key).unwrap();
    let token = input_value(&html, "csrf_token").unwrap();
    let code = app.code_now(&secret);
    let r = app
        .post_form("/login/enrol", &[("csrf_token", &token), ("code", &code)])
        .await;
    assert_eq!(location(&r), "/");
    assert_eq!(status_of(app, invitee.id).await, "active");
}

#[tokio::test]
async fn inviting_someone_who_already_has_an_account_adds_access_or_says_why_not() {
    let w = world().await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;

    // Bad input: the form again, with what was typed and what is wrong.
    let r = admin
        .post(
            "/admin/staff/invite",
            &[("email", "not-an-email"), ("name", "Sam <b>")],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("<title>Error: "));
    assert!(html.contains("Enter an email address in the correct format"));
    assert!(html.contains("Choose a role in at least one service"));
    assert!(
        html.contains("href=\"#role-parking\""),
        "linked to the field"
    );
    assert!(html.contains("value=\"not-an-email\""), "the form is kept");
    assert!(html.contains("Sam &lt;b&gt;"), "escaped");
    // A role in a service they do not manage, or the platform admin role.
    for fields in [
        vec![
            ("email", "x@example.gov.uk"),
            ("name", "X"),
            ("roles[libraries]", "viewer"),
        ],
        vec![
            ("email", "x@example.gov.uk"),
            ("name", "X"),
            ("platform_admin", "1"),
        ],
    ] {
        let r = admin.post("/admin/staff/invite", &fields).await;
        assert_eq!(r.status(), Status::UnprocessableEntity, "{fields:?}");
    }
    assert!(
        staff_store::staff_by_email_key(&app.state.db, "x@example.gov.uk")
            .await
            .unwrap()
            .is_none(),
        "nothing was created"
    );

    // Their own address: refused.
    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "ADMIN@example.gov.uk"),
                ("roles[parking]", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("You cannot change your own access"));

    // Someone who already has access to parking: told so, nothing changes.
    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "case@example.gov.uk"),
                ("name", "Case"),
                ("roles[parking]", "finance"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    let html = r.into_string().await.unwrap();
    assert!(
        html.contains("case@example.gov.uk already has access to Service parking as Caseworker"),
        "{html}"
    );
    assert_eq!(
        roles_of(app, w.caseworker.id).await,
        vec![(Some("Service parking".into()), "caseworker".into())]
    );

    // Someone of another service: the parking role is added to their account, no email.
    let jobs_before = paydesk::store::jobs::list(&app.state.db, None, 100)
        .await
        .unwrap()
        .len();
    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "books@example.gov.uk"),
                ("roles[parking]", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        location(&r),
        format!("{}?notice=added", person_path(&w.librarian))
    );
    let (_, html) = admin.page(&location(&r)).await;
    assert!(html.contains("already had an account"), "{html}");
    assert_eq!(roles_of(app, w.librarian.id).await.len(), 2);
    assert_eq!(
        paydesk::store::jobs::list(&app.state.db, None, 100)
            .await
            .unwrap()
            .len(),
        jobs_before,
        "no email for an existing account"
    );
    let granted = actions(app, "user_access_granted").await;
    assert_eq!(granted.len(), 1);
    assert!(granted[0].details.contains("invitation"));

    // Someone already invited (not yet set up): the new access joins their invitation.
    let platform = app
        .person("root@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let root = As::new(app, &platform).await;
    let r = root
        .post(
            "/admin/staff/invite",
            &[
                ("email", "pending@example.gov.uk"),
                ("name", "Pat Pending"),
                ("roles[libraries]", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "pending@example.gov.uk"),
                ("roles[parking]", "finance"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(location(&r).ends_with("?notice=added"));
    let pending = staff_store::staff_by_email_key(&app.state.db, "pending@example.gov.uk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.status, "invited");
    assert_eq!(roles_of(app, pending.id).await.len(), 2);

    // Withdrawing the invitation from parking leaves the libraries one standing.
    let r = admin
        .post(&format!("/admin/staff/{}/revoke", pending.id), &[])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), "/admin/staff?notice=revoked");
    assert_eq!(
        roles_of(app, pending.id).await,
        vec![(Some("Service libraries".into()), "viewer".into())]
    );
    assert_eq!(status_of(app, pending.id).await, "invited");
    // Withdrawn from its last service, the account closes and its link dies.
    let link_before = paydesk::store::staff_admin::latest_setup_link(&app.state.db, pending.id)
        .await
        .unwrap()
        .unwrap();
    assert!(link_before.expires_at > paydesk::store::to_micros(app.clock.now()));
    let r = root
        .post(&format!("/admin/staff/{}/revoke", pending.id), &[])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(roles_of(app, pending.id).await.is_empty());
    assert_eq!(status_of(app, pending.id).await, "disabled");
    let link = paydesk::store::staff_admin::latest_setup_link(&app.state.db, pending.id)
        .await
        .unwrap()
        .unwrap();
    assert!(link.expires_at <= paydesk::store::to_micros(app.clock.now()));
    let revoked = actions(app, "user_invite_revoked").await;
    assert_eq!(revoked.len(), 2);
    assert!(revoked[1].details.contains("\"account_closed\":true"));
    // Revoking an active account's "invitation" makes no sense.
    let r = admin
        .post(&format!("{}/revoke", person_path(&w.caseworker)), &[])
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap()
        .contains("already set up their account"));

    // A disabled account is not quietly given access.
    let r = admin
        .post(
            "/admin/staff/invite",
            &[
                ("email", "pending@example.gov.uk"),
                ("roles[parking]", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r.into_string().await.unwrap().contains("disabled"));
}

#[tokio::test]
async fn disabling_ends_every_session_at_once_and_re_enabling_brings_the_account_back() {
    let w = world().await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;
    let phone = As::new(app, &w.caseworker).await;
    let laptop = As::new(app, &w.caseworker).await;
    assert_eq!(phone.get("/").await.status(), Status::Ok);
    assert_eq!(sessions(app, w.caseworker.id).await, 2);

    let path = person_path(&w.caseworker);
    let r = admin.post(&format!("{path}/disable"), &[]).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), format!("{path}?notice=disabled"));
    assert_eq!(status_of(app, w.caseworker.id).await, "disabled");
    assert_eq!(sessions(app, w.caseworker.id).await, 0);
    for device in [&phone, &laptop] {
        let r = device.get("/payments").await;
        assert_eq!(r.status(), Status::SeeOther);
        assert!(location(&r).starts_with("/login"));
    }
    let token = app.signed_out_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &w.caseworker.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity, "cannot sign in");
    let disabled = actions(app, "user_disabled").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].actor_type, "staff");
    assert!(disabled[0].details.contains("\"sessions_ended\":2"));
    let r = admin.post(&format!("{path}/disable"), &[]).await;
    assert_eq!(r.status(), Status::UnprocessableEntity, "already disabled");

    let r = admin.post(&format!("{path}/enable"), &[]).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(status_of(app, w.caseworker.id).await, "active");
    assert_eq!(actions(app, "user_enabled").await.len(), 1);
    app.sign_in(&w.caseworker).await;
}

#[tokio::test]
async fn signing_someone_out_everywhere_and_resetting_their_authenticator() {
    let w = world().await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;
    let one = As::new(app, &w.caseworker).await;
    let _two = As::new(app, &w.caseworker).await;
    let path = person_path(&w.caseworker);
    let (_, html) = admin.page(&path).await;
    assert!(html.contains("On 2 devices"), "{html}");

    let r = admin.post(&format!("{path}/sign-out"), &[]).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(sessions(app, w.caseworker.id).await, 0);
    assert_eq!(one.get("/").await.status(), Status::SeeOther);
    let revoked = actions(app, "session_revoked_all").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor_id, w.admin.id.to_string());
    assert_eq!(
        status_of(app, w.caseworker.id).await,
        "active",
        "not disabled"
    );

    // Reset the authenticator: sessions end, and the next sign-in asks for a new one.
    let _three = As::new(app, &w.caseworker).await;
    let r = admin
        .post(&format!("{path}/reset-authenticator"), &[])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(location(&r), format!("{path}?notice=mfa-reset"));
    let staff = staff_store::staff_by_id(&app.state.db, w.caseworker.id)
        .await
        .unwrap()
        .unwrap();
    assert!(staff.totp_secret.is_none());
    assert_eq!(sessions(app, w.caseworker.id).await, 0);
    assert_eq!(actions(app, "user_mfa_reset").await.len(), 1);
    let token = app.signed_out_token("/login").await;
    let r = app
        .post_form(
            "/login",
            &[
                ("csrf_token", &token),
                ("email", &w.caseworker.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        location(&r),
        "/login/enrol",
        "they enrol a new authenticator"
    );
}

#[tokio::test]
async fn risky_actions_ask_for_the_second_factor_again_after_five_minutes() {
    let w = world().await;
    let app = &w.app;
    let admin = As::new(app, &w.admin).await;
    app.clock.advance(Duration::minutes(6));
    let path = person_path(&w.caseworker);

    for (action, fields) in [
        ("disable", vec![]),
        ("reset-authenticator", vec![]),
        ("role", vec![("service", "parking"), ("role", "finance")]),
    ] {
        let r = admin.post(&format!("{path}/{action}"), &fields).await;
        // The action waits; the code is asked for on a page reached by GET.
        assert_eq!(r.status(), Status::SeeOther, "{action}");
        let wait = crate::common::location(&r);
        assert!(wait.starts_with("/confirm-identity?waiting="), "{wait}");
        let html = admin.get(&wait).await.into_string().await.unwrap();
        assert!(
            html.contains("Confirm it&#x27;s you") || html.contains("Confirm it's you"),
            "{action}: {html}"
        );
    }
    let r = admin.post("/admin/staff/access-review", &[]).await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(r.content_type() != Some(ContentType::CSV));
    assert!(actions(app, "access_review_exported").await.is_empty());
    assert_eq!(status_of(app, w.caseworker.id).await, "active");
    assert_eq!(
        roles_of(app, w.caseworker.id).await,
        vec![(Some("Service parking".into()), "caseworker".into())]
    );

    // A wrong code: asked again, nothing done.
    let r = admin
        .post(
            &format!("{path}/disable"),
            &[("code", "000000"), ("stepping_up", "1")],
        )
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert_eq!(status_of(app, w.caseworker.id).await, "active");
    // The right code: done, and the step-up is audited.
    app.next_code_window();
    let code = app.code_now(&w.admin.secret);
    let r = admin
        .post(
            &format!("{path}/role"),
            &[
                ("service", "parking"),
                ("role", "finance"),
                ("code", &code),
                ("stepping_up", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    assert_eq!(
        roles_of(app, w.caseworker.id).await,
        vec![(Some("Service parking".into()), "finance".into())]
    );
    assert_eq!(actions(app, "authn_step_up").await.len(), 1);
}

#[tokio::test]
async fn the_daily_job_disables_accounts_unused_for_90_days() {
    let app = TestApp::new().await;
    app.service("parking").await;
    // Signed in on day 0, then never again.
    let idle = app
        .person("idle@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let _ = app.session_for(&idle).await;
    // Invited on day 0 and never set up.
    let never = paydesk::identity::accounts::add_staff(
        &app.state,
        paydesk::audit::Actor::System,
        "never@example.gov.uk",
        "Never",
        Role::Viewer,
        Some("parking"),
    )
    .await
    .unwrap()
    .unwrap();
    let busy = app
        .person("busy@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;

    // Day 60: busy signs in.
    app.clock.advance(Duration::days(60));
    let _ = app.session_for(&busy).await;

    // The first tick (day 60: nothing is 90 days old yet) runs the check; nobody goes.
    let queued = inactivity::schedule(&app.state.db, app.clock.now())
        .await
        .unwrap();
    assert!(queued, "the first tick queues the day's run");
    app.state.job_runner().run_due().await.unwrap();
    assert_eq!(status_of(&app, idle.id).await, "active");

    // Day 90 and a second: idle and never go; busy stays. The run happens once, however many
    // instances tick.
    app.clock.advance(Duration::days(30) + Duration::seconds(1));
    assert_eq!(sessions(&app, idle.id).await, 1);
    let other = app.db.connect().await;
    let mut queued = 0;
    for db in [&app.state.db, &other, &app.state.db] {
        if inactivity::schedule(db, app.clock.now()).await.unwrap() {
            queued += 1;
        }
    }
    assert_eq!(queued, 1, "once a day across instances");
    let pass = app.state.job_runner().run_due().await.unwrap();
    assert_eq!(pass.succeeded, 1);
    assert_eq!(status_of(&app, idle.id).await, "disabled");
    assert_eq!(status_of(&app, never.staff_id).await, "disabled");
    assert_eq!(status_of(&app, busy.id).await, "active");
    assert_eq!(sessions(&app, idle.id).await, 0, "their sessions ended");
    let disabled = actions(&app, "user_disabled").await;
    assert_eq!(disabled.len(), 2);
    for row in &disabled {
        assert_eq!(row.actor_type, "system");
        assert!(row.details.contains("\"reason\":\"inactive\""));
    }
    // The invitation's link died with the account.
    assert_eq!(
        app.client
            .get(format!("/setup/{}", never.setup_token))
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );

    // An admin re-enables idle: the 90 days start again from there.
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let as_admin = As::new(&app, &admin).await;
    let r = as_admin
        .post(&format!("/admin/staff/{}/enable", idle.id), &[])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    app.clock.advance(Duration::days(1));
    assert!(inactivity::schedule(&app.state.db, app.clock.now())
        .await
        .unwrap());
    app.state.job_runner().run_due().await.unwrap();
    assert_eq!(status_of(&app, idle.id).await, "active", "a fresh start");
    assert_eq!(actions(&app, "user_disabled").await.len(), 2);
}

#[tokio::test]
async fn the_access_review_is_a_neutralised_csv_of_the_admins_services() {
    let w = world().await;
    let app = &w.app;
    // A name a spreadsheet would run, and one with a comma and quotes.
    for (email, name) in [
        (
            "sly@example.gov.uk",
            "=HYPERLINK(\"http://evil.example\",\"Click\")",
        ),
        ("pat@example.gov.uk", "O'Brien, \"Pat\""),
    ] {
        paydesk::identity::accounts::add_staff(
            &app.state,
            paydesk::audit::Actor::System,
            email,
            name,
            Role::Viewer,
            Some("parking"),
        )
        .await
        .unwrap()
        .unwrap();
    }

    let admin = As::new(app, &w.admin).await;
    let r = admin.post("/admin/staff/access-review", &[]).await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        r.content_type().map(|c| c.to_string()).as_deref(),
        Some("text/csv; charset=utf-8")
    );
    let disposition = r
        .headers()
        .get_one("Content-Disposition")
        .unwrap_or_default()
        .to_string();
    assert!(disposition.starts_with("attachment; filename=\"access-review-2026-11-20.csv\""));
    assert_eq!(r.headers().get_one("Cache-Control"), Some("no-store"));
    let body = r.into_string().await.unwrap();
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "name,email,service,role,status,last_sign_in_utc,account_created_utc"
    );
    assert!(body.ends_with("\r\n"));
    // admin, caseworker, both (parking only), sly, pat: five people, one parking row each.
    assert_eq!(lines.len(), 6, "{body}");
    assert!(
        body.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"Click\"\")\",sly@example.gov.uk,Service parking,viewer,invited,,"),
        "{body}"
    );
    assert!(
        body.contains(
            "\"O'Brien, \"\"Pat\"\"\",pat@example.gov.uk,Service parking,viewer,invited,"
        ),
        "{body}"
    );
    assert!(body.contains("case@example.gov.uk,Service parking,caseworker,active,"));
    assert!(
        body.contains("2026-11-20T09:00:00Z"),
        "times in UTC: {body}"
    );
    assert!(
        !body.contains("books@example.gov.uk"),
        "another service's people"
    );
    assert!(!body.contains("libraries"), "another service's roles");
    let exported = actions(app, "access_review_exported").await;
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].actor_id, w.admin.id.to_string());
    assert!(
        exported[0].details.contains("\"rows\":5"),
        "{}",
        exported[0].details
    );
    assert!(exported[0].details.contains("parking"));

    // A platform admin's review covers everyone and every service.
    let platform = app
        .person("root@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let root = As::new(app, &platform).await;
    let body = root
        .post("/admin/staff/access-review", &[])
        .await
        .into_string()
        .await
        .unwrap();
    assert!(body.contains("books@example.gov.uk,Service libraries,viewer"));
    assert!(body.contains("both@example.gov.uk,Service libraries,finance"));
    assert!(body.contains("root@example.gov.uk,Every service,platform_admin"));
}

#[tokio::test]
async fn the_command_line_disables_unused_accounts_at_once() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        let out = paydesk_command(db.url()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    run(&["service", "add", "--slug", "parking", "--name", "Parking"]);
    run(&[
        "user",
        "add",
        "--email",
        "old@example.gov.uk",
        "--name",
        "Old",
        "--role",
        "viewer",
        "--service",
        "parking",
    ]);
    let out = run(&["user", "disable-inactive"]);
    assert!(out.contains("Disabled 0 account(s)"), "{out}");
    // Ninety-one days ago, as far as the database knows.
    let store = db.connect().await;
    let mut tx = store.begin().await.unwrap();
    let old = staff_store::staff_by_email_key(&store, "old@example.gov.uk")
        .await
        .unwrap()
        .unwrap();
    let long_ago = paydesk::store::to_micros(time::OffsetDateTime::now_utc() - Duration::days(91));
    staff_store::record_sign_in(&mut tx, old.id, long_ago)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let out = run(&["user", "disable-inactive"]);
    assert!(out.contains("Disabled 1 account(s)"), "{out}");
    let after = staff_store::staff_by_id(&store, old.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, "disabled");
}
