//! `GET /payments` (a page of the caller's payments), `GET /payments/<id>` (one, with its
//! timeline and refund requests) and `PUT /payments/<id>/case` (linking a case).

use base64::Engine;
use rocket::data::Data;
use rocket::http::uri::Origin;
use rocket::http::ContentType;
use rocket::State;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::body::{json_body, text_field, unknown_fields};
use super::caller::{require, ApiCaller};
use super::problem::{field_error, parameter_error, ApiJson, ApiResult, Problem};
use super::shapes::{journey_of, payment_href, payment_json, refund_json, rfc3339};
use super::BASE;
use crate::audit::{self, AuditEvent};
use crate::integrations::api_tokens::Scope;
use crate::journeys::{case, timeline};
use crate::search::query::{Cursor, Range, Search, Sort, FIELD_MAX};
use crate::store::{self, journeys as journey_store, refunds as refund_store};
use crate::AppState;

/// Payments on a page: by default, and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

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
pub(super) async fn list_payments(
    state: &State<AppState>,
    caller: ApiCaller,
    uri: &Origin<'_>,
) -> ApiResult {
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
pub(super) async fn get_payment(state: &State<AppState>, caller: ApiCaller, id: &str) -> ApiResult {
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

// ---- case links -----------------------------------------------------------------------------

#[rocket::put("/payments/<id>/case", data = "<data>")]
pub(super) async fn link_case(
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
}
