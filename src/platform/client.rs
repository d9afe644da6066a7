//! The client paydesk uses to call the payment platform: a trait (`PaymentPlatform`) and its
//! implementation over reqwest for the GOV.UK Pay v1 API (`GovUkPay`).
//!
//! Reads are retried with exponential backoff and full jitter on timeouts, dropped connections,
//! 5xx and 429 (honouring `Retry-After`). A refund POST is only ever tried again after a 429,
//! which the platform answers before doing anything; any other doubt about a refund is handed
//! back to the caller, who re-reads before deciding (the refunds capability owns that).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use super::agreement_wire::{Agreement, AgreementSearch, AgreementsPage};
use super::dispute_wire::{DisputeSearch, DisputesPage};
use super::types::{
    CreatePayment, ErrorBody, Payment, PaymentEvent, PaymentEvents, PaymentRefunds, PaymentSearch,
    Refund, RefundRequest, RefundSearch, SearchPage,
};

/// How paydesk proves who it is to the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    /// `Authorization: Bearer <api key>`.
    ApiKey { api_key: String },
    /// Bearer tokens from an OAuth2 token endpoint (client-credentials grant).
    ClientCredentials {
        client_id: String,
        client_secret: String,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl Credentials {
    /// A description without the secret, for pages and logs.
    pub fn describe(&self) -> String {
        match self {
            Credentials::ApiKey { api_key } => format!("API key ending {}", tail(api_key)),
            Credentials::ClientCredentials {
                client_id,
                token_url,
                ..
            } => format!("OAuth2 client {client_id} at {token_url}"),
        }
    }
}

fn tail(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "…".into();
    }
    chars[chars.len() - 4..].iter().collect()
}

/// Timeouts and retries for one client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Further attempts after the first, for requests that may be retried.
    pub retries: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(15),
            retries: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl ClientSettings {
    pub fn from_config(config: &crate::config::Config) -> ClientSettings {
        ClientSettings {
            connect_timeout: Duration::from_millis(config.platform_connect_timeout_ms),
            timeout: Duration::from_millis(config.platform_timeout_ms),
            retries: config.platform_retries,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(config.platform_max_backoff_ms),
        }
    }

    /// The wait before retry `n` (1, 2, …): exponential, capped, with full jitter.
    pub fn backoff(&self, n: u32, jitter: f64) -> Duration {
        let exp = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1)));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What went wrong talking to the platform. The platform's own code (P0xxx) and words are
/// kept whenever it gave them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    #[error("the platform answered {status}{}: {description}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<String>,
        description: String,
    },
    #[error("the platform is rate limiting paydesk (429{}){}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), retry_after.map(|d| format!("; it asked to wait {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        code: Option<String>,
        retry_after: Option<Duration>,
    },
    #[error("the platform did not answer within {0} s")]
    Timeout(u64),
    #[error("could not reach the platform: {0}")]
    Connect(String),
    #[error("Invalid client credentials: {0}")]
    InvalidCredentials(String),
    #[error("the platform sent an answer paydesk could not read: {0}")]
    BadResponse(String),
    #[error("the platform settings are not usable: {0}")]
    Settings(String),
}

impl PlatformError {
    /// Whether trying the same read again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PlatformError::Api { status, .. } => *status >= 500,
            PlatformError::RateLimited { .. }
            | PlatformError::Timeout(_)
            | PlatformError::Connect(_) => true,
            _ => false,
        }
    }

    /// The platform's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PlatformError::Api { code, .. } | PlatformError::RateLimited { code, .. } => {
                code.as_deref()
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            PlatformError::Api { status, .. } => Some(*status),
            PlatformError::RateLimited { .. } => Some(429),
            PlatformError::InvalidCredentials(_) => Some(401),
            _ => None,
        }
    }

    /// How long the platform asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PlatformError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, PlatformError::Api { status: 404, .. })
    }
}

pub type PlatformResult<T> = Result<T, PlatformError>;

/// The calls paydesk makes on a payment platform account.
#[async_trait::async_trait]
pub trait PaymentPlatform: Send + Sync {
    async fn get_payment(&self, payment_id: &str) -> PlatformResult<Payment>;
    async fn payment_events(&self, payment_id: &str) -> PlatformResult<Vec<PaymentEvent>>;
    async fn payment_refunds(&self, payment_id: &str) -> PlatformResult<Vec<Refund>>;
    async fn get_refund(&self, payment_id: &str, refund_id: &str) -> PlatformResult<Refund>;
    /// Never retried after the request may have reached the platform: on a timeout or a
    /// dropped connection the caller must re-read the payment's refunds before trying again.
    async fn create_refund(
        &self,
        payment_id: &str,
        request: &RefundRequest,
    ) -> PlatformResult<Refund>;
    async fn cancel_payment(&self, payment_id: &str) -> PlatformResult<()>;
    /// The first page of a payment search.
    async fn search_payments(&self, query: &PaymentSearch) -> PlatformResult<SearchPage<Payment>>;
    /// The first page of a refund search.
    async fn search_refunds(&self, query: &RefundSearch) -> PlatformResult<SearchPage<Refund>>;
    /// A further page, by the `_links.next_page` href of the page before.
    async fn payments_page(&self, href: &str) -> PlatformResult<SearchPage<Payment>>;
    async fn refunds_page(&self, href: &str) -> PlatformResult<SearchPage<Refund>>;
    /// The first page of a dispute search.
    async fn search_disputes(&self, query: &DisputeSearch) -> PlatformResult<DisputesPage>;
    /// A further page, by the `links.next_page` href of the page before.
    async fn disputes_page(&self, href: &str) -> PlatformResult<DisputesPage>;
    /// The first page of an agreement search.
    async fn search_agreements(&self, query: &AgreementSearch) -> PlatformResult<AgreementsPage>;
    /// A further page, by the `_links.next_page` href of the page before.
    async fn agreements_page(&self, href: &str) -> PlatformResult<AgreementsPage>;
    async fn agreement(&self, agreement_id: &str) -> PlatformResult<Agreement>;
    /// 204 from the platform; a 400 (not active) comes back as a refusal.
    async fn cancel_agreement(&self, agreement_id: &str) -> PlatformResult<()>;
    /// Only sandboxes and demos create payments through paydesk.
    async fn create_payment(&self, request: &CreatePayment) -> PlatformResult<Payment>;
}

/// A platform account as paydesk knows it.
#[derive(Debug, Clone)]
pub struct Account {
    pub base_url: String,
    pub credentials: Credentials,
}

/// The GOV.UK Pay v1 API over HTTP.
pub struct GovUkPay {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    settings: ClientSettings,
}

enum Auth {
    ApiKey(String),
    OAuth(Box<OAuthSource>),
}

type OAuthClient = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

struct OAuthSource {
    client: OAuthClient,
    scopes: Vec<String>,
    /// The current token and when to stop using it (a little before it expires).
    cached: Mutex<Option<(String, Instant)>>,
}

/// Tokens are renewed this long before the platform says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

impl GovUkPay {
    pub fn new(account: &Account, settings: ClientSettings) -> PlatformResult<GovUkPay> {
        let mut base = Url::parse(account.base_url.trim()).map_err(|e| {
            PlatformError::Settings(format!(
                "the platform URL {:?} is not a URL: {e}",
                account.base_url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(PlatformError::Settings(
                "the platform URL must start with https://".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            // A redirect would carry the bearer token somewhere we did not choose.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("paydesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PlatformError::Settings(e.to_string()))?;
        let auth = match &account.credentials {
            Credentials::ApiKey { api_key } => {
                if api_key.trim().is_empty() {
                    return Err(PlatformError::Settings("the API key is empty".into()));
                }
                Auth::ApiKey(api_key.trim().to_string())
            }
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                token_url,
                scopes,
            } => {
                let token_url = TokenUrl::new(token_url.clone()).map_err(|e| {
                    PlatformError::Settings(format!("the token URL is not a URL: {e}"))
                })?;
                let client = BasicClient::new(ClientId::new(client_id.clone()))
                    .set_client_secret(ClientSecret::new(client_secret.clone()))
                    .set_token_uri(token_url);
                Auth::OAuth(Box::new(OAuthSource {
                    client,
                    scopes: scopes.clone(),
                    cached: Mutex::new(None),
                }))
            }
        };
        Ok(GovUkPay {
            http,
            base,
            auth,
            settings,
        })
    }

    pub fn shared(
        account: &Account,
        settings: ClientSettings,
    ) -> PlatformResult<Arc<dyn PaymentPlatform>> {
        Ok(Arc::new(GovUkPay::new(account, settings)?))
    }

    fn url(&self, path: &str) -> PlatformResult<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| PlatformError::Settings(e.to_string()))
    }

    /// A link the platform gave us, accepted only on the platform's own origin so that a
    /// forged `next_page` cannot make paydesk send its credentials elsewhere.
    fn link(&self, href: &str) -> PlatformResult<Url> {
        let url = self.base.join(href).map_err(|e| {
            PlatformError::BadResponse(format!("the page link {href:?} is not a URL: {e}"))
        })?;
        if url.origin() != self.base.origin() {
            return Err(PlatformError::BadResponse(format!(
                "the page link points away from the platform ({})",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    async fn bearer(&self, renew: bool) -> PlatformResult<String> {
        match &self.auth {
            Auth::ApiKey(key) => Ok(key.clone()),
            Auth::OAuth(source) => {
                let mut cached = source.cached.lock().await;
                if !renew {
                    if let Some((token, until)) = cached.as_ref() {
                        if Instant::now() < *until {
                            return Ok(token.clone());
                        }
                    }
                }
                let mut request = source.client.exchange_client_credentials();
                for s in &source.scopes {
                    request = request.add_scope(Scope::new(s.clone()));
                }
                let response = request
                    .request_async(&self.http)
                    .await
                    .map_err(|e| match e {
                        RequestTokenError::ServerResponse(r) => match r.error() {
                            BasicErrorResponseType::InvalidClient
                            | BasicErrorResponseType::UnauthorizedClient => {
                                PlatformError::InvalidCredentials(
                                    r.error_description().cloned().unwrap_or_else(|| {
                                        "the token endpoint refused the client id or secret".into()
                                    }),
                                )
                            }
                            other => PlatformError::Api {
                                status: 400,
                                code: Some(other.to_string()),
                                description: r.error_description().cloned().unwrap_or_else(|| {
                                    "the token endpoint refused the request".into()
                                }),
                            },
                        },
                        RequestTokenError::Request(e) => {
                            PlatformError::Connect(format!("token endpoint: {e}"))
                        }
                        RequestTokenError::Parse(e, _) => {
                            PlatformError::BadResponse(format!("token endpoint: {e}"))
                        }
                        RequestTokenError::Other(e) => {
                            PlatformError::Connect(format!("token endpoint: {e}"))
                        }
                    })?;
                let token = response.access_token().secret().clone();
                let lifetime = response
                    .expires_in()
                    .unwrap_or(Duration::from_secs(300))
                    .saturating_sub(TOKEN_MARGIN);
                *cached = Some((token.clone(), Instant::now() + lifetime));
                Ok(token)
            }
        }
    }

    /// One request, with retries as `retry` allows. Returns the status and body of the first
    /// answer that is neither retryable nor a failure.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        retry: Retry,
    ) -> PlatformResult<Option<T>> {
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            let outcome = self.once(method.clone(), url.clone(), body, renewed).await;
            let error = match outcome {
                Ok(Answer::Body(bytes)) => {
                    if bytes.is_empty() {
                        return Ok(None);
                    }
                    return serde_json::from_slice(&bytes)
                        .map(Some)
                        .map_err(|e| PlatformError::BadResponse(e.to_string()));
                }
                Ok(Answer::Unauthorised) => {
                    // An OAuth token may have been revoked early: renew once and try again.
                    if matches!(self.auth, Auth::OAuth(_)) && !renewed {
                        renewed = true;
                        continue;
                    }
                    return Err(PlatformError::InvalidCredentials(
                        "the platform refused paydesk's credentials (401)".into(),
                    ));
                }
                Err(e) => e,
            };
            let may_retry = match (&error, retry) {
                (PlatformError::RateLimited { .. }, _) => true,
                (e, Retry::Reads) => e.is_transient(),
                (_, Retry::RateLimitOnly) => false,
            };
            if !may_retry || attempt > self.settings.retries {
                return Err(error);
            }
            let jitter = rand::thread_rng().gen::<f64>();
            let mut wait = self.settings.backoff(attempt, jitter);
            if let Some(asked) = error.retry_after() {
                if asked > self.settings.max_backoff {
                    return Err(error);
                }
                wait = wait.max(asked);
            }
            tracing::warn!(%url, attempt, error = %error, wait_ms = wait.as_millis() as u64, "platform call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn once(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        renew_token: bool,
    ) -> PlatformResult<Answer> {
        let token = self.bearer(renew_token).await?;
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if status.is_success() {
            return Ok(Answer::Body(bytes.to_vec()));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Answer::Unauthorised);
        }
        let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PlatformError::RateLimited {
                code: parsed.code,
                retry_after,
            });
        }
        let description = parsed
            .description
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no description")
                    .to_string()
            });
        Err(PlatformError::Api {
            status: status.as_u16(),
            code: parsed.code,
            description,
        })
    }

    fn transport(&self, e: reqwest::Error) -> PlatformError {
        if e.is_timeout() {
            PlatformError::Timeout(self.settings.timeout.as_secs().max(1))
        } else {
            // Without the inner causes the message is only "error sending request".
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            PlatformError::Connect(text)
        }
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> PlatformResult<T> {
        self.call(Method::GET, url, None, Retry::Reads)
            .await?
            .ok_or_else(|| PlatformError::BadResponse("the answer was empty".into()))
    }

    fn with_query(&self, path: &str, pairs: &[(&'static str, String)]) -> PlatformResult<Url> {
        let mut url = self.url(path)?;
        if !pairs.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }
}

enum Answer {
    Body(Vec<u8>),
    Unauthorised,
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    /// Idempotent reads: timeouts, dropped connections, 5xx and 429.
    Reads,
    /// Only 429, which the platform answers before acting.
    RateLimitOnly,
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[async_trait::async_trait]
impl PaymentPlatform for GovUkPay {
    async fn get_payment(&self, payment_id: &str) -> PlatformResult<Payment> {
        self.get(self.url(&format!("v1/payments/{}", segment(payment_id)))?)
            .await
    }

    async fn payment_events(&self, payment_id: &str) -> PlatformResult<Vec<PaymentEvent>> {
        let events: PaymentEvents = self
            .get(self.url(&format!("v1/payments/{}/events", segment(payment_id)))?)
            .await?;
        Ok(events.events)
    }

    async fn payment_refunds(&self, payment_id: &str) -> PlatformResult<Vec<Refund>> {
        let refunds: PaymentRefunds = self
            .get(self.url(&format!("v1/payments/{}/refunds", segment(payment_id)))?)
            .await?;
        Ok(refunds
            .embedded
            .refunds
            .into_iter()
            .map(|mut r| {
                r.payment_id.get_or_insert_with(|| payment_id.to_string());
                r
            })
            .collect())
    }

    async fn get_refund(&self, payment_id: &str, refund_id: &str) -> PlatformResult<Refund> {
        let mut r: Refund = self
            .get(self.url(&format!(
                "v1/payments/{}/refunds/{}",
                segment(payment_id),
                segment(refund_id)
            ))?)
            .await?;
        r.payment_id.get_or_insert_with(|| payment_id.to_string());
        Ok(r)
    }

    async fn create_refund(
        &self,
        payment_id: &str,
        request: &RefundRequest,
    ) -> PlatformResult<Refund> {
        let body =
            serde_json::to_value(request).map_err(|e| PlatformError::Settings(e.to_string()))?;
        let mut r: Refund = self
            .call(
                Method::POST,
                self.url(&format!("v1/payments/{}/refunds", segment(payment_id)))?,
                Some(&body),
                Retry::RateLimitOnly,
            )
            .await?
            .ok_or_else(|| PlatformError::BadResponse("the refund answer was empty".into()))?;
        r.payment_id.get_or_insert_with(|| payment_id.to_string());
        Ok(r)
    }

    async fn cancel_payment(&self, payment_id: &str) -> PlatformResult<()> {
        self.call::<serde_json::Value>(
            Method::POST,
            self.url(&format!("v1/payments/{}/cancel", segment(payment_id)))?,
            None,
            Retry::RateLimitOnly,
        )
        .await?;
        Ok(())
    }

    async fn search_payments(&self, query: &PaymentSearch) -> PlatformResult<SearchPage<Payment>> {
        self.get(self.with_query("v1/payments", &query.pairs())?)
            .await
    }

    async fn search_refunds(&self, query: &RefundSearch) -> PlatformResult<SearchPage<Refund>> {
        self.get(self.with_query("v1/refunds", &query.pairs())?)
            .await
    }

    async fn payments_page(&self, href: &str) -> PlatformResult<SearchPage<Payment>> {
        self.get(self.link(href)?).await
    }

    async fn refunds_page(&self, href: &str) -> PlatformResult<SearchPage<Refund>> {
        self.get(self.link(href)?).await
    }

    async fn search_disputes(&self, query: &DisputeSearch) -> PlatformResult<DisputesPage> {
        self.get(self.with_query("v1/disputes", &query.pairs())?)
            .await
    }

    async fn disputes_page(&self, href: &str) -> PlatformResult<DisputesPage> {
        self.get(self.link(href)?).await
    }

    async fn search_agreements(&self, query: &AgreementSearch) -> PlatformResult<AgreementsPage> {
        self.get(self.with_query("v1/agreements", &query.pairs())?)
            .await
    }

    async fn agreements_page(&self, href: &str) -> PlatformResult<AgreementsPage> {
        self.get(self.link(href)?).await
    }

    async fn agreement(&self, agreement_id: &str) -> PlatformResult<Agreement> {
        self.get(self.url(&format!("v1/agreements/{}", segment(agreement_id)))?)
            .await
    }

    async fn cancel_agreement(&self, agreement_id: &str) -> PlatformResult<()> {
        self.call::<serde_json::Value>(
            Method::POST,
            self.url(&format!("v1/agreements/{}/cancel", segment(agreement_id)))?,
            None,
            Retry::RateLimitOnly,
        )
        .await?;
        Ok(())
    }

    async fn create_payment(&self, request: &CreatePayment) -> PlatformResult<Payment> {
        let body =
            serde_json::to_value(request).map_err(|e| PlatformError::Settings(e.to_string()))?;
        self.call(
            Method::POST,
            self.url("v1/payments")?,
            Some(&body),
            Retry::RateLimitOnly,
        )
        .await?
        .ok_or_else(|| PlatformError::BadResponse("the payment answer was empty".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = ClientSettings {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..ClientSettings::default()
        };
        assert_eq!(s.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(s.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(s.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(s.backoff(10, 1.0), Duration::from_millis(1000));
        assert_eq!(s.backoff(40, 1.0), Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn page_links_must_stay_on_the_platform() {
        let client = GovUkPay::new(
            &Account {
                base_url: "https://pay.example/api".into(),
                credentials: Credentials::ApiKey {
                    api_key: "k".into(),
                },
            },
            ClientSettings::default(),
        )
        .unwrap();
        assert_eq!(
            client.link("/v1/payments?page=2").unwrap().as_str(),
            "https://pay.example/v1/payments?page=2"
        );
        assert!(client
            .link("https://evil.example/v1/payments?page=2")
            .is_err());
        assert!(client.link("http://pay.example/v1/payments").is_err());
        assert_eq!(
            client.url("v1/payments/abc").unwrap().as_str(),
            "https://pay.example/api/v1/payments/abc"
        );
    }

    #[test]
    fn credentials_describe_themselves_without_the_secret() {
        let key = Credentials::ApiKey {
            api_key: "api_test_abcdefgh12345678".into(),
        };
        assert_eq!(key.describe(), "API key ending 5678");
        let json = serde_json::to_string(&key).unwrap();
        assert!(json.contains("\"kind\":\"api_key\""), "{json}");
    }
}
