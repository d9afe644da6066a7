//! Subject access (`personal_data:manage`): the finder form, step-up, then the payer's bundle
//! as one JSON file. The POST keeps the search as a draft and redirects to the download (GET),
//! which builds the bundle (`crate::personal_data::access`, audited) and forgets the draft.

use rocket::form::FromForm;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Redirect, Responder, Response};
use rocket::{Request, Route, State};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::RequestOrigin;
use super::errors::PageError;
use super::pages::{self, render, Answer};
use super::session::{CsrfForm, SignedIn};
use super::stepup;
use crate::identity::permissions::Permission;
use crate::personal_data::access::{self, Payer};
use crate::{drafts, AppState};

const PATH: &str = "/personal-data/access";
const DRAFT: &str = "subject_access";

pub fn routes() -> Vec<Route> {
    rocket::routes![form, find, download]
}

#[derive(Debug, Default, Clone, FromForm, Serialize, Deserialize)]
pub struct Fields {
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    last4: String,
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    #[serde(skip)]
    code: String,
    #[field(default = String::new())]
    #[serde(skip)]
    stepping_up: String,
}

/// The services where this person may manage personal data.
async fn services(state: &AppState, staff: &SignedIn) -> Result<Vec<i64>, PageError> {
    let all = crate::services::all(&state.db).await?;
    let ids: Vec<i64> = all
        .iter()
        .map(|s| s.id)
        .filter(|id| staff.grants.can(Permission::PersonalDataManage, *id))
        .collect();
    if ids.is_empty() {
        return Err(Status::NotFound.into());
    }
    Ok(ids)
}

fn page(state: &AppState, staff: &SignedIn, f: &Fields, errors: &[(&str, String)]) -> Answer {
    let mut c = pages::signed_in(state, staff, PATH);
    pages::insert_problems(&mut c, errors.iter().map(|(k, m)| (*k, m.clone())));
    let cut = |s: &str| s.chars().take(254).collect::<String>();
    c.insert(
        "form".into(),
        json!({"email": cut(&f.email), "last4": cut(&f.last4), "name": cut(&f.name)}),
    );
    c.insert("action".into(), json!(PATH));
    let tpl = render("personal_data/access", c);
    if errors.is_empty() {
        Answer::Page(tpl)
    } else {
        Answer::Invalid(tpl)
    }
}

#[rocket::get("/personal-data/access")]
async fn form(state: &State<AppState>, staff: SignedIn) -> Result<Answer, PageError> {
    services(state, &staff).await?;
    Ok(page(state, &staff, &<Fields as Default>::default(), &[]))
}

#[rocket::post("/personal-data/access", data = "<form>")]
async fn find(
    state: &State<AppState>,
    check: stepup::Check<'_>,
    staff: SignedIn,
    origin: RequestOrigin,
    form: CsrfForm<Fields>,
) -> Result<Answer, PageError> {
    services(state, &staff).await?;
    let f = form.0;
    if let Err(problems) = Payer::parse(&f.email, &f.last4, &f.name) {
        return Ok(page(state, &staff, &f, &problems));
    }
    let gate = stepup::Gate {
        code: &f.code,
        stepping_up: &f.stepping_up,
        what: "subject access",
        action: PATH.to_string(),
        hidden: vec![
            ("email", f.email.clone()),
            ("last4", f.last4.clone()),
            ("name", f.name.clone()),
            ("stepping_up", "1".into()),
        ],
        purpose: "download everything paydesk holds about this payer".into(),
        button: "Download",
        back: PATH.into(),
    };
    if let Some(answer) = check.require(state, &staff, &origin.0, gate).await? {
        return Ok(answer);
    }
    let key = hex::encode(rand::random::<[u8; 16]>());
    drafts::keep(
        &state.db,
        state.clock.now(),
        staff.staff.id,
        DRAFT,
        &key,
        &f,
    )
    .await?;
    Ok(Answer::Redirect(Redirect::to(format!("{PATH}/{key}"))))
}

/// The bundle as a download.
pub struct JsonFile(Vec<u8>);

impl<'r> Responder<'r, 'static> for JsonFile {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .header(ContentType::JSON)
            .header(Header::new(
                "Content-Disposition",
                "attachment; filename=\"subject-access.json\"",
            ))
            .header(Header::new("Cache-Control", "no-store"))
            .sized_body(self.0.len(), std::io::Cursor::new(self.0))
            .ok()
    }
}

#[rocket::get("/personal-data/access/<key>")]
async fn download(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    key: &str,
) -> Result<JsonFile, PageError> {
    let ids = services(state, &staff).await?;
    let now = state.clock.now();
    let Some(f) = drafts::read::<Fields>(&state.db, now, staff.staff.id, DRAFT, key).await? else {
        return Err(Status::NotFound.into());
    };
    let payer = Payer::parse(&f.email, &f.last4, &f.name).map_err(|_| Status::NotFound)?;
    let doc = access::bundle(
        &state.db,
        now,
        staff.actor(),
        origin.0.ip.clone(),
        &ids,
        &payer,
    )
    .await?;
    drafts::forget(&state.db, staff.staff.id, key).await?;
    let bytes = serde_json::to_vec_pretty(&doc).map_err(PageError::internal)?;
    Ok(JsonFile(bytes))
}
