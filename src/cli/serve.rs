//! `paydesk serve` and `paydesk demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use paydesk::config::Config;
use paydesk::{clock, logging, AppState};

pub(super) async fn demo(payments: usize, sandbox_port: Option<u16>) -> ExitCode {
    use paydesk::platform::sandbox::{self, SandboxOptions};
    // Demo data lives apart from a real database unless a URL is given on purpose.
    if std::env::var_os("PAYDESK_DATABASE_URL").is_none() {
        std::env::set_var("PAYDESK_DATABASE_URL", "sqlite://var/demo.db");
    }
    let config = match Config::load(true) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paydesk: {e}");
            return ExitCode::from(2);
        }
    };
    if !config.database_url.starts_with("sqlite:") {
        eprintln!("paydesk: demo mode runs on SQLite only; it refuses PostgreSQL so demo accounts never reach a shared database (unset PAYDESK_DATABASE_URL or give a sqlite:// URL)");
        return ExitCode::from(2);
    }
    if config.profile == "release" || config.profile == "production" {
        eprintln!("paydesk: demo mode refuses the {} profile", config.profile);
        return ExitCode::from(2);
    }
    logging::init(config.log_format);
    // A demo database made afresh starts a fresh audit log: the checkpoints of an earlier demo
    // database at the same path would otherwise read as a log whose tail was deleted. (Only
    // the demo does this; a real database's checkpoints are never removed by paydesk.)
    let file = config
        .database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    if !file.is_empty() && !std::path::Path::new(&file).exists() {
        let _ = std::fs::remove_dir_all(config.audit_checkpoint_folder());
    }
    let specs: Vec<_> = paydesk::demo::services(payments)
        .into_iter()
        .map(|(slug, name, mut spec)| {
            spec.webhook_url = Some(format!("{}/hooks/govuk-pay/{slug}", config.public_url));
            (slug, name, spec)
        })
        .collect();
    let port = sandbox_port.unwrap_or(config.port.saturating_add(1));
    eprintln!("Starting the sandbox platform with {payments} payments…");
    let platform = match sandbox::start(SandboxOptions {
        address: config.address,
        port,
        data_file: Some(PathBuf::from("var/demo-sandbox.json")),
        accounts: specs.iter().map(|(_, _, s)| s.clone()).collect(),
        ..Default::default()
    })
    .await
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("paydesk: the sandbox platform could not start on port {port}: {e} (set PAYDESK_SANDBOX_PORT to use another)");
            return ExitCode::FAILURE;
        }
    };
    let state = match AppState::open(config, clock::system()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("paydesk: cannot open the database: {e}");
            platform.stop().await;
            return ExitCode::FAILURE;
        }
    };
    let slugs: Vec<&str> = specs.iter().map(|(slug, _, _)| *slug).collect();
    let prepared = async {
        paydesk::demo::ensure_services(&state, platform.base_url(), &specs).await?;
        paydesk::demo::ensure_accounts(&state, &slugs).await
    }
    .await;
    let accounts = match prepared {
        Ok(a) => a,
        Err(e) => {
            eprintln!("paydesk: could not set up the demo: {e}");
            platform.stop().await;
            return ExitCode::FAILURE;
        }
    };
    let mut welcome = String::new();
    welcome.push_str("\npaydesk demo\n");
    welcome.push_str(&format!(
        "  console:          {}\n",
        state.config.public_url
    ));
    welcome.push_str(&format!(
        "  sandbox platform: {}  (test cards: see README)\n",
        platform.base_url()
    ));
    welcome.push_str(&format!(
        "  database:         {}\n",
        state.config.database_url
    ));
    welcome.push_str(
        "  Payments are imported in the background; the first import takes a minute or so.\n\n",
    );
    welcome
        .push_str("Demo accounts (demo mode only; the code page shows each one's current code):\n");
    for a in &accounts {
        welcome.push_str(&format!(
            "  {:<16} {:<40} password {:<32} authenticator key {}\n",
            a.role.label(),
            a.email,
            a.password,
            a.totp_key
        ));
    }
    welcome.push('\n');
    // Written once, and a closed stdout (a pipe whose reader went away) is not a reason to
    // stop the console.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(welcome.as_bytes()).and_then(|_| out.flush());
    }
    let code = serve(state.clone()).await;
    platform.stop().await;
    state.db.close().await;
    code
}

pub(super) async fn serve(state: AppState) -> ExitCode {
    match paydesk::app(state).launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paydesk: the server could not start: {e}");
            ExitCode::FAILURE
        }
    }
}
