//! The setting refund tests share: a sandbox platform process with no seeded payments whose
//! refunds settle quickly, an app that gives up on a silent platform quickly, and a service's
//! refund settings written directly.

use paydesk::config::Config;
use paydesk::refunds::RefundSettings;
use paydesk::store::refunds as refund_store;

use super::app::TestApp;
use super::sandbox::SandboxProcess;

/// A sandbox with `accounts` accounts, no seeded payments, and refunds that settle 50 ms
/// after they are made.
pub fn refund_sandbox(accounts: usize) -> SandboxProcess {
    let accounts = accounts.to_string();
    SandboxProcess::start_with(&[
        "--seed",
        "0",
        "--accounts",
        &accounts,
        "--refund-delay-ms",
        "50",
    ])
}

/// The app with a 1.5-second platform timeout and no retries, so that a platform that hangs
/// is given up on within a test's patience; `configure` changes anything else.
pub async fn refund_app(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::with_config(|c| {
        c.platform_timeout_ms = 1500;
        c.platform_retries = 0;
        configure(c);
    })
    .await
}

/// Write a service's refund settings directly, as its settings page would.
pub async fn set_refund_settings(app: &TestApp, service_id: i64, settings: &RefundSettings) {
    let mut tx = app.state.db.begin().await.expect("begin");
    refund_store::set_settings(&mut tx, service_id, settings, 0)
        .await
        .expect("refund settings");
    tx.commit().await.expect("commit");
}
