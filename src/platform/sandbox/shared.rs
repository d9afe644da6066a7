//! The state a running sandbox's handlers and background tasks share: the accounts (each
//! behind its own locks), sandbox time, OAuth tokens, payer page tokens, the webhook hub and
//! the data file's save signal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use rand::RngCore;
use tokio::sync::{watch, Notify};

use super::account::{Account, Ctx, WebhookTarget};
use super::agreements;
use super::data::{from_time, Millis};
use super::faults::FaultState;
use super::options::{validate_spec, AccountSpec, SandboxError};
use super::persist::{self, StateFile, StoredAccount, StoredPayment};
use super::seed;
use super::webhooks::{Hub, Outgoing};

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

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The state of a sandbox about to serve, with no accounts yet; `data_file` is where
    /// changes are saved, if anywhere.
    pub(super) fn new(
        clock_offset: Millis,
        anchor: Millis,
        random_seed: u64,
        settle_after: Millis,
        token_ttl: Millis,
        hub: Hub,
        data_file: Option<PathBuf>,
    ) -> Shared {
        Shared {
            accounts: RwLock::new(Vec::new()),
            clock_offset: AtomicI64::new(clock_offset),
            anchor,
            random_seed,
            settle_after,
            token_ttl,
            base_url: OnceLock::new(),
            oauth: Mutex::new(HashMap::new()),
            pay_tokens: Mutex::new(HashMap::new()),
            hub,
            save: data_file.map(|p| (p, Arc::new(Notify::new()))),
        }
    }

    /// Known once the server has bound its port; links are empty before.
    pub(super) fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }

    /// Whether changes are saved to a data file.
    pub(super) fn saves(&self) -> bool {
        self.save.is_some()
    }

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
        account.set_agreements(agreements::seeded(
            random_seed,
            plan.account_hash,
            anchor,
            &account.payments,
        ));
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

/// Every second: expire payments and settle refunds that have fallen due, so their webhooks
/// go out even when nobody is asking.
pub(super) async fn sweeper(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
pub(super) async fn saver(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
