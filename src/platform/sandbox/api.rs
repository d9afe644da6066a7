//! The platform's v1 API as the sandbox serves it, and its OAuth2 token endpoint. Every v1
//! request is authenticated (an account's API key or an OAuth access token, as a bearer
//! token), then passes the account's faults, then is answered in the platform's shapes and
//! error codes.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{catch, catchers, get, post, routes, Catcher, Route, State};
use serde::Serialize;
use serde_json::{Map, Value};

use super::account::{NewPayment, RefundRefusal};
use super::data::{date_of, Language, MetaVal, Metadata, Provider, View, MAX_AMOUNT};
use super::faults::Verdict;
use super::search::{page_links, pairs, payment_query, refund_query};
use super::{Entry, Shared};
use crate::platform::types::{
    EmbeddedRefunds, EventLinks, PaymentEvent, PaymentEvents, PaymentRefunds, RefundLinks,
    SearchPage, SelfLinks,
};

pub fn routes() -> Vec<Route> {
    routes![
        create_payment,
        search_payments,
        get_payment,
        get_events,
        cancel_payment,
        list_refunds,
        create_refund,
        get_refund,
        search_refunds,
        oauth_token,
    ]
}

pub fn catchers() -> Vec<Catcher> {
    catchers![fallback]
}

/// Anything no route answers: a JSON body rather than Rocket's HTML page.
#[catch(default)]
fn fallback(status: Status, _req: &Request<'_>) -> Reply {
    Reply::json(
        status,
        &serde_json::json!({ "description": status.reason().unwrap_or("Request not handled") }),
    )
}

/// A response: status, optional JSON body, extra headers.
pub struct Reply {
    status: Status,
    body: Option<Vec<u8>>,
    content_type: ContentType,
    headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Reply {
    pub fn json<T: Serialize>(status: Status, value: &T) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply {
                status,
                body: Some(body),
                content_type: ContentType::JSON,
                headers: Vec::new(),
            },
            Err(_) => Reply::error(
                Status::InternalServerError,
                "P0999",
                "Downstream system error",
            ),
        }
    }

    pub fn error(status: Status, code: &str, description: &str) -> Reply {
        Reply::json(
            status,
            &ErrorJson {
                code,
                description,
                field: None,
            },
        )
    }

    pub fn field_error(status: Status, code: &str, description: &str, field: &str) -> Reply {
        Reply::json(
            status,
            &ErrorJson {
                code,
                description,
                field: Some(field),
            },
        )
    }

    pub fn empty(status: Status) -> Reply {
        Reply {
            status,
            body: None,
            content_type: ContentType::JSON,
            headers: Vec::new(),
        }
    }

    pub fn html(status: Status, page: String) -> Reply {
        Reply {
            status,
            body: Some(page.into_bytes()),
            content_type: ContentType::HTML,
            headers: Vec::new(),
        }
    }

    pub fn redirect(to: &str) -> Reply {
        Reply::empty(Status::SeeOther).header("Location", to.to_string())
    }

    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    pub fn unauthorized() -> Reply {
        Reply::empty(Status::Unauthorized).header("WWW-Authenticate", "Bearer".into())
    }
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut r = Response::build();
        r.status(self.status);
        if let Some(body) = self.body {
            r.header(self.content_type);
            r.sized_body(body.len(), Cursor::new(body));
        }
        for (name, value) in self.headers {
            r.raw_header(name, value);
        }
        r.ok()
    }
}

/// Who is calling and where from: resolved for every v1 request, never failing, so each
/// handler decides its own answer (401 included) in the platform's shape.
pub struct Caller {
    shared: Arc<Shared>,
    entry: Option<Arc<Entry>>,
    /// `scheme://host` as the caller addressed the sandbox, for absolute links.
    origin: String,
    is_post: bool,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(shared) = req.rocket().state::<Arc<Shared>>().cloned() else {
            return Outcome::Forward(Status::InternalServerError);
        };
        let bearer = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty());
        let entry = bearer.and_then(|t| shared.entry_by_key(t));
        let origin = req
            .host()
            .map(|h| format!("http://{h}"))
            .unwrap_or_else(|| shared.base_url().to_string());
        Outcome::Success(Caller {
            shared,
            entry,
            origin,
            is_post: req.method() == rocket::http::Method::Post,
        })
    }
}

impl Caller {
    /// Authenticate and apply the account's faults (latency first, on every answer).
    async fn admit(&self) -> Result<Arc<Entry>, Reply> {
        let Some(entry) = self.entry.clone() else {
            return Err(Reply::unauthorized());
        };
        let (latency, verdict) = {
            let mut faults = entry.faults();
            (faults.latency(), faults.admit(self.is_post, Instant::now()))
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match verdict {
            Verdict::Proceed => Ok(entry),
            Verdict::TooManyRequests { retry_after } => {
                Err(
                    Reply::error(Status::TooManyRequests, "P0900", "Too many requests")
                        .header("Retry-After", retry_after.to_string()),
                )
            }
            Verdict::ServerError => Err(Reply::error(
                Status::InternalServerError,
                "P0999",
                "Downstream system error",
            )),
        }
    }
}

macro_rules! admit {
    ($caller:expr) => {
        match $caller.admit().await {
            Ok(entry) => entry,
            Err(reply) => return reply,
        }
    };
}

async fn read_body(data: Data<'_>) -> Option<Vec<u8>> {
    let capped = data.open(1.mebibytes()).into_bytes().await.ok()?;
    capped.is_complete().then(|| capped.into_inner())
}

/// Why a create-payment body was refused: (status, code, description, field).
type Refusal = (Status, &'static str, String, Option<&'static str>);

fn missing(field: &'static str) -> Refusal {
    (
        Status::BadRequest,
        "P0101",
        format!("Missing mandatory attribute: {field}"),
        Some(field),
    )
}

fn invalid(field: &'static str, why: &str) -> Refusal {
    (
        Status::UnprocessableEntity,
        "P0102",
        format!("Invalid attribute value: {field}. {why}"),
        Some(field),
    )
}

fn check_amount(v: &Value) -> Result<i64, &'static str> {
    let n = match v {
        Value::Number(n) => n.as_i64().ok_or("Must be a valid numeric format")?,
        _ => return Err("Must be a valid numeric format"),
    };
    if n < 1 {
        return Err("Must be greater than or equal to 1");
    }
    if n > MAX_AMOUNT {
        return Err("Must be less than or equal to 10000000");
    }
    Ok(n)
}

fn text(
    obj: &Map<String, Value>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, Refusal> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(invalid(
            field,
            &format!("Must be less than or equal to {max} characters length"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "Must be of type String")),
    }
}

fn flag(obj: &Map<String, Value>, field: &'static str) -> Result<bool, Refusal> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(field, "Must be true or false")),
    }
}

fn metadata(v: Option<&Value>) -> Result<Option<Metadata>, Refusal> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                "metadata",
                "Must be an object of JSON key-value pairs",
            ))
        }
    };
    if obj.len() > 15 {
        return Err(invalid(
            "metadata",
            "Cannot have more than 15 key-value pairs",
        ));
    }
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        if k.is_empty() || k.chars().count() > 30 {
            return Err(invalid(
                "metadata",
                "Keys must be between 1 and 30 characters long",
            ));
        }
        if let Value::String(s) = v {
            if s.chars().count() > 100 {
                return Err(invalid(
                    "metadata",
                    "Values must be no greater than 100 characters long",
                ));
            }
        }
        let val = MetaVal::from_value(v).ok_or_else(|| {
            invalid(
                "metadata",
                "Values must be of type String, Boolean or Number",
            )
        })?;
        out.push((Box::from(k.as_str()), val));
    }
    Ok(Some(out.into_boxed_slice()))
}

/// The body as a JSON object, or the platform's "Unable to parse JSON" refusal with `code`.
fn json_object(body: &[u8], code: &'static str) -> Result<serde_json::Map<String, Value>, Refusal> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err((
            Status::BadRequest,
            code,
            "Unable to parse JSON".to_string(),
            None,
        )),
    }
}

/// Validate a `POST /v1/payments` body as the platform does.
pub fn parse_create(body: &[u8]) -> Result<NewPayment, Refusal> {
    let obj = json_object(body, "P0197")?;
    for field in ["amount", "description", "reference", "return_url"] {
        if obj.get(field).is_none_or(Value::is_null) {
            return Err(missing(field));
        }
    }
    let amount = obj
        .get("amount")
        .map(check_amount)
        .unwrap_or(Err("Must be a valid numeric format"))
        .map_err(|why| invalid("amount", why))?;
    let description = text(&obj, "description", 255)?.unwrap_or_default();
    let reference = text(&obj, "reference", 255)?.unwrap_or_default();
    if reference.trim().is_empty() {
        return Err(invalid("reference", "Must not be blank"));
    }
    if description.trim().is_empty() {
        return Err(invalid("description", "Must not be blank"));
    }
    let return_url = text(&obj, "return_url", 2000)?.unwrap_or_default();
    let url_ok = url::Url::parse(&return_url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !url_ok {
        return Err(invalid("return_url", "Must be a valid URL format"));
    }
    let email = text(&obj, "email", 254)?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(invalid("email", "Must be a valid email address"));
    }
    let language = match text(&obj, "language", 2)? {
        None => Language::En,
        Some(l) => {
            Language::parse(&l).ok_or_else(|| invalid("language", "Must be \"en\" or \"cy\""))?
        }
    };
    Ok(NewPayment {
        amount,
        reference,
        description,
        return_url,
        email,
        language,
        metadata: metadata(obj.get("metadata"))?,
        delayed_capture: flag(&obj, "delayed_capture")?,
        moto: flag(&obj, "moto")?,
    })
}

#[post("/v1/payments", data = "<data>")]
async fn create_payment(caller: Caller, data: Data<'_>) -> Reply {
    let entry = admit!(caller);
    let body = read_body(data).await.unwrap_or_default();
    let new = match parse_create(&body) {
        Ok(n) => n,
        Err(refusal) => return refusal_reply(refusal),
    };
    let shared = &caller.shared;
    let (payment, token, idx) = shared.with_account(&entry, |account, ctx| {
        let idx = account.create_payment(new, Provider::Sandbox, &mut rand::thread_rng(), ctx);
        let p = account.payment(idx);
        (
            p.wire(&caller.origin, ctx.now, View::Created),
            p.token.as_deref().map(str::to_string),
            idx,
        )
    });
    if let Some(t) = token {
        shared.register_pay_token(&entry, &t, idx);
    }
    let location = format!("{}/v1/payments/{}", caller.origin, payment.payment_id);
    Reply::json(Status::Created, &payment).header("Location", location)
}

fn invalid_parameters(code: &str, names: &[&str]) -> Reply {
    Reply::error(
        Status::UnprocessableEntity,
        code,
        &format!(
            "Invalid parameters: {}. See Public API documentation for the correct data formats",
            names.join(", ")
        ),
    )
}

#[get("/v1/payments")]
async fn search_payments(caller: Caller, uri: &rocket::http::uri::Origin<'_>) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match payment_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P0401", &names),
    };
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_payments(&q, ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .map(|i| {
                account
                    .payment(i)
                    .wire(&caller.origin, ctx.now, View::Search)
            })
            .collect();
        (total, results)
    });
    let page = SearchPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(
            &caller.origin,
            "/v1/payments",
            &q.echo,
            q.page,
            q.size,
            total,
        ),
    };
    Reply::json(Status::Ok, &page)
}

#[get("/v1/payments/<id>")]
async fn get_payment(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let found = caller.shared.with_account(&entry, |account, ctx| {
        account
            .find(id)
            .map(|i| account.payment(i).wire(&caller.origin, ctx.now, View::Full))
    });
    match found {
        Some(p) => Reply::json(Status::Ok, &p),
        None => Reply::error(Status::NotFound, "P0200", "Not found"),
    }
}

#[get("/v1/payments/<id>/events")]
async fn get_events(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let origin = &caller.origin;
    let found = caller.shared.with_account(&entry, |account, _| {
        let p = account.payment(account.find(id)?);
        let payment_url = super::data::get_link(format!("{origin}/v1/payments/{}", p.id));
        Some(PaymentEvents {
            payment_id: p.id.to_string(),
            events: p
                .events
                .iter()
                .map(|e| PaymentEvent {
                    payment_id: Some(p.id.to_string()),
                    state: e.st.wire(),
                    updated: super::data::to_time(e.at),
                    links: Some(EventLinks {
                        payment_url: Some(payment_url.clone()),
                    }),
                })
                .collect(),
            links: Some(SelfLinks {
                self_link: Some(super::data::get_link(format!(
                    "{origin}/v1/payments/{}/events",
                    p.id
                ))),
            }),
        })
    });
    match found {
        Some(e) => Reply::json(Status::Ok, &e),
        None => Reply::error(Status::NotFound, "P0300", "Not found"),
    }
}

#[post("/v1/payments/<id>/cancel")]
async fn cancel_payment(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let outcome = caller.shared.with_account(&entry, |account, ctx| {
        let idx = account.find(id)?;
        Some(account.cancel(idx, ctx))
    });
    match outcome {
        None => Reply::error(Status::NotFound, "P0500", "Not found"),
        Some(false) => Reply::error(Status::Conflict, "P0502", "Cancellation of payment failed"),
        Some(true) => Reply::empty(Status::NoContent),
    }
}

#[get("/v1/payments/<id>/refunds")]
async fn list_refunds(caller: Caller, id: &str) -> Reply {
    let entry = admit!(caller);
    let origin = &caller.origin;
    let found = caller.shared.with_account(&entry, |account, ctx| {
        let p = account.payment(account.find(id)?);
        let today = date_of(ctx.now);
        Some(PaymentRefunds {
            payment_id: p.id.to_string(),
            embedded: EmbeddedRefunds {
                refunds: p
                    .refunds
                    .iter()
                    .map(|r| r.wire(&p.id, origin, today, false))
                    .collect(),
            },
            links: Some(RefundLinks {
                self_link: Some(super::data::get_link(format!(
                    "{origin}/v1/payments/{}/refunds",
                    p.id
                ))),
                payment: Some(super::data::get_link(format!(
                    "{origin}/v1/payments/{}",
                    p.id
                ))),
            }),
        })
    });
    match found {
        Some(r) => Reply::json(Status::Ok, &r),
        None => Reply::error(Status::NotFound, "P0800", "Not found"),
    }
}

#[get("/v1/payments/<id>/refunds/<refund_id>")]
async fn get_refund(caller: Caller, id: &str, refund_id: &str) -> Reply {
    let entry = admit!(caller);
    let found = caller.shared.with_account(&entry, |account, ctx| {
        let p = account.payment(account.find(id)?);
        let r = p.refunds.iter().find(|r| r.id.as_str() == refund_id)?;
        Some(r.wire(&p.id, &caller.origin, date_of(ctx.now), false))
    });
    match found {
        Some(r) => Reply::json(Status::Ok, &r),
        None => Reply::error(Status::NotFound, "P0700", "Not found"),
    }
}

/// A refund request, validated: (amount, refund_amount_available).
fn parse_refund(body: &[u8]) -> Result<(i64, Option<i64>), Refusal> {
    let obj = json_object(body, "P0697")?;
    let amount = match obj.get("amount") {
        None | Some(Value::Null) => {
            return Err((
                Status::BadRequest,
                "P0601",
                "Missing mandatory attribute: amount".to_string(),
                Some("amount"),
            ))
        }
        Some(v) => check_amount(v).map_err(|why| {
            (
                Status::BadRequest,
                "P0602",
                format!("Invalid attribute value: amount. {why}"),
                Some("amount"),
            )
        })?,
    };
    let expected =
        match obj.get("refund_amount_available") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= 0) => n.as_i64(),
            Some(_) => return Err((
                Status::BadRequest,
                "P0602",
                "Invalid attribute value: refund_amount_available. Must be a valid numeric format"
                    .to_string(),
                Some("refund_amount_available"),
            )),
        };
    Ok((amount, expected))
}

fn refusal_reply((status, code, description, field): Refusal) -> Reply {
    match field {
        Some(f) => Reply::field_error(status, code, &description, f),
        None => Reply::error(status, code, &description),
    }
}

#[post("/v1/payments/<id>/refunds", data = "<data>")]
async fn create_refund(caller: Caller, id: &str, data: Data<'_>) -> Reply {
    let entry = admit!(caller);
    let body = read_body(data).await.unwrap_or_default();
    let (amount, expected) = match parse_refund(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal_reply(refusal),
    };
    let origin = &caller.origin;
    let outcome = caller.shared.with_account(&entry, |account, ctx| {
        let idx = account.find(id)?;
        let result = account
            .refund(idx, amount, expected, &mut rand::thread_rng(), ctx)
            .map(|n| {
                let p = account.payment(idx);
                p.refunds[n as usize].wire(&p.id, origin, date_of(ctx.now), false)
            });
        Some(result)
    });
    match outcome {
        None => Reply::error(Status::NotFound, "P0600", "Not found"),
        Some(Err(RefundRefusal::NotAvailable(status))) => Reply::error(
            Status::BadRequest,
            "P0603",
            &format!("The payment is not available for refund. Payment refund status: {status}"),
        ),
        Some(Err(RefundRefusal::AvailableMismatch)) => Reply::error(
            Status::PreconditionFailed,
            "P0604",
            "Refund amount available mismatch.",
        ),
        Some(Err(RefundRefusal::TooMuch { .. })) => Reply::field_error(
            Status::BadRequest,
            "P0602",
            "Not sufficient amount available for refund",
            "amount",
        ),
        Some(Ok(refund)) => {
            if entry.faults().take_refund_hang() {
                // The refund is committed; the caller never hears so (its timeout fires).
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
            Reply::json(Status::Ok, &refund)
        }
    }
}

#[get("/v1/refunds")]
async fn search_refunds(caller: Caller, uri: &rocket::http::uri::Origin<'_>) -> Reply {
    let entry = admit!(caller);
    let params = pairs(uri.query().map(|q| q.as_str()));
    let q = match refund_query(&params) {
        Ok(q) => q,
        Err(names) => return invalid_parameters("P1101", &names),
    };
    let origin = &caller.origin;
    let (total, results) = caller.shared.with_account(&entry, |account, ctx| {
        let (total, page) = account.search_refunds(&q, ctx.now);
        let today = date_of(ctx.now);
        let results: Vec<_> = page
            .into_iter()
            .map(|(i, n)| {
                let p = account.payment(i);
                p.refunds[n as usize].wire(&p.id, origin, today, true)
            })
            .collect();
        (total, results)
    });
    let page = SearchPage {
        total: total as i64,
        count: results.len() as i64,
        page: q.page as i64,
        results,
        links: page_links(origin, "/v1/refunds", &q.echo, q.page, q.size, total),
    };
    Reply::json(Status::Ok, &page)
}

/// HTTP Basic credentials, if the header carries them.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

pub struct AuthorizationHeader(Option<String>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthorizationHeader {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(AuthorizationHeader(
            req.headers().get_one("Authorization").map(str::to_string),
        ))
    }
}

/// OAuth2 client-credentials grant: client id and secret by HTTP Basic or in the form.
#[post("/oauth/token", data = "<data>")]
async fn oauth_token(
    shared: &State<Arc<Shared>>,
    auth: AuthorizationHeader,
    data: Data<'_>,
) -> Reply {
    let body = read_body(data).await.unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let oauth_error = |status: Status, error: &str, description: &str| {
        Reply::json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
        .header("Cache-Control", "no-store".into())
    };
    let basic = basic_credentials(auth.0.as_deref());
    let (client_id, client_secret) = match (&basic, field("client_id"), field("client_secret")) {
        (Some((id, secret)), _, _) => (Some(id.clone()), Some(secret.clone())),
        (None, id, secret) => (id, secret),
    };
    let entry = match (client_id, client_secret) {
        (Some(id), Some(secret)) => shared.entry_by_client(&id, &secret),
        _ => None,
    };
    let Some(entry) = entry else {
        let reply = oauth_error(
            Status::Unauthorized,
            "invalid_client",
            "Invalid client credentials",
        );
        return if basic.is_some() {
            reply.header("WWW-Authenticate", "Basic realm=\"sandbox\"".into())
        } else {
            reply
        };
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(
            Status::BadRequest,
            "unsupported_grant_type",
            "Only the client_credentials grant is supported",
        );
    }
    let token = shared.issue_token(entry);
    let mut answer = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": shared.token_ttl / 1000,
    });
    if let Some(scope) = field("scope").filter(|s| !s.is_empty()) {
        answer["scope"] = Value::String(scope);
    }
    Reply::json(Status::Ok, &answer).header("Cache-Control", "no-store".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> (u16, &'static str, Option<&'static str>) {
        match parse_create(body.as_bytes()) {
            Ok(_) => panic!("accepted {body}"),
            Err((status, code, _, field)) => (status.code, code, field),
        }
    }

    #[test]
    fn create_payment_validation_uses_the_platform_codes() {
        let ok = r#"{"amount":1200,"reference":"R1","description":"D","return_url":"https://example.org/r"}"#;
        assert!(parse_create(ok.as_bytes()).is_ok());
        assert_eq!(refusal("{"), (400, "P0197", None));
        assert_eq!(refusal("[1]"), (400, "P0197", None));
        assert_eq!(
            refusal(r#"{"reference":"R1","description":"D","return_url":"https://e.org"}"#),
            (400, "P0101", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":0,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":10000001,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":12.5,"reference":"R1","description":"D","return_url":"https://e.org"}"#
            ),
            (422, "P0102", Some("amount"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"not a url"}"#
            ),
            (422, "P0102", Some("return_url"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"https://e.org","metadata":{"k":[1]}}"#
            ),
            (422, "P0102", Some("metadata"))
        );
        assert_eq!(
            refusal(
                r#"{"amount":100,"reference":"R1","description":"D","return_url":"https://e.org","language":"fr"}"#
            ),
            (422, "P0102", Some("language"))
        );
    }

    #[test]
    fn refund_requests_are_checked_before_the_payment_is_looked_up() {
        assert!(parse_refund(b"nope").is_err());
        assert!(parse_refund(br#"{"refund_amount_available": 5}"#).is_err());
        assert!(parse_refund(br#"{"amount": 0}"#).is_err());
        assert_eq!(
            parse_refund(br#"{"amount": 500, "refund_amount_available": 1000}"#).ok(),
            Some((500, Some(1000)))
        );
    }

    #[test]
    fn basic_credentials_are_read() {
        use base64::Engine;
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("sandbox-client-1:s%3Acret")
        );
        assert_eq!(
            basic_credentials(Some(&header)),
            Some(("sandbox-client-1".into(), "s:cret".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
    }
}
