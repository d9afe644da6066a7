//! The dashboard at `/`: figures for a period and the person's services, through HTTP, on a
//! fresh database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

use paydesk::clock::Clock;
use paydesk::identity::permissions::Role;
use paydesk::journeys::record::{JourneyRecord, RefundRecord};
use paydesk::platform::types::{PaymentStatus, RefundStatus};
use paydesk::store::{journeys, to_micros};
use rocket::http::Status;
use rocket::local::asynchronous::Client;
use time::macros::datetime;
use time::OffsetDateTime;

use crate::common::*;

fn journey(
    payment_id: &str,
    status: PaymentStatus,
    amount: i64,
    created_at: OffsetDateTime,
    reason: Option<(&str, &str)>,
) -> JourneyRecord {
    let mut j = crate::common::journey_record(payment_id, &format!("REF-{payment_id}"), created_at);
    j.status = status;
    j.state_code = reason.map(|(c, _)| c.to_string());
    j.state_message = reason.map(|(_, m)| m.to_string());
    j.amount = amount;
    j.description = "A parking permit".into();
    j.email = Some("payer@example.com".into());
    j.cardholder_name = Some("A Payer".into());
    j.total_amount = Some(amount);
    j
}

fn refund(
    refund_id: &str,
    payment_id: &str,
    amount: i64,
    status: RefundStatus,
    created_at: OffsetDateTime,
) -> RefundRecord {
    RefundRecord {
        refund_id: refund_id.into(),
        payment_id: payment_id.into(),
        amount,
        status,
        created_at,
        settled_date: None,
    }
}

async fn seed(app: &TestApp, service_id: i64, records: &[JourneyRecord], refunds: &[RefundRecord]) {
    let now = to_micros(app.clock.now());
    let mut tx = app.state.db.begin().await.expect("begin");
    journeys::upsert_journeys(&mut tx, service_id, records, now, now)
        .await
        .expect("journeys");
    journeys::upsert_refunds(&mut tx, service_id, refunds, now, now)
        .await
        .expect("refunds");
    tx.commit().await.expect("commit");
}

async fn flag_stuck(app: &TestApp, service_id: i64, payment_id: &str) {
    let sql = "UPDATE journeys SET needs_attention = TRUE, attention_reason = 'stuck' \
               WHERE service_id = $1 AND payment_id = $2";
    paydesk::on_db!(&app.state.db, pool => sqlx::query(sql).bind(service_id).bind(payment_id).execute(pool).await.map(|_| ()))
        .expect("flag");
}

async fn dead_job(app: &TestApp) {
    let sql = "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, last_error, created_at, updated_at, finished_at) \
               VALUES ('test_job', '{}', 'dead', 3, 3, 0, 'gave up', 0, 0, 0)";
    paydesk::on_db!(&app.state.db, pool => sqlx::query(sql).execute(pool).await.map(|_| ()))
        .expect("job");
}

/// Requests as one person at a time: an untracked client with that person's session cookie.
struct Viewer<'a> {
    app: &'a TestApp,
    client: Client,
    cookie: rocket::http::Cookie<'static>,
}

impl<'a> Viewer<'a> {
    async fn new(app: &'a TestApp, person: &Person) -> Viewer<'a> {
        let client = Client::untracked(paydesk::app(app.state.clone()))
            .await
            .expect("a valid rocket");
        let cookie = app.session_for(person).await;
        Viewer {
            app,
            client,
            cookie,
        }
    }

    async fn page(&self, query: &str) -> (Status, String) {
        let _ = self.app;
        let uri = if query.is_empty() {
            "/".to_string()
        } else {
            format!("/?{query}")
        };
        let r = self
            .client
            .get(uri)
            .cookie(self.cookie.clone())
            .dispatch()
            .await;
        let status = r.status();
        (status, r.into_string().await.unwrap_or_default())
    }

    /// The page for `query`, which must be a 200 showing figures.
    async fn figures(&self, query: &str) -> String {
        let (status, html) = self.page(query).await;
        assert_eq!(status, Status::Ok, "{query}: {html}");
        assert!(
            !html.contains("There is a problem"),
            "{query}: no error expected: {html}"
        );
        assert!(html.contains("id=\"money\""), "{query}: figures: {html}");
        html
    }
}

fn section<'h>(html: &'h str, id: &str) -> &'h str {
    let start = format!("id=\"{id}\"");
    between(html, &start, "</dl>")
        .or_else(|| between(html, &start, "</table>"))
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
}

/// The summary list row whose key is `key`, as text.
fn row<'h>(html: &'h str, list: &str, key: &str) -> &'h str {
    let list = section(html, list);
    let start = format!("<dt class=\"govuk-summary-list__key\">{key}</dt>");
    between(list, &start, "</div>").unwrap_or_else(|| panic!("no row {key} in {list}"))
}

/// The daily table's row for `date`: (count, amount).
fn day_row(html: &str, date: &str) -> (String, String) {
    let table = section(html, "daily-table");
    let start = format!(">{date}</th>");
    let row = between(table, &start, "</tr>").unwrap_or_else(|| panic!("no day {date}"));
    let cells: Vec<String> = row
        .split("govuk-table__cell--numeric\">")
        .skip(1)
        .map(|c| c.split('<').next().unwrap_or_default().to_string())
        .collect();
    (cells[0].clone(), cells[1].clone())
}

/// Two services with payments, failures and refunds in the last 30 days (to 20 November 2026,
/// the test clock's today) and one payment in October.
async fn two_services(app: &TestApp) -> (i64, i64) {
    let parking = app.service("parking").await;
    let permits = app.service("permits").await;
    let rejected = Some(("P0010", "Payment method rejected"));
    seed(
        app,
        parking,
        &[
            journey(
                "pa1",
                PaymentStatus::Success,
                1_000,
                datetime!(2026-11-19 10:00 UTC),
                None,
            ),
            journey(
                "pa2",
                PaymentStatus::Success,
                2_550,
                datetime!(2026-11-20 08:00 UTC),
                None,
            ),
            journey(
                "pa3",
                PaymentStatus::Failed,
                700,
                datetime!(2026-11-19 11:00 UTC),
                rejected,
            ),
            journey(
                "pa4",
                PaymentStatus::Failed,
                800,
                datetime!(2026-11-18 11:00 UTC),
                rejected,
            ),
            journey(
                "pa5",
                PaymentStatus::Cancelled,
                900,
                datetime!(2026-11-17 11:00 UTC),
                Some(("P0030", "Payment was cancelled by the user")),
            ),
            journey(
                "pa6",
                PaymentStatus::Started,
                500,
                datetime!(2026-11-20 08:30 UTC),
                None,
            ),
            journey(
                "pa7",
                PaymentStatus::Success,
                99_999,
                datetime!(2026-10-01 12:00 UTC),
                None,
            ),
        ],
        &[
            refund(
                "ra1",
                "pa1",
                500,
                RefundStatus::Success,
                datetime!(2026-11-19 12:00 UTC),
            ),
            refund(
                "ra2",
                "pa2",
                300,
                RefundStatus::Error,
                datetime!(2026-11-20 08:10 UTC),
            ),
            refund(
                "ra3",
                "pa2",
                200,
                RefundStatus::Submitted,
                datetime!(2026-11-20 08:20 UTC),
            ),
        ],
    )
    .await;
    seed(
        app,
        permits,
        &[
            journey(
                "pb1",
                PaymentStatus::Success,
                12_345,
                datetime!(2026-11-10 09:00 UTC),
                None,
            ),
            journey(
                "pb2",
                PaymentStatus::Error,
                100,
                datetime!(2026-11-10 09:30 UTC),
                Some(("P0050", "Payment provider returned an error")),
            ),
        ],
        &[refund(
            "rb1",
            "pb1",
            1_000,
            RefundStatus::Success,
            datetime!(2026-11-11 10:00 UTC),
        )],
    )
    .await;
    (parking, permits)
}

#[tokio::test]
async fn the_figures_add_up_across_two_services() {
    let app = TestApp::new().await;
    let (parking, permits) = two_services(&app).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Viewer::new(&app, &admin).await;

    let html = v.figures("").await;
    assert!(html.contains("<h1 class=\"govuk-heading-xl\">Dashboard</h1>"));
    assert!(
        html.contains("Last 30 days: 22 October 2026 to 20 November 2026"),
        "{html}"
    );
    let payments = row(&html, "money", "Successful payments");
    assert!(
        payments.contains("£158.95") && payments.contains("3 payments"),
        "{payments}"
    );
    let refunds = row(&html, "money", "Refunds");
    assert!(
        refunds.contains("£15.00") && refunds.contains("2 refunds"),
        "{refunds}"
    );
    assert!(row(&html, "money", "Net").contains("£143.95"));

    let failures = section(&html, "failures");
    for (reason, code, count) in [
        ("Payment method rejected", "P0010", "2"),
        ("Payment was cancelled by the user", "P0030", "1"),
        ("Payment provider returned an error", "P0050", "1"),
    ] {
        let start = format!("{reason}</td>");
        let r = between(failures, &start, "</tr>").unwrap_or_else(|| panic!("{reason}"));
        assert!(
            r.contains(code) && r.contains(&format!(">{count}</td>")),
            "{r}"
        );
    }
    assert!(
        failures.find("Payment method rejected") < failures.find("P0030"),
        "most common first"
    );

    // The chart is an inline SVG with a name and a description, and the table has every day.
    assert!(html.contains("role=\"img\" aria-labelledby=\"daily-chart-title daily-chart-desc\""));
    assert!(html.contains("<title id=\"daily-chart-title\">Successful payments each day, 22 October 2026 to 20 November 2026</title>"));
    assert!(
        html.contains("£158.95 from 3 successful payments"),
        "the description"
    );
    assert_eq!(html.matches("class=\"paydesk-chart__bar\"").count(), 3);
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style=\""), "no inline styles");
    assert!(html.contains("Show the figures as a table"));
    let table = section(&html, "daily-table");
    assert_eq!(
        table.matches("<tr class=\"govuk-table__row\">").count(),
        30 + 1
    );
    assert_eq!(
        day_row(&html, "19 November 2026"),
        ("1".into(), "£10.00".into())
    );
    assert_eq!(
        day_row(&html, "20 November 2026"),
        ("1".into(), "£25.50".into())
    );
    assert_eq!(
        day_row(&html, "10 November 2026"),
        ("1".into(), "£123.45".into())
    );
    assert_eq!(
        day_row(&html, "9 November 2026"),
        ("0".into(), "£0.00".into())
    );

    // Narrowed to one service; another period; both boxes ticked means both services.
    let html = v.figures(&format!("service={permits}")).await;
    assert!(row(&html, "money", "Successful payments").contains("£123.45"));
    assert!(row(&html, "money", "Net").contains("£113.45"));
    assert!(html.contains(&format!("value=\"{permits}\" checked")));
    assert!(!html.contains(&format!("value=\"{parking}\" checked")));
    let html = v
        .figures(&format!(
            "period=30-days&service={parking}&service={permits}"
        ))
        .await;
    assert!(row(&html, "money", "Successful payments").contains("£158.95"));
    let html = v.figures("period=previous-month").await;
    assert!(html.contains("Previous month: 1 October 2026 to 31 October 2026"));
    let payments = row(&html, "money", "Successful payments");
    assert!(
        payments.contains("£999.99") && payments.contains("1 payment<"),
        "{payments}"
    );
    let html = v.figures("period=today").await;
    assert!(row(&html, "money", "Successful payments").contains("£25.50"));
    assert!(html.contains("Today: 20 November 2026"));
    let html = v.figures("period=12-months").await;
    assert!(row(&html, "money", "Successful payments").contains("£1,158.94"));
    assert_eq!(
        section(&html, "daily-table")
            .matches("<tr class=\"govuk-table__row\">")
            .count(),
        365 + 1
    );
    let html = v.figures("period=yesterday").await;
    let payments = row(&html, "money", "Successful payments");
    assert!(
        payments.contains("£10.00") && payments.contains("1 payment<"),
        "{payments}"
    );
}

#[tokio::test]
async fn a_person_sees_only_the_money_of_their_own_services() {
    let app = TestApp::new().await;
    let (parking, permits) = two_services(&app).await;
    let viewer = app
        .person("viewer@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let v = Viewer::new(&app, &viewer).await;

    let html = v.figures("").await;
    let payments = row(&html, "money", "Successful payments");
    assert!(
        payments.contains("£35.50") && payments.contains("2 payments"),
        "{payments}"
    );
    assert!(row(&html, "money", "Refunds").contains("£5.00"));
    assert!(row(&html, "money", "Net").contains("£30.50"));
    assert!(
        !html.contains("£123.45") && !html.contains("P0050"),
        "{html}"
    );
    assert!(
        !html.contains("Service permits"),
        "the other service is not even named"
    );
    // One service: no boxes to tick.
    assert!(!html.contains("name=\"service\""));
    assert!(html.contains("All your services (Service parking)"));

    // Asking for the other service by id is refused like an unknown one, and shows nothing.
    for query in [
        format!("service={permits}"),
        format!("service={parking}&service={permits}"),
    ] {
        let (status, html) = v.page(&query).await;
        assert_eq!(status, Status::Ok, "{query}");
        assert!(html.contains("There is a problem"), "{query}");
        assert!(html.contains("Choose services from the list"));
        assert!(!html.contains("£123.45") && !html.contains("id=\"money\""));
    }
    let html = v.figures(&format!("service={parking}")).await;
    assert!(row(&html, "money", "Successful payments").contains("£35.50"));
}

#[tokio::test]
async fn days_are_local_days_in_the_configured_zone() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    // 10:00 on Tuesday 21 July 2026 in London (BST, UTC+1).
    app.clock.set(datetime!(2026-07-21 09:00 UTC));
    seed(
        &app,
        parking,
        &[
            // 23:30 on the 19th in London.
            journey(
                "late",
                PaymentStatus::Success,
                1_100,
                datetime!(2026-07-19 22:30 UTC),
                None,
            ),
            // 00:30 on the 20th in London, though still the 19th in UTC.
            journey(
                "midnight",
                PaymentStatus::Success,
                4_200,
                datetime!(2026-07-19 23:30 UTC),
                None,
            ),
            // 23:59 on the 20th in London.
            journey(
                "last",
                PaymentStatus::Success,
                300,
                datetime!(2026-07-20 22:59 UTC),
                None,
            ),
            // 00:10 on the 21st in London.
            journey(
                "today",
                PaymentStatus::Success,
                700,
                datetime!(2026-07-20 23:10 UTC),
                None,
            ),
        ],
        &[],
    )
    .await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Viewer::new(&app, &admin).await;

    let html = v.figures("period=yesterday").await;
    assert!(html.contains("Yesterday: 20 July 2026"), "{html}");
    let payments = row(&html, "money", "Successful payments");
    assert!(
        payments.contains("£45.00") && payments.contains("2 payments"),
        "{payments}"
    );
    let html = v.figures("period=today").await;
    assert!(row(&html, "money", "Successful payments").contains("£7.00"));
    let html = v.figures("period=7-days").await;
    // Tera escapes "/" in text as "&#x2F;".
    assert!(html.contains("Days are counted in Europe&#x2F;London time"));
    assert_eq!(
        day_row(&html, "19 July 2026"),
        ("1".into(), "£11.00".into())
    );
    assert_eq!(
        day_row(&html, "20 July 2026"),
        ("2".into(), "£45.00".into())
    );
    assert_eq!(day_row(&html, "21 July 2026"), ("1".into(), "£7.00".into()));
    assert!(row(&html, "money", "Successful payments").contains("£63.00"));
}

#[tokio::test]
async fn the_attention_panel_counts_what_needs_a_look() {
    let app = TestApp::new().await;
    let (parking, permits) = two_services(&app).await;
    flag_stuck(&app, parking, "pa6").await;
    flag_stuck(&app, parking, "pa7").await;
    flag_stuck(&app, permits, "pb2").await;
    seed(
        &app,
        permits,
        &[],
        &[refund(
            "rb2",
            "pb1",
            113,
            RefundStatus::Error,
            datetime!(2026-11-12 10:00 UTC),
        )],
    )
    .await;
    dead_job(&app).await;
    dead_job(&app).await;

    let viewer = app
        .person("viewer@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let html = Viewer::new(&app, &viewer).await.figures("").await;
    let stuck = row(&html, "attention", "Stuck payments");
    assert!(stuck.contains("2 payments"), "{stuck}");
    assert!(
        stuck.contains("href=\"/payments?attention=yes\""),
        "{stuck}"
    );
    assert!(row(&html, "attention", "Failed refunds").contains("1 refund<"));
    assert!(!html.contains("Dead jobs"), "only platform admins see jobs");

    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Viewer::new(&app, &admin).await;
    let html = v.figures("").await;
    assert!(row(&html, "attention", "Stuck payments").contains("3 payments"));
    assert!(row(&html, "attention", "Failed refunds").contains("2 refunds"));
    assert!(row(&html, "attention", "Dead jobs").contains("2 jobs"));
    // Failed refunds are counted in the period; stuck payments whenever they started.
    let html = v.figures("period=today").await;
    assert!(row(&html, "attention", "Failed refunds").contains("1 refund<"));
    assert!(row(&html, "attention", "Stuck payments").contains("3 payments"));
    let html = v.figures(&format!("period=today&service={permits}")).await;
    assert!(row(&html, "attention", "Failed refunds").contains("None"));
    assert!(row(&html, "attention", "Stuck payments").contains("1 payment<"));
}

#[tokio::test]
async fn a_bad_choice_is_explained_on_the_page() {
    let app = TestApp::new().await;
    two_services(&app).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let v = Viewer::new(&app, &admin).await;
    for query in [
        "period=forever",
        "period=%ZZ",
        "period=today&period=bad",
        "period=Today",
        "service=abc",
        "service=999999",
        "service=",
    ] {
        let (status, html) = v.page(query).await;
        if query == "period=today&period=bad" {
            // The first value counts.
            assert_eq!(status, Status::Ok);
            assert!(html.contains("Today: 20 November 2026"), "{query}");
            continue;
        }
        assert_eq!(status, Status::Ok, "{query}");
        assert!(html.contains("There is a problem"), "{query}: {html}");
        assert!(html.contains("<title>Error: Dashboard"), "{query}");
        let message = if query.starts_with("period") {
            "<a href=\"#period\">Choose a period from the list</a>"
        } else {
            "<a href=\"#service\">Choose services from the list</a>"
        };
        assert!(html.contains(message), "{query}: {html}");
        assert!(html.contains("govuk-form-group--error"), "{query}");
        assert!(!html.contains("id=\"money\""), "{query}: no figures");
    }
    // Parameters the page does not know are ignored; so are empty ones.
    v.figures("utm_source=email&period=7-days&x").await;
    v.figures("period=&sort=desc").await;
}

#[tokio::test]
async fn a_person_without_services_sees_a_friendly_page() {
    let app = TestApp::new().await;
    two_services(&app).await;
    let person = app
        .person("nobody@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let sql = "DELETE FROM staff_grants WHERE staff_id = $1";
    paydesk::on_db!(&app.state.db, pool => sqlx::query(sql).bind(person.id).execute(pool).await.map(|_| ()))
        .expect("take the role away");
    let v = Viewer::new(&app, &person).await;
    for query in ["", "period=forever&service=1"] {
        let (status, html) = v.page(query).await;
        assert_eq!(status, Status::Ok, "{query}");
        assert!(html.contains("<h1 class=\"govuk-heading-xl\">Dashboard</h1>"));
        assert!(
            html.contains("You do not have access to any services yet"),
            "{html}"
        );
        assert!(!html.contains("There is a problem"));
        assert!(!html.contains("id=\"money\"") && !html.contains("£"));
    }

    // Signed out, the dashboard sends people to sign in.
    let r = app.client.get("/?period=today").dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    assert!(location(&r).starts_with("/login"));
}

/// A refund paydesk asked for on `payment_id` that failed: refused before reaching the
/// platform, or (with `platform_refund`) made at the platform and then in error there.
async fn failed_request(
    app: &TestApp,
    service_id: i64,
    payment_id: &str,
    asker: i64,
    platform_refund: Option<&str>,
) {
    use paydesk::store::refunds as rs;
    let j = journeys::journey(&app.state.db, service_id, payment_id)
        .await
        .expect("read")
        .expect("journey");
    let now = to_micros(app.clock.now());
    let mut tx = app.state.db.begin().await.expect("begin");
    let id = rs::insert(
        &mut tx,
        &rs::NewRequest {
            service_id,
            journey_id: j.id,
            payment_id,
            amount: 250,
            reason: "duplicate",
            comment: None,
            case_reference: None,
            state: "approved",
            form_key: &format!("failed-{payment_id}"),
            requested_by: asker,
            approval_required: false,
            expires_at: now + 86_400_000_000,
        },
        now,
    )
    .await
    .expect("insert")
    .expect("new");
    assert!(rs::start_submit(&mut tx, id, now).await.expect("submit"));
    if let Some(refund_id) = platform_refund {
        assert!(rs::mark_submitted(&mut tx, id, refund_id, now)
            .await
            .expect("submitted"));
    }
    assert!(
        rs::mark_failed(&mut tx, id, "The platform refused the refund", now)
            .await
            .expect("failed")
    );
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn failed_refunds_are_counted_once_and_linked_to_the_list_behind_them() {
    let app = TestApp::new().await;
    let (parking, permits) = two_services(&app).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    // Asked for elsewhere and in error at the platform (with `two_services`'s ra2 in parking).
    seed(
        &app,
        permits,
        &[],
        &[refund(
            "rb2",
            "pb1",
            113,
            RefundStatus::Error,
            datetime!(2026-11-12 10:00 UTC),
        )],
    )
    .await;
    // Asked for in paydesk: one refused before reaching the platform, one made and then in
    // error there (one refund, counted once, not as a paydesk failure and a platform one).
    failed_request(&app, parking, "pa1", admin.id, None).await;
    failed_request(&app, parking, "pa2", admin.id, Some("rz1")).await;
    seed(
        &app,
        parking,
        &[],
        &[refund(
            "rz1",
            "pa2",
            250,
            RefundStatus::Error,
            datetime!(2026-11-19 10:00 UTC),
        )],
    )
    .await;

    let v = Viewer::new(&app, &admin).await;
    let html = v.figures("").await;
    let failed = row(&html, "attention", "Failed refunds");
    assert!(failed.contains("4 refunds"), "{failed}");
    assert!(
        failed
            .replace("&#x2F;", "/")
            .contains("href=\"/refunds/failed?period=30-days\""),
        "the figure links to its list: {failed}"
    );
    let get = |path: &str| {
        let path = path.to_string();
        async {
            let r = v.client.get(path).cookie(v.cookie.clone()).dispatch().await;
            (r.status(), r.into_string().await.unwrap_or_default())
        }
    };
    let (status, list) = get("/refunds/failed?period=30-days").await;
    assert_eq!(status, Status::Ok, "{list}");
    assert!(list.contains("Failed refunds: 4"), "{list}");
    let table = section(&list, "failed");
    assert_eq!(
        table.matches("<tr class=\"govuk-table__row\">").count(),
        1 + 4
    );
    for shown in ["REF-pa1", "REF-pa2", "REF-pb1", "Not asked for in paydesk"] {
        assert!(table.contains(shown), "{shown} in {table}");
    }
    // The refunds page counts the same refunds by the same definition.
    let (status, queue) = get("/refunds").await;
    assert_eq!(status, Status::Ok);
    assert!(
        queue.contains("4 refunds have failed in the last 30 days"),
        "{queue}"
    );
    // One service, one day: the figure and its list narrow together.
    let narrowed = format!("period=today&service={permits}");
    let html = v.figures(&narrowed).await;
    assert!(row(&html, "attention", "Failed refunds").contains("None"));
    let (_, list) = get(&format!("/refunds/failed?{narrowed}")).await;
    assert!(list.contains("Failed refunds: 0"), "{list}");
    assert!(list.contains("No refunds failed in this period"));
    // A choice that cannot be read is refused, not guessed.
    let (status, _) = get("/refunds/failed?period=fortnight").await;
    assert_eq!(status, Status::UnprocessableEntity);
}
