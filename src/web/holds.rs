//! Legal holds (`personal_data:manage`): the open holds of the person's services, a form to
//! place one on a payment (service, payment id, reason), and release. Rules and auditing live
//! in `crate::personal_data::holds`.

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::json;

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::pages::{self, render, Answer};
use super::session::{CsrfForm, SignedIn};
use crate::identity::permissions::Permission;
use crate::personal_data::{holds, PersonalDataError};
use crate::services::ServiceAccount as Service;
use crate::AppState;

const PATH: &str = "/personal-data/holds";

pub fn routes() -> Vec<Route> {
    rocket::routes![list, place, release]
}

#[derive(Debug, Default, FromForm)]
pub struct PlaceFields {
    #[field(default = String::new())]
    service: String,
    #[field(default = String::new())]
    payment_id: String,
    #[field(default = String::new())]
    reason: String,
}

/// The services where this person may manage personal data (none: no such page).
async fn services(state: &AppState, staff: &SignedIn) -> Result<Vec<Service>, PageError> {
    let mine: Vec<Service> = crate::services::all(&state.db)
        .await?
        .into_iter()
        .filter(|s| staff.grants.can(Permission::PersonalDataManage, s.id))
        .collect();
    if mine.is_empty() {
        return Err(Status::NotFound.into());
    }
    Ok(mine)
}

async fn page(
    state: &AppState,
    staff: &SignedIn,
    form: &PlaceFields,
    errors: &[(&str, String)],
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let mine = services(state, staff).await?;
    let ids: Vec<i64> = mine.iter().map(|s| s.id).collect();
    let open = holds::open(&state.db, &ids).await?;
    let zone = state.config.time_zone;
    let name_of = |id: i64| {
        mine.iter()
            .find(|s| s.id == id)
            .map(|s| (s.name.clone(), s.slug.clone()))
            .unwrap_or_default()
    };
    let mut c = pages::signed_in(state, staff, PATH);
    c.insert(
        "holds".into(),
        json!(open
            .iter()
            .map(|h| {
                let (service, slug) = name_of(h.service_id);
                json!({
                    "id": h.id,
                    "service": service,
                    "payment_id": h.payment_id,
                    "payment_href": format!("/payments/{}?service={slug}", h.payment_id),
                    "reason": h.reason,
                    "placed": super::format::local_time(zone, h.placed_at),
                    "release_action": format!("{PATH}/{}/release", h.id),
                })
            })
            .collect::<Vec<_>>()),
    );
    pages::insert_problems(&mut c, errors.iter().map(|(k, m)| (*k, m.clone())));
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    c.insert(
        "form".into(),
        json!({"service": cut(&form.service, 100), "payment_id": cut(&form.payment_id, 100),
               "reason": cut(&form.reason, 1000)}),
    );
    c.insert(
        "service_options".into(),
        json!(mine
            .iter()
            .map(|s| json!({"value": s.slug, "text": s.name}))
            .collect::<Vec<_>>()),
    );
    let notice = match notice {
        Some("placed") => {
            Some("Hold placed: the payment's personal data is kept until the hold is released.")
        }
        Some("released") => Some("Hold released: retention applies to the payment again."),
        _ => None,
    };
    c.insert("notice".into(), json!(notice));
    c.insert("action".into(), json!(PATH));
    let tpl = render("personal_data/holds", c);
    Ok(if errors.is_empty() {
        Answer::Page(tpl)
    } else {
        Answer::Invalid(tpl)
    })
}

#[rocket::get("/personal-data/holds?<notice>&<service>&<payment>")]
async fn list(
    state: &State<AppState>,
    staff: SignedIn,
    notice: Option<&str>,
    service: Option<&str>,
    payment: Option<&str>,
) -> Result<Answer, PageError> {
    let form = PlaceFields {
        service: service.unwrap_or_default().to_string(),
        payment_id: payment.unwrap_or_default().to_string(),
        reason: String::new(),
    };
    page(state, &staff, &form, &[], notice).await
}

#[rocket::post("/personal-data/holds", data = "<form>")]
async fn place(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<PlaceFields>,
) -> Result<Answer, PageError> {
    let f = form.0;
    let mine = services(state, &staff).await?;
    let mut problems = Vec::new();
    let service = mine.iter().find(|s| s.slug == f.service.trim());
    if service.is_none() {
        problems.push(("service", "Select the payment's service".to_string()));
    }
    let payment_id = f.payment_id.trim();
    if payment_id.is_empty() || payment_id.chars().count() > 100 {
        problems.push((
            "payment_id",
            "Enter the payment ID, like hu20sqlact5260q2nanm0q8u93".to_string(),
        ));
    }
    if let Err(message) = holds::parse_reason(&f.reason) {
        problems.push(("reason", message));
    }
    let Some(service) = service.filter(|_| problems.is_empty()) else {
        return page(state, &staff, &f, &problems, None).await;
    };
    match holds::place(
        &state.db,
        state.clock.now(),
        staff.actor(),
        staff.staff.id,
        origin.0.ip.clone(),
        holds::HoldOn {
            service_id: service.id,
            payment_id,
            reason: &f.reason,
        },
    )
    .await
    {
        Ok(_) => Ok(Answer::Redirect(Redirect::to(format!(
            "{PATH}?notice=placed"
        )))),
        Err(PersonalDataError::NotFound) => {
            let message = format!("{} has no payment with this ID", service.name);
            page(state, &staff, &f, &[("payment_id", message)], None).await
        }
        Err(PersonalDataError::Refused(message)) => {
            page(state, &staff, &f, &[("reason", message)], None).await
        }
        Err(e) => Err(e.into()),
    }
}

#[rocket::post("/personal-data/holds/<id>/release", data = "<_form>")]
async fn release(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    _form: CsrfForm<PlaceFields>,
) -> Result<Answer, PageError> {
    let Some(hold) = holds::get(&state.db, id).await? else {
        return Err(Status::NotFound.into());
    };
    if !staff
        .grants
        .can(Permission::PersonalDataManage, hold.service_id)
    {
        return Err(Status::NotFound.into());
    }
    match holds::release(
        &state.db,
        state.clock.now(),
        staff.actor(),
        staff.staff.id,
        origin.0.ip.clone(),
        hold.service_id,
        id,
    )
    .await
    {
        // Released already (by someone else, or a second click): the list says how things are.
        Ok(()) | Err(PersonalDataError::NotFound) => Ok(Answer::Redirect(Redirect::to(format!(
            "{PATH}?notice=released"
        )))),
        Err(e) => Err(e.into()),
    }
}

/// What a payment's page says about what keeps its personal data: why it is held (an admin's
/// hold, an open dispute or refund), the admins' holds with their reasons, and, for people who
/// manage personal data in its service, where to place or release one.
pub async fn payment_panel(
    state: &AppState,
    staff: &SignedIn,
    svc: &Service,
    journey_id: i64,
    payment_id: &str,
    zone: crate::timezone::Zone,
) -> Result<serde_json::Value, PageError> {
    let (why, open) = holds::of_journey(&state.db, journey_id).await?;
    let manage = staff.grants.can(Permission::PersonalDataManage, svc.id);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("service", &svc.slug)
        .append_pair("payment", payment_id)
        .finish();
    Ok(json!({
        "why": why,
        "holds": open.iter().map(|h| json!({
            "reason": h.reason,
            "placed": super::format::local_time(zone, h.placed_at),
        })).collect::<Vec<_>>(),
        "place_href": manage.then(|| format!("{PATH}?{query}")),
        "list_href": manage.then_some(PATH),
    }))
}
