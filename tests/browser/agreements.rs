//! Issue 19 in the browser: finance opens the disputes page and follows the most urgent
//! dispute to its payment; a caseworker finds a recurring agreement by its reference, opens it
//! and cancels it from the confirmation page with a reason, and sees it cancelled. axe on every
//! page.

use fantoccini::Locator;

use crate::harness::Browser;
use crate::pages::{check, fill, submit, Demo};

/// Wait (up to a minute) until the demo has read in what `ready` looks for.
async fn wait_for<T, F, Fut>(mut ready: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = ready().await {
            return found;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the demo read in its disputes and agreements within a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_follows_a_dispute_and_a_caseworker_cancels_an_agreement() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let demo = Demo::start("600", &[]).await;
    let c = &browser.client;
    let mut errors = Vec::new();
    let db = demo.db().await;
    let services: Vec<i64> = paydesk::services::all(&db)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();

    // The most urgent dispute: needing a response, the soonest due.
    let urgent = wait_for(|| async {
        let (rows, _) = paydesk::disputes::list(
            &db,
            &paydesk::disputes::ListQuery {
                services: services.clone(),
                page: 1,
                ..Default::default()
            },
        )
        .await
        .ok()?;
        rows.into_iter()
            .next()
            .filter(|d| d.status == "needs_response" && d.reference.is_some())
    })
    .await;
    demo.sign_in(&browser, "finance", &mut errors).await;
    c.find(Locator::XPath("//nav//a[normalize-space()='Disputes']"))
        .await
        .expect("Disputes in the menu")
        .click()
        .await
        .unwrap();
    check(&browser, "disputes-list", "Disputes", &mut errors).await;
    let first = c
        .find(Locator::Css("#disputes tbody tr:first-child"))
        .await
        .expect("a dispute listed")
        .text()
        .await
        .unwrap();
    assert!(
        first.to_lowercase().contains("needs response"),
        "the most urgent first: {first}"
    );
    let reference = urgent.reference.clone().unwrap_or_default();
    let link = c
        .find(Locator::Css("#disputes tbody tr:first-child a"))
        .await
        .expect("a link to the payment");
    assert_eq!(link.text().await.unwrap(), reference);
    link.click().await.unwrap();
    check(
        &browser,
        "dispute-payment",
        &format!("Payment {reference}"),
        &mut errors,
    )
    .await;
    let page = c.source().await.unwrap();
    assert!(page.contains("Dispute"), "the payment shows its dispute");
    demo.sign_out(&browser, &mut errors).await;

    // An active agreement, found by its reference (typed in lower case), then cancelled.
    let agreement = wait_for(|| async {
        let (rows, _) = paydesk::agreements::list(
            &db,
            &paydesk::agreements::ListQuery {
                services: services.clone(),
                status: Some("active".into()),
                page: 1,
                ..Default::default()
            },
        )
        .await
        .ok()?;
        rows.into_iter().next()
    })
    .await;
    demo.sign_in(&browser, "caseworker", &mut errors).await;
    c.find(Locator::XPath("//nav//a[normalize-space()='Agreements']"))
        .await
        .expect("Agreements in the menu")
        .click()
        .await
        .unwrap();
    check(
        &browser,
        "agreements-list",
        "Recurring agreements",
        &mut errors,
    )
    .await;
    fill(&browser, "reference", &agreement.reference.to_lowercase()).await;
    submit(&browser, "/agreements").await;
    // The page reloads with one row.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10)
        && !c
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("reference=")
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    check(
        &browser,
        "agreements-found",
        "Recurring agreements",
        &mut errors,
    )
    .await;
    let rows = c
        .find_all(Locator::Css("#agreements tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "found by its reference");
    c.find(Locator::Css("#agreements tbody tr a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    check(&browser, "agreement", &agreement.reference, &mut errors).await;
    let agreement_path = c.current_url().await.unwrap().path().to_string();
    c.find(Locator::LinkText("Cancel this agreement"))
        .await
        .expect("the cancel button")
        .click()
        .await
        .unwrap();
    let heading = format!("Cancel agreement {}", agreement.reference);
    check(&browser, "agreement-cancel", &heading, &mut errors).await;
    // No reason: the form again, with the problem.
    submit(&browser, &format!("{agreement_path}/cancel")).await;
    check(&browser, "agreement-cancel-error", &heading, &mut errors).await;
    assert!(c.title().await.unwrap().starts_with("Error: "));
    // The list, the agreement and the confirmation on a phone's width (375 px).
    c.set_window_size(375, 812).await.unwrap();
    let found = format!(
        "/agreements?reference={}",
        agreement.reference.to_lowercase()
    );
    let cancel_path = format!("{agreement_path}/cancel");
    for (name, path, heading) in [
        (
            "agreements-found-375",
            found.as_str(),
            "Recurring agreements",
        ),
        (
            "agreement-375",
            agreement_path.as_str(),
            agreement.reference.as_str(),
        ),
        (
            "agreement-cancel-375",
            cancel_path.as_str(),
            heading.as_str(),
        ),
    ] {
        c.goto(&demo.url(path)).await.unwrap();
        check(&browser, name, heading, &mut errors).await;
    }
    c.set_window_size(1280, 1000).await.unwrap();
    fill(&browser, "reason", "The payer asked by phone to stop it").await;
    submit(&browser, &format!("{agreement_path}/cancel")).await;
    check(
        &browser,
        "agreement-cancel-asked",
        &agreement.reference,
        &mut errors,
    )
    .await;
    // The demo's job queue sends it; the page shows the agreement cancelled.
    let started = std::time::Instant::now();
    let mut page = String::new();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        c.goto(&demo.url(&agreement_path)).await.unwrap();
        page = c.source().await.unwrap();
        if !page.contains("Cancellation requested") && page.contains("Cancelled") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        page.contains("Cancelled") && !page.contains("Cancel this agreement"),
        "the agreement is cancelled"
    );
    check(
        &browser,
        "agreement-cancelled",
        &agreement.reference,
        &mut errors,
    )
    .await;
    drop(demo);
    browser.close().await;
    assert!(errors.is_empty(), "{errors:#?}");
}
