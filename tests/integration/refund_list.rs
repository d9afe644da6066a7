//! The list of refund requests (`/refunds/requests`) through HTTP: a caseworker sees only the
//! requests they asked for, finance every request of its service, nobody another service's;
//! the filters narrow it and a filter that cannot be read is shown as a problem on the form;
//! rows link to their payment; pages of 50 go back and forth.

use paydesk::identity::permissions::Role;
use paydesk::store::refunds as rs;
use paydesk::store::to_micros;
use rocket::http::Status;
use rocket::local::asynchronous::Client;

use crate::common::*;

/// Requests as one person: an untracked client with that person's session cookie.
struct As {
    client: Client,
    cookie: rocket::http::Cookie<'static>,
}

impl As {
    async fn new(app: &TestApp, person: &Person) -> As {
        let client = Client::untracked(paydesk::app(app.state.clone()))
            .await
            .expect("a valid rocket");
        As {
            client,
            cookie: app.session_for(person).await,
        }
    }

    /// The page at `path`, with Tera's escaped slashes read back.
    async fn get(&self, path: &str) -> (Status, String) {
        let r = self
            .client
            .get(path.to_string())
            .cookie(self.cookie.clone())
            .dispatch()
            .await;
        let status = r.status();
        let html = r.into_string().await.unwrap_or_default();
        (status, html.replace("&#x2F;", "/").replace("&amp;", "&"))
    }

    /// The list at `query`, which must be a page without problems.
    async fn list(&self, query: &str) -> String {
        let (status, html) = self.get(&format!("/refunds/requests{query}")).await;
        assert_eq!(status, Status::Ok, "{query}: {html}");
        assert!(!html.contains("There is a problem"), "{query}: {html}");
        html
    }
}

/// The payment references listed in the table, top to bottom.
fn listed(html: &str) -> Vec<String> {
    let Some(table) = between(html, "id=\"requests\"", "</table>") else {
        return vec![];
    };
    table
        .split("<a class=\"govuk-link\" href=\"/payments/")
        .skip(1)
        .map(|cell| {
            let text = cell.split_once("\">").map(|x| x.1).unwrap_or_default();
            text.split("</a>").next().unwrap_or_default().to_string()
        })
        .collect()
}

async fn rename(app: &TestApp, person: &Person, name: &str) {
    let sql = "UPDATE staff SET name = $1 WHERE id = $2";
    paydesk::on_db!(&app.state.db, pool => sqlx::query(sql).bind(name).bind(person.id).execute(pool).await.map(|_| ()))
        .expect("rename");
}

/// A request by `asker` on `payment_id` of `service_id`, asked for `minutes` after the test's
/// start, stored in `state`.
async fn request(
    app: &TestApp,
    service_id: i64,
    payment_id: &str,
    amount: i64,
    asker: &Person,
    state: &str,
    minutes: i64,
) -> i64 {
    let j = paydesk::store::journeys::journey(&app.state.db, service_id, payment_id)
        .await
        .expect("read")
        .expect("journey");
    let at = to_micros(start_time() + time::Duration::minutes(minutes));
    let mut tx = app.state.db.begin().await.expect("begin");
    let id = rs::insert(
        &mut tx,
        &rs::NewRequest {
            service_id,
            journey_id: j.id,
            payment_id,
            amount,
            reason: "duplicate",
            comment: None,
            case_reference: Some("CASE-7"),
            state,
            form_key: &format!("list-{payment_id}-{minutes}"),
            requested_by: asker.id,
            approval_required: state == "awaiting_approval",
            expires_at: at + 86_400_000_000,
        },
        at,
    )
    .await
    .expect("insert")
    .expect("new");
    tx.commit().await.expect("commit");
    id
}

struct World {
    app: TestApp,
    caseworker: Person,
    other_caseworker: Person,
    finance: Person,
}

/// Two services. In parking: a caseworker's three requests (one rejected by finance), another
/// caseworker's failed one; in permits: one by permits' own caseworker.
async fn world() -> World {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let permits = app.service("permits").await;
    let journeys = |ids: &[&str]| -> Vec<_> {
        ids.iter()
            .map(|id| journey_record(id, &format!("REF-{id}"), start_time()))
            .collect()
    };
    store_journeys(&app, parking, &journeys(&["pa1", "pa2", "pa3"])).await;
    store_journeys(&app, permits, &journeys(&["pb1"])).await;
    let caseworker = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let other_caseworker = app
        .person("cw2@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    let finance = app
        .person("fin@example.gov.uk", Role::Finance, Some("parking"))
        .await;
    let permits_caseworker = app
        .person("cwp@example.gov.uk", Role::Caseworker, Some("permits"))
        .await;
    rename(&app, &caseworker, "Casey Worker").await;
    rename(&app, &other_caseworker, "Olive Other").await;
    rename(&app, &finance, "Fin Ance").await;
    request(
        &app,
        parking,
        "pa1",
        1500,
        &caseworker,
        "awaiting_approval",
        1,
    )
    .await;
    request(&app, parking, "pa2", 700, &caseworker, "succeeded", 2).await;
    request(&app, parking, "pa3", 900, &other_caseworker, "failed", 3).await;
    let rejected = request(
        &app,
        parking,
        "pa1",
        200,
        &caseworker,
        "awaiting_approval",
        4,
    )
    .await;
    request(
        &app,
        permits,
        "pb1",
        3300,
        &permits_caseworker,
        "awaiting_approval",
        5,
    )
    .await;
    let mut tx = app.state.db.begin().await.expect("begin");
    let decided = to_micros(start_time() + time::Duration::minutes(30));
    assert!(
        rs::reject(&mut tx, rejected, finance.id, "Too small", decided)
            .await
            .expect("reject")
    );
    tx.commit().await.expect("commit");
    World {
        app,
        caseworker,
        other_caseworker,
        finance,
    }
}

#[tokio::test]
async fn a_caseworker_sees_only_their_own_requests_and_finance_every_one_of_its_service() {
    let w = world().await;
    let cw = As::new(&w.app, &w.caseworker).await;
    let html = cw.list("").await;
    assert!(
        html.contains("<h1 class=\"govuk-heading-l\">Your refund requests</h1>"),
        "{html}"
    );
    // Newest first; another caseworker's request and another service's never appear.
    assert_eq!(listed(&html), ["REF-pa1", "REF-pa2", "REF-pa1"]);
    assert!(
        !html.contains("REF-pa3") && !html.contains("REF-pb1"),
        "{html}"
    );
    assert!(html.contains("3 refund requests, £24.00 in all"), "{html}");
    // The states in words, the decision, and each row links to its payment.
    let table = between(&html, "id=\"requests\"", "</table>").expect("table");
    for shown in [
        "Awaiting approval",
        "Refunded",
        "Rejected",
        "Duplicate payment",
        "CASE-7",
        "£15.00",
        "Fin Ance, ",
        "No approval needed",
        "Not decided yet",
        "href=\"/payments/pa1?service=parking\"",
        "href=\"/payments/pa2?service=parking\"",
    ] {
        assert!(table.contains(shown), "{shown} in {table}");
    }
    // A caseworker's own list has no "asked for by" column or "only mine" box.
    assert!(!table.contains("Asked for by") && !html.contains("name=\"mine\""));
    // The menu leads a caseworker here.
    let menu = between(&html, "govuk-service-navigation", "</nav>").expect("a menu");
    assert!(menu.contains("href=\"/refunds/requests\""), "{menu}");

    let other = As::new(&w.app, &w.other_caseworker).await;
    assert_eq!(listed(&other.list("").await), ["REF-pa3"]);

    let fin = As::new(&w.app, &w.finance).await;
    let html = fin.list("").await;
    assert!(html.contains("<h1 class=\"govuk-heading-l\">Refund requests</h1>"));
    assert_eq!(listed(&html), ["REF-pa1", "REF-pa3", "REF-pa2", "REF-pa1"]);
    assert!(html.contains("4 refund requests, £33.00 in all"), "{html}");
    assert!(
        !html.contains("REF-pb1"),
        "another service's request: {html}"
    );
    let table = between(&html, "id=\"requests\"", "</table>").expect("table");
    for shown in ["Asked for by", "Casey Worker", "Olive Other", "Failed"] {
        assert!(table.contains(shown), "{shown} in {table}");
    }
    // Finance asked for none of them.
    let html = fin.list("?mine=yes").await;
    assert!(listed(&html).is_empty());
    assert!(
        html.contains("No refund requests match these filters"),
        "{html}"
    );

    // A payment's page leads to the list, and finance's refunds page too.
    for (who, text) in [
        (&cw, "All your refund requests"),
        (&fin, "All refund requests in this service"),
    ] {
        let (status, html) = who.get("/payments/pa1?service=parking").await;
        assert_eq!(status, Status::Ok);
        let link = between(&html, "id=\"refund-list-link\"", "</a>").expect("a link to the list");
        assert!(
            link.contains("href=\"/refunds/requests?service=parking\"") && link.contains(text),
            "{link}"
        );
    }
    let (_, queue) = fin.get("/refunds").await;
    assert!(queue.contains("href=\"/refunds/requests\""), "{queue}");

    // Someone who may neither ask for nor approve refunds has no such page.
    let viewer = w
        .app
        .person("viewer@example.gov.uk", Role::Viewer, Some("parking"))
        .await;
    let viewing = As::new(&w.app, &viewer).await;
    let (status, _) = viewing.get("/refunds/requests").await;
    assert_eq!(status, Status::Forbidden);
    let (_, html) = viewing.get("/payments/pa1?service=parking").await;
    assert!(!html.contains("refund-list-link") && !html.contains("/refunds/requests"));
}

#[tokio::test]
async fn filters_narrow_the_list_and_one_that_cannot_be_read_is_a_problem_on_the_form() {
    let w = world().await;
    let fin = As::new(&w.app, &w.finance).await;
    let html = fin.list("?state=failed").await;
    assert_eq!(listed(&html), ["REF-pa3"]);
    assert!(html.contains("1 refund request, £9.00 in all"), "{html}");
    // The ticked box stays ticked, and the filters can be cleared.
    assert!(html.contains("value=\"failed\" checked"), "{html}");
    assert!(html.contains("Clear filters"));
    let cw = As::new(&w.app, &w.caseworker).await;
    let html = cw.list("?state=awaiting_approval&state=rejected").await;
    assert_eq!(listed(&html), ["REF-pa1", "REF-pa1"]);
    // Days are whole local days: the day of the requests finds them all, the next none.
    assert_eq!(
        listed(&cw.list("?from=20/11/2026&to=20/11/2026").await).len(),
        3
    );
    let html = cw.list("?from=21/11/2026").await;
    assert!(listed(&html).is_empty());
    assert!(html.contains("0 refund requests"), "{html}");
    assert!(html.contains("No refund requests match these filters"));
    assert_eq!(listed(&cw.list("?service=parking").await).len(), 3);

    for (query, message) in [
        ("state=paid", "Choose states from the list"),
        ("from=31/2/2026", "Enter the from date as a real date"),
        (
            "from=2/12/2026&to=1/12/2026",
            "The to date must be the same as or after",
        ),
        // A service of someone else's is not on offer, not listed.
        ("service=permits", "Choose a service from the list"),
        (
            "service=nowhere&state=%00",
            "Choose a service from the list",
        ),
    ] {
        let (status, html) = cw.get(&format!("/refunds/requests?{query}")).await;
        assert_eq!(status, Status::UnprocessableEntity, "{query}: {html}");
        assert!(html.contains("There is a problem"), "{query}: {html}");
        assert!(html.contains(message), "{query}: {message} in {html}");
        assert!(html.contains("<title>Error: "), "{query}");
        assert!(
            listed(&html).is_empty() && !html.contains("REF-pb1"),
            "{query}"
        );
    }
    // What was typed is shown again.
    let (_, html) = cw.get("/refunds/requests?from=31/2/2026").await;
    assert!(html.contains("value=\"31/2/2026\""), "{html}");
}

#[tokio::test]
async fn pages_of_fifty_go_back_and_forth_newest_first() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let records: Vec<_> = (0..55)
        .map(|i| journey_record(&format!("p{i:02}"), &format!("REF-{i:02}"), start_time()))
        .collect();
    store_journeys(&app, parking, &records).await;
    let cw = app
        .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
        .await;
    for i in 0..55 {
        request(&app, parking, &format!("p{i:02}"), 100, &cw, "succeeded", i).await;
    }
    let me = As::new(&app, &cw).await;
    let first = me.list("?state=succeeded").await;
    assert!(
        first.contains("55 refund requests, £55.00 in all"),
        "{first}"
    );
    let rows = listed(&first);
    assert_eq!(rows.len(), 50);
    assert_eq!((rows[0].as_str(), rows[49].as_str()), ("REF-54", "REF-05"));
    assert!(!first.contains("rel=\"prev\""));
    let older = between(&first, "<div class=\"govuk-pagination__next\">", "</div>")
        .and_then(|n| between(n, "href=\"", "\""))
        .expect("a link to older requests")
        .to_string();
    assert!(
        older.starts_with("/refunds/requests?state=succeeded&older_than="),
        "{older}"
    );
    let second = me.list(older.trim_start_matches("/refunds/requests")).await;
    assert_eq!(
        listed(&second),
        ["REF-04", "REF-03", "REF-02", "REF-01", "REF-00"]
    );
    assert!(second.contains("55 refund requests"));
    assert!(!second.contains("rel=\"next\""));
    let newer = between(&second, "<div class=\"govuk-pagination__prev\">", "</div>")
        .and_then(|n| between(n, "href=\"", "\""))
        .expect("a link to newer requests")
        .to_string();
    let back = me.list(newer.trim_start_matches("/refunds/requests")).await;
    assert_eq!(listed(&back), rows);
}
