//! The audit view (`/audit`) through HTTP: who may read it and which entries they see,
//! searching by person, action, object and dates, keyset pages newest first, looking being
//! audited, the chain's verification, and the CSV download with neutralised cells.

use paydesk::audit::{self, Actor, AuditEvent};
use paydesk::identity::permissions::Role;
use paydesk::store::audit as audit_store;
use rocket::http::Status;
use serde_json::json;
use time::macros::datetime;

use crate::admin_services::{journey, unescape, Visitor};
use crate::common::TestApp;

async fn entry(app: &TestApp, at: time::OffsetDateTime, actor: Actor, action: &str, target: &str) {
    audit::record(
        &app.state.db,
        at,
        AuditEvent::new(actor, action, target).details(json!({"n": 1})),
    )
    .await
    .unwrap();
}

fn staff(email: &str) -> Actor {
    Actor::staff(7, email)
}

/// The sequence numbers shown on a page, in order.
fn seqs(html: &str) -> Vec<i64> {
    html.split("<td class=\"govuk-table__cell govuk-table__cell--numeric\">")
        .skip(1)
        .filter_map(|s| s.split('<').next()?.trim().parse().ok())
        .collect()
}

fn href_of(html: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\"");
    let at = html.find(&marker)?;
    let start = html[..at].rfind("href=\"")? + 6;
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

#[tokio::test]
async fn who_may_read_the_log() {
    let app = TestApp::new().await;
    app.service("parking").await;
    for (i, role) in [Role::Viewer, Role::Caseworker, Role::Finance]
        .into_iter()
        .enumerate()
    {
        let p = app
            .person(&format!("p{i}@example.gov.uk"), role, Some("parking"))
            .await;
        let v = Visitor::new(&app, &p).await;
        assert_eq!(v.get("/audit").await.status, Status::Forbidden, "{role:?}");
        assert_eq!(
            v.get("/audit/export.csv").await.status,
            Status::Forbidden,
            "{role:?}"
        );
    }
    let sa = app
        .person("sa@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    assert_eq!(
        Visitor::new(&app, &sa).await.get("/audit").await.status,
        Status::Ok
    );
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    assert_eq!(
        Visitor::new(&app, &pa).await.get("/audit").await.status,
        Status::Ok
    );
}

#[tokio::test]
async fn search_filters_pages_and_is_itself_audited() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let day1 = datetime!(2026-11-01 10:00 UTC);
    let day2 = datetime!(2026-11-05 10:00 UTC);
    for i in 0..120 {
        let at = if i < 60 { day1 } else { day2 };
        entry(
            &app,
            at,
            staff("alice@example.gov.uk"),
            "thing_done",
            &format!("thing:{i}"),
        )
        .await;
    }
    entry(
        &app,
        day2,
        staff("bob@example.gov.uk"),
        "other_done",
        "thing:bob",
    )
    .await;
    let v = Visitor::new(&app, &pa).await;

    // By person.
    let page = v.get("/audit?person=BOB%40example.gov.uk").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("thing:bob"));
    assert!(!page.body.contains("thing:1<"));
    // By action.
    let page = v.get("/audit?action=other_done").await.body;
    assert_eq!(seqs(&page).len(), 1);
    // By object.
    let page = v.get("/audit?target=thing%3A7").await.body;
    assert_eq!(seqs(&page).len(), 1);
    assert!(page.contains("thing:7"));
    // By dates (Europe/London days, both ends included).
    let page = v
        .get("/audit?action=thing_done&from=2026-11-01&to=2026-11-01")
        .await
        .body;
    assert_eq!(seqs(&page).len(), 50, "a first page of day 1's 60");
    let older = href_of(&page, "next").expect("an older page");
    let page2 = v.get(&older).await.body;
    assert_eq!(seqs(&page2).len(), 10);
    assert!(href_of(&page2, "next").is_none());
    let page = v.get("/audit?action=thing_done&from=2026-11-02").await.body;
    assert_eq!(seqs(&page).len(), 50);
    assert!(seqs(&page).iter().all(|s| *s > 60));

    // Pages: newest first, no entry twice or missed, and back again.
    let first = v.get("/audit?person=alice%40example.gov.uk").await.body;
    let s1 = seqs(&first);
    assert_eq!(s1.len(), 50);
    assert!(s1.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert!(href_of(&first, "prev").is_none());
    let second = v.get(&href_of(&first, "next").unwrap()).await.body;
    let s2 = seqs(&second);
    assert_eq!(s2.len(), 50);
    assert_eq!(s2[0], s1[49] - 1);
    let third = v.get(&href_of(&second, "next").unwrap()).await.body;
    let s3 = seqs(&third);
    assert_eq!(s3.len(), 20);
    assert!(href_of(&third, "next").is_none());
    let back = v.get(&href_of(&third, "prev").unwrap()).await.body;
    assert_eq!(seqs(&back), s2, "newer page is the page before");
    let back = v.get(&href_of(&back, "prev").unwrap()).await.body;
    assert_eq!(seqs(&back), s1);

    // A bad filter is explained, and nothing is searched.
    let bad = v.get("/audit?from=01%2F11%2F2026&to=2026-11-01").await;
    assert_eq!(bad.status, Status::UnprocessableEntity);
    assert!(bad.body.contains("Enter the date as year-month-day"));
    assert!(bad.body.contains("<title>Error: "));
    let backwards = v.get("/audit?from=2026-11-05&to=2026-11-01").await;
    assert_eq!(backwards.status, Status::UnprocessableEntity);
    assert!(backwards
        .body
        .contains("The end date must be the same as or after the start date"));

    // Looking is audited, with the filter.
    let viewed = audit_store::by_action(&app.state.db, "audit_viewed")
        .await
        .unwrap();
    assert!(viewed.len() >= 10);
    assert!(viewed.iter().all(|e| e.actor_label == "pa@example.gov.uk"));
    assert!(
        viewed
            .iter()
            .any(|e| e.details.contains("\"person\":\"bob@example.gov.uk\"")),
        "{:?}",
        viewed[0].details
    );
}

#[tokio::test]
async fn a_service_admin_sees_only_their_services_entries() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let council = app.service("council").await;
    journey(&app, parking, "pay-parking", "P-1", None).await;
    journey(&app, council, "pay-council", "C-1", None).await;
    let now = app.state.clock.now();
    entry(
        &app,
        now,
        staff("x@example.gov.uk"),
        "refund_requested",
        "payment:pay-parking",
    )
    .await;
    entry(
        &app,
        now,
        staff("x@example.gov.uk"),
        "refund_requested",
        "payment:pay-council",
    )
    .await;
    entry(
        &app,
        now,
        staff("x@example.gov.uk"),
        "service_updated",
        &format!("service:{parking}"),
    )
    .await;
    entry(
        &app,
        now,
        staff("x@example.gov.uk"),
        "service_updated",
        &format!("service:{council}"),
    )
    .await;
    entry(
        &app,
        now,
        staff("x@example.gov.uk"),
        "authn_login_success",
        "staff:7",
    )
    .await;
    let sa = app
        .person("sa@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    let v = Visitor::new(&app, &sa).await;
    let page = v.get("/audit").await.body;
    assert!(page.contains("payment:pay-parking"));
    assert!(page.contains(&format!("service:{parking}<")));
    assert!(!page.contains("payment:pay-council"));
    assert!(!page.contains(&format!("service:{council}<")));
    assert!(!page.contains("staff:7"), "sign-ins belong to no service");
    assert!(page.contains("You see the entries about the services you manage"));
    // Asking for another service's object finds nothing.
    let page = v.get("/audit?target=payment%3Apay-council").await.body;
    assert!(seqs(&page).is_empty());
    assert!(page.contains("No entries match"));
    let csv = v.get("/audit/export.csv").await.body;
    assert!(csv.contains("payment:pay-parking"));
    assert!(!csv.contains("payment:pay-council") && !csv.contains("staff:7"));
    // A platform admin sees everything.
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let page = Visitor::new(&app, &pa).await.get("/audit").await.body;
    assert!(page.contains("payment:pay-council") && page.contains("staff:7"));
}

#[tokio::test]
async fn the_download_is_rfc4180_with_formulas_neutralised_and_audited() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let now = app.state.clock.now();
    entry(
        &app,
        now,
        Actor::staff(9, "@evil.example"),
        "=HYPERLINK(\"http://x\")",
        "+thing:1",
    )
    .await;
    entry(
        &app,
        now,
        Actor::staff(9, "-dash@example.gov.uk"),
        "plain",
        "thing,with,commas",
    )
    .await;
    entry(&app, now, Actor::staff(9, "\tTab"), "\rcr", "\nlf").await;
    let v = Visitor::new(&app, &pa).await;
    let r = v.get("/audit/export.csv").await;
    assert_eq!(r.status, Status::Ok);
    assert!(r.content_type.starts_with("text/csv"), "{}", r.content_type);
    let csv = r.body;
    assert!(csv.starts_with("Sequence,Time (UTC),Actor type,Actor id,Person,Action,Object,Outcome,IP address,Details,Hash\r\n"));
    assert!(
        csv.contains(",'@evil.example,\"'=HYPERLINK(\"\"http://x\"\")\",'+thing:1,"),
        "{csv}"
    );
    assert!(
        csv.contains(",'-dash@example.gov.uk,plain,\"thing,with,commas\","),
        "{csv}"
    );
    assert!(csv.contains(",'\tTab,\"'\rcr\",\"'\nlf\","), "{csv:?}");
    // No line of the file starts a cell with a formula character.
    for line in csv.split("\r\n") {
        for cell in line.split(',') {
            let c = cell.trim_start_matches('"');
            assert!(!c.starts_with(['=', '+', '@']), "{cell} in {line}");
        }
    }
    // Every row ends with CRLF; details JSON is quoted.
    assert!(csv.ends_with("\r\n"));
    assert!(csv.contains("\"{\"\"n\"\":1}\""));
    // Filtered the same as the page, and recorded with the filter and the row count.
    let r = v.get("/audit/export.csv?action=plain").await.body;
    assert_eq!(r.trim_end().split("\r\n").count(), 2, "{r}");
    let exported = audit_store::by_action(&app.state.db, "audit_exported")
        .await
        .unwrap();
    assert_eq!(exported.len(), 2);
    assert!(
        exported[1].details.contains("\"action\":\"plain\""),
        "{}",
        exported[1].details
    );
    assert!(
        exported[1].details.contains("\"rows\":1"),
        "{}",
        exported[1].details
    );
    // A bad filter is a page with the problem, not a file.
    let bad = v.get("/audit/export.csv?to=tomorrow").await;
    assert_eq!(bad.status, Status::UnprocessableEntity);
    assert!(bad.body.contains("Enter the date as year-month-day"));
}

#[tokio::test]
async fn the_page_says_whether_the_chain_verifies() {
    let app = TestApp::new().await;
    let pa = app
        .person("pa@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Visitor::new(&app, &pa).await;
    let page = unescape(&v.get("/audit").await.body);
    assert!(page.contains("Verified"), "{page}");
    assert!(
        page.contains("paydesk-audit-checkpoint/1"),
        "a checkpoint to copy"
    );

    // Someone with database access changes an entry: a fresh paydesk (or the next check
    // after five minutes) says so and names the entry.
    crate::audit::tamper(
        &app.state.db,
        "UPDATE audit_log SET details = '{\"changed\":1}' WHERE seq = 2",
    )
    .await;
    app.clock.advance(time::Duration::minutes(6));
    let page = unescape(&v.get("/audit").await.body);
    assert!(page.contains("The audit log does not verify"), "{page}");
    assert!(page.contains("entry 2 does not match its hash"), "{page}");
}
