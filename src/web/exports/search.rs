//! "Download these results": the payments a search on the payments page found, as a CSV with
//! the same columns and rules as any export (`exports::Plan::of_journeys`). Offered when the
//! person may export from every service searched and the results are no more than the
//! search's count cap; the download is audited like any other export.

use rocket::http::uri::Origin;
use rocket::http::Status;
use rocket::response::Redirect;
use rocket::State;

use super::{downloader, ChunkReader, CsvBody, CsvDownload, ExportAnswer};
use crate::exports::{self, Plan};
use crate::search::query::{self, Form};
use crate::services::ServiceAccount;
use crate::web::auth::RequestOrigin;
use crate::web::errors::PageError;
use crate::web::journey_lookup::readable_services;
use crate::web::pages::Answer;
use crate::web::session::SignedIn;
use crate::AppState;

/// The services a payments search covers, in the order the person holds them: those the form
/// names, or all they may read.
pub fn searched<'a>(readable: &'a [ServiceAccount], form: &Form) -> Vec<&'a ServiceAccount> {
    readable
        .iter()
        .filter(|s| form.services.is_empty() || form.services.contains(&s.slug))
        .collect()
}

/// The address of the download of the results of `form`.
pub fn download_href(form: &Form) -> String {
    format!("/payments/download?{}", form.first_page().to_query())
}

#[rocket::get("/payments/download")]
pub(super) async fn download(
    state: &State<AppState>,
    staff: SignedIn,
    origin: RequestOrigin,
    uri: &Origin<'_>,
) -> Result<ExportAnswer, PageError> {
    let raw = uri.query().map(|q| q.as_str()).unwrap_or("");
    let form = Form::from_query(raw);
    let back = || {
        ExportAnswer::Page(Answer::Redirect(Redirect::to(format!(
            "/payments?{}",
            form.first_page().to_query()
        ))))
    };
    // A search with problems, or one too big to write whole: the payments page says why.
    if raw.len() > 8 * 1024 {
        return Ok(back());
    }
    let Ok(search) = query::parse(&form, state.clock.now(), state.config.time_zone) else {
        return Ok(back());
    };
    let readable = readable_services(state, &staff).await?;
    let chosen = searched(&readable, &form);
    let allowed = exports::exportable_services(&state.db, &staff.grants).await?;
    if chosen.is_empty() || !chosen.iter().all(|s| allowed.iter().any(|a| a.id == s.id)) {
        return Err(Status::Forbidden.into());
    }
    let ids: Vec<i64> = chosen.iter().map(|s| s.id).collect();
    let Some(found) = crate::search::all_matching(&state.db, &ids, &search).await? else {
        return Ok(back());
    };
    let services: Vec<ServiceAccount> = chosen.into_iter().cloned().collect();
    let zone = state.config.time_zone;
    let plan = Plan::of_journeys(&state.db, services, found, zone.name()).await?;
    let today = zone.date_of(state.clock.now());
    let file_name = format!("paydesk-payments-search-{today}.csv");
    let chunks = exports::stream(
        state.db.clone(),
        state.clock.clone(),
        plan,
        downloader(&staff, &origin),
    );
    Ok(ExportAnswer::Download(CsvDownload {
        file_name,
        body: CsvBody::Chunks(ChunkReader {
            chunks,
            current: Vec::new(),
            at: 0,
        }),
    }))
}
