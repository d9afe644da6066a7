//! The payments page's totals and "download these results as CSV" (issue 18 item 5): the
//! figures on the page equal the sums of the file's columns, the file has the export's columns
//! and rules, only people who may export get it, and the download is audited.

use paydesk::identity::permissions::Role;
use paydesk::platform::types::PaymentStatus;
use rocket::http::Status;
use time::macros::datetime;

use crate::exports::{
    audit_details, column, journey, parking_with_finance, pence, store, strict_csv,
};

#[tokio::test]
async fn the_results_add_up_and_download_as_the_export_writes_them() {
    let (app, parking, finance) = parking_with_finance().await;
    let at = |h: i64| datetime!(2026-11-10 09:00 UTC) + time::Duration::hours(h);
    let mut rows = Vec::new();
    let mut a = journey("LIST-A", at(1));
    a.amount = 1000;
    a.total_amount = Some(1050);
    rows.push(a);
    let mut b = journey("LIST-B", at(2));
    b.amount = 2000;
    rows.push(b);
    let mut c = journey("LIST-C", at(3));
    c.amount = 500;
    c.status = PaymentStatus::Failed;
    c.state_code = Some("P0010".into());
    rows.push(c);
    let mut d = journey("LIST-D", at(4));
    d.amount = 700;
    d.status = PaymentStatus::Started;
    rows.push(d);
    // Not matched by the search below.
    let mut e = journey("OTHER-E", at(5));
    e.email = Some("someone.else@council.example".into());
    e.amount = 99_900;
    rows.push(e);
    store(&app, parking, &rows).await;

    app.sign_in(&finance).await;
    let page = app
        .client
        .get("/payments?email=example.org")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap()
        .replace("&#x2F;", "/")
        .replace("&amp;", "&");
    assert!(page.contains("4 payments"), "{page}");
    // £10.00 + £20.00 + £5.00 + £7.00 asked; £10.50 (with its surcharge) + £20.00 taken.
    assert!(page.contains("£42.00"), "the total amount: {page}");
    assert!(page.contains("£30.50"), "the money taken: {page}");
    let href = "/payments/download?email=example.org";
    assert!(page.contains(href), "the download link: {page}");

    let r = app.client.get(href).dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let disposition = r
        .headers()
        .get_one("Content-Disposition")
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.contains("paydesk-payments-search-"),
        "{disposition}"
    );
    let body = r.into_string().await.unwrap();
    let records = strict_csv(&body).unwrap();
    assert_eq!(records.len(), 1 + 4, "a header and the 4 payments: {body}");
    let (amount, total, reference) = (
        column(&records, "Amount"),
        column(&records, "Total Amount"),
        column(&records, "Reference"),
    );
    let refs: Vec<&str> = records[1..].iter().map(|r| r[reference].as_str()).collect();
    assert_eq!(
        refs,
        ["LIST-A", "LIST-B", "LIST-C", "LIST-D"],
        "oldest first"
    );
    let sum = |col: usize| -> i64 {
        records[1..]
            .iter()
            .filter(|r| !r[col].is_empty())
            .map(|r| pence(&r[col]))
            .sum()
    };
    assert_eq!(
        sum(amount),
        4200,
        "Amount adds up to the page's total amount"
    );
    assert_eq!(sum(total), 3050, "Total Amount adds up to the money taken");
    // In progress: Total Amount empty, as in every export.
    assert_eq!(records[4][total], "");
    let audited = audit_details(&app, "export_downloaded").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["filter"]["search_results"], 4, "{audited:?}");
    assert_eq!(audited[0]["rows"], 4);

    // A viewer reads the same figures but may not export: no link, and the address is refused.
    let viewer = app
        .person("viewer@example.gov", Role::Viewer, Some("parking"))
        .await;
    crate::exports::switch_to(&app, &viewer).await;
    let page = app
        .client
        .get("/payments?email=example.org")
        .dispatch()
        .await
        .into_string()
        .await
        .unwrap();
    assert!(page.contains("£42.00"), "{page}");
    assert!(!page.contains("/payments/download"), "{page}");
    let r = app.client.get(href).dispatch().await;
    assert_eq!(r.status(), Status::Forbidden);

    // A search with a problem goes back to the payments page, which says what is wrong.
    crate::exports::switch_to(&app, &finance).await;
    let r = app
        .client
        .get("/payments/download?min_amount=lots")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::SeeOther);
}
