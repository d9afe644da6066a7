//! What every page's template gets, and the small answer types handlers share.

use rocket::http::Status;
use rocket::response::Redirect;
use rocket_dyn_templates::Template;
use serde_json::{json, Map, Value};

use super::csrf;
use crate::identity::sessions::{IDLE_TIMEOUT, WARNING_BEFORE};
use crate::identity::signin::CurrentSession;
use crate::AppState;

/// An answer from a page handler.
#[derive(rocket::Responder)]
pub enum Answer {
    Page(Template),
    /// A form shown again with its problems.
    #[response(status = 422)]
    Invalid(Template),
    Redirect(Redirect),
    /// A page with a status other than 200 (an expired link, say).
    Status((Status, Template)),
    Empty(Status),
}

/// A field's problem, as the error summary and the field show it.
pub fn problem(field: &str, message: impl Into<String>) -> Value {
    json!({"field": field, "message": message.into()})
}

/// A form's problems into a page's context: `errors` for the error summary and `fe` (field →
/// message) for the fields, the first problem of each field only.
pub fn insert_problems<'a>(
    c: &mut Map<String, Value>,
    problems: impl IntoIterator<Item = (&'a str, String)>,
) {
    let mut fe = Map::new();
    let mut summary = Vec::new();
    for (field, message) in problems {
        if !fe.contains_key(field) {
            fe.insert(field.to_string(), json!(message));
            summary.push(problem(field, message));
        }
    }
    c.insert("errors".into(), Value::Array(summary));
    c.insert("fe".into(), Value::Object(fe));
}

/// The context for a page seen by someone not signed in.
pub fn signed_out(state: &AppState, csrf_token: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app".into(), super::app_context(state));
    m.insert("csrf_token".into(), json!(csrf_token));
    m
}

/// The CSRF token for a signed-in person's forms.
pub fn csrf_token(state: &AppState, session: &CurrentSession) -> String {
    csrf::token_for(&state.config.csrf_key(), &session.session_id)
}

/// The context for a page seen by a signed-in member of staff: who they are and their roles,
/// the menu, the CSRF token and the numbers the idle-timeout warning needs.
pub fn signed_in(state: &AppState, session: &CurrentSession, current: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("app".into(), super::app_context(state));
    m.insert("csrf_token".into(), json!(csrf_token(state, session)));
    m.insert(
        "user".into(),
        json!({"name": session.staff.name, "email": session.staff.email}),
    );
    let roles: Vec<Value> = session
        .roles
        .iter()
        .map(|(service, role)| {
            json!({"service": service.as_deref().unwrap_or("Every service"), "role": role.label()})
        })
        .collect();
    m.insert("roles".into(), Value::Array(roles));
    let remaining = (session.expires_at - state.clock.now())
        .whole_seconds()
        .max(0);
    m.insert(
        "session_timeout".into(),
        json!({
            "seconds_left": remaining,
            "warn_seconds": WARNING_BEFORE.whole_seconds(),
            "idle_minutes": IDLE_TIMEOUT.whole_minutes(),
        }),
    );
    let mut items = vec![("/", "Dashboard")];
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::PaymentsRead)
    {
        items.push(("/payments", "Payments"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::RefundsApprove)
    {
        items.push(("/refunds", "Refunds"));
    } else if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::RefundsRequest)
    {
        // A caseworker's refunds are the ones they asked for.
        items.push(("/refunds/requests", "Refunds"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::DisputesRead)
    {
        items.push(("/disputes", "Disputes"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::AgreementsRead)
    {
        items.push(("/agreements", "Agreements"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::ExportsCreate)
    {
        items.push(("/exports", "Exports"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::StaffManage)
    {
        items.push(("/admin/staff", "Staff"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::ServicesManage)
    {
        items.push(("/admin/services", "Services"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::AuditRead)
    {
        items.push(("/audit", "Audit"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::IntegrationsManage)
    {
        items.push(("/integrations/events", "Events"));
    }
    if session
        .grants
        .can_somewhere(crate::identity::permissions::Permission::IntegrationsManage)
    {
        items.push(("/admin/tokens", "API tokens"));
    }
    items.push(("/account", "Your account"));
    let nav: Vec<Value> = items
        .iter()
        .map(|(href, label)| json!({"href": href, "label": label, "current": *href == current}))
        .collect();
    m.insert("nav".into(), Value::Array(nav));
    m
}

pub fn render(name: &'static str, context: Map<String, Value>) -> Template {
    Template::render(name, Value::Object(context))
}

/// Where to go after signing in: a path on this site only, never another host.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?.trim();
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2000
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && !next.starts_with("/login")
        && !next.starts_with("/logout");
    ok.then(|| next.to_string())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(
            safe_next(Some("/account?x=1")).as_deref(),
            Some("/account?x=1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "account",
            "/login?next=/",
            "/a\nb",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }
}
