//! Erasure on request (`personal_data:manage`): ask for a payer's data to be erased (payer,
//! reason, case reference), and the list of requests waiting for a second person, who approves
//! or rejects with step-up. Rules in `crate::personal_data::erasure`.

use rocket::form::FromForm;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::{Route, State};
use serde_json::json;

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::pages::{self, render, Answer};
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::identity::permissions::Permission;
use crate::personal_data::access::Payer;
use crate::personal_data::erasure::{self, Manager};
use crate::personal_data::PersonalDataError;
use crate::AppState;

const PATH: &str = "/personal-data/erasure";

pub fn routes() -> Vec<Route> {
    rocket::routes![list, ask, decide]
}

#[derive(Debug, Default, FromForm)]
pub struct AskFields {
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    last4: String,
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    reason: String,
    #[field(default = String::new())]
    case_reference: String,
}

#[derive(Debug, Default, FromForm)]
pub struct DecideFields {
    #[field(default = String::new())]
    decision: String,
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    stepping_up: String,
}

async fn manager(
    state: &AppState,
    staff: &SignedIn,
    origin: &RequestOrigin,
) -> Result<Manager, PageError> {
    let ids: Vec<i64> = crate::services::all(&state.db)
        .await?
        .iter()
        .map(|s| s.id)
        .filter(|id| staff.grants.can(Permission::PersonalDataManage, *id))
        .collect();
    if ids.is_empty() {
        return Err(Status::NotFound.into());
    }
    Ok(Manager {
        staff_id: staff.staff.id,
        actor: staff.actor(),
        ip: origin.0.ip.clone(),
        service_ids: ids,
    })
}

async fn page(
    state: &AppState,
    staff: &SignedIn,
    who: &Manager,
    form: &AskFields,
    errors: &[(&str, String)],
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let waiting = erasure::waiting(&state.db, who).await?;
    let zone = state.config.time_zone;
    let mut c = pages::signed_in(state, staff, PATH);
    c.insert(
        "waiting".into(),
        json!(waiting
            .iter()
            .map(|r| json!({
                "id": r.id,
                "when": super::format::local_time(zone, r.requested_at),
                "reason": r.reason,
                "case_reference": r.case_reference,
                "mine": r.requested_by == who.staff_id,
                "action": format!("{PATH}/{}", r.id),
            }))
            .collect::<Vec<_>>()),
    );
    pages::insert_problems(&mut c, errors.iter().map(|(k, m)| (*k, m.clone())));
    let cut = |s: &str| s.chars().take(1000).collect::<String>();
    c.insert(
        "form".into(),
        json!({"email": cut(&form.email), "last4": cut(&form.last4), "name": cut(&form.name),
               "reason": cut(&form.reason), "case_reference": cut(&form.case_reference)}),
    );
    let notice = match notice {
        Some("asked") => Some("Erasure asked for. A second person with personal data rights must approve it."),
        Some("approved") => Some("Erasure approved: the payer's personal data has been removed from their payments that no hold keeps."),
        Some("rejected") => Some("Erasure rejected."),
        _ => None,
    };
    c.insert("notice".into(), json!(notice));
    c.insert("action".into(), json!(PATH));
    let tpl = render("personal_data/erasure", c);
    Ok(if errors.is_empty() {
        Answer::Page(tpl)
    } else {
        Answer::Invalid(tpl)
    })
}

#[rocket::get("/personal-data/erasure?<notice>")]
async fn list(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    notice: Option<&str>,
) -> Result<Answer, PageError> {
    let who = manager(state, &staff, &origin).await?;
    page(
        state,
        &staff,
        &who,
        &<AskFields as Default>::default(),
        &[],
        notice,
    )
    .await
}

#[rocket::post("/personal-data/erasure", data = "<form>")]
async fn ask(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<AskFields>,
) -> Result<Answer, PageError> {
    let who = manager(state, &staff, &origin).await?;
    let f = form.0;
    let mut problems = Vec::new();
    let payer = Payer::parse(&f.email, &f.last4, &f.name).map_err(|p| problems.extend(p));
    if let Err(p) = erasure::parse_request(&f.reason, &f.case_reference) {
        problems.extend(p);
    }
    let Ok(payer) = payer else {
        return page(state, &staff, &who, &f, &problems, None).await;
    };
    if !problems.is_empty() {
        return page(state, &staff, &who, &f, &problems, None).await;
    }
    erasure::request(
        &state.db,
        state.clock.now(),
        &who,
        &payer,
        &f.reason,
        &f.case_reference,
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(format!(
        "{PATH}?notice=asked"
    ))))
}

#[rocket::post("/personal-data/erasure/<id>", data = "<form>")]
async fn decide(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    id: i64,
    form: CsrfForm<DecideFields>,
) -> Result<Answer, PageError> {
    let who = manager(state, &staff, &origin).await?;
    let f = form.0;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(Status::BadRequest.into()),
    };
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "erasure decision",
        action: format!("{PATH}/{id}"),
        hidden: vec![
            ("decision", f.decision.clone()),
            ("stepping_up", "1".into()),
        ],
        purpose: format!(
            "{} erasure request {id}",
            if approve { "approve" } else { "reject" }
        ),
        button: if approve {
            "Approve erasure"
        } else {
            "Reject erasure"
        },
        back: PATH.into(),
    };
    if let Some(answer) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(answer);
    }
    match erasure::decide(&state.db, state.clock.now(), &who, id, approve).await {
        Ok(_) => Ok(Answer::Redirect(Redirect::to(format!(
            "{PATH}?notice={}",
            if approve { "approved" } else { "rejected" }
        )))),
        Err(PersonalDataError::Refused(message)) => {
            page(
                state,
                &staff,
                &who,
                &<AskFields as Default>::default(),
                &[("decision", message)],
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
