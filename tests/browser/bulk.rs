//! Issue 20 in the browser: a finance person uploads a file of refunds, sees the dry run's
//! refused rows against their row numbers, fixes the file and uploads it again, a service
//! admin approves the batch, the page's progress reaches the end without reloading, and the
//! results download; axe on every page.

use fantoccini::Locator;

use crate::harness::Browser;
use crate::pages::{check, submit, Demo};

async fn upload(browser: &Browser, folder: &std::path::Path, name: &str, text: &str) {
    let path = folder.join(name);
    std::fs::write(&path, text).unwrap();
    browser
        .client
        .find(Locator::Id("file"))
        .await
        .expect("the file field")
        .send_keys(&path.display().to_string())
        .await
        .expect("choose the file");
    submit(browser, "/refunds/bulk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_fix_approve_and_watch_a_batch() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("300", &[]).await;
    let c = &browser.client;
    let mut errors = Vec::new();
    let folder = tempfile::tempdir().unwrap();

    // Three refundable payments of the parking service, once the demo has read them in.
    let db = demo.db().await;
    let service = paydesk::services::by_slug(&db, "parking-permits")
        .await
        .unwrap()
        .expect("the demo's parking service");
    let mut sample = Vec::new();
    for _ in 0..100 {
        sample = paydesk::store::refund_batches::refundable_sample(&db, service.id, 50)
            .await
            .unwrap();
        sample.retain(|p| p.2 >= 4000);
        if sample.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(sample.len() >= 3, "the demo has refundable payments");
    let ids: Vec<&str> = sample.iter().take(3).map(|p| p.0.as_str()).collect();

    demo.sign_in(&browser, "finance", &mut errors).await;
    c.goto(&demo.url("/refunds/bulk")).await.unwrap();
    check(&browser, "bulk-upload", "Bulk refunds", &mut errors).await;
    // An empty file: the form again, with the problem.
    upload(&browser, folder.path(), "empty.csv", "").await;
    check(&browser, "bulk-upload-error", "Bulk refunds", &mut errors).await;
    assert!(c.title().await.unwrap().starts_with("Error: "));

    // A file with two bad rows: shown against rows 3 and 4.
    let text = format!(
        "payment_id,amount,reason,comment\r\n{},40.00,duplicate,first\r\n{},£5.001,duplicate,\r\nno-such-payment,1.00,duplicate,\r\n",
        ids[0], ids[1]
    );
    upload(&browser, folder.path(), "first.csv", &text).await;
    check(
        &browser,
        "bulk-dry-run-refused",
        "Bulk refund batch",
        &mut errors,
    )
    .await;
    let row3 = c
        .find(Locator::Css("#row-3"))
        .await
        .expect("row 3 is named")
        .text()
        .await
        .unwrap();
    assert!(row3.contains("has a currency sign"), "{row3}");
    assert!(
        c.find(Locator::Css("#row-4")).await.is_ok(),
        "row 4 is named"
    );

    // Fixed and uploaded again: £120.00 in all needs a second person (threshold £100).
    c.goto(&demo.url("/refunds/bulk")).await.unwrap();
    let text = format!(
        "payment_id,amount,reason\n{},40.00,duplicate\n{},40.00,duplicate\n{},40.00,duplicate\n",
        ids[0], ids[1], ids[2]
    );
    upload(&browser, folder.path(), "fixed.csv", &text).await;
    check(
        &browser,
        "bulk-dry-run-ready",
        "Bulk refund batch",
        &mut errors,
    )
    .await;
    let batch_path = c.current_url().await.unwrap().path().to_string();
    submit(&browser, &format!("{batch_path}/confirm")).await;
    check(
        &browser,
        "bulk-awaiting-approval",
        "Bulk refund batch",
        &mut errors,
    )
    .await;
    assert!(c.source().await.unwrap().contains("Awaiting approval"));
    demo.sign_out(&browser, &mut errors).await;

    // A service admin approves it; the progress reaches the end without reloading.
    demo.sign_in(&browser, "service-admin", &mut errors).await;
    c.goto(&demo.url(&batch_path)).await.unwrap();
    check(&browser, "bulk-approve", "Bulk refund batch", &mut errors).await;
    submit(&browser, &format!("{batch_path}/approve")).await;
    check(&browser, "bulk-sending", "Bulk refund batch", &mut errors).await;
    let started = std::time::Instant::now();
    let mut percent = String::new();
    while started.elapsed() < std::time::Duration::from_secs(90) {
        percent = c
            .find(Locator::Css("[data-field='percent']"))
            .await
            .expect("the progress figure")
            .text()
            .await
            .unwrap_or_default();
        if percent == "100" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(percent, "100", "the page updated itself to the end");
    check(&browser, "bulk-finished", "Bulk refund batch", &mut errors).await;
    let csv = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);",
            vec![serde_json::json!(format!("{batch_path}/results.csv"))],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert!(csv.starts_with("line,payment_id"), "{csv}");
    assert_eq!(csv.matches(",refunded,").count(), 3, "{csv}");
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}
