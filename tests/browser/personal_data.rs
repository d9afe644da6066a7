//! Issue 21 in the browser: a service admin sets the service's retention period (an error
//! first), finds a payer and downloads their subject access bundle, asks for their erasure,
//! and a platform admin approves it; legal holds are placed, shown on the payment and
//! released. axe on every page, at the usual width and at 375 px for the new pages.

use fantoccini::Locator;

use crate::harness::Browser;
use crate::pages::{check, fill, submit, Demo};

/// Submit the form with this action through `fetch` and answer the final response's text
/// (a download the browser would otherwise save).
async fn fetch_form(browser: &Browser, action: &str) -> String {
    browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             const form = document.querySelector(`form[action='${arguments[0]}']`); \
             fetch(form.action, {method: 'POST', body: new URLSearchParams(new FormData(form))}) \
               .then(r => r.text()).then(done, e => done(String(e)));",
            vec![serde_json::json!(action)],
        )
        .await
        .expect("fetch")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn narrow(browser: &Browser, name: &str, heading: &str, errors: &mut Vec<String>) {
    browser.client.set_window_size(375, 900).await.unwrap();
    check(browser, &format!("{name}-375"), heading, errors).await;
    browser.client.set_window_size(1280, 1000).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_subject_access_erasure_and_holds() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("60", &[]).await;
    let c = &browser.client;
    let mut errors = Vec::new();
    let db = demo.db().await;
    let service = paydesk::services::by_slug(&db, "parking-permits")
        .await
        .unwrap()
        .expect("the demo's parking service");
    // Two payers with an email, once the demo has read the payments in.
    let mut payers: Vec<(String, String)> = Vec::new();
    for _ in 0..120 {
        payers = paydesk::on_db!(&db, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT j.payment_id, j.email_key FROM journeys j WHERE j.service_id = $1 AND j.email_key IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.service_id = j.service_id AND d.payment_id = j.payment_id) \
             AND NOT EXISTS (SELECT 1 FROM platform_refunds p WHERE p.service_id = j.service_id AND p.payment_id = j.payment_id) \
             AND NOT EXISTS (SELECT 1 FROM refund_requests r WHERE r.journey_id = j.id) \
             ORDER BY j.id LIMIT 50")
            .bind(service.id).fetch_all(pool).await.unwrap());
        payers.dedup_by(|a, b| a.1 == b.1);
        if payers.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(payers.len() >= 2, "the demo has payers with emails");
    let (erased_payment, erased_email) = payers[0].clone();
    let (held_payment, _) = payers[1].clone();

    // Retention on the service page.
    demo.sign_in(&browser, "service-admin", &mut errors).await;
    let retention = format!("/admin/services/{}/retention", service.id);
    c.goto(&demo.url(&retention)).await.unwrap();
    check(&browser, "retention", "personal data is kept", &mut errors).await;
    fill(&browser, "days", "100").await;
    submit(&browser, &retention).await;
    check(
        &browser,
        "retention-error",
        "personal data is kept",
        &mut errors,
    )
    .await;
    assert!(c.title().await.unwrap().starts_with("Error: "));
    fill(&browser, "days", "400").await;
    submit(&browser, &retention).await;
    check(&browser, "retention-saved", &service.name, &mut errors).await;
    assert!(c.source().await.unwrap().contains("400 days"));

    // Subject access: an address that cannot be one, then the payer's bundle.
    c.goto(&demo.url("/personal-data/access")).await.unwrap();
    check(&browser, "subject-access", "Subject access", &mut errors).await;
    narrow(&browser, "subject-access", "Subject access", &mut errors).await;
    fill(&browser, "email", "not-an-address").await;
    submit(&browser, "/personal-data/access").await;
    check(
        &browser,
        "subject-access-error",
        "Subject access",
        &mut errors,
    )
    .await;
    fill(&browser, "email", &erased_email.to_uppercase()).await;
    let bundle = fetch_form(&browser, "/personal-data/access").await;
    let doc: serde_json::Value = serde_json::from_str(&bundle)
        .unwrap_or_else(|e| panic!("the bundle is JSON ({e}): {bundle}"));
    assert_eq!(doc["format"], "paydesk-subject-access/1");
    assert!(
        doc["payments"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["payment_id"] == erased_payment.as_str())),
        "{doc}"
    );

    // Erasure: asked for by the service admin…
    c.goto(&demo.url("/personal-data/erasure")).await.unwrap();
    check(&browser, "erasure", "Erase a payer", &mut errors).await;
    narrow(&browser, "erasure", "Erase a payer", &mut errors).await;
    submit(&browser, "/personal-data/erasure").await;
    check(&browser, "erasure-error", "Erase a payer", &mut errors).await;
    fill(&browser, "email", &erased_email).await;
    fill(&browser, "reason", "The payer asked us to erase their data").await;
    fill(&browser, "case_reference", "DPA-2026-17").await;
    submit(&browser, "/personal-data/erasure").await;
    check(&browser, "erasure-asked", "Erase a payer", &mut errors).await;
    assert!(c.source().await.unwrap().contains("You asked for this"));
    demo.sign_out(&browser, &mut errors).await;

    // …approved by a platform admin.
    demo.sign_in(&browser, "platform-admin", &mut errors).await;
    c.goto(&demo.url("/personal-data/erasure")).await.unwrap();
    check(&browser, "erasure-waiting", "Erase a payer", &mut errors).await;
    c.find(Locator::Css("button[name='decision'][value='approve']"))
        .await
        .expect("an approve button")
        .click()
        .await
        .unwrap();
    check(&browser, "erasure-approved", "Erase a payer", &mut errors).await;
    assert!(
        c.source().await.unwrap().contains("Erasure approved"),
        "the approval banner"
    );
    c.goto(&demo.url(&format!(
        "/payments/{erased_payment}?service=parking-permits"
    )))
    .await
    .unwrap();
    check(&browser, "erased-payment", "Payment", &mut errors).await;
    assert!(c
        .source()
        .await
        .unwrap()
        .contains("Personal details removed on"));

    // Holds: placed from the payment's page, listed, shown on the payment, released.
    c.goto(&demo.url(&format!("/payments/{held_payment}?service=parking-permits")))
        .await
        .unwrap();
    check(&browser, "hold-payment", "Payment", &mut errors).await;
    c.find(Locator::LinkText(
        "Place a legal hold on this payment's personal data",
    ))
    .await
    .expect("a link to place a hold")
    .click()
    .await
    .unwrap();
    check(&browser, "holds-place", "Legal holds", &mut errors).await;
    narrow(&browser, "holds-place", "Legal holds", &mut errors).await;
    submit(&browser, "/personal-data/holds").await;
    check(&browser, "holds-error", "Legal holds", &mut errors).await;
    assert!(c.title().await.unwrap().starts_with("Error: "));
    fill(&browser, "reason", "Court claim CC-42 about this payment").await;
    submit(&browser, "/personal-data/holds").await;
    check(&browser, "holds-list", "Legal holds", &mut errors).await;
    narrow(&browser, "holds-list", "Legal holds", &mut errors).await;
    assert!(c.source().await.unwrap().contains("Court claim CC-42"));
    c.goto(&demo.url(&format!("/payments/{held_payment}?service=parking-permits")))
        .await
        .unwrap();
    check(&browser, "held-payment", "Payment", &mut errors).await;
    assert!(c.source().await.unwrap().contains("Personal data held"));
    c.goto(&demo.url("/personal-data/holds")).await.unwrap();
    c.find(Locator::Css("form[action$='/release'] button"))
        .await
        .expect("a release button")
        .click()
        .await
        .unwrap();
    check(&browser, "holds-released", "Legal holds", &mut errors).await;
    assert!(c.source().await.unwrap().contains("Hold released"));

    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}
