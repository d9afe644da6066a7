//! Outgoing webhooks: signing (`Pay-Signature`), delivery with the platform's retry schedule
//! (60 s, 5 min, 1 h, 1 day, 2 days after failures; 5-second timeout per attempt), the
//! delivery faults (drop, duplicate, reorder), and a delivery log. Each account's first
//! attempts go out in order on their own lane; retries run on their own, so they can overtake.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::faults::WebhookPlan;
use crate::platform::signature;
use crate::platform::types::wire_time;

/// The platform's retry delays after a failed attempt.
pub const RETRY_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(24 * 60 * 60),
    Duration::from_secs(2 * 24 * 60 * 60),
];

pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long reordered webhooks are held before a batch goes out, newest first.
pub const REORDER_WINDOW: Duration = Duration::from_millis(300);

/// The delivery log keeps this many entries.
const LOG_LIMIT: usize = 10_000;

/// A webhook ready to send: body already serialised, so every copy and retry carries the
/// same bytes and signature.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub account: Arc<str>,
    pub url: String,
    pub secret: String,
    pub message_id: String,
    pub event_type: &'static str,
    pub resource_id: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One entry of the delivery log: one copy of one message.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub delivery_id: u64,
    pub account: String,
    pub webhook_message_id: String,
    pub event_type: String,
    pub resource_id: String,
    pub url: String,
    /// `pending`, `delivered`, `failed` (every attempt failed) or `dropped` (a fault).
    pub status: &'static str,
    /// 1, or 2 for the duplicate a fault sends.
    pub copy: u32,
    pub queued_at: String,
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

struct Job {
    delivery_id: u64,
    out: Arc<Outgoing>,
    reorder: bool,
}

struct Inner {
    log: Mutex<VecDeque<Delivery>>,
    next_id: AtomicU64,
    client: reqwest::Client,
    schedule: Vec<Duration>,
    stop: watch::Receiver<bool>,
}

/// The sending side, shared by everything that changes payments.
pub struct Hub {
    inner: Arc<Inner>,
    tx: mpsc::UnboundedSender<Job>,
}

fn real_now() -> String {
    wire_time::format(time::OffsetDateTime::now_utc())
}

impl Hub {
    /// The hub, and the dispatcher future to spawn. `schedule` is the retry delays (the
    /// platform's, or a scaled-down copy for tests).
    pub fn new(
        schedule: Vec<Duration>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Hub, impl std::future::Future<Output = ()>), reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let inner = Arc::new(Inner {
            log: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            client,
            schedule,
            stop,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let dispatcher = dispatch(inner.clone(), rx);
        Ok((Hub { inner, tx }, dispatcher))
    }

    /// Queue a webhook as the account's faults say.
    pub fn send(&self, out: Outgoing, plan: WebhookPlan) {
        let out = Arc::new(out);
        if plan.drop {
            self.log_new(&out, 1, "dropped");
            return;
        }
        for copy in 1..=plan.copies.max(1) {
            let delivery_id = self.log_new(&out, copy, "pending");
            let _ = self.tx.send(Job {
                delivery_id,
                out: out.clone(),
                reorder: plan.reorder,
            });
        }
    }

    fn log_new(&self, out: &Outgoing, copy: u32, status: &'static str) -> u64 {
        let delivery_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Delivery {
            delivery_id,
            account: out.account.to_string(),
            webhook_message_id: out.message_id.clone(),
            event_type: out.event_type.to_string(),
            resource_id: out.resource_id.clone(),
            url: out.url.clone(),
            status,
            copy,
            queued_at: real_now(),
            attempts: Vec::new(),
            next_attempt_at: None,
        };
        let mut log = self.inner.log.lock().unwrap_or_else(|p| p.into_inner());
        log.push_back(entry);
        while log.len() > LOG_LIMIT {
            log.pop_front();
        }
        delivery_id
    }

    /// The delivery log, oldest first, optionally for one account.
    pub fn log(&self, account: Option<&str>) -> Vec<Delivery> {
        let log = self.inner.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|d| account.is_none_or(|a| d.account == a))
            .cloned()
            .collect()
    }
}

impl Inner {
    fn update(&self, delivery_id: u64, f: impl FnOnce(&mut Delivery)) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let Some(front) = log.front().map(|d| d.delivery_id) else {
            return;
        };
        // Ids are handed out in order and the log only loses its oldest entries.
        if let Some(offset) = delivery_id.checked_sub(front) {
            if let Some(d) = log.get_mut(offset as usize) {
                if d.delivery_id == delivery_id {
                    f(d);
                }
            }
        }
    }

    /// One attempt; true when the receiver answered 2xx.
    async fn attempt(&self, job: &Job) -> bool {
        let started = Instant::now();
        let at = real_now();
        let result = self
            .client
            .post(&job.out.url)
            .header("Content-Type", "application/json")
            .header(
                signature::HEADER,
                signature::sign(&job.out.secret, &job.out.body),
            )
            .body(job.out.body.clone())
            .send()
            .await;
        let (ok, http_status, error) = match result {
            Ok(r) => (r.status().is_success(), Some(r.status().as_u16()), None),
            Err(e) => (
                false,
                None,
                Some(if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    e.to_string()
                }),
            ),
        };
        let attempt = Attempt {
            at,
            http_status,
            error,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.update(job.delivery_id, |d| {
            d.attempts.push(attempt);
            if ok {
                d.status = "delivered";
            }
            d.next_attempt_at = None;
        });
        ok
    }

    /// Retry a failed delivery on the schedule until it succeeds or the schedule runs out.
    async fn retry(self: Arc<Self>, job: Job) {
        let mut stop = self.stop.clone();
        for delay in self.schedule.clone() {
            let when = time::OffsetDateTime::now_utc()
                + time::Duration::try_from(delay).unwrap_or(time::Duration::ZERO);
            self.update(job.delivery_id, |d| {
                d.next_attempt_at = Some(wire_time::format(when));
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            if self.attempt(&job).await {
                return;
            }
        }
        self.update(job.delivery_id, |d| d.status = "failed");
    }

    /// Send a batch in order, each first attempt after the previous one finished.
    async fn send_in_order(self: &Arc<Self>, batch: Vec<Job>) {
        for job in batch {
            if !self.attempt(&job).await {
                tokio::spawn(self.clone().retry(job));
            }
        }
    }
}

async fn dispatch(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut stop = inner.stop.clone();
    let mut lanes: HashMap<Arc<str>, mpsc::UnboundedSender<Vec<Job>>> = HashMap::new();
    let mut held: HashMap<Arc<str>, Vec<Job>> = HashMap::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    let lane = |account: &Arc<str>,
                lanes: &mut HashMap<Arc<str>, mpsc::UnboundedSender<Vec<Job>>>| {
        lanes
            .entry(account.clone())
            .or_insert_with(|| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Job>>();
                let inner = inner.clone();
                let mut stop = inner.stop.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            batch = rx.recv() => match batch {
                                Some(batch) => inner.send_in_order(batch).await,
                                None => return,
                            },
                            _ = stop.changed() => return,
                        }
                    }
                });
                tx
            })
            .clone()
    };
    loop {
        let deadline = flush_at;
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { return };
                if job.reorder {
                    flush_at.get_or_insert_with(|| tokio::time::Instant::now() + REORDER_WINDOW);
                    held.entry(job.out.account.clone()).or_default().push(job);
                } else {
                    let tx = lane(&job.out.account, &mut lanes);
                    let _ = tx.send(vec![job]);
                }
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                flush_at = None;
                for (account, mut batch) in held.drain() {
                    batch.reverse();
                    let tx = lane(&account, &mut lanes);
                    let _ = tx.send(batch);
                }
            }
            _ = stop.changed() => return,
        }
    }
}
