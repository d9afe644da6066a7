//! The CRM / case API under `/api/v1`: JSON in and out, `Authorization: Bearer <token>`
//! (`crate::integrations::api_tokens`), every error an RFC 9457 problem document
//! (`application/problem+json`). A token sees only its own service: another service's payment
//! or refund answers 404. Each call checks its scope (403), and each token has a rate limit
//! (429 with `Retry-After`). `POST …/refunds` honours `Idempotency-Key`
//! (`crate::integrations::idempotency`). The OpenAPI document (`src/web/openapi.json`) and the
//! page about the API (`/api/docs`) describe exactly this.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;

use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use rocket::data::{Data, ToByteUnit};
use rocket::http::uri::Origin;
use rocket::http::{ContentType, Header, Status};
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder, Response};
use rocket::{Catcher, Route, State};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::request::{client_addr, meta, origin_ip};
use crate::audit::{self, Actor, AuditEvent};
use crate::integrations::api_tokens::{self, Caller, Refused, Scope};
use crate::integrations::idempotency::{self, Begun};
use crate::journeys::{case, timeline};
use crate::money::MAX_PENCE;
use crate::refunds::{self, Ask, Asked, HowMuch, RequestRow, Requester};
use crate::search::query::{Cursor, Range, Search, Sort, StatusGroup, FIELD_MAX};
use crate::store::{self, journeys as journey_store, refunds as refund_store};
use crate::AppState;

/// The OpenAPI document, as served.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Where the API is mounted.
pub const BASE: &str = "/api/v1";

/// The largest JSON body accepted.
const BODY_LIMIT_KIB: u64 = 16;
/// Payments on a page: by default, and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub fn routes() -> Vec<Route> {
    rocket::routes![
        list_payments,
        get_payment,
        link_case,
        request_refund,
        get_refund,
        openapi
    ]
}

pub fn catchers() -> Vec<Catcher> {
    rocket::catchers![api_default]
}

// ---- answers --------------------------------------------------------------------------------

/// An RFC 9457 problem document.
#[derive(Debug)]
pub struct Problem {
    status: Status,
    /// The fragment of `/api/docs` that explains this kind of problem; None: `about:blank`.
    kind: Option<&'static str>,
    title: String,
    detail: String,
    errors: Vec<Value>,
    headers: Vec<(&'static str, String)>,
    /// What failed inside paydesk (a 500), for the log only.
    cause: Option<String>,
}

impl Problem {
    /// A problem that is just its HTTP status (`type` is `about:blank`).
    pub fn status(status: Status, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind: None,
            title: status.reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    fn typed(
        status: Status,
        kind: &'static str,
        title: &str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            kind: Some(kind),
            title: title.to_string(),
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            cause: None,
        }
    }

    /// 422 with a message per field.
    fn invalid(errors: Vec<Value>) -> Problem {
        let detail = if errors.len() == 1 {
            errors[0]["detail"]
                .as_str()
                .unwrap_or("A value is not valid")
                .to_string()
        } else {
            format!("{} values are not valid", errors.len())
        };
        Problem {
            errors,
            ..Problem::typed(
                Status::UnprocessableEntity,
                "problem-validation",
                "Your request is not valid",
                detail,
            )
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Problem {
        self.headers.push((name, value.into()));
        self
    }

    fn not_found() -> Problem {
        Problem::status(
            Status::NotFound,
            "There is nothing here, or this token's service has no such thing",
        )
    }

    /// A failure inside paydesk: 500, with its cause kept for the log.
    fn internal<E: std::fmt::Display>(e: E) -> Problem {
        Problem {
            cause: Some(e.to_string()),
            ..Problem::status(
                Status::InternalServerError,
                "Something went wrong in paydesk. Nothing was half-applied; try again later",
            )
        }
    }
}

/// Each error an API handler can meet is a failure inside paydesk, whatever its kind.
macro_rules! internal_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for Problem {
            fn from(e: $t) -> Problem {
                Problem::internal(e)
            }
        })*
    };
}

internal_from!(
    crate::store::StoreError,
    crate::journeys::case::CaseError,
    crate::refunds::RefundError,
    crate::audit::AuditError,
);

/// A problem about one query parameter.
fn parameter_error(name: &str, detail: impl Into<String>) -> Value {
    json!({"parameter": name, "detail": detail.into()})
}

/// A problem about one field of the JSON body.
fn field_error(name: &str, detail: impl Into<String>) -> Value {
    json!({"field": name, "pointer": format!("/{name}"), "detail": detail.into()})
}

impl<'r> Responder<'r, 'static> for Problem {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        if let Some(cause) = &self.cause {
            tracing::error!(request_id = %meta(req).correlation_id, error = %cause, "API request failed");
        }
        if self.status.code >= 500 {
            tracing::error!(request_id = %meta(req).correlation_id, status = self.status.code, path = %req.uri().path(), "API request failed");
        }
        let kind = match self.kind {
            Some(fragment) => {
                let base = req
                    .rocket()
                    .state::<AppState>()
                    .map(|s| s.config.public_url.clone())
                    .unwrap_or_default();
                format!("{base}/api/docs#{fragment}")
            }
            None => "about:blank".to_string(),
        };
        let mut body = json!({
            "type": kind,
            "title": self.title,
            "status": self.status.code,
            "detail": self.detail,
            "correlation_id": meta(req).correlation_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        let text = body.to_string();
        let mut r = Response::build();
        r.status(self.status)
            .header(ContentType::new("application", "problem+json"))
            .sized_body(text.len(), std::io::Cursor::new(text));
        for (name, value) in self.headers {
            r.header(Header::new(name, value));
        }
        r.ok()
    }
}

/// A JSON answer.
pub struct ApiJson {
    status: Status,
    body: String,
    location: Option<String>,
    replayed: bool,
}

impl ApiJson {
    fn ok(body: &Value) -> ApiJson {
        ApiJson {
            status: Status::Ok,
            body: body.to_string(),
            location: None,
            replayed: false,
        }
    }
}

impl<'r> Responder<'r, 'static> for ApiJson {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut r = Response::build();
        r.status(self.status)
            .header(ContentType::JSON)
            .sized_body(self.body.len(), std::io::Cursor::new(self.body));
        if let Some(l) = self.location {
            r.header(Header::new("Location", l));
        }
        if self.replayed {
            r.header(Header::new("Idempotent-Replayed", "true"));
        }
        r.ok()
    }
}

type ApiResult = Result<ApiJson, Problem>;

// ---- who is calling -------------------------------------------------------------------------

/// One bucket per token, and one per client address for requests with a token that is not
/// accepted (so that nobody fills the audit log with refused tokens).
pub struct ApiLimiter {
    limiter: RateLimiter<i64, DefaultKeyedStateStore<i64>, DefaultClock>,
    refused: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl ApiLimiter {
    /// `n` requests a minute per token, `refused` refused tokens a minute per address.
    pub fn per_minute(n: u32, refused: u32) -> ApiLimiter {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let refused = NonZeroU32::new(refused).unwrap_or(NonZeroU32::MIN);
        ApiLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            refused: RateLimiter::keyed(Quota::per_minute(refused)),
        }
    }

    /// Ok, or the whole seconds to wait before the token's next request is allowed.
    pub fn check(&self, token_id: i64) -> Result<(), u64> {
        self.limiter.check_key(&token_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            (wait.as_millis() as u64).div_ceil(1000).max(1)
        })
    }

    /// Ok, or the seconds an address that keeps sending refused tokens must wait.
    pub fn check_refused(&self, ip: IpAddr) -> Result<(), u64> {
        self.refused.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.refused.clock().now());
            (wait.as_millis() as u64).div_ceil(1000).max(1)
        })
    }
}

/// Why the guard turned a request away, for the catcher to say.
#[derive(Debug, Clone, Copy, Default)]
enum Turned {
    #[default]
    Nothing,
    NoToken,
    BadToken(Refused),
    Limited(u64),
}

fn turned(req: &Request<'_>) -> Turned {
    req.local_cache(|| Mutex::new(Turned::Nothing))
        .lock()
        .map(|t| *t)
        .unwrap_or_default()
}

fn turn_away(req: &Request<'_>, t: Turned) {
    if let Ok(mut slot) = req.local_cache(|| Mutex::new(Turned::Nothing)).lock() {
        *slot = t;
    }
}

/// A caller holding a live token, within its rate limit.
pub struct ApiCaller {
    pub caller: Caller,
    pub ip: Option<String>,
}

impl ApiCaller {
    fn service_id(&self) -> i64 {
        self.caller.token.service_id
    }

    fn actor(&self) -> Actor {
        self.caller.actor()
    }
}

/// The token in an `Authorization: Bearer …` header.
fn bearer(req: &Request<'_>) -> Option<String> {
    let value = req.headers().get_one("Authorization")?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiCaller {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let presented = bearer(req);
        let Some(presented) = presented else {
            turn_away(req, Turned::NoToken);
            return Outcome::Error((Status::Unauthorized, ()));
        };
        let now = state.clock.now();
        let caller = match api_tokens::authenticate(&state.db, now, &presented).await {
            Ok(Ok(c)) => c,
            Ok(Err(refused)) => {
                // Sign-in's client-address rule. Requests without a peer address (only Rocket's
                // local test client) share one bucket.
                let ip = client_addr(req).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                if let Some(Err(wait)) = req
                    .rocket()
                    .state::<ApiLimiter>()
                    .map(|l| l.check_refused(ip))
                {
                    turn_away(req, Turned::Limited(wait));
                    return Outcome::Error((Status::TooManyRequests, ()));
                }
                turn_away(req, Turned::BadToken(refused));
                let shown: String = if refused == Refused::Malformed {
                    String::new()
                } else {
                    presented.chars().take(10).collect()
                };
                if refused.names_a_token() {
                    // A token paydesk made, used after it stopped working (a leaver's, say):
                    // its own entry. The refused-token limit above bounds how many.
                    let _ = crate::audit::record(
                        &state.db,
                        now,
                        crate::audit::AuditEvent::new(
                            Actor::Anonymous,
                            "authn_token_fail",
                            req.uri().path().to_string(),
                        )
                        .failed()
                        .from_ip(origin_ip(req))
                        .details(serde_json::json!({
                            "reason": refused.reason(),
                            "token": format!("{shown}…"),
                        })),
                    )
                    .await;
                    return Outcome::Error((Status::Unauthorized, ()));
                }
                // Not paydesk's token at all: counted, and summarised per source and minute,
                // never one chained entry per request.
                state.refusals.note(
                    &state.metrics,
                    now,
                    crate::audit::refusals::Kind::ApiToken,
                    origin_ip(req).as_deref(),
                    &format!("{} (token {shown}…)", req.uri().path()),
                    refused.reason(),
                );
                return Outcome::Error((Status::Unauthorized, ()));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not check an API token");
                return Outcome::Error((Status::InternalServerError, ()));
            }
        };
        if let Some(limiter) = req.rocket().state::<ApiLimiter>() {
            if let Err(wait) = limiter.check(caller.token.id) {
                tracing::warn!(token = caller.token.id, "API rate limit reached");
                turn_away(req, Turned::Limited(wait));
                return Outcome::Error((Status::TooManyRequests, ()));
            }
        }
        Outcome::Success(ApiCaller {
            caller,
            ip: origin_ip(req),
        })
    }
}

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyKey(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IdempotencyKey {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        Outcome::Success(IdempotencyKey(
            req.headers().get_one("Idempotency-Key").map(str::to_string),
        ))
    }
}

/// Refuse a caller without `scope`, in the audit log too.
async fn require(
    state: &AppState,
    caller: &ApiCaller,
    path: &str,
    scopes: &[Scope],
) -> Result<(), Problem> {
    if scopes.iter().any(|s| caller.caller.may(*s)) {
        return Ok(());
    }
    let (details, detail) = caller.caller.refusal(scopes);
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEvent::new(caller.actor(), "authz_fail", path.to_string())
            .failed()
            .from_ip(caller.ip.clone())
            .details(details),
    )
    .await;
    Err(Problem::status(Status::Forbidden, detail))
}

#[rocket::catch(default)]
fn api_default(status: Status, req: &Request<'_>) -> Problem {
    match (status.code, turned(req)) {
        (401, Turned::BadToken(refused)) => {
            let said = refused.said();
            Problem::status(Status::Unauthorized, format!("{said}. Ask your service's administrator for a new one"))
                .header(
                    "WWW-Authenticate",
                    format!("Bearer realm=\"paydesk\", error=\"invalid_token\", error_description=\"{said}\""),
                )
        }
        (401, _) => Problem::status(
            Status::Unauthorized,
            "Send an API token in the Authorization header: Authorization: Bearer pdk_…",
        )
        .header("WWW-Authenticate", "Bearer realm=\"paydesk\""),
        (429, Turned::Limited(wait)) => Problem::status(
            Status::TooManyRequests,
            format!("This token has made too many requests. Wait {wait} seconds, then try again"),
        )
        .header("Retry-After", wait.to_string()),
        (404, _) => Problem::not_found(),
        (400, _) => Problem::status(Status::BadRequest, "The request could not be read"),
        (413, _) => Problem::status(
            Status::PayloadTooLarge,
            format!("The body must be {BODY_LIMIT_KIB} KiB or less"),
        ),
        (code, _) if code >= 500 => Problem::status(
            status,
            "Something went wrong in paydesk. Nothing was half-applied; try again later",
        ),
        _ => Problem::status(status, "The request could not be answered"),
    }
}

// ---- shapes ---------------------------------------------------------------------------------

fn rfc3339(us: i64) -> String {
    store::from_micros(us).format(&Rfc3339).unwrap_or_default()
}

fn payment_href(payment_id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(payment_id.as_bytes()).collect();
    format!("{BASE}/payments/{id}")
}

/// A payment as the API shows it. Card numbers: the first 6 and last 4 digits only.
fn payment_json(j: &journey_store::JourneyRow) -> Value {
    let metadata = j
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let card = if j.card_brand.is_some() || j.last_digits.is_some() || j.first_digits.is_some() {
        json!({
            "brand": j.card_brand,
            "type": j.card_type,
            "first_digits": j.first_digits.as_deref().filter(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit())),
            "last_digits": j.last_digits.as_deref().filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit())),
            "expiry_date": j.expiry_date,
            "cardholder_name": j.cardholder_name,
        })
    } else {
        Value::Null
    };
    json!({
        "payment_id": j.payment_id,
        "reference": j.reference,
        "description": j.description,
        "email": j.email,
        "amount": j.amount,
        "status": j.status,
        "status_group": StatusGroup::of(&j.status, j.state_code.as_deref()).name(),
        "finished": j.finished,
        "state_code": j.state_code,
        "state_message": j.state_message,
        "created_at": rfc3339(j.created_at),
        "case_reference": j.case_reference,
        "card": card,
        "refund_summary": {
            "status": j.refund_status,
            "amount_available": j.refund_available,
            "amount_submitted": j.refund_submitted,
        },
        "metadata": metadata,
        "needs_attention": j.needs_attention,
        "links": {"self": payment_href(&j.payment_id)},
    })
}

fn refund_json(r: &RequestRow) -> Value {
    json!({
        "id": r.id,
        "payment_id": r.payment_id,
        "amount": r.amount,
        "reason": r.reason,
        "comment": r.comment,
        "case_reference": r.case_reference,
        "state": r.state,
        "approval_required": r.approval_required,
        "requested_at": rfc3339(r.requested_at),
        "decided_at": r.decided_at.map(rfc3339),
        "submitted_at": r.submitted_at.map(rfc3339),
        "finished_at": r.finished_at.map(rfc3339),
        "platform_refund_id": r.platform_refund_id,
        "failure": r.failure,
        "links": {
            "self": format!("{BASE}/refunds/{}", r.id),
            "payment": payment_href(&r.payment_id),
        },
    })
}

/// The journey of `payment_id` in the caller's service; 404 for anything else.
async fn journey_of(
    state: &AppState,
    caller: &ApiCaller,
    payment_id: &str,
) -> Result<journey_store::JourneyRow, Problem> {
    if payment_id.is_empty() || payment_id.len() > 100 || payment_id.chars().any(char::is_control) {
        return Err(Problem::not_found());
    }
    journey_store::journey(&state.db, caller.service_id(), payment_id)
        .await?
        .ok_or_else(Problem::not_found)
}

// ---- payments -------------------------------------------------------------------------------

/// The opaque cursor for a page position ("key_id" from the search layer).
fn encode_cursor(position: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(position.as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<Cursor> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (k, i) = text.split_once('_')?;
    Some(Cursor {
        key: k.parse().ok()?,
        id: i.parse().ok()?,
        after: true,
    })
}

/// A list's query read: the search, the page size, and the filters to carry to the next page.
type ListQuery = (Search, usize, Vec<(String, String)>);

/// The list's query read into a search, or a problem per parameter.
fn list_query(raw: &str) -> Result<ListQuery, Vec<Value>> {
    const NAMES: [&str; 7] = [
        "reference",
        "email",
        "case_reference",
        "created_from",
        "created_to",
        "cursor",
        "limit",
    ];
    let mut errors = Vec::new();
    let mut values: Map<String, Value> = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !NAMES.contains(&k.as_ref()) {
            errors.push(parameter_error(
                &k,
                format!("{k} is not a parameter of this list"),
            ));
            continue;
        }
        values.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let get = |name: &str| values.get(name).and_then(Value::as_str).unwrap_or("");
    let mut search = Search {
        sort: Sort::Newest,
        ..Search::default()
    };
    let mut carry = Vec::new();
    for name in ["reference", "email", "case_reference"] {
        let v = get(name).trim();
        if v.is_empty() {
            continue;
        }
        if v.chars().count() > FIELD_MAX || v.chars().any(char::is_control) {
            errors.push(parameter_error(
                name,
                format!(
                    "{name} must be {FIELD_MAX} characters or fewer, without control characters"
                ),
            ));
            continue;
        }
        carry.push((name.to_string(), v.to_string()));
        let lower = v.to_lowercase();
        match name {
            "reference" => search.reference = Some((lower, false)),
            "email" => search.email = Some(lower),
            _ => search.case_reference = Some(lower),
        }
    }
    let mut time_of = |name: &str| -> Option<i64> {
        let v = get(name).trim();
        if v.is_empty() {
            return None;
        }
        match OffsetDateTime::parse(v, &Rfc3339) {
            Ok(t) => {
                carry.push((name.to_string(), v.to_string()));
                Some(store::to_micros(t))
            }
            Err(_) => {
                errors.push(parameter_error(
                    name,
                    format!("{name} must be a date and time such as 2026-11-20T09:00:00Z"),
                ));
                None
            }
        }
    };
    let from = time_of("created_from");
    let to = time_of("created_to");
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            errors.push(parameter_error(
                "created_to",
                "created_to must be after created_from",
            ));
        }
    }
    if from.is_some() || to.is_some() {
        search.range = Some(Range::Created(from, to));
    }
    let limit = match get("limit").trim() {
        "" => DEFAULT_LIMIT,
        v => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.push(parameter_error(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        },
    };
    let cursor = get("cursor").trim();
    if !cursor.is_empty() {
        match decode_cursor(cursor) {
            Some(c) => search.cursor = Some(c),
            None => errors.push(parameter_error(
                "cursor",
                "cursor must be a value from a previous page's next_cursor",
            )),
        }
    }
    if errors.is_empty() {
        Ok((search, limit, carry))
    } else {
        Err(errors)
    }
}

#[rocket::get("/payments")]
async fn list_payments(state: &State<AppState>, caller: ApiCaller, uri: &Origin<'_>) -> ApiResult {
    require(state, &caller, uri.path().as_str(), &[Scope::PaymentsRead]).await?;
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    if raw.len() > 8 * 1024 {
        return Err(Problem::invalid(vec![parameter_error(
            "query",
            "The query is too long",
        )]));
    }
    let (search, limit, carry) = list_query(raw).map_err(Problem::invalid)?;
    let (rows, next) =
        crate::search::page(&state.db, &[caller.service_id()], &search, limit).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let journeys = journey_store::journeys_by_ids(&state.db, &ids).await?;
    let data: Vec<Value> = ids
        .iter()
        .filter_map(|id| journeys.iter().find(|j| j.id == *id))
        .map(payment_json)
        .collect();
    let next_cursor = next.as_deref().map(encode_cursor);
    let next_href = next_cursor.as_ref().map(|c| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &carry {
            q.append_pair(k, v);
        }
        q.append_pair("limit", &limit.to_string());
        q.append_pair("cursor", c);
        format!("{BASE}/payments?{}", q.finish())
    });
    Ok(ApiJson::ok(&json!({
        "data": data,
        "next_cursor": next_cursor,
        "links": {"next": next_href},
    })))
}

#[rocket::get("/payments/<id>")]
async fn get_payment(state: &State<AppState>, caller: ApiCaller, id: &str) -> ApiResult {
    let path = payment_href(id);
    require(state, &caller, &path, &[Scope::PaymentsRead]).await?;
    let j = journey_of(state, &caller, id).await?;
    let now = state.clock.now();
    // Who looked at whose personal data, as for the journey page.
    audit::record(
        &state.db,
        now,
        AuditEvent::new(
            caller.actor(),
            "sensitive_read",
            format!("payment:{}", j.payment_id),
        )
        .from_ip(caller.ip.clone())
        .details(json!({"service_id": j.service_id, "what": "api payment"})),
    )
    .await?;
    let (events, platform_refunds, requests) = tokio::try_join!(
        journey_store::events(&state.db, j.id),
        journey_store::refunds_of(&state.db, j.service_id, &j.payment_id),
        refund_store::for_journey(&state.db, j.id),
    )?;
    let mut body = payment_json(&j);
    body["timeline"] = Value::Array(
        timeline::entries(&j, &events, false)
            .into_iter()
            .map(|e| {
                json!({
                    "at": rfc3339(e.at),
                    "kind": e.kind,
                    "title": e.title,
                    "text": e.text,
                    "source": e.source,
                })
            })
            .collect(),
    );
    body["refunds"] = Value::Array(
        platform_refunds
            .iter()
            .map(|r| {
                json!({
                    "refund_id": r.refund_id,
                    "amount": r.amount,
                    "status": r.status,
                    "created_at": rfc3339(r.created_at),
                    "settled_date": r.settled_date,
                })
            })
            .collect(),
    );
    body["refund_requests"] = Value::Array(requests.iter().map(refund_json).collect());
    Ok(ApiJson::ok(&body))
}

// ---- bodies ---------------------------------------------------------------------------------

/// A JSON object body: 415 for another content type, 400 when it is not JSON, 422 when it is
/// not an object.
async fn json_body(
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> Result<Map<String, Value>, Problem> {
    if !content_type.is_some_and(|ct| ct.is_json() || ct.sub().as_str().ends_with("+json")) {
        return Err(Problem::status(
            Status::UnsupportedMediaType,
            "Send the body as JSON, with Content-Type: application/json",
        ));
    }
    let text = match data.open(BODY_LIMIT_KIB.kibibytes()).into_string().await {
        Ok(s) if s.is_complete() => s.into_inner(),
        Ok(_) => {
            return Err(Problem::status(
                Status::PayloadTooLarge,
                format!("The body must be {BODY_LIMIT_KIB} KiB or less"),
            ))
        }
        Err(_) => {
            return Err(Problem::typed(
                Status::BadRequest,
                "problem-malformed-json",
                "The body is not JSON",
                "The body is not valid UTF-8 text",
            ))
        }
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Problem::typed(
            Status::BadRequest,
            "problem-malformed-json",
            "The body is not JSON",
            format!("The body could not be read as JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::invalid(vec![
            json!({"field": "", "pointer": "", "detail": "The body must be a JSON object"}),
        ])),
    }
}

/// Fields of `body` that are not in `known`, as problems.
fn unknown_fields(body: &Map<String, Value>, known: &[&str]) -> Vec<Value> {
    body.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| field_error(k, format!("{k} is not a field of this request")))
        .collect()
}

/// An optional string field.
fn text_field(body: &Map<String, Value>, name: &str, errors: &mut Vec<Value>) -> Option<String> {
    match body.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field_error(name, format!("{name} must be a string")));
            None
        }
    }
}

// ---- case links -----------------------------------------------------------------------------

#[rocket::put("/payments/<id>/case", data = "<data>")]
async fn link_case(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{}/case", payment_href(id));
    require(state, &caller, &path, &[Scope::CasesLink]).await?;
    let j = journey_of(state, &caller, id).await?;
    let body = json_body(content_type, data).await?;
    let mut errors = unknown_fields(&body, &["case_reference"]);
    let reference = match text_field(&body, "case_reference", &mut errors) {
        Some(raw) => match case::check(&raw) {
            Ok(r) => Some(r),
            Err(message) => {
                errors.push(field_error("case_reference", message));
                None
            }
        },
        None => {
            if !errors.iter().any(|e| e["field"] == "case_reference") {
                errors.push(field_error("case_reference", "Enter the case reference"));
            }
            None
        }
    };
    let Some(reference) = reference.filter(|_| errors.is_empty()) else {
        return Err(Problem::invalid(errors));
    };
    let by = format!("API token “{}”", caller.caller.token.name);
    case::link(
        &state.db,
        state.clock.now(),
        caller.actor(),
        &by,
        caller.ip.clone(),
        j.service_id,
        j.id,
        &j.payment_id,
        &reference,
    )
    .await?;
    let j = journey_store::journey_by_id(&state.db, j.id)
        .await?
        .ok_or_else(Problem::not_found)?;
    Ok(ApiJson::ok(&payment_json(&j)))
}

// ---- refunds --------------------------------------------------------------------------------

/// A refund request as posted, checked for shape (the refund rules check the rest).
struct RefundBody {
    amount: Option<i64>,
    reason: String,
    comment: String,
    case_reference: String,
}

fn refund_body(body: &Map<String, Value>) -> Result<RefundBody, Vec<Value>> {
    let mut errors = unknown_fields(body, &["amount", "reason", "comment", "case_reference"]);
    let amount = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) if (1..=MAX_PENCE).contains(&a) => Some(a),
            _ => {
                errors.push(field_error(
                    "amount",
                    format!("amount must be a whole number of pence from 1 to {MAX_PENCE}"),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(field_error(
                "amount",
                "amount must be a whole number of pence, like 1250 for £12.50",
            ));
            None
        }
    };
    let reason = text_field(body, "reason", &mut errors);
    if reason.is_none() && !errors.iter().any(|e| e["field"] == "reason") {
        errors.push(field_error("reason", "Give the reason for the refund"));
    }
    let comment = text_field(body, "comment", &mut errors).unwrap_or_default();
    let case_reference = text_field(body, "case_reference", &mut errors).unwrap_or_default();
    if !case_reference.trim().is_empty() {
        if let Err(message) = case::check(&case_reference) {
            errors.push(field_error("case_reference", message));
        }
    }
    if errors.is_empty() {
        Ok(RefundBody {
            amount,
            reason: reason.unwrap_or_default(),
            comment,
            case_reference,
        })
    } else {
        Err(errors)
    }
}

/// The refund rules' field names, as the API's body names them.
fn api_field(field: &str) -> &str {
    match field {
        "how_much" => "amount",
        other => other,
    }
}

#[rocket::post("/payments/<id>/refunds", data = "<data>")]
#[allow(clippy::too_many_arguments)]
async fn request_refund(
    state: &State<AppState>,
    caller: ApiCaller,
    id: &str,
    key: IdempotencyKey,
    content_type: Option<&ContentType>,
    data: Data<'_>,
) -> ApiResult {
    let path = format!("{}/refunds", payment_href(id));
    require(state, &caller, &path, &[Scope::RefundsRequest]).await?;
    let j = journey_of(state, &caller, id).await?;
    let key = match key.0 {
        Some(k) if idempotency::valid_key(&k) => Some(k),
        Some(_) => {
            return Err(Problem::status(
                Status::BadRequest,
                format!(
                    "Idempotency-Key must be 1 to {} visible ASCII characters",
                    idempotency::KEY_MAX
                ),
            ))
        }
        None => None,
    };
    let body = json_body(content_type, data).await?;
    let fields = refund_body(&body).map_err(Problem::invalid)?;
    let token_id = caller.caller.token.id;
    let now = state.clock.now();
    if let Some(k) = &key {
        let print = idempotency::fingerprint(
            "POST",
            &payment_href(&j.payment_id),
            &audit::canonical_json(&Value::Object(body.clone())),
        );
        match idempotency::begin(&state.db, now, token_id, k, &print)
            .await?
        {
            Begun::Proceed => {}
            Begun::Replay { status, body } => {
                let location = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["links"]["self"].as_str().map(str::to_string));
                return Ok(ApiJson {
                    status: Status::from_code(status).unwrap_or(Status::Ok),
                    body,
                    location: location.filter(|_| status == 201),
                    replayed: true,
                });
            }
            Begun::Mismatch => {
                return Err(Problem::typed(
                    Status::UnprocessableEntity,
                    "problem-idempotency-key-reused",
                    "This Idempotency-Key was used for a different request",
                    "Each Idempotency-Key may only be sent with one request. Send a new key for a new request",
                ))
            }
            Begun::InFlight => {
                return Err(Problem::typed(
                    Status::Conflict,
                    "problem-idempotency-key-in-flight",
                    "A request with this Idempotency-Key is still being answered",
                    "Wait a moment, then send the same request again to get its answer",
                )
                .header("Retry-After", "1"))
            }
        }
    }
    let outcome = make_refund(state, &caller, &j, &fields, key.as_deref(), now).await;
    match (&outcome, &key) {
        (Ok(answer), Some(k)) => {
            idempotency::keep(&state.db, token_id, k, answer.status.code, &answer.body).await?;
        }
        (Err(_), Some(k)) => {
            // Nothing was made: a retry (corrected, or the same) starts afresh.
            if let Err(e) = idempotency::release(&state.db, token_id, k).await {
                tracing::error!(error = %e, "could not release an idempotency key");
            }
        }
        _ => {}
    }
    outcome
}

/// Ask for the refund, as the token (for the member of staff who made it).
async fn make_refund(
    state: &AppState,
    caller: &ApiCaller,
    j: &journey_store::JourneyRow,
    fields: &RefundBody,
    key: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult {
    let token = &caller.caller.token;
    // Asking twice with one key makes one request, even once the key's answer is forgotten.
    let form_key = match key {
        Some(k) => format!("api:{}:{}:{}", token.id, j.id, idempotency::key_digest(k)),
        None => format!("api:{}", uuid::Uuid::new_v4()),
    };
    let ask = Ask {
        service_id: j.service_id,
        journey_id: j.id,
        payment_id: j.payment_id.clone(),
        how_much: Ok(fields.amount.map_or(HowMuch::Full, HowMuch::Partial)),
        reason: fields.reason.clone(),
        comment: fields.comment.clone(),
        case_reference: fields.case_reference.clone(),
        form_key,
    };
    let who = Requester {
        staff_id: token.created_by,
        name: format!("API token “{}”", token.name),
        actor: caller.actor(),
        ip: caller.ip.clone(),
    };
    match refunds::request_as(&state.db, now, &who, &ask).await? {
        Asked::Made { id, .. } => {
            let row = refund_store::by_id(&state.db, id)
                .await?
                .ok_or_else(|| Problem::internal("a refund request just made cannot be read"))?;
            let body = refund_json(&row);
            Ok(ApiJson {
                status: Status::Created,
                location: Some(format!("{BASE}/refunds/{id}")),
                body: body.to_string(),
                replayed: false,
            })
        }
        Asked::Refused(problems) => {
            let mut errors: Vec<Value> = Vec::new();
            for (field, message) in problems {
                let field = api_field(field);
                if !errors.iter().any(|e| e["field"] == field) {
                    errors.push(field_error(field, message));
                }
            }
            Err(Problem::invalid(errors))
        }
    }
}

#[rocket::get("/refunds/<id>")]
async fn get_refund(state: &State<AppState>, caller: ApiCaller, id: &str) -> ApiResult {
    let path = format!("{BASE}/refunds/{id}");
    require(
        state,
        &caller,
        &path,
        &[Scope::PaymentsRead, Scope::RefundsRequest],
    )
    .await?;
    let Some(id) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
        return Err(Problem::not_found());
    };
    let row = refund_store::by_id(&state.db, id)
        .await?
        .filter(|r| r.service_id == caller.service_id())
        .ok_or_else(Problem::not_found)?;
    Ok(ApiJson::ok(&refund_json(&row)))
}

// ---- the document ---------------------------------------------------------------------------

#[rocket::get("/openapi.json")]
fn openapi() -> ApiJson {
    ApiJson {
        status: Status::Ok,
        body: OPENAPI.to_string(),
        location: None,
        replayed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_opaque_and_checked() {
        let c = encode_cursor("1700000000000000_42");
        assert!(!c.contains('_') || c.len() > 5);
        let Some(d) = decode_cursor(&c) else {
            panic!("the cursor reads back")
        };
        assert_eq!((d.key, d.id, d.after), (1_700_000_000_000_000, 42, true));
        for bad in ["", "!!", "bm90IGEgY3Vyc29y", &encode_cursor("1_x")] {
            assert!(decode_cursor(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn list_queries_are_checked() {
        let Ok((s, limit, carry)) =
            list_query("reference=ABC&limit=5&created_from=2026-11-20T00:00:00Z")
        else {
            panic!("a good query is accepted")
        };
        assert_eq!(s.reference, Some(("abc".into(), false)));
        assert_eq!(limit, 5);
        assert!(matches!(s.range, Some(Range::Created(Some(_), None))));
        assert_eq!(carry.len(), 2);
        for bad in [
            "limit=0",
            "limit=101",
            "limit=x",
            "created_from=yesterday",
            "cursor=zzz",
            "colour=blue",
            "created_from=2026-11-21T00:00:00Z&created_to=2026-11-20T00:00:00Z",
        ] {
            assert!(list_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refund_bodies_are_checked() {
        let ok = |v: Value| refund_body(v.as_object().unwrap_or(&Map::new()));
        assert!(ok(json!({"amount": 500, "reason": "duplicate"})).is_ok());
        assert!(ok(json!({"reason": "duplicate"})).is_ok_and(|b| b.amount.is_none()));
        for bad in [
            json!({"amount": 0, "reason": "duplicate"}),
            json!({"amount": 1.5, "reason": "duplicate"}),
            json!({"amount": "500", "reason": "duplicate"}),
            json!({"amount": 10_000_001, "reason": "duplicate"}),
            json!({"amount": 500}),
            json!({"amount": 500, "reason": "duplicate", "extra": 1}),
            json!({"amount": 500, "reason": "duplicate", "case_reference": "=1+1"}),
        ] {
            assert!(ok(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_document_is_json() {
        let v: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
        assert_eq!(v["openapi"].as_str().map(|s| &s[..2]), Some("3."));
    }
}
