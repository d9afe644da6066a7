//! Finding the payment a page is about: the services a person may read, the journey by its
//! payment id in one of them, and the addresses that lead back to the list.

use rocket::http::Status;

use super::errors::PageError;
use super::session::SignedIn;
use crate::identity::permissions::Permission;
use crate::identity::signin::CurrentSession;
use crate::search::query::Form;
use crate::services::{self, ServiceAccount};
use crate::store::{journeys as journey_store, search as search_store};
use crate::AppState;

/// The services in which this person may read payments, by name.
pub async fn readable_services(
    state: &AppState,
    session: &CurrentSession,
) -> Result<Vec<ServiceAccount>, PageError> {
    let all = services::all(&state.db).await?;
    Ok(
        match session.grants.services_with(Permission::PaymentsRead) {
            None => all,
            Some(ids) => all.into_iter().filter(|s| ids.contains(&s.id)).collect(),
        },
    )
}

/// The journey a person asked for: the payment id in one of their services (the service
/// slug picks one when the same id is in several).
pub async fn find_journey(
    state: &AppState,
    staff: &SignedIn,
    id: &str,
    service: Option<&str>,
) -> Result<(ServiceAccount, journey_store::JourneyRow), PageError> {
    // No platform id is long or holds control characters; such a path finds nothing.
    if id.len() > 100 || id.chars().any(char::is_control) {
        return Err(Status::NotFound.into());
    }
    let mine = readable_services(state, staff).await?;
    let scope: Vec<i64> = mine
        .iter()
        .filter(|s| service.is_none_or(|slug| s.slug == slug))
        .map(|s| s.id)
        .collect();
    let found = search_store::by_payment_id(&state.db, &scope, id).await?;
    let Some((journey_id, service_id)) = found.first().copied() else {
        return Err(Status::NotFound.into());
    };
    let service = mine
        .into_iter()
        .find(|s| s.id == service_id)
        .ok_or(Status::NotFound)?;
    let journey = journey_store::journey_by_id(&state.db, journey_id)
        .await?
        .ok_or(Status::NotFound)?;
    Ok((service, journey))
}

/// A journey page's address: the payment, its service, where "Back" goes (a payments-list
/// query) and any extras.
pub fn page_href(payment_id: &str, slug: &str, back: &str, extra: &[(&str, &str)]) -> String {
    let id: String = url::form_urlencoded::byte_serialize(payment_id.as_bytes()).collect();
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("service", slug);
    if !back.is_empty() {
        q.append_pair("back", back);
    }
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/payments/{id}?{}", q.finish())
}

/// The payments-list query a "Back" link may carry, read and written again so that only
/// the list's own parameters survive.
pub fn back_query(raw: Option<&str>) -> String {
    raw.map(|b| Form::from_query(b).to_query())
        .unwrap_or_default()
}
