//! The query plans the mix relied on.

use super::{figures::*, mix::*};
use crate::search::query::{Form, COUNT_CAP, PAGE_SIZE};
use crate::store::search as search_store;
use crate::AppState;

// ---- plans --------------------------------------------------------------------------------

pub(crate) async fn plans(state: &AppState, cases: &[Case]) -> anyhow::Result<Vec<PlanReport>> {
    let db = &state.db;
    let mut out = Vec::new();
    for case in cases {
        match &case.kind {
            CaseKind::List { query } => {
                let form = Form::from_query(query);
                let ids = page_services(state, &form).await?;
                let search = parse(state, &form)?;
                let plan =
                    search_store::plan(db, &ids, &search, PAGE_SIZE as i64 + 1, COUNT_CAP, &|_| {
                        false
                    })
                    .await?;
                let mut queries = Vec::new();
                for (probe, found) in &plan.probes {
                    queries.push((
                        format!("probe (found {found})"),
                        probe.sql.clone(),
                        search_store::explain(db, probe).await?,
                    ));
                }
                queries.push((
                    "list".into(),
                    plan.list.sql.clone(),
                    search_store::explain(db, &plan.list).await?,
                ));
                queries.push((
                    "count".into(),
                    plan.count.sql.clone(),
                    search_store::explain(db, &plan.count).await?,
                ));
                out.push(PlanReport {
                    name: case.name.clone(),
                    shape: format!("{:?}", plan.shape),
                    queries,
                });
            }
            CaseKind::Disputes { status, .. } => {
                let q = crate::disputes::ListQuery {
                    services: page_services(state, &Form::default()).await?,
                    status: status.clone(),
                    page: 1,
                    ..Default::default()
                };
                let (list, count) = crate::disputes::list_statements(db.backend(), &q);
                out.push(list_and_count(db, &case.name, "disputes list", list, count).await?);
            }
            CaseKind::Agreements {
                reference, status, ..
            } => {
                let q = crate::agreements::ListQuery {
                    services: page_services(state, &Form::default()).await?,
                    reference: reference.clone(),
                    status: status.clone(),
                    page: 1,
                };
                let (list, count) = crate::agreements::list_statements(db.backend(), &q);
                out.push(list_and_count(db, &case.name, "agreements list", list, count).await?);
            }
            CaseKind::Journey {
                payment_id,
                service_id,
                ..
            } => {
                // The statement of `store::search::by_payment_id`; then the journey by its
                // primary key.
                let built =
                    search_store::by_payment_id_query(db.backend(), &[*service_id], payment_id);
                out.push(PlanReport {
                    name: case.name.clone(),
                    shape: "by payment id".into(),
                    queries: vec![(
                        "journey by payment id".into(),
                        built.sql.clone(),
                        search_store::explain(db, &built).await?,
                    )],
                });
            }
        }
    }
    Ok(out)
}

/// A list page's two statements (the page, the count) and their plans.
async fn list_and_count(
    db: &crate::store::Db,
    name: &str,
    shape: &str,
    list: crate::store::sql::Built,
    count: crate::store::sql::Built,
) -> anyhow::Result<PlanReport> {
    Ok(PlanReport {
        name: name.to_string(),
        shape: shape.to_string(),
        queries: vec![
            (
                "list".into(),
                list.sql.clone(),
                search_store::explain(db, &list).await?,
            ),
            (
                "count".into(),
                count.sql.clone(),
                search_store::explain(db, &count).await?,
            ),
        ],
    })
}
