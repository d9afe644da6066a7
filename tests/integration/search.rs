//! Finding a payment through the pages: every filter's meaning, the search box's rules,
//! isolation between services, keyset pages that stay stable while payments arrive, the
//! audit of who viewed a payer's details, refreshing from the platform, and bad input.

use paydesk::identity::permissions::Role;
use paydesk::journeys::record::JourneyRecord;
use paydesk::platform::types::PaymentStatus;
use paydesk::search::query::{self, Form};
use rocket::http::Status;
use time::macros::datetime;
use time::OffsetDateTime;

use crate::common::{location, TestApp};

/// A journey with plain defaults; tests change what they need.
fn journey(reference: &str, created: OffsetDateTime) -> JourneyRecord {
    let payment_id = format!("pay{}", reference.to_lowercase().replace('-', ""));
    crate::common::journey_record(&payment_id, reference, created)
}

async fn store(app: &TestApp, service_id: i64, records: &[JourneyRecord]) {
    crate::common::store_journeys(app, service_id, records).await
}

/// The references a results page lists, in order.
fn found(html: &str) -> Vec<String> {
    html.split("<a class=\"govuk-link\" href=\"/payments/")
        .skip(1)
        // The results' own download link is not a result.
        .filter(|part| !part.starts_with("download?"))
        .filter_map(|part| {
            let start = part.find("\">")? + 2;
            let end = part[start..].find("</a>")? + start;
            Some(part[start..end].to_string())
        })
        .collect()
}

async fn get(app: &TestApp, path: &str) -> (Status, String) {
    let r = app.client.get(path.to_string()).dispatch().await;
    let status = r.status();
    // Tera escapes "/" in attribute values; links read as the browser reads them.
    let html = r.into_string().await.unwrap_or_default();
    (status, html.replace("&#x2F;", "/"))
}

async fn search(app: &TestApp, query: &str) -> Vec<String> {
    let (status, html) = get(app, &format!("/payments?{query}")).await;
    assert_eq!(status, Status::Ok, "{query}");
    assert!(
        !html.contains("govuk-error-summary"),
        "{query} has problems: {html}"
    );
    found(&html)
}

fn t(h: u8) -> OffsetDateTime {
    datetime!(2026-11-19 00:00 UTC) + time::Duration::hours(h as i64)
}

/// A service with a spread of journeys that each filter can pick apart.
async fn seeded() -> TestApp {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    let mut rows = Vec::new();
    let mut r = journey("PERMIT-001", t(1));
    r.email = Some("Jo.Bloggs@Example.org".into());
    r.cardholder_name = Some("Jo Bloggs".into());
    r.amount = 2500;
    rows.push(r);
    let mut r = journey("PERMIT-002", t(2));
    r.status = PaymentStatus::Failed;
    r.state_code = Some("P0010".into());
    r.state_message = Some("Payment method rejected".into());
    r.last_digits = Some("1111".into());
    r.card_brand = Some("master-card".into());
    r.first_digits = Some("510510".into());
    rows.push(r);
    let mut r = journey("PERMIT-003", t(3));
    r.status = PaymentStatus::Failed;
    r.state_code = Some("P0020".into());
    r.amount = 99;
    rows.push(r);
    let mut r = journey("permit-004", t(4));
    r.status = PaymentStatus::Cancelled;
    r.state_code = Some("P0040".into());
    r.metadata = Some(r#"{"ledger_code":"AB12","case_reference":"CASE-77"}"#.into());
    r.case_reference = Some("CASE-77".into());
    rows.push(r);
    let mut r = journey("FINE-005", t(5));
    r.status = PaymentStatus::Started;
    r.email = None;
    r.cardholder_name = None;
    r.card_brand = None;
    r.first_digits = None;
    r.last_digits = None;
    rows.push(r);
    let mut r = journey("FINE-006", t(6));
    r.settled_date = Some("2026-11-20".into());
    r.provider_id = Some("prov_777".into());
    r.amount = 123_456;
    rows.push(r);
    let mut r = journey("FINE-007", t(30));
    r.status = PaymentStatus::Error;
    r.state_code = Some("P0050".into());
    r.email = Some("other@council.gov.uk".into());
    rows.push(r);
    store(&app, a, &rows).await;
    app
}

async fn viewer(app: &TestApp, service: &str) {
    let p = app
        .person(
            &format!("viewer-{service}@example.gov.uk"),
            Role::Viewer,
            Some(service),
        )
        .await;
    app.sign_in(&p).await;
}

#[tokio::test]
async fn every_filter_means_what_it_says() {
    let app = seeded().await;
    viewer(&app, "parking").await;
    let all = [
        "FINE-007",
        "FINE-006",
        "FINE-005",
        "permit-004",
        "PERMIT-003",
        "PERMIT-002",
        "PERMIT-001",
    ];
    assert_eq!(
        search(&app, "").await,
        all,
        "newest first, nothing filtered"
    );
    let cases: &[(&str, &[&str])] = &[
        // Reference: exact in any case, or a prefix.
        ("reference=permit-001", &["PERMIT-001"]),
        ("reference=PERMIT-004", &["permit-004"]),
        ("reference=permit-00", &[]),
        (
            "reference=permit-00&reference_match=prefix",
            &["permit-004", "PERMIT-003", "PERMIT-002", "PERMIT-001"],
        ),
        ("reference=50%25&reference_match=prefix", &[]),
        // Payer email and cardholder name: contains, any case.
        ("email=bloggs@EXAMPLE", &["PERMIT-001"]),
        ("email=council", &["FINE-007"]),
        ("cardholder=jo%20blo", &["PERMIT-001"]),
        // Card digits and brand.
        ("last4=1111", &["PERMIT-002"]),
        ("first6=510510", &["PERMIT-002"]),
        ("brand=master-card", &["PERMIT-002"]),
        // Status groups, several at once.
        ("status=declined", &["PERMIT-002"]),
        ("status=timed_out", &["PERMIT-003"]),
        ("status=cancelled", &["permit-004"]),
        ("status=in_progress", &["FINE-005"]),
        ("status=error", &["FINE-007"]),
        ("status=success", &["FINE-006", "PERMIT-001"]),
        (
            "status=declined&status=timed_out",
            &["PERMIT-003", "PERMIT-002"],
        ),
        // Amounts in pounds, both ends inclusive.
        ("min_amount=25&max_amount=25.00", &["PERMIT-001"]),
        ("max_amount=0.99", &["PERMIT-003"]),
        // (Thousands separators are refused by the one money rule; see money::parse.)
        ("min_amount=%C2%A31000", &["FINE-006"]),
        // Dates: the clock says 20 November 2026 (London is on GMT then).
        ("period=today", &["FINE-007"]),
        (
            "period=yesterday",
            &[
                "FINE-006",
                "FINE-005",
                "permit-004",
                "PERMIT-003",
                "PERMIT-002",
                "PERMIT-001",
            ],
        ),
        (
            "from_date=19/11/2026&from_time=02:00&to_date=19/11/2026&to_time=04:00",
            &["permit-004", "PERMIT-003", "PERMIT-002"],
        ),
        ("date_field=settled&from_date=20/11/2026", &["FINE-006"]),
        ("date_field=settled&period=yesterday", &[]),
        // Metadata and case reference.
        ("meta_key=ledger_code&meta_value=ab12", &["permit-004"]),
        ("meta_key=ledger_code", &["permit-004"]),
        ("meta_key=ledger_code&meta_value=zz", &[]),
        ("case_reference=case-77", &["permit-004"]),
        // Combinations.
        ("status=success&brand=visa&min_amount=100", &["FINE-006"]),
        (
            "brand=visa&min_amount=10&max_amount=25",
            &["FINE-007", "permit-004", "PERMIT-001"],
        ),
        ("email=example&status=success", &["FINE-006", "PERMIT-001"]),
        ("cardholder=sam&status=declined", &["PERMIT-002"]),
        (
            "reference=fine&reference_match=prefix&status=success",
            &["FINE-006"],
        ),
        (
            "sort=amount_high&status=success",
            &["FINE-006", "PERMIT-001"],
        ),
        (
            "sort=oldest&reference=permit&reference_match=prefix",
            &["PERMIT-001", "PERMIT-002", "PERMIT-003", "permit-004"],
        ),
    ];
    for (q, expected) in cases {
        assert_eq!(&search(&app, q).await, expected, "{q}");
        // The count (its own query, often through another index) agrees with the rows.
        let (_, html) = get(&app, &format!("/payments?{q}")).await;
        let counted = match expected.len() {
            1 => "1 payment".to_string(),
            n => format!("{n} payments"),
        };
        assert!(html.contains(&format!(">{counted}</h2>")), "{q}: {counted}");
    }
    // Unknown parameters change nothing.
    assert_eq!(search(&app, "colour=blue&page=7").await, all);
    // The count says how many matched.
    let (_, html) = get(&app, "/payments?status=success").await;
    assert!(html.contains("2 payments"), "{html}");
}

#[tokio::test]
async fn the_search_box_understands_what_it_is_given() {
    let app = seeded().await;
    viewer(&app, "parking").await;
    let cases: &[(&str, &[&str])] = &[
        (
            "q=4242",
            &[
                "FINE-007",
                "FINE-006",
                "permit-004",
                "PERMIT-003",
                "PERMIT-001",
            ],
        ),
        ("q=1111", &["PERMIT-002"]),
        ("q=510510", &["PERMIT-002"]),
        ("q=jo.bloggs@example.org", &["PERMIT-001"]),
        ("q=JO.BLOGGS@EXAMPLE.ORG", &["PERMIT-001"]),
        ("q=@council", &["FINE-007"]),
        ("q=permit-001", &["PERMIT-001"]),
        ("q=paypermit003", &["PERMIT-003"]),
        ("q=case-77", &["permit-004"]),
        ("q=prov_777", &["FINE-006"]),
        ("q=nothing-like-this", &[]),
        ("q=%20PERMIT-002%20", &["PERMIT-002"]),
    ];
    for (q, expected) in cases {
        assert_eq!(&search(&app, q).await, expected, "{q}");
    }
    let (_, html) = get(&app, "/payments?q=1111").await;
    assert!(
        html.contains("card number ends 1111"),
        "says what it understood"
    );
}

/// The box finds people as a caseworker types them: a cardholder's whole name or surname, part
/// of an email without its @, a reference without its prefix, and the case reference typed
/// for a refund. (Issue 18 item 6: each of these found nothing before.)
#[tokio::test]
async fn the_search_box_finds_people_and_references_as_typed() {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    let mut rows = Vec::new();
    let mut r = journey("PRK-05461673", t(1));
    r.email = Some("priya.harris88@example.org".into());
    r.cardholder_name = Some("Priya Harris".into());
    rows.push(r);
    let mut r = journey("PRK-05461674", t(2));
    r.email = Some("d.harrison@council.example".into());
    r.cardholder_name = Some("Dev Harrison".into());
    rows.push(r);
    let mut r = journey("PRK-99000001", t(3));
    r.email = Some("sam@example.org".into());
    r.cardholder_name = Some("Sam Okafor".into());
    r.refund_status = Some("available".into());
    r.refund_available = Some(1000);
    rows.push(r);
    store(&app, a, &rows).await;
    // A refund of the third payment, with its own case reference.
    let asker = app
        .person(
            "caseworker@example.gov.uk",
            Role::Caseworker,
            Some("parking"),
        )
        .await;
    let third = paydesk::store::journeys::journey(&app.state.db, a, "payprk99000001")
        .await
        .unwrap()
        .expect("stored");
    let asked = paydesk::refunds::request(
        &app.state.db,
        app.state.clock.now(),
        &paydesk::refunds::Staff {
            id: asker.id,
            email: asker.email.clone(),
            name: "Case Worker".into(),
            ip: None,
        },
        &paydesk::refunds::Ask {
            service_id: a,
            journey_id: third.id,
            payment_id: third.payment_id.clone(),
            how_much: Ok(paydesk::refunds::HowMuch::Partial(100)),
            reason: "duplicate".into(),
            case_reference: "COMPLAINT-4411".into(),
            form_key: "search-box-form".into(),
            ..Default::default()
        },
    )
    .await
    .expect("refund requested");
    assert!(
        matches!(asked, paydesk::refunds::Asked::Made { .. }),
        "{asked:?}"
    );
    viewer(&app, "parking").await;
    let cases: &[(&str, &[&str])] = &[
        ("q=Priya%20Harris", &["PRK-05461673"]),
        ("q=priya%20harris", &["PRK-05461673"]),
        // A surname finds both spellings that contain it, newest first.
        ("q=Harris", &["PRK-05461674", "PRK-05461673"]),
        ("q=harrison", &["PRK-05461674"]),
        ("q=Okafor", &["PRK-99000001"]),
        // Part of an email, no @.
        ("q=priya.harris", &["PRK-05461673"]),
        ("q=council.example", &["PRK-05461674"]),
        // A reference without its prefix, and with it.
        ("q=05461673", &["PRK-05461673"]),
        ("q=PRK-05461673", &["PRK-05461673"]),
        // A refund's case reference, in any case.
        ("q=complaint-4411", &["PRK-99000001"]),
        ("q=COMPLAINT-4411", &["PRK-99000001"]),
        ("q=Nobody%20Here", &[]),
    ];
    for (q, expected) in cases {
        assert_eq!(&search(&app, q).await, expected, "{q}");
    }
    // The same words combine with filters: the surname among payments of 1 pound or less.
    assert_eq!(
        search(&app, "q=Harris&max_amount=1").await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&app, "q=Harris&min_amount=10&max_amount=10").await,
        vec!["PRK-05461674", "PRK-05461673"]
    );
    let (_, html) = get(&app, "/payments?q=Harris").await;
    assert!(
        html.contains("or payer email or cardholder name contains it"),
        "says what it looked for"
    );
    assert!(
        html.contains("with or without its prefix"),
        "the hint says what the box matches"
    );
}

#[tokio::test]
async fn another_services_payments_are_never_seen() {
    let app = seeded().await;
    let b = app.service("fines").await;
    let mut secret = journey("PERMIT-001", t(7));
    secret.payment_id = "other-service-payment".into();
    secret.email = Some("jo.bloggs@example.org".into());
    store(&app, b, &[secret]).await;
    viewer(&app, "parking").await;
    // Same reference and email in the other service: only this service's row, and the
    // count does not include the other.
    assert_eq!(search(&app, "q=PERMIT-001").await, ["PERMIT-001"]);
    assert_eq!(
        search(&app, "q=jo.bloggs@example.org").await,
        ["PERMIT-001"]
    );
    let (_, html) = get(&app, "/payments?reference=permit-001").await;
    assert!(html.contains("1 payment"), "{html}");
    // Asking for the other service by name finds nothing and names nothing.
    let (status, html) = get(&app, "/payments?service=fines").await;
    assert_eq!(status, Status::Ok);
    assert!(found(&html).is_empty());
    assert!(
        !html.contains("Service fines"),
        "the other service is not named"
    );
    // Its journey page is not found, by id or by naming the service.
    let (status, _) = get(&app, "/payments/other-service-payment").await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = get(&app, "/payments/other-service-payment?service=fines").await;
    assert_eq!(status, Status::NotFound);
    let r = app
        .client
        .post("/payments/other-service-payment/refresh")
        .header(rocket::http::ContentType::Form)
        .body(crate::common::form_body(&[
            ("csrf_token", &app.token()),
            ("service", "fines"),
        ]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);
    // A platform admin sees both.
    let r = app
        .post_form("/logout", &[("csrf_token", &app.token())])
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    app.sign_in(&admin).await;
    assert_eq!(search(&app, "q=jo.bloggs@example.org").await.len(), 2);
}

#[tokio::test]
async fn pages_neither_skip_nor_repeat_while_payments_arrive() {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    let b = app.service("fines").await;
    // 130 journeys over two services, some sharing a creation time (ties break on id).
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    for i in 0..130 {
        let mut r = journey(
            &format!("REF-{i:03}"),
            t(0) + time::Duration::minutes((i / 2) as i64),
        );
        r.payment_id = format!("p{i:03}");
        if i % 3 == 0 {
            rb.push(r);
        } else {
            ra.push(r);
        }
    }
    store(&app, a, &ra).await;
    store(&app, b, &rb).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    app.sign_in(&admin).await;

    let (_, first) = get(&app, "/payments").await;
    let page1 = found(&first);
    assert_eq!(page1.len(), 50);
    // New payments arrive before the next page is asked for.
    let mut newer = Vec::new();
    for i in 0..7 {
        let mut r = journey(&format!("NEW-{i}"), t(20) + time::Duration::minutes(i));
        r.payment_id = format!("new{i}");
        newer.push(r);
    }
    store(&app, a, &newer).await;
    let next = link(&first, "next").expect("a next page");
    let (_, second) = get(&app, &next).await;
    let page2 = found(&second);
    let mut seen = page1.clone();
    let mut html = second.clone();
    let mut pages = vec![page2.clone()];
    while let Some(next) = link(&html, "next") {
        let (_, h) = get(&app, &next).await;
        pages.push(found(&h));
        html = h;
    }
    for p in &pages {
        seen.extend(p.iter().cloned());
    }
    let expected: Vec<String> = (0..130).rev().map(|i| format!("REF-{i:03}")).collect();
    // Ties (two per minute) come highest id first, and ids follow insertion order within a
    // service; compare as sets plus the length, then check no repeats.
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(
        sorted_seen, sorted_expected,
        "every original row exactly once"
    );
    assert!(
        !seen.iter().any(|r| r.starts_with("NEW-")),
        "new rows only on page one"
    );
    // Previous from page two gives page one as it was.
    let prev = link(&second, "prev").expect("a previous page");
    let (_, back) = get(&app, &prev).await;
    assert_eq!(found(&back), page1);
    // The first page now starts with the newcomers.
    let (_, fresh) = get(&app, "/payments").await;
    assert_eq!(found(&fresh)[0], "NEW-6");
}

#[tokio::test]
async fn counts_stop_at_the_cap() {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    let rows: Vec<JourneyRecord> = (0..12)
        .map(|i| {
            let mut r = journey(&format!("C-{i}"), t(1) + time::Duration::minutes(i));
            r.payment_id = format!("c{i}");
            r
        })
        .collect();
    store(&app, a, &rows).await;
    let s = query::parse(
        &Form::from_query(""),
        app.state.clock.now(),
        app.state.config.time_zone,
    )
    .unwrap();
    let plan = paydesk::store::search::plan(&app.state.db, &[a], &s, 51, 5, &|_| false)
        .await
        .unwrap();
    let count = paydesk::store::search::fetch_count(&app.state.db, &plan.count)
        .await
        .unwrap();
    assert_eq!(count, 6, "counted up to the cap and one more, not all 12");
    let plan = paydesk::store::search::plan(&app.state.db, &[a], &s, 51, 100, &|_| false)
        .await
        .unwrap();
    assert_eq!(
        paydesk::store::search::fetch_count(&app.state.db, &plan.count)
            .await
            .unwrap(),
        12
    );
}

#[tokio::test]
async fn each_page_shows_its_own_form_and_escapes_what_payers_typed() {
    let app = seeded().await;
    let fines = app.service("fines").await;
    let mut odd = journey("FINE-<b>9</b>&amp;", t(8));
    odd.payment_id = "payodd".into();
    odd.email = Some("\"quoted\"<i>@example.org".into());
    store(&app, fines, &[odd]).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    app.sign_in(&admin).await;
    let (_, html) = get(&app, "/payments?reference=FINE-%3Cb%3E9%3C%2Fb%3E%26amp%3B").await;
    // What payers typed is text in the results, never markup.
    assert!(
        html.contains(">FINE-&lt;b&gt;9&lt;/b&gt;&amp;amp;</a>"),
        "{html}"
    );
    assert!(html.contains("&quot;quoted&quot;&lt;i&gt;@example.org"));
    assert!(!html.contains("<b>9") && !html.contains("<i>@"));
    // Every service of the admin's is a choice; the same page twice reads the same.
    assert!(html.contains("value=\"fines\"") && html.contains("value=\"parking\""));
    assert_eq!(
        get(&app, "/payments?reference=FINE-%3Cb%3E9%3C%2Fb%3E%26amp%3B")
            .await
            .1,
        html
    );
    // Each search shows its own values and problems, however often the form was shown.
    for (q, shown, not_shown) in [
        ("reference=FIRST", "value=\"FIRST\"", "value=\"SECOND\""),
        ("reference=SECOND", "value=\"SECOND\"", "value=\"FIRST\""),
        (
            "reference=FIRST&last4=12",
            "Last 4 digits must be 4 numbers",
            "value=\"SECOND\"",
        ),
        ("reference=FIRST", "value=\"FIRST\"", "govuk-error-summary"),
    ] {
        let (_, html) = get(&app, &format!("/payments?{q}")).await;
        assert!(html.contains(shown), "{q}: {shown}");
        assert!(!html.contains(not_shown), "{q}: {not_shown}");
    }
    // Someone with one service sees the same page without the other service as a choice.
    app.post_form("/logout", &[("csrf_token", &app.token())])
        .await;
    viewer(&app, "parking").await;
    let (_, html) = get(&app, "/payments?reference=FINE-%3Cb%3E9%3C%2Fb%3E%26amp%3B").await;
    assert!(!html.contains("value=\"fines\""), "{html}");
    assert!(found(&html).is_empty());
}

#[tokio::test]
async fn bad_input_keeps_the_form_and_says_what_is_wrong() {
    let app = seeded().await;
    viewer(&app, "parking").await;
    let cases = [
        ("from_date=31/2/2026", "From date must be a real date"),
        (
            "min_amount=%C2%A312.3.4",
            "Minimum amount must be an amount in pounds",
        ),
        ("last4=12a4", "Last 4 digits must be 4 numbers"),
        ("status=paid", "Choose statuses from the list"),
        (
            "to_date=1/1/2026&from_date=2/1/2026",
            "To date must be the same as or after",
        ),
    ];
    for (q, message) in cases {
        let (status, html) = get(&app, &format!("/payments?{q}")).await;
        assert_eq!(status, Status::Ok, "{q}");
        assert!(html.contains("govuk-error-summary"), "{q}");
        assert!(html.contains(message), "{q}: {message}");
        assert!(found(&html).is_empty(), "{q}: no results under a problem");
    }
    // The form is shown as typed.
    let (_, html) = get(&app, "/payments?min_amount=%C2%A312.3.4&reference=KEEP-ME").await;
    assert!(html.contains("value=\"£12.3.4\""));
    assert!(html.contains("value=\"KEEP-ME\""));
    // A 5 kB query, SQL and HTML in the box: a message or an empty result, never a 500.
    let long = "x".repeat(5000);
    let (status, html) = get(&app, &format!("/payments?q={long}")).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Search must be 200 characters or fewer"));
    let (status, html) = get(&app, "/payments?q=a%00b&email=%00").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("must only contain letters"));
    for q in [
        "'%20OR%201=1--",
        "%3Cscript%3Ealert(1)%3C/script%3E",
        "%22%20OR%20%22",
        "%25",
        "_",
    ] {
        let (status, html) = get(&app, &format!("/payments?q={q}&email={q}&cardholder={q}")).await;
        assert_eq!(status, Status::Ok, "{q}");
        assert!(!html.contains("<script>alert"), "{q}");
        assert!(found(&html).is_empty(), "{q}");
    }
    // Bad page positions start again at the first page.
    assert_eq!(search(&app, "after=garbage").await.len(), 7);
    // A journey id that does not exist, or is odd, is simply not found.
    for id in ["nope", "%00", "..%2F..%2Fetc"] {
        let (status, _) = get(&app, &format!("/payments/{id}")).await;
        assert_eq!(status, Status::NotFound, "{id}");
    }
}

#[tokio::test]
async fn viewing_a_journey_is_audited_and_shows_its_timeline() {
    let app = seeded().await;
    let p = app
        .person(
            "caseworker@example.gov.uk",
            Role::Caseworker,
            Some("parking"),
        )
        .await;
    app.sign_in(&p).await;
    // Opened from a search, the journey's "Back" link returns to that search.
    let (_, list) = get(&app, "/payments?status=cancelled&sort=oldest").await;
    let href = list
        .split("href=\"/payments/paypermit004")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|q| format!("/payments/paypermit004{}", q.replace("&amp;", "&")))
        .expect("a link to the journey");
    let (status, html) = get(&app, &href).await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("href=\"/payments?status=cancelled&amp;sort=oldest\""),
        "back to the search: {href}"
    );
    for shown in [
        "permit-004",
        "P0040",
        "ledger_code",
        "AB12",
        "CASE-77",
        "424242",
        "4242",
        "Payment created",
        "First seen by paydesk",
        "£10.00",
    ] {
        assert!(html.contains(shown), "the journey page shows {shown}");
    }
    let audit = paydesk::store::audit::by_action(&app.state.db, "sensitive_read")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "one view, one entry");
    assert_eq!(audit[0].target, "payment:paypermit004");
    assert_eq!(audit[0].actor_type, "staff");
    assert_eq!(audit[0].actor_id, p.id.to_string());
}

#[tokio::test]
async fn refresh_from_a_service_without_a_platform_says_so_and_is_audited() {
    let app = seeded().await;
    viewer(&app, "parking").await;
    let r = app
        .client
        .post("/payments/paypermit001/refresh")
        .header(rocket::http::ContentType::Form)
        .body(crate::common::form_body(&[
            ("csrf_token", &app.token()),
            ("service", "parking"),
        ]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("The platform did not answer"));
    let audit = paydesk::store::audit::by_action(&app.state.db, "payment_refreshed")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "failure");
    // Without the CSRF token nothing happens.
    let r = app
        .client
        .post("/payments/paypermit001/refresh")
        .header(rocket::http::ContentType::Form)
        .body(crate::common::form_body(&[("service", "parking")]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);
}

/// Press "Refresh from platform": (status, where it sends the browser).
async fn post_refresh(app: &TestApp, payment_id: &str) -> (Status, String) {
    let r = app
        .client
        .post(format!("/payments/{payment_id}/refresh"))
        .header(rocket::http::ContentType::Form)
        .body(crate::common::form_body(&[
            ("csrf_token", &app.token()),
            ("service", "parking"),
        ]))
        .dispatch()
        .await;
    (r.status(), location(&r))
}

#[tokio::test]
async fn refresh_from_the_platform_brings_the_journey_up_to_date() {
    use crate::common::sandbox::SandboxProcess;
    let sandbox = SandboxProcess::start_with(&["--seed", "3", "--accounts", "1"]);
    let app = TestApp::new().await;
    sandbox.connect(&app, "parking", 1).await;
    let created = sandbox
        .create_payment(&SandboxProcess::api_key(1), 4200, "REFRESH-ME")
        .await;
    let payment_id = created["payment_id"].as_str().unwrap().to_string();
    viewer(&app, "parking").await;
    // Not yet known to paydesk: nothing to refresh, so not found.
    assert_eq!(
        post_refresh(&app, &payment_id).await,
        (Status::NotFound, String::new())
    );
    let service = paydesk::services::by_slug(&app.state.db, "parking")
        .await
        .unwrap()
        .unwrap();
    let client = app
        .state
        .platforms
        .client(&app.state.config, &service)
        .unwrap();
    paydesk::journeys::sync::refresh_with(
        &app.state.db,
        app.state.clock.now(),
        client.as_ref(),
        service.id,
        &payment_id,
    )
    .await
    .unwrap();
    assert_eq!(search(&app, "q=refresh-me").await, ["REFRESH-ME"]);
    // The payer pays; paydesk has not heard yet. A caseworker refreshes.
    sandbox.advance_payment(&payment_id, "success", None).await;
    let (status, to) = post_refresh(&app, &payment_id).await;
    assert_eq!(status, Status::SeeOther);
    assert!(to.contains("notice=refreshed"), "{to}");
    let (status, html) = get(&app, &to).await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("The payment has been read again from the platform."));
    assert!(
        html.contains("refreshed the payment from the platform"),
        "a staff event in the timeline"
    );
    assert_eq!(
        search(&app, "q=refresh-me&status=success").await,
        ["REFRESH-ME"]
    );
    let audit = paydesk::store::audit::by_action(&app.state.db, "payment_refreshed")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "success");
    assert!(
        audit[0].details.contains("\"status_after\":\"success\""),
        "{}",
        audit[0].details
    );
    // A refund made at the platform directly: the state is the same, but the timeline gains
    // the refund, so the page does not say that nothing had changed.
    let made = sandbox
        .refund_directly(&SandboxProcess::api_key(1), &payment_id, 1_000, 4_200)
        .await;
    assert!((200..300).contains(&made), "refund made: {made}");
    let (_, to) = post_refresh(&app, &payment_id).await;
    assert!(to.contains("notice=refreshed"), "new events are news: {to}");
    let (_, html) = get(&app, &to).await;
    assert!(!html.contains("Nothing had changed"), "{html}");
    // Nothing new at all: now it says so.
    let (_, to) = post_refresh(&app, &payment_id).await;
    assert!(to.contains("notice=unchanged"), "{to}");
}

#[tokio::test]
async fn a_service_admin_cancels_a_payment_still_in_progress() {
    use crate::common::sandbox::SandboxProcess;
    let sandbox = SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]);
    let app = TestApp::new().await;
    sandbox.connect(&app, "parking", 1).await;
    let (payment_id, _) = sandbox
        .payment_in(&app, "parking", 1, 900, "STUCK-ON-CARD-PAGE", None)
        .await;
    // A viewer sees no cancel button and may not cancel.
    viewer(&app, "parking").await;
    let (_, html) = get(&app, &format!("/payments/{payment_id}")).await;
    assert!(!html.contains("Cancel this payment"));
    let (status, _) = get(
        &app,
        &format!("/payments/{payment_id}/cancel?service=parking"),
    )
    .await;
    assert_eq!(status, Status::Forbidden);
    app.post_form("/logout", &[("csrf_token", &app.token())])
        .await;
    // A service admin does.
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    let (_, html) = get(&app, &format!("/payments/{payment_id}")).await;
    assert!(html.contains("Cancel this payment"));
    let (status, html) = get(
        &app,
        &format!("/payments/{payment_id}/cancel?service=parking"),
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("This cannot be undone"));
    let r = app
        .post_form(
            &format!("/payments/{payment_id}/cancel"),
            &[("csrf_token", &app.token()), ("service", "parking")],
        )
        .await;
    assert_eq!(r.status(), Status::SeeOther);
    let to = location(&r);
    assert!(to.contains("notice=cancelled"), "{to}");
    let (_, html) = get(&app, &to).await;
    assert!(html.contains("The payment has been cancelled."));
    assert!(html.contains("cancelled the payment"), "in the timeline");
    assert!(!html.contains("Cancel this payment"), "finished now");
    assert_eq!(
        search(&app, "q=stuck-on-card-page&status=cancelled").await,
        ["STUCK-ON-CARD-PAGE"]
    );
    let audit = paydesk::store::audit::by_action(&app.state.db, "payment_cancelled")
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
}

#[tokio::test]
async fn a_cancel_without_a_platform_is_audited_as_a_failed_cancel() {
    let app = seeded().await;
    let admin = app
        .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&admin).await;
    // FINE-005 is still in progress, but its service has no platform account to cancel it with.
    let r = app
        .post_form(
            "/payments/payfine005/cancel",
            &[("csrf_token", &app.token()), ("service", "parking")],
        )
        .await;
    assert_eq!(r.status(), Status::BadGateway);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("The platform did not answer"));
    let cancels = paydesk::store::audit::by_action(&app.state.db, "payment_cancelled")
        .await
        .unwrap();
    assert_eq!(cancels.len(), 1, "audited as a cancel");
    assert_eq!(cancels[0].outcome, "failure");
    assert_eq!(cancels[0].target, "payment:payfine005");
    assert_eq!(cancels[0].actor_id, admin.id.to_string());
    let refreshes = paydesk::store::audit::by_action(&app.state.db, "payment_refreshed")
        .await
        .unwrap();
    assert!(refreshes.is_empty(), "not as a refresh");
}

/// A results page's Next or Previous link (`rel`), as the browser follows it.
fn link(html: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\"");
    html.contains(&marker).then_some(())?;
    html.split(&marker)
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| s.trim().trim_end_matches('"').replace("&amp;", "&"))
}

#[tokio::test]
async fn a_metadata_value_or_settled_day_shared_by_thousands_pages_in_order() {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    // 6,300 payments, two to each second; all but every seventh carry the same ledger code
    // (5,400: too many to look up, so the search walks the metadata rows in time order).
    let rows: Vec<JourneyRecord> = (0..6_300u32)
        .map(|i| {
            let mut r = journey(
                &format!("LC-{i:05}"),
                t(0) + time::Duration::seconds((i / 2) as i64),
            );
            let code = if i % 7 == 0 { "OTHER" } else { "BIG" };
            r.metadata = Some(format!(r#"{{"ledger_code":"{code}"}}"#));
            // The same 5,400 settle the next day: a settled range that walks too.
            r.settled_date = (i % 7 != 0).then(|| "2026-11-20".to_string());
            if i % 5 == 0 {
                r.status = PaymentStatus::Failed;
                r.state_code = Some("P0010".into());
            }
            r
        })
        .collect();
    for chunk in rows.chunks(500) {
        store(&app, a, chunk).await;
    }
    viewer(&app, "parking").await;
    let newest_first = |keep: &dyn Fn(u32) -> bool| -> Vec<String> {
        (0..6_300u32)
            .rev()
            .filter(|i| i % 7 != 0 && keep(*i))
            .map(|i| format!("LC-{i:05}"))
            .collect()
    };
    for (q, want) in [
        (
            "meta_key=ledger_code&meta_value=big",
            newest_first(&|_| true),
        ),
        (
            "meta_key=ledger_code&meta_value=BIG&status=declined",
            newest_first(&|i| i % 5 == 0),
        ),
        (
            "date_field=settled&from_date=20/11/2026&to_date=20/11/2026",
            newest_first(&|_| true),
        ),
    ] {
        let (status, first) = get(&app, &format!("/payments?{q}")).await;
        assert_eq!(status, Status::Ok);
        let counted = format!(
            ">{} payments</h2>",
            match want.len() {
                5_400 => "5,400",
                1_080 => "1,080",
                n => panic!("unexpected {n}"),
            }
        );
        assert!(first.contains(&counted), "{q}: {counted}");
        let mut seen = found(&first);
        let mut html = first.clone();
        for _ in 0..2 {
            let next = link(&html, "next").expect("a next page");
            let (_, h) = get(&app, &next).await;
            seen.extend(found(&h));
            html = h;
        }
        assert_eq!(
            seen,
            want[..150],
            "{q}: three pages, newest first, none twice"
        );
        // Previous from the third page gives the second as it was.
        let prev = link(&html, "prev").expect("a previous page");
        let (_, back) = get(&app, &prev).await;
        assert_eq!(found(&back), want[50..100], "{q}: back to page two");
    }
}

#[tokio::test]
async fn a_box_search_leaves_the_filters_closed() {
    let app = seeded().await;
    viewer(&app, "parking").await;
    let closed = "<details class=\"govuk-details\">";
    let open = "<details class=\"govuk-details\" open>";
    // The box alone: the results come first, the panel stays shut.
    let (status, html) = get(&app, "/payments?q=permit-001").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains(closed) && !html.contains(open), "{html}");
    // A filter inside the panel, or a problem with one, opens it.
    let (_, html) = get(&app, "/payments?q=permit&status=success").await;
    assert!(html.contains(open), "{html}");
    let (_, html) = get(&app, "/payments?last4=12").await;
    assert!(html.contains(open), "{html}");
}

#[tokio::test]
async fn a_metadata_value_shared_by_hundreds_is_walked_counted_and_added_up() {
    let app = TestApp::new().await;
    let a = app.service("parking").await;
    // 900 payments, one a second; all but every ninth carry the same ledger code (800: more
    // than a metadata value is looked up for, fewer than a probe counts exactly).
    let rows: Vec<JourneyRecord> = (0..900u32)
        .map(|i| {
            let mut r = journey(
                &format!("MC-{i:04}"),
                t(0) + time::Duration::seconds(i as i64),
            );
            let code = if i % 9 == 0 { "OTHER" } else { "MID" };
            r.metadata = Some(format!(r#"{{"ledger_code":"{code}"}}"#));
            r.amount = 100 + i as i64;
            r
        })
        .collect();
    for chunk in rows.chunks(300) {
        store(&app, a, chunk).await;
    }
    viewer(&app, "parking").await;
    let want: Vec<String> = (0..900u32)
        .rev()
        .filter(|i| i % 9 != 0)
        .map(|i| format!("MC-{i:04}"))
        .collect();
    let (status, first) = get(&app, "/payments?meta_key=ledger_code&meta_value=mid").await;
    assert_eq!(status, Status::Ok);
    assert!(first.contains(">800 payments</h2>"), "the exact count");
    let pence: i64 = (0..900i64).filter(|i| i % 9 != 0).map(|i| 100 + i).sum();
    let total = format!(
        "£{},{:03}.{:02}",
        pence / 100_000,
        (pence / 100) % 1000,
        pence % 100
    );
    assert!(first.contains(&total), "the total {total}");
    let next = link(&first, "next").expect("a next page");
    let (_, second) = get(&app, &next).await;
    let mut seen = found(&first);
    seen.extend(found(&second));
    assert_eq!(seen, want[..100], "two pages, newest first, none twice");
}
