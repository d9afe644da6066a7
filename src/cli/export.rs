//! `paydesk export`: a reconciliation CSV on standard output.

use std::process::ExitCode;

use paydesk::audit::{self, Actor};
use paydesk::AppState;

pub(super) async fn export_command(state: &AppState, fields: paydesk::exports::Fields) -> ExitCode {
    use paydesk::exports;
    let filter = match exports::filter::parse(&fields) {
        Ok(f) => f,
        Err(problems) => {
            for p in problems {
                eprintln!("paydesk: --{}: {}", p.field.replace('_', "-"), p.message);
            }
            return ExitCode::from(2);
        }
    };
    let result: Result<i64, exports::ExportError> = async {
        let all = paydesk::services::all(&state.db).await?;
        let chosen = match exports::resolve(&filter, &all) {
            Ok(c) => c,
            Err(_) => {
                return Err(exports::ExportError::Invalid(format!(
                    "no such service; known services: {}",
                    all.iter()
                        .map(|s| s.slug.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let plan = exports::Plan::prepare(&state.db, filter.clone(), chosen, None).await?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let rows = exports::write_all(&plan, &mut out).await?;
        let user = std::env::var("USER").unwrap_or_default();
        audit::record(
            &state.db,
            state.clock.now(),
            audit::AuditEvent::new(Actor::System, "export_downloaded", "export:command-line")
                .details(serde_json::json!({
                    "filter": filter,
                    "rows": rows,
                    "via": "command line",
                    "os_user": user,
                })),
        )
        .await?;
        Ok(rows)
    }
    .await;
    match result {
        Ok(rows) => {
            eprintln!("paydesk: exported {rows} rows");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paydesk: export failed: {e}");
            ExitCode::FAILURE
        }
    }
}
