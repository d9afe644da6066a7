//! Reconciliation exports through the pages and the command line: the columns and their
//! order, refund rows as negative movements, metadata columns, local days at month and
//! summer-time boundaries, the month-end pack equal to the rows' sums, neutralised formula
//! cells, a strict RFC 4180 round trip, no card number beyond first 6 / last 4, who may
//! export and download, background exports (progress, gzip, resuming, deletion) and the
//! audit entries.

use std::io::Read;

use paydesk::identity::permissions::Role;
use paydesk::journeys::record::{JourneyRecord, RefundRecord};
use paydesk::platform::types::{PaymentStatus, RefundStatus};
use paydesk::store::journeys as journey_store;
use rocket::http::{ContentType, Status};
use serde_json::Value;
use time::macros::datetime;
use time::OffsetDateTime;

use crate::common::{form_body, location, TestApp};

// ---- a strict RFC 4180 reader ----------------------------------------------------------------

/// Parse CSV strictly: records end with CRLF; a field is either unquoted (no quote, comma,
/// CR or LF inside) or quoted with inner quotes doubled and nothing after the closing quote
/// but a comma or CRLF; every record has as many fields as the first.
pub(crate) fn strict_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let b = text.as_bytes();
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut i = 0;
    if b.is_empty() {
        return Ok(records);
    }
    loop {
        let mut field = Vec::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(format!("unterminated quoted field at byte {i}")),
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && b[i] != b',' && b[i] != b'\r' {
                if b[i] == b'"' || b[i] == b'\n' {
                    return Err(format!("bare quote or LF in an unquoted field at byte {i}"));
                }
                field.push(b[i]);
                i += 1;
            }
        }
        record.push(String::from_utf8(field).map_err(|e| e.to_string())?);
        match (b.get(i), b.get(i + 1)) {
            (Some(b','), _) => i += 1,
            (Some(b'\r'), Some(b'\n')) => {
                i += 2;
                let r = std::mem::take(&mut record);
                if let Some(first) = records.first() {
                    let first: &Vec<String> = first;
                    if first.len() != r.len() {
                        return Err(format!(
                            "record {} has {} fields, the header {}",
                            records.len() + 1,
                            r.len(),
                            first.len()
                        ));
                    }
                }
                records.push(r);
                if i == b.len() {
                    return Ok(records);
                }
            }
            (None, _) => return Err("the last record does not end with CRLF".into()),
            _ => return Err(format!("junk after a field at byte {i}")),
        }
    }
}

#[test]
fn the_strict_reader_is_strict() {
    assert!(strict_csv("a,b\r\n1,2\r\n").is_ok());
    assert!(strict_csv("a,b\r\n1,2\n").is_err());
    assert!(strict_csv("a,b\r\n1\r\n").is_err());
    assert!(strict_csv("a,b\r\n\"x\"y,2\r\n").is_err());
    assert!(strict_csv("a,b\r\nx\"y,2\r\n").is_err());
    assert!(strict_csv("a,b\r\n\"x,2\r\n").is_err());
    assert_eq!(
        strict_csv("a\r\n\"q\"\"\r\nz\"\r\n").unwrap()[1][0],
        "q\"\r\nz"
    );
}

// ---- fixtures --------------------------------------------------------------------------------

pub(crate) fn journey(reference: &str, created: OffsetDateTime) -> JourneyRecord {
    let mut j = crate::common::journey_record(
        &format!("pay-{}", reference.to_lowercase()),
        reference,
        created,
    );
    j.email = Some("payer@example.org".into());
    j.cardholder_name = Some("Sam Payer".into());
    j.provider_id = Some(format!("pr-{reference}"));
    j
}

pub(crate) async fn store(app: &TestApp, service_id: i64, records: &[JourneyRecord]) {
    crate::common::store_journeys(app, service_id, records).await
}

async fn store_refunds(app: &TestApp, service_id: i64, refunds: &[RefundRecord]) {
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.unwrap();
    journey_store::upsert_refunds(&mut tx, service_id, refunds, now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn refund(id: &str, payment: &str, amount: i64, created: OffsetDateTime) -> RefundRecord {
    RefundRecord {
        refund_id: id.into(),
        payment_id: payment.into(),
        amount,
        status: RefundStatus::Success,
        created_at: created,
        settled_date: None,
    }
}

/// A refund paydesk made: a request asked for by `asker` and approved by `approver`, sent as
/// platform refund `refund_id`.
async fn paydesk_request(
    app: &TestApp,
    service_id: i64,
    payment_id: &str,
    refund_id: &str,
    amount: i64,
    asker: i64,
    approver: i64,
) {
    use paydesk::store::refunds as rs;
    let j = journey_store::journey(&app.state.db, service_id, payment_id)
        .await
        .unwrap()
        .expect("journey");
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.unwrap();
    let id = rs::insert(
        &mut tx,
        &rs::NewRequest {
            service_id,
            journey_id: j.id,
            payment_id,
            amount,
            reason: "duplicate",
            comment: None,
            case_reference: None,
            state: "awaiting_approval",
            form_key: refund_id,
            requested_by: asker,
            approval_required: true,
            expires_at: now + 86_400_000_000,
        },
        now,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        rs::approve(&mut tx, id, approver, amount, None, now, now + 1_000_000)
            .await
            .unwrap()
    );
    assert!(rs::start_submit(&mut tx, id, now).await.unwrap());
    assert!(rs::mark_submitted(&mut tx, id, refund_id, now)
        .await
        .unwrap());
    tx.commit().await.unwrap();
}

/// An app with a "parking" service and a finance person who may export from it.
pub(crate) async fn parking_with_finance() -> (TestApp, i64, crate::common::Person) {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let finance = app
        .person("finance@example.gov", Role::Finance, Some("parking"))
        .await;
    (app, parking, finance)
}

/// Sign out, then in as `person`.
pub(crate) async fn switch_to(app: &TestApp, person: &crate::common::Person) {
    if app.session_cookie().is_some() {
        let token = app.token();
        let r = app.post_form("/logout", &[("csrf_token", &token)]).await;
        assert_eq!(r.status(), Status::SeeOther, "signed out");
    }
    app.sign_in(person).await;
}

struct Csv {
    status: Status,
    content_type: String,
    disposition: String,
    cache: String,
    body: String,
}

async fn post_export(app: &TestApp, fields: &[(&str, &str)]) -> Csv {
    let token = app.token();
    let mut all: Vec<(&str, &str)> = vec![("csrf_token", &token)];
    all.extend_from_slice(fields);
    let r = app
        .client
        .post("/exports")
        .header(ContentType::Form)
        .body(form_body(&all))
        .dispatch()
        .await;
    let header = |n: &str| r.headers().get_one(n).unwrap_or("").to_string();
    Csv {
        status: r.status(),
        content_type: header("Content-Type"),
        disposition: header("Content-Disposition"),
        cache: header("Cache-Control"),
        body: r.into_string().await.unwrap_or_default(),
    }
}

pub(crate) fn column(records: &[Vec<String>], name: &str) -> usize {
    records[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}: {:?}", records[0]))
}

/// Pounds text to pence, exactly.
pub(crate) fn pence(s: &str) -> i64 {
    let neg = s.starts_with('-');
    let t = s.trim_start_matches('-');
    let (a, b) = t.split_once('.').expect("two decimals");
    assert_eq!(b.len(), 2, "{s}");
    let v = a.parse::<i64>().unwrap() * 100 + b.parse::<i64>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

pub(crate) async fn audit_details(app: &TestApp, action: &str) -> Vec<Value> {
    let rows: Vec<String> = paydesk::on_db!(&app.state.db, pool => sqlx::query_scalar::<_, String>(
        "SELECT details FROM audit_log WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(pool)
        .await
        .unwrap());
    rows.iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

const BASELINE: &str = "Reference,Description,Email,Amount,Card Brand,Cardholder Name,Card Expiry Date,Card Number (last 4),State,Finished,Error Code,Error Message,Provider ID,Payment ID,Issued By,Date Created,Time Created,Corporate Card Surcharge,Total Amount,Wallet Type,Fee,Net,Card Type,Payment Provider,Record Type,Service,Case Reference,Case Link,Refund ID,Refund Reason,Requested By,Approved By,Settled Date,Dispute ID,Dispute Reason";

fn october(day: u8, hour: u8) -> OffsetDateTime {
    datetime!(2026-10-01 00:00 UTC)
        + time::Duration::days(day as i64 - 1)
        + time::Duration::hours(hour as i64)
}

// ---- tests -------------------------------------------------------------------------------------

#[rocket::async_test]
async fn columns_refund_rows_metadata_and_audit() {
    let (app, parking, finance) = parking_with_finance().await;
    let asker = app
        .person("case@example.gov", Role::Caseworker, Some("parking"))
        .await;
    let mut a = journey("A-1", october(3, 10));
    a.metadata = Some(serde_json::json!({"ledger": "L-9", "cost_centre": 42}).to_string());
    a.case_reference = Some("CASE-7".into());
    a.fee = Some(25);
    a.corporate_surcharge = Some(150);
    a.total_amount = Some(1150);
    let mut b = journey("B-2", october(4, 10));
    b.status = PaymentStatus::Failed;
    b.state_code = Some("P0010".into());
    b.state_message = Some("Payment method rejected".into());
    b.metadata = Some(serde_json::json!({"ledger": "L-10"}).to_string());
    store(&app, parking, &[a, b]).await;
    store_refunds(
        &app,
        parking,
        &[refund("rf-1", "pay-a-1", 400, october(5, 9))],
    )
    .await;
    paydesk_request(&app, parking, "pay-a-1", "rf-1", 400, asker.id, finance.id).await;
    // The caseworker typed a case reference of the refund's own.
    paydesk::on_db!(&app.state.db, pool => sqlx::query(
        "UPDATE refund_requests SET case_reference = $1 WHERE platform_refund_id = $2")
        .bind("REFUND-9")
        .bind("rf-1")
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());
    // The service links case references into its case system.
    paydesk::on_db!(&app.state.db, pool => sqlx::query(
        "UPDATE services SET deep_link_template = $1 WHERE id = $2")
        .bind("https://crm.example.gov/cases/{case_ref}?from={payment_id}")
        .bind(parking)
        .execute(pool)
        .await
        .map(|_| ())
        .unwrap());

    app.sign_in(&finance).await;
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("by", "created"),
            ("from", "1/10/2026"),
            ("to", "31/10/2026"),
            ("time_zone", "Europe/London"),
            ("include", "payments"),
            ("include", "refunds"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::Ok, "{}", csv.body);
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(
        csv.disposition,
        "attachment; filename=\"paydesk-payments-and-refunds-2026-10-01-to-2026-10-31.csv\""
    );
    assert_eq!(csv.cache, "no-store");
    let records = strict_csv(&csv.body).expect("strict RFC 4180");
    assert_eq!(
        records[0].join(","),
        format!("{BASELINE},cost_centre,ledger,Bulk Refund Batch")
    );
    assert_eq!(records.len(), 4, "header, two payments, one refund");
    let col = |n: &str| column(&records, n);
    let a = &records[1];
    assert_eq!(a[col("Reference")], "A-1");
    assert_eq!(a[col("Amount")], "10.00");
    assert_eq!(a[col("Corporate Card Surcharge")], "1.50");
    assert_eq!(a[col("Total Amount")], "11.50");
    assert_eq!(a[col("Fee")], "0.25");
    assert_eq!(a[col("Net")], "11.25");
    assert_eq!(a[col("State")], "Success");
    assert_eq!(a[col("Record Type")], "Payment");
    assert_eq!(a[col("Service")], "Service parking");
    assert_eq!(a[col("Case Reference")], "CASE-7");
    assert_eq!(
        a[col("Case Link")],
        "https://crm.example.gov/cases/CASE-7?from=pay-a-1"
    );
    assert_eq!(a[col("ledger")], "L-9");
    assert_eq!(a[col("cost_centre")], "42");
    assert_eq!(a[col("Date Created")], "2026-10-03");
    assert_eq!(a[col("Time Created")], "11:00:00", "BST in October");
    let b = &records[2];
    assert_eq!(b[col("State")], "Declined");
    assert_eq!(b[col("Error Code")], "P0010");
    assert_eq!(b[col("cost_centre")], "");
    assert_eq!(b[col("Case Link")], "", "no case, no link");
    let r = &records[3];
    assert_eq!(r[col("Record Type")], "Refund");
    assert_eq!(
        r[col("Reference")],
        "A-1",
        "a refund row carries its payment's fields"
    );
    assert_eq!(r[col("Amount")], "-4.00");
    assert_eq!(r[col("Total Amount")], "-4.00");
    assert_eq!(r[col("Net")], "-4.00");
    assert_eq!(r[col("State")], "Refund success");
    assert_eq!(r[col("Refund ID")], "rf-1");
    assert_eq!(r[col("Refund Reason")], "Duplicate payment");
    assert_eq!(r[col("Requested By")], "case@example.gov");
    assert_eq!(r[col("Issued By")], "case@example.gov");
    assert_eq!(r[col("Approved By")], "finance@example.gov");
    assert_eq!(r[col("ledger")], "L-9");
    // The refund row carries the refund's own case reference (and its link); the payment
    // row keeps the payment's.
    assert_eq!(r[col("Case Reference")], "REFUND-9");
    assert_eq!(
        r[col("Case Link")],
        "https://crm.example.gov/cases/REFUND-9?from=pay-a-1"
    );

    // The row count equals the database's count, and the download is audited with its
    // filter and row count.
    let audit = audit_details(&app, "export_downloaded").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["rows"], 3);
    assert_eq!(audit[0]["filter"]["services"][0], "parking");
    assert_eq!(audit[0]["filter"]["from"], "2026-10-01");
    assert!(audit[0]["problem"].is_null());
}

#[rocket::async_test]
async fn local_days_at_month_and_summer_time_boundaries() {
    let (app, parking, finance) = parking_with_finance().await;
    store(
        &app,
        parking,
        &[
            // 30 September, 23:59 in London (BST).
            journey("SEP-LAST", datetime!(2026-09-30 22:59 UTC)),
            // 1 October, 00:00 in London.
            journey("OCT-FIRST", datetime!(2026-09-30 23:00 UTC)),
            // 31 October, 23:59:59 in London (GMT again since the 25th).
            journey("OCT-LAST", datetime!(2026-10-31 23:59:59 UTC)),
            journey("NOV-FIRST", datetime!(2026-11-01 00:00 UTC)),
        ],
    )
    .await;
    app.sign_in(&finance).await;
    let refs = |body: &str| -> Vec<(String, String, String)> {
        let records = strict_csv(body).unwrap();
        let (r, d, t) = (
            column(&records, "Reference"),
            column(&records, "Date Created"),
            column(&records, "Time Created"),
        );
        records[1..]
            .iter()
            .map(|x| (x[r].clone(), x[d].clone(), x[t].clone()))
            .collect()
    };
    let london = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("time_zone", "Europe/London"),
            ("include", "payments"),
        ],
    )
    .await;
    assert_eq!(
        refs(&london.body),
        [
            ("OCT-FIRST".into(), "2026-10-01".into(), "00:00:00".into()),
            ("OCT-LAST".into(), "2026-10-31".into(), "23:59:59".into()),
        ]
    );
    let utc = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("time_zone", "UTC"),
            ("include", "payments"),
        ],
    )
    .await;
    assert_eq!(
        refs(&utc.body),
        [("OCT-LAST".into(), "2026-10-31".into(), "23:59:59".into())]
    );
    let sydney = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-11-01"),
            ("to", "2026-11-01"),
            ("time_zone", "Australia/Sydney"),
            ("include", "payments"),
        ],
    )
    .await;
    // 31 October 23:59:59 UTC is 1 November 10:59:59 in Sydney (AEDT, +11).
    assert_eq!(
        refs(&sydney.body),
        [
            ("OCT-LAST".into(), "2026-11-01".into(), "10:59:59".into()),
            ("NOV-FIRST".into(), "2026-11-01".into(), "11:00:00".into()),
        ]
    );
}

#[rocket::async_test]
async fn the_pack_equals_the_sums_of_a_settled_export() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let other = app.service("other").await;
    let finance = app
        .person("finance@example.gov", Role::Finance, Some("parking"))
        .await;
    let mut rows = Vec::new();
    for i in 0..40u8 {
        let mut j = journey(&format!("S-{i}"), october(1 + i % 28, 9));
        j.amount = 1000 + i as i64 * 37;
        j.fee = (i % 3 != 0).then_some(12 + i as i64);
        j.corporate_surcharge = (i % 5 == 0).then_some(99);
        j.total_amount = j.corporate_surcharge.map(|s| j.amount + s);
        // Settled in October, except two in September and two in November.
        let day = match i {
            0 | 1 => "2026-09-30".to_string(),
            2 | 3 => "2026-11-01".to_string(),
            _ => format!("2026-10-{:02}", 1 + (i % 30)),
        };
        j.settled_date = Some(day);
        rows.push(j);
    }
    let mut unsettled = journey("U-1", october(2, 9));
    unsettled.status = PaymentStatus::Failed;
    rows.push(unsettled);
    store(&app, parking, &rows).await;
    store(
        &app,
        other,
        &[{
            let mut j = journey("OTHER-1", october(2, 9));
            j.settled_date = Some("2026-10-02".into());
            j
        }],
    )
    .await;
    let mut refunds = Vec::new();
    for (i, (payment, day)) in [
        ("pay-s-5", "2026-10-09"),
        ("pay-s-6", "2026-10-09"),
        ("pay-s-7", "2026-11-02"),
        ("pay-s-8", "2026-10-31"),
    ]
    .iter()
    .enumerate()
    {
        let mut r = refund(&format!("rf-{i}"), payment, 300 + i as i64, october(9, 9));
        r.settled_date = Some(day.to_string());
        refunds.push(r);
    }
    let mut pending = refund("rf-pending", "pay-s-9", 500, october(9, 9));
    pending.status = RefundStatus::Submitted;
    pending.settled_date = Some("2026-10-10".into());
    refunds.push(pending);
    store_refunds(&app, parking, &refunds).await;

    app.sign_in(&finance).await;
    let r = app
        .client
        .get("/exports/pack.csv?service=parking&month=2026-10")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let pack = strict_csv(&r.into_string().await.unwrap()).unwrap();
    assert_eq!(
        pack[0].join(","),
        "Service,Settlement Date,Payments,Gross,Refunds Count,Refunds,Fees,Net,Disputes Count,Disputes,Dispute Fees"
    );
    let total = pack.last().unwrap();
    assert_eq!(total[1], "Total");

    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("by", "settled"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
            ("include", "refunds"),
        ],
    )
    .await;
    let records = strict_csv(&csv.body).unwrap();
    let col = |n: &str| column(&records, n);
    let (kind, total_amount, fee, net) = (
        col("Record Type"),
        col("Total Amount"),
        col("Fee"),
        col("Net"),
    );
    let payments: Vec<&Vec<String>> = records[1..]
        .iter()
        .filter(|r| r[kind] == "Payment")
        .collect();
    let refund_rows: Vec<&Vec<String>> = records[1..]
        .iter()
        .filter(|r| r[kind] == "Refund")
        .collect();
    assert_eq!(payments.len(), 36);
    assert_eq!(
        refund_rows.len(),
        3,
        "the pending refund and November's are not in"
    );
    let sum = |rows: &[&Vec<String>], c: usize| -> i64 {
        rows.iter()
            .map(|r| if r[c].is_empty() { 0 } else { pence(&r[c]) })
            .sum()
    };
    assert_eq!(total[2], payments.len().to_string());
    assert_eq!(pence(&total[3]), sum(&payments, total_amount), "gross");
    assert_eq!(total[4], refund_rows.len().to_string());
    assert_eq!(
        pence(&total[5]),
        -sum(&refund_rows, total_amount),
        "refunds"
    );
    assert_eq!(pence(&total[6]), sum(&payments, fee), "fees");
    let all: Vec<&Vec<String>> = records[1..].iter().collect();
    assert_eq!(pence(&total[7]), sum(&all, net), "net");
    // Every day's row adds up to the total too.
    let days = &pack[1..pack.len() - 1];
    let day_net: i64 = days.iter().map(|d| pence(&d[7])).sum();
    assert_eq!(day_net, pence(&total[7]));
    assert!(days.iter().all(|d| d[1].starts_with("2026-10-")));

    // The page shows the same totals.
    let html = app
        .client
        .get("/exports/pack?service=parking&month=2026-10")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Month-end totals by settlement date"));
    let net_text = paydesk::refunds::rules::pounds(pence(&total[7]));
    assert!(html.contains(&net_text), "{net_text} on the page");
    // A bad month is explained, not a 500.
    let r = app
        .client
        .get("/exports/pack?month=2026-13")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    let html = r.into_string().await.unwrap();
    assert!(html.contains("<title>Error: "));
    assert!(html.contains("Enter the month as a year and month"));
}

#[rocket::async_test]
async fn net_and_total_count_only_money_taken_and_add_up_to_the_month_end() {
    let (app, parking, finance) = parking_with_finance().await;
    let mut rows = Vec::new();
    // Three successful payments, settled in October, one with a fee and one with a surcharge.
    for (i, (fee, surcharge)) in [(Some(20), None), (None, Some(150)), (Some(35), Some(50))]
        .into_iter()
        .enumerate()
    {
        let mut j = journey(&format!("OK-{i}"), october(2 + i as u8, 9));
        j.amount = 2000 + i as i64 * 111;
        j.fee = fee;
        j.corporate_surcharge = surcharge;
        j.total_amount = surcharge.map(|s| j.amount + s);
        j.settled_date = Some(format!("2026-10-{:02}", 3 + i));
        rows.push(j);
    }
    // Finished without taking money: declined, timed out, cancelled, error.
    for (i, (status, code)) in [
        (PaymentStatus::Failed, Some("P0010")),
        (PaymentStatus::Failed, Some("P0020")),
        (PaymentStatus::Cancelled, Some("P0040")),
        (PaymentStatus::Error, Some("P0050")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut j = journey(&format!("NO-{i}"), october(5 + i as u8, 9));
        j.status = status;
        j.state_code = code.map(str::to_string);
        j.amount = 7_000 + i as i64;
        rows.push(j);
    }
    // Still in progress.
    for (i, status) in [PaymentStatus::Started, PaymentStatus::Capturable]
        .into_iter()
        .enumerate()
    {
        let mut j = journey(&format!("OPEN-{i}"), october(10 + i as u8, 9));
        j.status = status;
        j.amount = 9_000;
        rows.push(j);
    }
    store(&app, parking, &rows).await;
    let mut r = refund("rf-ok", "pay-ok-1", 400, october(12, 9));
    r.settled_date = Some("2026-10-12".into());
    store_refunds(&app, parking, &[r]).await;

    app.sign_in(&finance).await;
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("by", "created"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
            ("include", "refunds"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::Ok, "{}", csv.body);
    let records = strict_csv(&csv.body).unwrap();
    let col = |n: &str| column(&records, n);
    let (reference, total, net) = (col("Reference"), col("Total Amount"), col("Net"));
    let find = |r: &str| {
        records[1..]
            .iter()
            .find(|row| row[reference] == r && row[col("Record Type")] == "Payment")
            .unwrap_or_else(|| panic!("row {r}"))
    };
    assert_eq!(
        (find("OK-0")[total].as_str(), find("OK-0")[net].as_str()),
        ("20.00", "19.80")
    );
    assert_eq!(
        (find("OK-1")[total].as_str(), find("OK-1")[net].as_str()),
        ("22.61", "22.61")
    );
    assert_eq!(
        (find("OK-2")[total].as_str(), find("OK-2")[net].as_str()),
        ("22.72", "22.37")
    );
    for r in ["NO-0", "NO-1", "NO-2", "NO-3"] {
        assert_eq!(
            (find(r)[total].as_str(), find(r)[net].as_str()),
            ("0.00", "0.00"),
            "{r}"
        );
    }
    for r in ["OPEN-0", "OPEN-1"] {
        assert_eq!(
            (find(r)[total].as_str(), find(r)[net].as_str()),
            ("", ""),
            "{r}"
        );
    }
    let net_sum: i64 = records[1..]
        .iter()
        .map(|row| {
            if row[net].is_empty() {
                0
            } else {
                pence(&row[net])
            }
        })
        .sum();
    assert_eq!(net_sum, 1980 + 2261 + 2237 - 400);

    // The month-end totals of the same month count the same money, to the penny.
    let r = app
        .client
        .get("/exports/pack.csv?service=parking&month=2026-10")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let pack = strict_csv(&r.into_string().await.unwrap()).unwrap();
    let totals = pack.last().unwrap();
    assert_eq!(totals[1], "Total");
    assert_eq!(
        pence(&totals[7]),
        net_sum,
        "month-end net equals the export's net"
    );
}

/// Store a platform dispute of `payment_id` as the sync would.
async fn store_dispute(
    app: &TestApp,
    service_id: i64,
    (id, payment_id, status): (&str, &str, &str),
    amount: i64,
    created: &str,
    settled: Option<&str>,
) {
    let d: paydesk::platform::dispute_wire::Dispute = serde_json::from_value(serde_json::json!({
        "dispute_id": id, "payment_id": payment_id, "amount": amount, "fee": 2000,
        "net_amount": (status == "lost").then_some(-(amount + 2000)),
        "created_date": created, "evidence_due_date": "2026-12-01T10:00:00.000Z",
        "reason": "fraudulent", "status": status,
        "settlement_summary": {"settled_date": settled}
    }))
    .unwrap();
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.unwrap();
    paydesk::disputes::record(&mut tx, service_id, &[d], now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[rocket::async_test]
async fn dispute_rows_carry_their_payment_and_the_month_end_counts_the_lost_ones() {
    let (app, parking, finance) = parking_with_finance().await;
    let other = app.service("other").await;
    let mut rows = Vec::new();
    for i in 0..4u8 {
        let mut j = journey(&format!("D-{i}"), october(2 + i, 9));
        j.amount = 1000 + i as i64 * 100;
        j.fee = Some(15);
        j.settled_date = Some(format!("2026-10-{:02}", 3 + i));
        j.case_reference = Some(format!("CASE-{i}"));
        rows.push(j);
    }
    store(&app, parking, &rows).await;
    store(&app, other, &[journey("THEIRS", october(2, 9))]).await;
    let mut r = refund("rf-d", "pay-d-3", 250, october(12, 9));
    r.settled_date = Some("2026-10-12".into());
    store_refunds(&app, parking, &[r]).await;
    // Lost and settled in October; won; awaiting evidence; lost but settled in November;
    // and another service's.
    let raised = "2026-10-15T10:00:00.000Z";
    for (d, amount, settled) in [
        (("dp-lost", "pay-d-0", "lost"), 1000, Some("2026-10-20")),
        (("dp-won", "pay-d-1", "won"), 1100, None),
        (("dp-open", "pay-d-2", "needs_response"), 1200, None),
        (("dp-late", "pay-d-3", "lost"), 1300, Some("2026-11-02")),
    ] {
        store_dispute(&app, parking, d, amount, raised, settled).await;
    }
    store_dispute(
        &app,
        other,
        ("dp-theirs", "pay-theirs", "lost"),
        900,
        raised,
        Some("2026-10-20"),
    )
    .await;

    app.sign_in(&finance).await;
    // By created date: every dispute raised in October, each carrying its payment's fields.
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("by", "created"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "disputes"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::Ok, "{}", csv.body);
    assert!(csv.disposition.contains("paydesk-disputes-2026-10-01"));
    let records = strict_csv(&csv.body).unwrap();
    assert_eq!(records.len(), 5, "header and four disputes: {records:?}");
    let col = |n: &str| column(&records, n);
    let find = |id: &str| {
        records[1..]
            .iter()
            .find(|row| row[col("Dispute ID")] == id)
            .unwrap_or_else(|| panic!("dispute {id}"))
    };
    let lost = find("dp-lost");
    assert_eq!(lost[col("Record Type")], "Dispute");
    assert_eq!(lost[col("Reference")], "D-0");
    assert_eq!(lost[col("Payment ID")], "pay-d-0");
    assert_eq!(lost[col("Email")], "payer@example.org");
    assert_eq!(lost[col("Case Reference")], "CASE-0");
    assert_eq!(lost[col("State")], "Dispute lost to customer");
    assert_eq!(lost[col("Finished")], "true");
    assert_eq!(lost[col("Dispute Reason")], "Fraudulent");
    assert_eq!(lost[col("Date Created")], "2026-10-15");
    assert_eq!(lost[col("Settled Date")], "2026-10-20");
    let money =
        |row: &Vec<String>| ["Amount", "Total Amount", "Fee", "Net"].map(|c| row[col(c)].clone());
    assert_eq!(money(lost), ["-10.00", "-10.00", "20.00", "-30.00"]);
    assert_eq!(money(find("dp-won")), ["11.00", "0.00", "", "0.00"]);
    assert_eq!(find("dp-won")[col("State")], "Dispute won in your favour");
    assert_eq!(money(find("dp-open")), ["-12.00", "", "", ""]);
    assert_eq!(find("dp-open")[col("Finished")], "false");
    assert_eq!(find("dp-open")[col("State")], "Dispute awaiting evidence");

    // By settlement date, every kind of row: the month-end totals are the rows' sums.
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("by", "settled"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
            ("include", "refunds"),
            ("include", "disputes"),
        ],
    )
    .await;
    let records = strict_csv(&csv.body).unwrap();
    let col = |n: &str| column(&records, n);
    let sum = |kind: Option<&str>, c: &str| -> i64 {
        records[1..]
            .iter()
            .filter(|r| kind.is_none_or(|k| r[col("Record Type")] == k))
            .map(|r| {
                let v = &r[col(c)];
                if v.is_empty() {
                    0
                } else {
                    pence(v)
                }
            })
            .sum()
    };
    let disputes: Vec<&Vec<String>> = records[1..]
        .iter()
        .filter(|r| r[col("Record Type")] == "Dispute")
        .collect();
    assert_eq!(disputes.len(), 1, "only the one settled in October");
    let net = sum(None, "Net");
    assert_eq!(net, (4 * 1000 + 600 - 4 * 15) - 250 - 3000);

    let r = app
        .client
        .get("/exports/pack.csv?service=parking&month=2026-10")
        .dispatch()
        .await;
    let pack = strict_csv(&r.into_string().await.unwrap()).unwrap();
    let h = |n: &str| pack[0].iter().position(|c| c == n).unwrap();
    let total = pack.last().unwrap();
    assert_eq!(total[1], "Total");
    assert_eq!(
        pence(&total[h("Net")]),
        net,
        "the pack's net is the rows' net"
    );
    assert_eq!(total[h("Disputes Count")], "1");
    assert_eq!(
        pence(&total[h("Disputes")]),
        -sum(Some("Dispute"), "Total Amount")
    );
    assert_eq!(
        pence(&total[h("Dispute Fees")]),
        sum(Some("Dispute"), "Fee")
    );
    assert_eq!(pence(&total[h("Fees")]), sum(Some("Payment"), "Fee"));
    let day_net: i64 = pack[1..pack.len() - 1]
        .iter()
        .map(|d| pence(&d[h("Net")]))
        .sum();
    assert_eq!(day_net, net);
    let html = app
        .client
        .get("/exports/pack?service=parking&month=2026-10")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Lost in disputes") && html.contains("£10.00"));
    assert!(html.contains("name=\"include\" value=\"disputes\""));
}

#[rocket::async_test]
async fn the_pack_has_a_grand_total_across_services() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    let permits = app.service("permits").await;
    let finance = app
        .person("pa@example.gov", Role::PlatformAdmin, None)
        .await;
    for (service, prefix, n) in [(parking, "P", 3), (permits, "Q", 2)] {
        let rows: Vec<JourneyRecord> = (0..n)
            .map(|i| {
                let mut j = journey(&format!("{prefix}-{i}"), october(2 + i as u8, 9));
                j.amount = 1_000 * (i as i64 + 1) + if prefix == "Q" { 7 } else { 0 };
                j.fee = Some(10);
                j.settled_date = Some(format!("2026-10-{:02}", 3 + i));
                j
            })
            .collect();
        store(&app, service, &rows).await;
    }
    let mut r = refund("rf-q", "pay-q-1", 250, october(9, 9));
    r.settled_date = Some("2026-10-09".into());
    store_refunds(&app, permits, &[r]).await;

    app.sign_in(&finance).await;
    let r = app
        .client
        .get("/exports/pack.csv?month=2026-10")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let pack = strict_csv(&r.into_string().await.unwrap()).unwrap();
    let all = pack.last().unwrap();
    assert_eq!(
        (all[0].as_str(), all[1].as_str()),
        ("All services", "Total")
    );
    let service_totals: Vec<&Vec<String>> = pack[1..pack.len() - 1]
        .iter()
        .filter(|row| row[1] == "Total")
        .collect();
    assert_eq!(service_totals.len(), 2, "{pack:?}");
    for (c, what) in [(2, "payments"), (4, "refunds count")] {
        let sum: i64 = service_totals
            .iter()
            .map(|t| t[c].parse::<i64>().unwrap())
            .sum();
        assert_eq!(all[c].parse::<i64>().unwrap(), sum, "{what}");
    }
    for (c, what) in [(3, "gross"), (5, "refunds"), (6, "fees"), (7, "net")] {
        let sum: i64 = service_totals.iter().map(|t| pence(&t[c])).sum();
        assert_eq!(pence(&all[c]), sum, "{what}");
    }
    assert_eq!(pence(&all[7]), 6_000 + 3_014 - 50 - 250);

    // The page shows the same grand total.
    let html = app
        .client
        .get("/exports/pack?month=2026-10")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Grand total (2 services)"), "{html}");
    let net_text = paydesk::money::pounds(pence(&all[7]));
    assert!(html.contains(&net_text), "{net_text} on the page");
}

#[rocket::async_test]
async fn formula_cells_are_neutralised_and_quoting_round_trips() {
    let (app, parking, finance) = parking_with_finance().await;
    let payloads = [
        "=1+1",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        "\u{FF1D}1+1",
        "\u{FF0B}1",
        "\u{FF0D}1",
        "\u{FF20}x",
        "=HYPERLINK(\"https://evil.example\",\"x\")",
        "a\",=1+1",
        "a;=1",
        "commas, and \"quotes\"\r\nand lines",
        "back\\slash \\N and\ttab",
        "\\N",
        "plain",
    ];
    let mut rows = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let mut j = journey(p, october(2, i as u8));
        j.payment_id = format!("pay-{i}");
        j.description = p.to_string();
        j.email = Some(p.to_string());
        j.cardholder_name = Some(p.to_string());
        j.metadata = Some(serde_json::json!({"note": p}).to_string());
        rows.push(j);
    }
    store(&app, parking, &rows).await;
    app.sign_in(&finance).await;
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
        ],
    )
    .await;
    let records = strict_csv(&csv.body).expect("strict RFC 4180");
    assert_eq!(records.len(), payloads.len() + 1);
    let formula = |s: &str| {
        s.chars().next().is_some_and(|c| {
            matches!(
                c,
                '=' | '+'
                    | '-'
                    | '@'
                    | '\t'
                    | '\r'
                    | '\n'
                    | '\u{FF1D}'
                    | '\u{FF0B}'
                    | '\u{FF0D}'
                    | '\u{FF20}'
            )
        })
    };
    for (row, p) in records[1..].iter().zip(payloads.iter()) {
        for name in [
            "Reference",
            "Description",
            "Email",
            "Cardholder Name",
            "note",
        ] {
            let cell = &row[column(&records, name)];
            if p.len() > 1 && matches!(p.as_bytes()[0], b'\r' | b'\n') {
                // The line after the break starts a formula too: it gets its own apostrophe.
                assert_eq!(
                    cell,
                    &format!("'{}'{}", &p[..1], &p[1..]),
                    "{name} of {p:?}"
                );
            } else if formula(p) {
                assert_eq!(cell, &format!("'{p}"), "{name} of {p:?}");
            } else {
                assert_eq!(cell, p, "{name} of {p:?} comes back as it was");
            }
        }
        // Money stays a number: never neutralised.
        assert_eq!(row[column(&records, "Amount")], "10.00");
    }
}

#[rocket::async_test]
async fn no_card_number_beyond_first_six_and_last_four() {
    let (app, parking, finance) = parking_with_finance().await;
    store(&app, parking, &[journey("CARD-1", october(2, 1))]).await;
    app.sign_in(&finance).await;
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
            ("include", "refunds"),
        ],
    )
    .await;
    assert!(csv.body.contains(",4242,"), "last four are there");
    let digits: Vec<&str> = csv
        .body
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() >= 13)
        .collect();
    assert!(
        digits.is_empty(),
        "long digit runs in the export: {digits:?}"
    );
}

#[rocket::async_test]
async fn who_may_export_and_bad_input() {
    let app = TestApp::new().await;
    let parking = app.service("parking").await;
    app.service("libraries").await;
    store(&app, parking, &[journey("P-1", october(2, 1))]).await;
    let caseworker = app
        .person("case@example.gov", Role::Caseworker, Some("parking"))
        .await;
    app.sign_in(&caseworker).await;
    assert_eq!(
        app.client.get("/exports").dispatch().await.status(),
        Status::Forbidden
    );
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::Forbidden, "a caseworker gets 403");
    assert_eq!(
        app.client.get("/exports/pack").dispatch().await.status(),
        Status::Forbidden
    );
    assert!(!audit_details(&app, "authz_fail").await.is_empty());

    // Finance of libraries cannot export parking: told to choose from the list.
    let librarian = app
        .person("lib@example.gov", Role::Finance, Some("libraries"))
        .await;
    switch_to(&app, &librarian).await;
    let csv = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::UnprocessableEntity);
    assert!(csv.body.contains("Select services from the list"));
    assert!(!csv.body.contains("P-1"));
    let html = app
        .client
        .get("/exports")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(!html.contains("Service parking"), "no other service named");

    // Bad input: an error summary, the form kept as typed, never a 500.
    let csv = post_export(
        &app,
        &[
            ("services", "libraries"),
            ("from", "31/02/2026"),
            ("to", "1/1/2026"),
            ("time_zone", "Mars/Olympus"),
            ("statuses", "nearly"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::UnprocessableEntity);
    for message in [
        "<title>Error: ",
        "The start date must be a real date",
        "Enter a time zone from the list",
        "Select statuses from the list",
        "Select what to include: payments, refunds or disputes",
        "value=\"31&#x2F;02&#x2F;2026\"",
    ] {
        assert!(csv.body.contains(message), "{message}");
    }
    let long = "9".repeat(5_000);
    let csv = post_export(
        &app,
        &[
            ("services", &long),
            ("from", &long),
            ("include", "payments"),
        ],
    )
    .await;
    assert_eq!(csv.status, Status::UnprocessableEntity);
}

#[rocket::async_test]
async fn background_exports_progress_download_resume_and_deletion() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path().to_path_buf();
    let app = TestApp::with_config(|c| {
        c.export_background_rows = 5;
        c.export_dir = dir.clone();
        c.export_keep_days = 7;
    })
    .await;
    let parking = app.service("parking").await;
    let rows: Vec<JourneyRecord> = (0..12u8)
        .map(|i| journey(&format!("BG-{i:02}"), october(2, i)))
        .collect();
    store(&app, parking, &rows).await;
    let finance = app
        .person("finance@example.gov", Role::Finance, Some("parking"))
        .await;
    let colleague = app
        .person("colleague@example.gov", Role::Finance, Some("parking"))
        .await;
    let admin = app
        .person("admin@example.gov", Role::ServiceAdmin, Some("parking"))
        .await;
    app.sign_in(&finance).await;
    let fields = [
        ("services", "parking"),
        ("from", "2026-10-01"),
        ("to", "2026-10-31"),
        ("include", "payments"),
    ];
    // What the stream gives for the same filter, with the threshold out of the way.
    let expected = {
        let filter = paydesk::exports::filter::parse(&paydesk::exports::Fields {
            services: vec!["parking".into()],
            by: "created".into(),
            from: "2026-10-01".into(),
            to: "2026-10-31".into(),
            time_zone: "Europe/London".into(),
            statuses: vec![],
            include: vec!["payments".into()],
        })
        .unwrap();
        let services = paydesk::services::all(&app.state.db).await.unwrap();
        let plan = paydesk::exports::Plan::prepare(&app.state.db, filter, services, None)
            .await
            .unwrap();
        let mut out = Vec::new();
        paydesk::exports::write_all(&plan, &mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    };

    let r = post_export(&app, &fields).await;
    assert_eq!(r.status, Status::SeeOther, "more rows than the threshold");
    let token = app.token();
    let mut body: Vec<(&str, &str)> = vec![("csrf_token", &token)];
    body.extend_from_slice(&fields);
    let resp = app
        .client
        .post("/exports")
        .header(ContentType::Form)
        .body(form_body(&body))
        .dispatch()
        .await;
    let second = location(&resp);
    assert!(second.starts_with("/exports/2?started=big"), "{second}");

    // Before the job runs: a progress bar, a link to check progress, no download.
    let html = app
        .client
        .get("/exports/1")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("<progress"), "{html}");
    assert!(
        html.contains("Check progress"),
        "without JavaScript: a link"
    );
    assert!(html.contains("Waiting to start"));
    assert_eq!(
        app.client
            .get("/exports/1/download")
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );
    let status: Value = serde_json::from_str(
        &app.client
            .get("/exports/1/status")
            .dispatch()
            .await
            .into_string()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["state"], "queued");

    // A dead attempt left bytes behind: the writer cuts the file back before writing.
    let record = paydesk::store::exports::get(&app.state.db, 1)
        .await
        .unwrap()
        .unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(&record.file_name),
        b"half a row from a lost worker",
    )
    .unwrap();

    let runner = app.state.job_runner();
    let pass = runner.run_due().await.unwrap();
    assert_eq!(pass.succeeded, 2, "{pass:?}");
    let html = app
        .client
        .get("/exports/1")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("Ready"));
    assert!(!html.contains("Check progress"));
    let r = app.client.get("/exports/1/download").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.headers().get_one("Cache-Control"), Some("no-store"));
    assert!(r
        .headers()
        .get_one("Content-Disposition")
        .unwrap()
        .starts_with("attachment;"));
    let body = r.into_string().await.unwrap();
    assert_eq!(body, expected, "the file is the stream's rows");
    assert_eq!(strict_csv(&body).unwrap().len(), 13);
    let downloads = audit_details(&app, "export_downloaded").await;
    assert_eq!(downloads.last().unwrap()["rows"], 12);

    // gzip: one gzip stream of members, the same rows.
    let mut with_gzip: Vec<(&str, &str)> = vec![("csrf_token", &token), ("gzip", "yes")];
    with_gzip.extend_from_slice(&fields);
    let resp = app
        .client
        .post("/exports")
        .header(ContentType::Form)
        .body(form_body(&with_gzip))
        .dispatch()
        .await;
    assert_eq!(location(&resp), "/exports/3?started=big");
    runner.run_due().await.unwrap();
    let r = app.client.get("/exports/3/download").dispatch().await;
    assert_eq!(
        r.content_type(),
        Some(ContentType::new("application", "gzip"))
    );
    let bytes = r.into_bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, expected);

    // Another finance person sees nothing of it; the service admin may download it.
    switch_to(&app, &colleague).await;
    assert_eq!(
        app.client.get("/exports/1").dispatch().await.status(),
        Status::NotFound
    );
    assert_eq!(
        app.client
            .get("/exports/1/download")
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );
    let html = app
        .client
        .get("/exports")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(html.contains("No exports have been prepared"));
    switch_to(&app, &admin).await;
    assert_eq!(
        app.client
            .get("/exports/1/download")
            .dispatch()
            .await
            .status(),
        Status::Ok
    );

    // After the keeping time the file goes, and so does the download.
    app.clock.advance(time::Duration::days(8));
    let removed =
        paydesk::exports::remove_expired(&app.state.db, &app.state.config, app.state.clock.now())
            .await
            .unwrap();
    assert_eq!(removed, 3);
    assert!(!dir.join(&record.file_name).exists());
    // (Eight days idle ended the session too.)
    switch_to(&app, &admin).await;
    assert_eq!(
        app.client
            .get("/exports/1/download")
            .dispatch()
            .await
            .status(),
        Status::NotFound
    );
    assert_eq!(audit_details(&app, "export_deleted").await.len(), 3);
    assert_eq!(audit_details(&app, "export_requested").await.len(), 3);
}

#[rocket::async_test]
async fn the_command_line_writes_the_same_csv() {
    let (app, parking, finance) = parking_with_finance().await;
    let mut a = journey("CLI-1", october(2, 1));
    a.metadata = Some(serde_json::json!({"ledger": "=L"}).to_string());
    store(&app, parking, &[a, journey("CLI-2", october(3, 1))]).await;
    store_refunds(
        &app,
        parking,
        &[refund("rf-c", "pay-cli-1", 100, october(4, 1))],
    )
    .await;
    app.sign_in(&finance).await;
    let web = post_export(
        &app,
        &[
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
            ("include", "refunds"),
        ],
    )
    .await;
    let out = crate::common::paydesk_ok(
        app.db.url(),
        &[
            "export",
            "--service",
            "parking",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--refunds",
        ],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), web.body);
    let bad = crate::common::paydesk_command(app.db.url())
        .args([
            "export",
            "--service",
            "nope",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such service"));
    let audit = audit_details(&app, "export_downloaded").await;
    assert!(audit
        .iter()
        .any(|a| a["via"] == "command line" && a["rows"] == 3));
}

#[rocket::async_test]
async fn a_download_the_client_abandons_is_still_audited() {
    use rocket::tokio::io::AsyncReadExt;
    let (app, parking, finance) = parking_with_finance().await;
    // Three pages' worth of rows, so the stream is still going when the client walks away.
    let rows: Vec<JourneyRecord> = (0..12_000u32)
        .map(|i| {
            journey(
                &format!("BIG-{i:05}"),
                october(2, 0) + time::Duration::seconds(i as i64),
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        store(&app, parking, chunk).await;
    }
    app.sign_in(&finance).await;
    let token = app.token();
    let mut response = app
        .client
        .post("/exports")
        .header(ContentType::Form)
        .body(form_body(&[
            ("csrf_token", &token),
            ("services", "parking"),
            ("from", "2026-10-01"),
            ("to", "2026-10-31"),
            ("include", "payments"),
        ]))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::Ok);
    let mut start = vec![0u8; 4096];
    let n = response.read(&mut start).await.unwrap();
    assert!(n > 0 && start.starts_with(b"Reference,"));
    drop(response);
    // The stream notices, stops reading the database, and says so in the audit log.
    let audited = crate::common::eventually(std::time::Duration::from_secs(10), || async {
        let entries = audit_details(&app, "export_downloaded").await;
        entries.into_iter().next()
    })
    .await
    .expect("the abandoned download is audited");
    assert_eq!(audited["problem"], "the client stopped reading");
    let rows_sent = audited["rows"].as_i64().unwrap();
    assert!(rows_sent < 12_000, "{rows_sent} rows went out");
}

#[rocket::async_test]
async fn pages_join_up_exactly_across_ties_in_time_and_settlement_date() {
    let (app, parking, finance) = parking_with_finance().await;
    // 12,000 payments, seven to each second (so page boundaries fall inside a second) and a
    // third of them to each of three settlement dates (so they fall inside a date too).
    let days = ["2026-10-05", "2026-10-06", "2026-10-07"];
    let rows: Vec<JourneyRecord> = (0..12_000u32)
        .map(|i| {
            let mut j = journey(
                &format!("TIE-{i:05}"),
                october(2, 0) + time::Duration::seconds((i / 7) as i64),
            );
            j.settled_date = Some(days[(i % 3) as usize].to_string());
            j
        })
        .collect();
    for chunk in rows.chunks(500) {
        store(&app, parking, chunk).await;
    }
    app.sign_in(&finance).await;
    for by in ["created", "settled"] {
        let csv = post_export(
            &app,
            &[
                ("services", "parking"),
                ("by", by),
                ("from", "2026-10-01"),
                ("to", "2026-10-31"),
                ("include", "payments"),
            ],
        )
        .await;
        let records = strict_csv(&csv.body).unwrap();
        let r = column(&records, "Reference");
        let got: Vec<&str> = records[1..].iter().map(|x| x[r].as_str()).collect();
        let mut want: Vec<(usize, u32, &str)> = rows
            .iter()
            .enumerate()
            .map(|(n, j)| {
                let day = days
                    .iter()
                    .position(|d| Some(*d) == j.settled_date.as_deref())
                    .unwrap();
                (
                    if by == "settled" { day } else { 0 },
                    n as u32 / 7,
                    j.reference.as_str(),
                )
            })
            .collect();
        // Insertion order is id order, so a stable sort by (date, second) is the export's order.
        want.sort_by_key(|(d, s, _)| (*d, *s));
        let want: Vec<&str> = want.iter().map(|(_, _, r)| *r).collect();
        assert_eq!(got.len(), 12_000, "by {by}");
        assert_eq!(got, want, "by {by}: every row once, in order");
    }
    // SQLite's page is packed in the subquery's order; the form that states the order in the
    // aggregate (read when a page comes out of order) runs and packs the same page.
    if let paydesk::store::Db::Sqlite(pool, _) = &app.state.db {
        use paydesk::store::exports::{packed_page_query, Key, Pass, Range, Slice};
        let ranges = [
            Range::Created {
                from: paydesk::store::to_micros(october(1, 0)),
                to: paydesk::store::to_micros(october(31, 0)),
            },
            Range::Settled {
                from: "2026-10-01".into(),
                to: "2026-10-31".into(),
            },
        ];
        for range in &ranges {
            let slice = Slice {
                service_id: parking,
                pass: Pass::Payments,
                range,
                statuses: &[],
                journeys: None,
            };
            let after = Key {
                date: Some("2026-10-06".into()),
                created_at: paydesk::store::to_micros(october(2, 0)),
                id: 0,
            };
            let mut pages = Vec::new();
            for sorted in [false, true] {
                let built = packed_page_query(&slice, Some(&after), 700, sorted);
                let mut q = sqlx::query_scalar::<_, String>(&built.sql);
                for b in &built.binds {
                    q = match b {
                        paydesk::store::sql::Bind::Int(v) => q.bind(*v),
                        paydesk::store::sql::Bind::Text(t) => q.bind(t.clone()),
                    };
                }
                pages.push(q.fetch_one(pool).await.unwrap());
            }
            let (plain, sorted) = (&pages[0], &pages[1]);
            assert!(plain.len() > 1000, "{range:?}: a page of rows");
            assert_eq!(plain, sorted, "{range:?}");
        }
    }
}

#[rocket::async_test]
async fn the_form_ticks_dispute_rows_with_refund_rows_by_default() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let finance = app
        .person("finance@example.gov", Role::Finance, Some("parking"))
        .await;
    app.sign_in(&finance).await;
    let html = app
        .client
        .get("/exports")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    // Selectable like refund rows, and ticked with them, so a month's file matches the bank.
    for what in ["payments", "refunds", "disputes"] {
        assert!(
            html.contains(&format!(
                "name=\"include\" type=\"checkbox\" value=\"{what}\" checked"
            )),
            "{what} ticked on a first visit"
        );
    }
    assert!(html.contains("Disputes (chargebacks)"));
}
