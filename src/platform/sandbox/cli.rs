//! `paydesk sandbox`: run the sandbox platform on its own, print where it listens (one
//! `SANDBOX READY <base_url>` line first, for scripts and tests), the accounts and their
//! credentials and the test cards, then serve until Ctrl-C, SIGTERM, or (with
//! `--exit-with-stdin`) until standard input closes.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::card_page::TEST_CARDS;
use super::options::{default_accounts, SandboxOptions};
use super::server::start;
use super::webhooks;

/// The command's settings (see `paydesk sandbox --help`).
#[derive(Debug, Clone)]
pub struct SandboxArgs {
    pub port: u16,
    pub address: IpAddr,
    /// Payments seeded per account.
    pub seed: usize,
    pub random_seed: u64,
    pub data: Option<PathBuf>,
    pub accounts: usize,
    pub refund_delay_ms: u64,
    pub exit_with_stdin: bool,
    /// Divide the webhook retry delays by this (tests use it to see retries quickly).
    pub webhook_retry_divisor: Option<u32>,
}

pub async fn run(args: SandboxArgs) -> ExitCode {
    let schedule = match args.webhook_retry_divisor.filter(|d| *d > 1) {
        Some(d) => webhooks::RETRY_SCHEDULE.iter().map(|s| *s / d).collect(),
        None => webhooks::RETRY_SCHEDULE.to_vec(),
    };
    let options = SandboxOptions {
        address: args.address,
        port: args.port,
        random_seed: args.random_seed,
        data_file: args.data.clone(),
        accounts: default_accounts(args.accounts, args.seed),
        refund_settle_after: Duration::from_millis(args.refund_delay_ms),
        webhook_retry_schedule: schedule,
        ..SandboxOptions::default()
    };
    let sandbox = match start(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut banner = format!("SANDBOX READY {}\n", sandbox.base_url());
    banner.push_str(
        "Accounts (API key for Authorization: Bearer; OAuth client at POST /oauth/token):\n",
    );
    for a in sandbox.accounts() {
        banner.push_str(&format!(
            "  {}  {:<24} key {}  client {} / {}  ({} seeded payments)\n",
            a.id,
            a.name,
            a.api_key,
            a.client_id.as_deref().unwrap_or("-"),
            a.client_secret.as_deref().unwrap_or("-"),
            a.payments
        ));
    }
    banner.push_str("Test cards (any future expiry, any name, any security code):\n");
    for (number, brand, what) in TEST_CARDS {
        banner.push_str(&format!("  {number:<17} {brand:<17} {what}\n"));
    }
    banner.push_str("Test refund amounts: an amount ending in 13p (e.g. 113, 1013) ends in error; others succeed.\n");
    banner.push_str(&format!(
        "Disputes: GET /v1/disputes (some seeded payments are disputed); dispute a successful payment with POST {}/sandbox/payments/ID/dispute; move the clock to move disputes on.\n",
        sandbox.base_url()
    ));
    banner.push_str(&format!(
        "Admin: {0}/sandbox/accounts, {0}/sandbox/clock, {0}/sandbox/webhooks\n",
        sandbox.base_url()
    ));
    let printed = out.write_all(banner.as_bytes()).and_then(|_| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("paydesk: cannot write to standard output: {e}");
    }

    wait_for_end(args.exit_with_stdin).await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}

/// Ctrl-C, SIGTERM, or the end of standard input when asked to watch it.
async fn wait_for_end(watch_stdin: bool) {
    let stdin_closed = async {
        if !watch_stdin {
            return std::future::pending::<()>().await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut sink);
            let _ = tx.send(());
        });
        let _ = rx.await;
    };
    #[cfg(unix)]
    let terminated = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminated = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
        _ = stdin_closed => {}
    }
}
