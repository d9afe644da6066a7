//! The access review: a CSV of people × services × roles × last sign-in × status for the
//! services an administrator manages, for the periodic review of who can do what (PCI DSS
//! 7.2.4). Cells are quoted as RFC 4180 says, and any cell a spreadsheet could take for a
//! formula is neutralised. Each download is audited with its row count.

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::staff_admin::{self, Admin, Scope};
use super::IdentityError;
use crate::audit::{self, AuditEvent};
use crate::context::Context;
use crate::store;

pub const COLUMNS: [&str; 7] = [
    "name",
    "email",
    "service",
    "role",
    "status",
    "last_sign_in_utc",
    "account_created_utc",
];

pub use crate::csv::neutralise;

/// One CSV record (`crate::csv`: RFC 4180, every cell neutralised, CRLF at the end).
pub fn record(cells: &[String]) -> String {
    let mut out = Vec::new();
    let mut r = crate::csv::Record::start(&mut out);
    for cell in cells {
        r.text(cell);
    }
    r.end();
    String::from_utf8(out).unwrap_or_default()
}

fn when(us: Option<i64>) -> String {
    us.and_then(|us| store::from_micros(us).format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The review as CSV, and how many people-and-role rows it holds. Recorded in the audit log
/// before it is handed over: if that fails, there is no download.
pub async fn export(ctx: &Context, admin: &Admin) -> Result<(String, usize), IdentityError> {
    let people = staff_admin::people(&ctx.db, admin).await?;
    let mut out = record(&COLUMNS.map(String::from));
    let mut rows = 0;
    for p in &people {
        let fixed = |service: &str, role: &str| {
            vec![
                p.name.clone(),
                p.email.clone(),
                service.to_string(),
                role.to_string(),
                p.status.clone(),
                when(p.last_sign_in_at),
                when(Some(p.created_at)),
            ]
        };
        if p.access.is_empty() {
            // Only a platform admin sees people who hold nothing; they belong in a review too.
            out.push_str(&record(&fixed("", "")));
            rows += 1;
        }
        for a in &p.access {
            out.push_str(&record(&fixed(a.service_name(), a.role.name())));
            rows += 1;
        }
    }
    let services = match admin.scope() {
        Scope::Every => json!("all"),
        Scope::Services(_) => json!(staff_admin::managed_services(&ctx.db, admin)
            .await?
            .into_iter()
            .map(|s| s.slug)
            .collect::<Vec<_>>()),
    };
    audit::record(
        &ctx.db,
        ctx.clock.now(),
        AuditEvent::new(admin.actor(), "access_review_exported", "staff:all")
            .from_ip(admin.ip.clone())
            .details(json!({"services": services, "rows": rows, "people": people.len()})),
    )
    .await?;
    Ok((out, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=1+1", "+44", "-2", "@SUM(A1)", "\tx", "\rx", "\nx", "＝1", "＋1", "－1", "＠x",
        ] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(neutralise(""), "");
        assert_eq!(neutralise("a=b"), "a=b");
    }

    #[test]
    fn records_follow_rfc_4180() {
        let cells = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(record(&cells(&["a", "b"])), "a,b\r\n");
        assert_eq!(
            record(&cells(&["O'Brien, Pat", "say \"hi\""])),
            "\"O'Brien, Pat\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(record(&cells(&["line\nbreak"])), "\"line\nbreak\"\r\n");
        assert_eq!(
            record(&cells(&["=cmd|' /C calc'!A0"])),
            "'=cmd|' /C calc'!A0\r\n"
        );
        assert_eq!(record(&cells(&["\nx"])), "\"'\nx\"\r\n");
    }
}
