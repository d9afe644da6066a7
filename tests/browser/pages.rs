//! Every page paydesk serves, opened in the browser and checked with axe.

use crate::common::{Server, TestDb};
use crate::harness::{assert_no_violations, Browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDb::new().await;
    let server = Server::start(db.url(), &[]);
    let pages = [
        ("/", "start", "paydesk"),
        ("/no/such/page", "not-found", "Page not found"),
    ];
    for (path, name, heading) in pages {
        let violations = browser.open_and_check(&server.url(path), name).await;
        let h1 = browser
            .client
            .find(fantoccini::Locator::Css("h1"))
            .await
            .expect("a heading")
            .text()
            .await
            .unwrap_or_default();
        assert!(h1.contains(heading), "{path}: h1 was {h1:?}");
        let title = browser.client.title().await.unwrap_or_default();
        assert!(
            title.contains(heading) || path == "/",
            "{path}: title was {title:?}"
        );
        assert_no_violations(path, &violations);
    }
    browser.close().await;
}
