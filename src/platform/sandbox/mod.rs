//! The sandbox payment platform: a real HTTP server speaking the GOV.UK Pay v1 API (`api`),
//! with a payer's card page (`card_page`), seeded accounts (`seed`, `data`, `account`),
//! webhooks (`webhooks`), fault injection (`faults`), admin endpoints (`admin`) and an
//! optional data file (`persist`). `paydesk sandbox` runs it as a command (`cli`); `paydesk
//! demo` and the benchmarks start it in-process with [`start`].
//!
//! Sandbox time is real time plus an offset that `POST /sandbox/clock` moves forwards, so
//! expiry (90 minutes) and refund settlement can be tested without waiting.

pub mod account;
pub mod admin;
pub mod api;
pub mod card_page;
pub mod cli;
pub mod data;
pub mod faults;
pub mod persist;
pub mod search;
pub mod seed;
pub mod webhooks;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use rand::RngCore;
use rocket::figment::providers::Serialized;
use rocket::figment::Figment;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use account::{Account, Ctx, Totals, WebhookTarget};
use data::{from_time, Millis, HOUR};
use faults::{FaultState, Faults};
use persist::{StateFile, StoredAccount, StoredPayment};
use webhooks::{Hub, Outgoing};

/// How the sandbox runs. Build with `..Default::default()`: fields may be added.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub address: IpAddr,
    /// 0 picks any free port; [`RunningSandbox::base_url`] says which.
    pub port: u16,
    /// Seeds the generated payments (with the account id and the payment's index).
    pub random_seed: u64,
    /// Keep state here across restarts. Its anchor, random seed and each stored account's
    /// name and payment count win over these options, so the same payments come back;
    /// credentials and webhook targets given here win over stored ones; accounts it does not
    /// know are added.
    pub data_file: Option<PathBuf>,
    pub accounts: Vec<AccountSpec>,
    /// How long (sandbox time) a submitted refund takes to succeed or fail.
    pub refund_settle_after: Duration,
    /// How long an OAuth access token lasts (sandbox time).
    pub token_ttl: Duration,
    /// The delays between webhook attempts; defaults to the platform's
    /// [`webhooks::RETRY_SCHEDULE`]. Tests shorten it.
    pub webhook_retry_schedule: Vec<Duration>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            random_seed: 1,
            data_file: None,
            accounts: Vec::new(),
            refund_settle_after: Duration::from_secs(2),
            token_ttl: Duration::from_secs(3600),
            webhook_retry_schedule: webhooks::RETRY_SCHEDULE.to_vec(),
        }
    }
}

/// A platform account: its credentials, where its webhooks go, and how many payments it is
/// seeded with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSpec {
    pub id: String,
    pub name: String,
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub payments: usize,
}

impl AccountSpec {
    /// The `n`th default account (from 1): `account-n`, `sandbox-key-n`, `sandbox-client-n`,
    /// `sandbox-secret-n`.
    pub fn default_numbered(n: usize, payments: usize) -> AccountSpec {
        let name = seed::DEFAULT_NAMES
            .get(n.wrapping_sub(1))
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("Service {n}"));
        AccountSpec {
            id: format!("account-{n}"),
            name,
            api_key: format!("sandbox-key-{n}"),
            client_id: Some(format!("sandbox-client-{n}")),
            client_secret: Some(format!("sandbox-secret-{n}")),
            webhook_url: None,
            webhook_secret: None,
            payments,
        }
    }
}

/// `count` default accounts with `payments` seeded payments each.
pub fn default_accounts(count: usize, payments: usize) -> Vec<AccountSpec> {
    (1..=count)
        .map(|n| AccountSpec::default_numbered(n, payments))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox could not start its server: {0}")]
    Server(String),
    #[error("the sandbox data file: {0}")]
    Data(String),
    #[error("invalid sandbox account: {0}")]
    Account(String),
    #[error("the sandbox could not build its webhook client: {0}")]
    Http(String),
}

/// An account as the server holds it: fixed credentials, then its payments and faults
/// behind their own locks.
pub(crate) struct Entry {
    pub id: String,
    pub name: String,
    pub api_key: String,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub data: Mutex<Account>,
    pub faults: Mutex<FaultState>,
}

impl Entry {
    pub fn lock(&self) -> MutexGuard<'_, Account> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn spec(&self) -> AccountSpec {
        let account = self.lock();
        AccountSpec {
            id: self.id.clone(),
            name: self.name.clone(),
            api_key: self.api_key.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            webhook_url: account.webhook.as_ref().map(|w| w.url.clone()),
            webhook_secret: account.webhook.as_ref().map(|w| w.secret.clone()),
            payments: account.seeded,
        }
    }
}

/// Payer page token → (account, payment index).
type PayTokens = HashMap<Box<str>, (Arc<Entry>, u32)>;

/// Everything the server's handlers and background tasks share.
pub(crate) struct Shared {
    accounts: RwLock<Vec<Arc<Entry>>>,
    clock_offset: AtomicI64,
    pub anchor: Millis,
    pub random_seed: u64,
    pub settle_after: Millis,
    pub token_ttl: Millis,
    base_url: OnceLock<String>,
    /// OAuth access token → (account, expiry in sandbox time).
    oauth: Mutex<HashMap<String, (Arc<Entry>, Millis)>>,
    pay_tokens: Mutex<PayTokens>,
    pub hub: Hub,
    save: Option<(PathBuf, Arc<Notify>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn now(&self) -> Millis {
        from_time(time::OffsetDateTime::now_utc()) + self.clock_offset.load(Ordering::Relaxed)
    }

    pub fn clock_offset(&self) -> Millis {
        self.clock_offset.load(Ordering::Relaxed)
    }

    pub fn advance_clock(&self, by: Millis) {
        self.clock_offset.fetch_add(by.max(0), Ordering::Relaxed);
        self.changed();
    }

    pub fn base_url(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("")
    }

    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.entries().into_iter().find(|e| e.id == id)
    }

    pub fn entry_by_key(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(e) = self.entries().into_iter().find(|e| e.api_key == key) {
            return Some(e);
        }
        let now = self.now();
        let tokens = lock(&self.oauth);
        tokens
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(e, _)| e.clone())
    }

    pub fn entry_by_client(&self, id: &str, secret: &str) -> Option<Arc<Entry>> {
        self.entries().into_iter().find(|e| {
            e.client_id.as_deref() == Some(id) && e.client_secret.as_deref() == Some(secret)
        })
    }

    pub fn issue_token(&self, entry: Arc<Entry>) -> String {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = format!("sbx_{}", hex::encode(bytes));
        let expires = self.now() + self.token_ttl;
        lock(&self.oauth).insert(token.clone(), (entry, expires));
        token
    }

    pub fn add_entry(&self, entry: Arc<Entry>) -> Result<(), String> {
        let mut accounts = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        if accounts.iter().any(|e| e.id == entry.id) {
            return Err(format!("there is already an account {:?}", entry.id));
        }
        if accounts.iter().any(|e| e.api_key == entry.api_key) {
            return Err("another account has that api_key".into());
        }
        if entry.client_id.is_some()
            && accounts
                .iter()
                .any(|e| e.client_id.is_some() && e.client_id == entry.client_id)
        {
            return Err("another account has that client_id".into());
        }
        let mut tokens = lock(&self.pay_tokens);
        for (t, idx) in entry.lock().tokens() {
            tokens.insert(t.into(), (entry.clone(), idx));
        }
        drop(tokens);
        accounts.push(entry);
        Ok(())
    }

    pub fn register_pay_token(&self, entry: &Arc<Entry>, token: &str, idx: u32) {
        lock(&self.pay_tokens).insert(token.into(), (entry.clone(), idx));
    }

    pub fn pay_token(&self, token: &str) -> Option<(Arc<Entry>, u32)> {
        lock(&self.pay_tokens).get(token).cloned()
    }

    /// Run `f` on an account after bringing it up to date (expiries, refund settlements),
    /// then send the webhooks the changes caused and schedule a save.
    pub fn with_account<T>(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Account, &mut Ctx<'_>) -> T,
    ) -> T {
        let base = self.base_url();
        let mut ctx = Ctx::new(self.now(), base, self.settle_after);
        let result = {
            let mut account = entry.lock();
            account.catch_up(&mut ctx);
            f(&mut account, &mut ctx)
        };
        self.flush(entry, ctx.out);
        if ctx.changed {
            self.changed();
        }
        result
    }

    fn flush(&self, entry: &Entry, out: Vec<Outgoing>) {
        if out.is_empty() {
            return;
        }
        let mut faults = entry.faults();
        let plans: Vec<_> = out.iter().map(|_| faults.plan_webhook()).collect();
        drop(faults);
        for (o, plan) in out.into_iter().zip(plans) {
            self.hub.send(o, plan);
        }
    }

    pub fn changed(&self) {
        if let Some((_, notify)) = &self.save {
            notify.notify_one();
        }
    }

    /// What falls due is applied to every account, so webhooks go out without a request.
    pub fn sweep(&self) {
        for entry in self.entries() {
            self.with_account(&entry, |_, _| ());
        }
        let now = self.now();
        lock(&self.oauth).retain(|_, (_, expires)| *expires > now);
    }

    pub fn snapshot(&self) -> StateFile {
        let accounts = self
            .entries()
            .iter()
            .map(|e| {
                let spec = e.spec();
                let account = e.lock();
                let mut dirty: Vec<u32> = account.dirty.iter().copied().collect();
                dirty.sort_unstable();
                StoredAccount {
                    spec,
                    payments: dirty
                        .into_iter()
                        .map(|i| StoredPayment::from_rec(account.payment(i)))
                        .collect(),
                }
            })
            .collect();
        StateFile {
            format: persist::FORMAT,
            anchor: self.anchor,
            random_seed: self.random_seed,
            clock_offset_ms: self.clock_offset(),
            accounts,
        }
    }

    async fn save_now(self: &Arc<Self>) {
        let Some((path, _)) = &self.save else {
            return;
        };
        let state = self.snapshot();
        let path = path.clone();
        let result = tokio::task::spawn_blocking(move || persist::save(&path, &state)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("sandbox: cannot write the data file: {e}"),
            Err(e) => eprintln!("sandbox: the data file writer failed: {e}"),
        }
    }
}

/// Seed an account (on a blocking thread: a million payments take a few seconds) and build
/// its server-side entry.
pub(crate) async fn build_entry(
    spec: AccountSpec,
    random_seed: u64,
    anchor: Millis,
    stored: Vec<StoredPayment>,
) -> Result<Arc<Entry>, SandboxError> {
    validate_spec(&spec).map_err(SandboxError::Account)?;
    let fault_seed = random_seed ^ seed::fnv1a(spec.id.as_bytes());
    tokio::task::spawn_blocking(move || {
        let plan = seed::SeedPlan::new(random_seed, &spec.id, &spec.name, spec.payments, anchor);
        let payments = plan.generate();
        let mut account = Account::new(
            &spec.id,
            &spec.name,
            payments,
            spec.payments,
            plan.return_url(),
        );
        if !stored.is_empty() {
            let recs = stored
                .into_iter()
                .map(StoredPayment::into_rec)
                .collect::<Result<Vec<_>, String>>()
                .map_err(SandboxError::Data)?;
            account.apply_stored(recs);
        }
        account.webhook = match (&spec.webhook_url, &spec.webhook_secret) {
            (Some(url), secret) if !url.is_empty() => Some(WebhookTarget {
                url: url.clone(),
                secret: secret.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(Arc::new(Entry {
            id: spec.id.clone(),
            name: spec.name.clone(),
            api_key: spec.api_key.clone(),
            client_id: spec.client_id.clone(),
            client_secret: spec.client_secret.clone(),
            data: Mutex::new(account),
            faults: Mutex::new(FaultState::new(fault_seed)),
        }))
    })
    .await
    .map_err(|e| SandboxError::Account(format!("seeding failed: {e}")))?
}

pub fn validate_spec(spec: &AccountSpec) -> Result<(), String> {
    let id_ok = !spec.id.is_empty()
        && spec.id.len() <= 64
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok {
        return Err("id must be 1-64 letters, digits, '-' or '_'".into());
    }
    if spec.api_key.trim().is_empty() {
        return Err("api_key must not be empty".into());
    }
    if spec.client_id.is_some() != spec.client_secret.is_some() {
        return Err("client_id and client_secret go together".into());
    }
    if spec.payments > 5_000_000 {
        return Err("payments must be at most 5000000".into());
    }
    if let Some(url) = spec.webhook_url.as_deref().filter(|u| !u.is_empty()) {
        admin::check_webhook_url(url)?;
    }
    Ok(())
}

/// The sandbox, serving.
pub struct RunningSandbox {
    base_url: String,
    shared: Arc<Shared>,
    shutdown: rocket::Shutdown,
    server: JoinHandle<()>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSandbox {
    /// `http://address:port`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stop serving, stop background work, and write the data file one last time.
    pub async fn stop(self) {
        self.shutdown.notify();
        let _ = self.server.await;
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// The account's counts and sums (after applying what has fallen due).
    pub fn totals(&self, account: &str) -> Option<Totals> {
        let entry = self.shared.entry(account)?;
        Some(self.shared.with_account(&entry, |a, _| a.totals()))
    }

    pub fn accounts(&self) -> Vec<AccountSpec> {
        self.shared.entries().iter().map(|e| e.spec()).collect()
    }

    /// Move sandbox time forwards.
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .advance_clock(i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2));
        self.shared.sweep();
    }

    /// Replace an account's faults; false when there is no such account or they are invalid.
    pub fn set_faults(&self, account: &str, faults: Faults) -> bool {
        match self.shared.entry(account) {
            Some(e) if faults.validate().is_ok() => {
                e.faults().faults = faults;
                true
            }
            _ => false,
        }
    }

    /// Point an account's webhooks somewhere (or nowhere, with `None`).
    pub fn set_webhook(&self, account: &str, url: Option<&str>, secret: &str) -> bool {
        let Some(e) = self.shared.entry(account) else {
            return false;
        };
        e.lock().webhook = url.map(|u| WebhookTarget {
            url: u.to_string(),
            secret: secret.to_string(),
        });
        self.shared.changed();
        true
    }

    /// The webhook delivery log, oldest first.
    pub fn webhook_log(&self, account: Option<&str>) -> Vec<webhooks::Delivery> {
        self.shared.hub.log(account)
    }
}

/// An account both in the data file and in the options: what seeds it (name, payment count)
/// stays as stored, so the same payments come back; credentials and a webhook target given
/// in the options win, so a restart on another address still reaches its receiver.
fn merge_spec(stored: &mut AccountSpec, given: &AccountSpec) {
    stored.api_key = given.api_key.clone();
    if given.client_id.is_some() {
        stored.client_id = given.client_id.clone();
        stored.client_secret = given.client_secret.clone();
    }
    if given.webhook_url.is_some() {
        stored.webhook_url = given.webhook_url.clone();
    }
    if given.webhook_secret.is_some() {
        stored.webhook_secret = given.webhook_secret.clone();
    }
}

/// The anchor for fresh seed data: now, truncated to the hour.
fn fresh_anchor() -> Millis {
    let now = from_time(time::OffsetDateTime::now_utc());
    now - now.rem_euclid(HOUR)
}

/// Start the sandbox: seed (or load) the accounts, bind, and return once it accepts
/// connections.
pub async fn start(options: SandboxOptions) -> Result<RunningSandbox, SandboxError> {
    let stored = match &options.data_file {
        Some(path) => persist::load(path).map_err(SandboxError::Data)?,
        None => None,
    };
    let (anchor, random_seed, offset, mut stored_accounts) = match stored {
        Some(s) => (s.anchor, s.random_seed, s.clock_offset_ms, s.accounts),
        None => (fresh_anchor(), options.random_seed, 0, Vec::new()),
    };
    for spec in &options.accounts {
        match stored_accounts.iter_mut().find(|a| a.spec.id == spec.id) {
            Some(stored) => merge_spec(&mut stored.spec, spec),
            None => stored_accounts.push(StoredAccount {
                spec: spec.clone(),
                payments: Vec::new(),
            }),
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let schedule = if options.webhook_retry_schedule.is_empty() {
        webhooks::RETRY_SCHEDULE.to_vec()
    } else {
        options.webhook_retry_schedule.clone()
    };
    let (hub, dispatcher) =
        Hub::new(schedule, stop_rx.clone()).map_err(|e| SandboxError::Http(e.to_string()))?;
    let save = options
        .data_file
        .clone()
        .map(|p| (p, Arc::new(Notify::new())));
    let shared = Arc::new(Shared {
        accounts: RwLock::new(Vec::new()),
        clock_offset: AtomicI64::new(offset),
        anchor,
        random_seed,
        settle_after: i64::try_from(options.refund_settle_after.as_millis()).unwrap_or(2_000),
        token_ttl: i64::try_from(options.token_ttl.as_millis()).unwrap_or(3_600_000),
        base_url: OnceLock::new(),
        oauth: Mutex::new(HashMap::new()),
        pay_tokens: Mutex::new(HashMap::new()),
        hub,
        save,
    });
    for stored in stored_accounts {
        let entry = build_entry(stored.spec, random_seed, anchor, stored.payments).await?;
        shared.add_entry(entry).map_err(SandboxError::Account)?;
    }

    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let figment =
        Figment::from(rocket::Config::default()).merge(Serialized::globals(serde_json::json!({
            "address": options.address.to_string(),
            "port": options.port,
            "log_level": "off",
            "ident": false,
            "cli_colors": false,
            "secret_key": hex::encode(secret),
            "shutdown": {"ctrlc": false, "signals": [], "grace": 1, "mercy": 1},
        })));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<u16>();
    let ready_tx = Mutex::new(Some(ready_tx));
    let rocket = rocket::custom(figment)
        .manage(shared.clone())
        .mount("/", api::routes())
        .mount("/", card_page::routes())
        .mount("/", admin::routes())
        .register("/", api::catchers())
        .attach(rocket::fairing::AdHoc::on_liftoff(
            "sandbox ready",
            move |r| {
                let port = r.config().port;
                Box::pin(async move {
                    if let Some(tx) = lock(&ready_tx).take() {
                        let _ = tx.send(port);
                    }
                })
            },
        ));
    let ignited = rocket
        .ignite()
        .await
        .map_err(|e| SandboxError::Server(e.to_string()))?;
    let shutdown = ignited.shutdown();
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let server = tokio::spawn(async move {
        if let Err(e) = ignited.launch().await {
            let _ = failed_tx.send(e.to_string());
        }
    });
    let port = match ready_rx.await {
        Ok(port) => port,
        Err(_) => {
            // The server ended before lift-off; its launch error says why.
            let why = failed_rx
                .await
                .unwrap_or_else(|_| "the server stopped before it was ready".into());
            return Err(SandboxError::Server(why));
        }
    };
    let host = match options.address {
        IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(a) if a.is_unspecified() => "[::1]".to_string(),
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let base_url = format!("http://{host}:{port}");
    let _ = shared.base_url.set(base_url.clone());

    let mut tasks = vec![tokio::spawn(dispatcher)];
    tasks.push(tokio::spawn(sweeper(shared.clone(), stop_rx.clone())));
    if shared.save.is_some() {
        tasks.push(tokio::spawn(saver(shared.clone(), stop_rx.clone())));
        shared.changed();
    }
    Ok(RunningSandbox {
        base_url,
        shared,
        shutdown,
        server,
        stop: stop_tx,
        tasks,
    })
}

/// Every second: expire payments and settle refunds that have fallen due, so their webhooks
/// go out even when nobody is asking.
async fn sweeper(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.sweep(),
            _ = stop.changed() => return,
        }
    }
}

/// Writes the data file at most every 200 ms while things change, and once more on stop.
async fn saver(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let Some((_, notify)) = shared.save.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = notify.notified() => {}
            _ = stop.changed() => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => break,
        }
        shared.save_now().await;
    }
    shared.save_now().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The parts of a payment that must survive a restart (links name the port, which
    /// changes; unfinished payments may expire while the test runs).
    fn essentials(page: &Value) -> Vec<(Value, Value, Value, Value)> {
        page["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let state = if p["state"]["finished"] == true {
                    p["state"].clone()
                } else {
                    Value::Null
                };
                (
                    p["payment_id"].clone(),
                    p["amount"].clone(),
                    state,
                    p["refund_summary"]["amount_submitted"].clone(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn state_survives_a_restart_with_a_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("sandbox.json");
        let options = || SandboxOptions {
            data_file: Some(path.clone()),
            accounts: default_accounts(1, 60),
            random_seed: 9,
            ..Default::default()
        };
        let http = reqwest::Client::new();
        let first = start(options()).await.unwrap();
        let base = first.base_url().to_string();
        let get = |base: String, q: &'static str| {
            let http = http.clone();
            async move {
                http.get(format!("{base}{q}"))
                    .bearer_auth("sandbox-key-1")
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let created: Value = http
            .post(format!("{base}/v1/payments"))
            .bearer_auth("sandbox-key-1")
            .json(
                &serde_json::json!({"amount": 999, "reference": "R", "description": "D",
                "return_url": "https://x.test/r"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let successes = get(base.clone(), "/v1/payments?state=success").await;
        let paid = successes["results"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|p| p["refund_summary"]["status"] == "available")
            })
            .cloned()
            .unwrap();
        let refund = http
            .post(format!(
                "{base}/v1/payments/{}/refunds",
                paid["payment_id"].as_str().unwrap()
            ))
            .bearer_auth("sandbox-key-1")
            .json(&serde_json::json!({"amount": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(refund.status().as_u16(), 200);
        first.advance_clock(Duration::from_secs(60));
        let before = get(base.clone(), "/v1/payments").await;
        assert_eq!(before["total"], 61);
        first.stop().await;
        assert!(path.exists());

        let second = start(options()).await.unwrap();
        let after = get(second.base_url().to_string(), "/v1/payments").await;
        assert_eq!(essentials(&after), essentials(&before));
        let again = get(second.base_url().to_string(), "/v1/payments?reference=R").await;
        assert_eq!(again["results"][0]["payment_id"], created["payment_id"]);
        assert_eq!(second.shared.clock_offset(), 60_000);
        second.stop().await;
    }

    /// A webhook receiver on a plain socket: answers each request with the next status of
    /// `statuses` (then 200) and hands over the bodies in arrival order.
    async fn receiver(statuses: Vec<u16>) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                let body = loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(buf[end + 4..end + 4 + length].to_vec());
                    }
                };
                let Some(body) = body else { continue };
                let status = statuses.next().unwrap_or(200);
                let _ = tx.send(serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null));
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        (url, rx)
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>) -> Value {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a webhook in time")
            .expect("receiver open")
    }

    #[tokio::test]
    async fn webhooks_are_retried_and_their_faults_apply() {
        let sandbox = start(SandboxOptions {
            accounts: default_accounts(1, 0),
            webhook_retry_schedule: vec![Duration::from_millis(100); 2],
            ..Default::default()
        })
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let base = sandbox.base_url().to_string();
        let create = || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let p: Value = http
                    .post(format!("{base}/v1/payments"))
                    .bearer_auth("sandbox-key-1")
                    .json(&serde_json::json!({"amount": 500, "reference": "R",
                        "description": "D", "return_url": "https://x.test/r"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                p["payment_id"].as_str().unwrap().to_string()
            }
        };
        let advance = |id: String, to: &'static str| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let r = http
                    .post(format!("{base}/sandbox/payments/{id}/advance"))
                    .json(&serde_json::json!({ "to": to }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
            }
        };

        // A failed attempt is retried on the schedule, with the same message.
        let (url, mut rx) = receiver(vec![500]).await;
        assert!(sandbox.set_webhook("account-1", Some(&url), "secret"));
        let id = create().await;
        advance(id.clone(), "started").await;
        let first = next(&mut rx).await;
        let again = next(&mut rx).await;
        assert_eq!(first["webhook_message_id"], again["webhook_message_id"]);
        assert_eq!(first["event_type"], "card_payment_started");

        // Dropped, then duplicated: the drop is logged, the copies share an id.
        sandbox.set_faults(
            "account-1",
            Faults {
                webhook_drop_next: Some(1),
                webhook_duplicate: Some(true),
                ..Default::default()
            },
        );
        let dropped = create().await;
        advance(dropped.clone(), "started").await;
        advance(dropped.clone(), "success").await;
        let a = next(&mut rx).await;
        let b = next(&mut rx).await;
        assert_eq!(a["event_type"], "card_payment_succeeded");
        assert_eq!(a["webhook_message_id"], b["webhook_message_id"]);
        let log = sandbox.webhook_log(Some("account-1"));
        assert!(log
            .iter()
            .any(|d| d.status == "dropped" && d.event_type == "card_payment_started"));

        // Reordered: held briefly, then sent newest first.
        sandbox.set_faults(
            "account-1",
            Faults {
                webhook_reorder: Some(true),
                ..Default::default()
            },
        );
        let late = create().await;
        advance(late.clone(), "success").await;
        let a = next(&mut rx).await;
        let b = next(&mut rx).await;
        assert_eq!(
            (a["event_type"].as_str(), b["event_type"].as_str()),
            (Some("card_payment_succeeded"), Some("card_payment_started"))
        );
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn a_hanging_refund_is_committed_and_the_rate_limit_applies() {
        let sandbox = start(SandboxOptions {
            accounts: default_accounts(1, 200),
            ..Default::default()
        })
        .await
        .unwrap();
        let base = sandbox.base_url().to_string();
        let http = reqwest::Client::new();
        let page: Value = http
            .get(format!("{base}/v1/payments?state=success"))
            .bearer_auth("sandbox-key-1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let paid = page["results"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|p| p["refund_summary"]["status"] == "available")
            })
            .and_then(|p| p["payment_id"].as_str())
            .unwrap()
            .to_string();
        sandbox.set_faults(
            "account-1",
            Faults {
                refund_commit_then_hang_next: Some(1),
                ..Default::default()
            },
        );
        let hung = http
            .post(format!("{base}/v1/payments/{paid}/refunds"))
            .bearer_auth("sandbox-key-1")
            .json(&serde_json::json!({"amount": 100}))
            .timeout(Duration::from_millis(800))
            .send()
            .await;
        assert!(hung.is_err_and(|e| e.is_timeout()));
        let refunds: Value = http
            .get(format!("{base}/v1/payments/{paid}/refunds"))
            .bearer_auth("sandbox-key-1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(refunds["_embedded"]["refunds"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["amount"] == 100)));

        sandbox.set_faults(
            "account-1",
            Faults {
                enforce_rate_limit: Some(true),
                ..Default::default()
            },
        );
        // All at once, so they land in the same second even on a slow machine.
        let answers = futures::future::join_all((0..90).map(|_| {
            http.get(format!("{base}/v1/payments/{paid}"))
                .bearer_auth("sandbox-key-1")
                .send()
        }))
        .await;
        let limited = answers
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| r.status().as_u16() == 429))
            .count();
        assert!(limited >= 1, "beyond 75 a second some are refused");
        sandbox.stop().await;
    }
}
