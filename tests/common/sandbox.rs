//! The sandbox payment platform in a process of its own (`paydesk sandbox`), for tests that
//! talk to the platform over real HTTP. It runs with `--port 0 --exit-with-stdin`, so it
//! picks a free port (read from its `SANDBOX READY <base_url>` line) and dies with the test
//! even if the test is killed; dropping the handle also ends it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// A running `paydesk sandbox`.
pub struct SandboxProcess {
    child: Child,
    /// Held open: the sandbox exits when it closes.
    _stdin: Option<ChildStdin>,
    pub base_url: String,
    /// Everything it printed after the READY line (accounts, keys, test cards).
    pub banner: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl SandboxProcess {
    /// Three accounts of 1000 seeded payments each (the command's defaults).
    pub fn start() -> SandboxProcess {
        SandboxProcess::start_with(&[])
    }

    /// With extra arguments, e.g. `["--seed", "200", "--refund-delay-ms", "300"]`.
    pub fn start_with(args: &[&str]) -> SandboxProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paydesk"))
            .args(["sandbox", "--port", "0", "--exit-with-stdin"])
            .args(args)
            .env_remove("ROCKET_PORT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start paydesk sandbox");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let banner = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let lines = banner.clone();
        // Keep reading for the life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("SANDBOX READY ") {
                    Some(url) if ready.is_some() => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(url.trim().to_string());
                        }
                    }
                    _ => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
                }
            }
        });
        let base_url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("paydesk sandbox did not print SANDBOX READY within 2 minutes");
            }
        };
        SandboxProcess {
            child,
            _stdin: stdin,
            base_url,
            banner,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The API key of default account `n` (from 1).
    pub fn api_key(n: usize) -> String {
        format!("sandbox-key-{n}")
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sandbox admin endpoint");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Replace an account's faults (`{}` clears them); see `sandbox::faults::Faults`.
    pub async fn set_faults(&self, account: &str, faults: Value) -> Value {
        self.admin(
            reqwest::Method::PUT,
            &format!("/sandbox/accounts/{account}/faults"),
            Some(faults),
        )
        .await
    }

    pub async fn set_webhook(&self, account: &str, url: &str, secret: &str) {
        self.admin(
            reqwest::Method::PUT,
            &format!("/sandbox/accounts/{account}/webhook"),
            Some(json!({ "url": url, "secret": secret })),
        )
        .await;
    }

    /// Drive a payment as a payer would: `to` is started, submitted, success, failed
    /// (`code` P0010, P0020 or P0030), cancelled or error. Returns the payment.
    pub async fn advance_payment(&self, payment_id: &str, to: &str, code: Option<&str>) -> Value {
        self.admin(
            reqwest::Method::POST,
            &format!("/sandbox/payments/{payment_id}/advance"),
            Some(json!({ "to": to, "code": code })),
        )
        .await
    }

    /// The payer's bank disputes a successful payment now: `outcome` is how the bank decides
    /// (`won` or `lost`), `evidence_days` when the evidence is due. Returns the dispute.
    pub async fn raise_dispute(
        &self,
        payment_id: &str,
        outcome: &str,
        evidence_days: i64,
    ) -> Value {
        self.admin(
            reqwest::Method::POST,
            &format!("/sandbox/payments/{payment_id}/dispute"),
            Some(json!({ "outcome": outcome, "evidence_days": evidence_days })),
        )
        .await
    }

    /// Move sandbox time forwards (expiries and refund settlements follow at once).
    pub async fn advance_clock(&self, secs: i64) -> Value {
        self.admin(
            reqwest::Method::POST,
            "/sandbox/clock",
            Some(json!({ "advance_secs": secs })),
        )
        .await
    }

    /// `{payments, payments_amount, refunds, refunds_amount, by_status, by_code,
    /// refunds_by_status}` for an account.
    pub async fn totals(&self, account: &str) -> Value {
        self.admin(
            reqwest::Method::GET,
            &format!("/sandbox/accounts/{account}/totals"),
            None,
        )
        .await
    }

    /// The webhook delivery log of an account, oldest first.
    pub async fn webhooks(&self, account: &str) -> Vec<Value> {
        let log = self
            .admin(
                reqwest::Method::GET,
                &format!("/sandbox/webhooks?account={account}"),
                None,
            )
            .await;
        log["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// A refund of `amount` made at the platform directly (not through paydesk), as a
    /// platform's own admin tool would; returns the answer's status.
    pub async fn refund_directly(
        &self,
        api_key: &str,
        payment_id: &str,
        amount: i64,
        available: i64,
    ) -> u16 {
        self.http
            .post(self.url(&format!("/v1/payments/{payment_id}/refunds")))
            .bearer_auth(api_key)
            .json(&json!({"amount": amount, "refund_amount_available": available}))
            .send()
            .await
            .expect("refund at the platform")
            .status()
            .as_u16()
    }

    /// A new payment through the API (201 expected); returns its JSON.
    pub async fn create_payment(&self, api_key: &str, amount: i64, reference: &str) -> Value {
        let response = self
            .http
            .post(self.url("/v1/payments"))
            .bearer_auth(api_key)
            .json(&json!({
                "amount": amount,
                "reference": reference,
                "description": "Test payment",
                "return_url": "https://service.example/return",
                "email": format!("payer-{}@example.org", reference.to_lowercase()),
            }))
            .send()
            .await
            .expect("create a payment");
        assert_eq!(response.status().as_u16(), 201);
        response.json().await.expect("payment JSON")
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SandboxProcess {
    /// A service `slug` on `app`, connected to sandbox account `n` by its API key.
    pub async fn connect(&self, app: &crate::common::TestApp, slug: &str, n: usize) -> i64 {
        paydesk::services::add(
            &app.state,
            paydesk::audit::Actor::System,
            &paydesk::services::NewService {
                slug: slug.into(),
                name: format!("Service {slug}"),
                time_zone: "Europe/London".into(),
                platform_url: Some(self.base_url.clone()),
                credentials: Some(paydesk::platform::client::Credentials::ApiKey {
                    api_key: SandboxProcess::api_key(n),
                }),
                webhook_secret: None,
            },
        )
        .await
        .expect("add service")
        .expect("a valid service")
    }

    /// A payment made on account `n` (moved on to `to`, e.g. "success", when given) and read
    /// into paydesk's service `slug`: (payment id, journey id).
    pub async fn payment_in(
        &self,
        app: &crate::common::TestApp,
        slug: &str,
        n: usize,
        amount: i64,
        reference: &str,
        to: Option<&str>,
    ) -> (String, i64) {
        let created = self
            .create_payment(&SandboxProcess::api_key(n), amount, reference)
            .await;
        let payment_id = created["payment_id"]
            .as_str()
            .expect("a payment id")
            .to_string();
        if let Some(to) = to {
            self.advance_payment(&payment_id, to, None).await;
        }
        let service = paydesk::services::by_slug(&app.state.db, slug)
            .await
            .expect("services")
            .expect("the service");
        let client = app
            .state
            .platforms
            .client(&app.state.config, &service)
            .expect("a platform client");
        let done = paydesk::journeys::sync::refresh_with(
            &app.state.db,
            app.state.clock.now(),
            client.as_ref(),
            service.id,
            &payment_id,
        )
        .await
        .expect("read the payment into paydesk");
        (payment_id, done.journey_id)
    }
}
