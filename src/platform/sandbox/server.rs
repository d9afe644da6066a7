//! Starting and stopping a sandbox: seed (or load) its accounts, bind its HTTP server, run
//! its background tasks, and the handle (`RunningSandbox`) that tests and the demo drive it
//! through.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use rocket::figment::providers::Serialized;
use rocket::figment::Figment;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::account::{Totals, WebhookTarget};
use super::admin;
use super::api;
use super::card_page;
use super::data::{from_time, Millis, HOUR};
use super::faults::Faults;
use super::options::{AccountSpec, SandboxError, SandboxOptions};
use super::persist::{self, StoredAccount};
use super::shared::{build_entry, lock, saver, sweeper, Shared};
use super::webhooks::{self, Hub};

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
    let shared = Arc::new(Shared::new(
        offset,
        anchor,
        random_seed,
        i64::try_from(options.refund_settle_after.as_millis()).unwrap_or(2_000),
        i64::try_from(options.token_ttl.as_millis()).unwrap_or(3_600_000),
        hub,
        options.data_file.clone(),
    ));
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
    shared.set_base_url(base_url.clone());

    let mut tasks = vec![tokio::spawn(dispatcher)];
    tasks.push(tokio::spawn(sweeper(shared.clone(), stop_rx.clone())));
    if shared.saves() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::options::default_accounts;
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
        // All at once, so most land in the same second even on a slow, busy machine: 300 is
        // four seconds' worth at the limit, so some second holds more than 75 unless the
        // requests spread over more than four seconds.
        let answers = futures::future::join_all((0..300).map(|_| {
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
