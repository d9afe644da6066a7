//! Who may use which route: every mounted route is declared here, in one place, so that a
//! reviewer can read the whole access policy at a glance. The `SignedIn` guard enforces the
//! declaration of the route it guards, and a route missing from this table answers 404 to
//! everyone (deny by default). `tests/integration/access.rs` requests every mounted route as
//! every role, and signed out, and fails on any route not declared here.

use rocket::http::Method;
use rocket::Route;

use crate::identity::permissions::Permission;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in pages, health, static files).
    Public,
    /// Machines holding the metrics token (or, without one configured, loopback clients).
    MetricsReader,
    /// Only staff part-way through signing in (the code and enrolment steps).
    SigningIn,
    /// Any signed-in member of staff.
    SignedIn,
    /// The payment platform, proving itself by signing the body with the service's webhook
    /// secret; anything else gets 401.
    PlatformSigned,
    /// Signed-in staff holding the permission in at least one service; the handler checks
    /// the permission against the service of the object it touches.
    Permission(Permission),
    /// Signed-in staff holding at least one of these permissions in at least one service;
    /// the handler shows each person what their own permissions allow.
    AnyPermission(&'static [Permission]),
    /// CRM and case systems holding a live API token (`Authorization: Bearer`); the handler
    /// checks the token's scope and service. Anything else gets a 401 problem document.
    ApiToken,
}

/// (method, route URI as Rocket shows it, access).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/", Access::SignedIn),
    ("GET", "/healthz", Access::Public),
    ("GET", "/metrics", Access::MetricsReader),
    ("GET", "/static/<path..>", Access::Public),
    // Signing in.
    ("GET", "/login?<next>&<reason>", Access::Public),
    ("POST", "/login", Access::Public),
    ("GET", "/login/code", Access::SigningIn),
    ("POST", "/login/code", Access::SigningIn),
    ("GET", "/login/enrol", Access::SigningIn),
    ("POST", "/login/enrol", Access::SigningIn),
    ("POST", "/login/sso/<provider>", Access::Public),
    (
        "GET",
        "/login/sso/<provider>/callback?<state>&<code>&<error>",
        Access::Public,
    ),
    ("POST", "/logout", Access::SignedIn),
    ("POST", "/session/extend", Access::SignedIn),
    ("GET", "/setup/<token>", Access::Public),
    ("POST", "/setup/<token>", Access::Public),
    ("GET", "/forgot-password", Access::Public),
    ("POST", "/forgot-password", Access::Public),
    ("GET", "/forgot-password/sent", Access::Public),
    ("GET", "/reset-password/<token>", Access::Public),
    ("POST", "/reset-password/<token>", Access::Public),
    // Your account.
    ("GET", "/account?<notice>", Access::SignedIn),
    // The "Confirm it's you" page of an action waiting for the second factor.
    ("GET", "/confirm-identity?<waiting>", Access::SignedIn),
    ("GET", "/account/password", Access::SignedIn),
    ("POST", "/account/password", Access::SignedIn),
    ("GET", "/account/authenticator", Access::SignedIn),
    ("POST", "/account/authenticator", Access::SignedIn),
    ("POST", "/account/sessions/<id>/end", Access::SignedIn),
    ("POST", "/account/sessions/end-others", Access::SignedIn),
    // Finding payments.
    (
        "GET",
        "/payments",
        Access::Permission(Permission::PaymentsRead),
    ),
    (
        "GET",
        "/payments/<id>?<service>&<events>&<notice>&<back>",
        Access::Permission(Permission::PaymentsRead),
    ),
    (
        "POST",
        "/payments/<id>/refresh",
        Access::Permission(Permission::PaymentsRead),
    ),
    (
        "GET",
        "/payments/<id>/cancel?<service>",
        Access::Permission(Permission::PaymentsCancel),
    ),
    (
        "POST",
        "/payments/<id>/cancel",
        Access::Permission(Permission::PaymentsCancel),
    ),
    // Refunds: asking for one on a payment's page, and approving them.
    // The payments page's results as a CSV, for those who may export them.
    (
        "GET",
        "/payments/download",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/payments/<id>/refund",
        Access::Permission(Permission::RefundsRequest),
    ),
    (
        "POST",
        "/payments/<id>/refund",
        Access::Permission(Permission::RefundsRequest),
    ),
    (
        "GET",
        "/payments/<id>/refund/check?<service>&<form_key>&<back>",
        Access::Permission(Permission::RefundsRequest),
    ),
    (
        "POST",
        "/payments/<id>/refund/confirm",
        Access::Permission(Permission::RefundsRequest),
    ),
    (
        "GET",
        "/refunds?<notice>",
        Access::Permission(Permission::RefundsApprove),
    ),
    // Disputes, for finance (a payment's own dispute shows on its page to whoever may read it).
    (
        "GET",
        "/disputes",
        Access::Permission(Permission::DisputesRead),
    ),
    // Recurring agreements (issue 19).
    (
        "GET",
        "/agreements",
        Access::Permission(Permission::AgreementsRead),
    ),
    (
        "GET",
        "/agreements/<service>/<id>",
        Access::Permission(Permission::AgreementsRead),
    ),
    (
        "GET",
        "/agreements/<service>/<id>/cancel",
        Access::Permission(Permission::AgreementsCancel),
    ),
    (
        "POST",
        "/agreements/<service>/<id>/cancel",
        Access::Permission(Permission::AgreementsCancel),
    ),
    // The failed refunds behind the dashboard's figure: whoever may read the payments.
    (
        "GET",
        "/refunds/failed",
        Access::Permission(Permission::PaymentsRead),
    ),
    // Refund requests: a caseworker's own, and for finance every one of their services.
    (
        "GET",
        "/refunds/requests",
        Access::AnyPermission(&[Permission::RefundsRequest, Permission::RefundsApprove]),
    ),
    (
        "GET",
        "/refunds/<id>",
        Access::Permission(Permission::RefundsApprove),
    ),
    (
        "POST",
        "/refunds/<id>/approve",
        Access::Permission(Permission::RefundsApprove),
    ),
    (
        "POST",
        "/refunds/<id>/reject",
        Access::Permission(Permission::RefundsApprove),
    ),
    // Bulk refunds: upload, dry run, approval by a second person, progress (the handlers
    // check each batch's services).
    (
        "GET",
        "/refunds/bulk?<notice>",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk/confirm-identity",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "GET",
        "/refunds/bulk/<id>?<notice>",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk/<id>/confirm",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk/<id>/approve",
        Access::Permission(Permission::RefundsApprove),
    ),
    (
        "POST",
        "/refunds/bulk/<id>/pause",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk/<id>/resume",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "POST",
        "/refunds/bulk/<id>/cancel",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "GET",
        "/refunds/bulk/<id>/progress",
        Access::Permission(Permission::RefundsBulk),
    ),
    (
        "GET",
        "/refunds/bulk/<id>/results.csv",
        Access::Permission(Permission::RefundsBulk),
    ),
    // Staff administration: people of the services the person manages.
    (
        "GET",
        "/admin/staff?<notice>",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "GET",
        "/admin/staff/invite",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/invite",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "GET",
        "/admin/staff/<id>?<notice>",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/role",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/remove",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/disable",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/enable",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/sign-out",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/reset-authenticator",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/resend",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/<id>/revoke",
        Access::Permission(Permission::StaffManage),
    ),
    (
        "POST",
        "/admin/staff/access-review",
        Access::Permission(Permission::StaffManage),
    ),
    // Managing services: their settings and platform connection. Creating one needs the
    // platform admin role (checked by the handler: anyone else finds no such page).
    (
        "GET",
        "/admin/services?<notice>",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "GET",
        "/admin/services/new",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "POST",
        "/admin/services/new",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "GET",
        "/admin/services/<id>?<notice>&<test>",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "GET",
        "/admin/services/<id>/edit",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "POST",
        "/admin/services/<id>/edit",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "POST",
        "/admin/services/<id>/test",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "GET",
        "/personal-data/erasure?<notice>",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "POST",
        "/personal-data/erasure",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "POST",
        "/personal-data/erasure/<id>",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "GET",
        "/personal-data/access",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "POST",
        "/personal-data/access",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "GET",
        "/personal-data/access/<key>",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "GET",
        "/personal-data/holds?<notice>&<service>&<payment>",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "POST",
        "/personal-data/holds",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "POST",
        "/personal-data/holds/<id>/release",
        Access::Permission(Permission::PersonalDataManage),
    ),
    (
        "GET",
        "/admin/services/<id>/retention",
        Access::Permission(Permission::ServicesManage),
    ),
    (
        "POST",
        "/admin/services/<id>/retention",
        Access::Permission(Permission::ServicesManage),
    ),
    // The audit log.
    ("GET", "/audit", Access::Permission(Permission::AuditRead)),
    (
        "GET",
        "/audit/export.csv",
        Access::Permission(Permission::AuditRead),
    ),
    // Outbound events: each service's endpoints, their secrets and delivery logs.
    (
        "GET",
        "/integrations/events",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/integrations/events/new?<service>",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/new",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/integrations/events/<id>?<notice>&<before>",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/integrations/events/<id>/edit",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/edit",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/enable",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/disable",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/rotate",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/integrations/events/<id>/secret",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/deliveries/<delivery>/replay",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/integrations/events/<id>/replay-failed",
        Access::Permission(Permission::IntegrationsManage),
    ),
    // Webhooks from the payment platform.
    (
        "GET",
        "/exports?<notice>",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "POST",
        "/exports",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/exports/<id>?<started>",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/exports/<id>/status",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/exports/<id>/download",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/exports/pack",
        Access::Permission(Permission::ExportsCreate),
    ),
    (
        "GET",
        "/exports/pack.csv",
        Access::Permission(Permission::ExportsCreate),
    ),
    ("POST", "/hooks/govuk-pay/<service>", Access::PlatformSigned),
    // API tokens for CRM and case systems, and the API they use.
    (
        "GET",
        "/admin/tokens?<notice>",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/admin/tokens/new",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/admin/tokens",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/admin/tokens/<id>",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "GET",
        "/admin/tokens/<id>/made",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/admin/tokens/<id>/revoke",
        Access::Permission(Permission::IntegrationsManage),
    ),
    (
        "POST",
        "/admin/tokens/<id>/hand-over",
        Access::Permission(Permission::IntegrationsManage),
    ),
    ("GET", "/api/docs", Access::Public),
    ("GET", "/api/v1/openapi.json", Access::Public),
    ("GET", "/api/v1/payments", Access::ApiToken),
    ("GET", "/api/v1/payments/<id>", Access::ApiToken),
    ("PUT", "/api/v1/payments/<id>/case", Access::ApiToken),
    ("POST", "/api/v1/payments/<id>/refunds", Access::ApiToken),
    ("GET", "/api/v1/refunds/<id>", Access::ApiToken),
    ("GET", "/api/v1/disputes", Access::ApiToken),
    ("GET", "/api/v1/disputes/<id>", Access::ApiToken),
    ("GET", "/api/v1/agreements", Access::ApiToken),
    ("GET", "/api/v1/agreements/<id>", Access::ApiToken),
    ("POST", "/api/v1/agreements/<id>/cancel", Access::ApiToken),
    ("POST", "/api/v1/refund-batches", Access::ApiToken),
    ("GET", "/api/v1/refund-batches/<id>", Access::ApiToken),
    (
        "POST",
        "/api/v1/refund-batches/<id>/submit",
        Access::ApiToken,
    ),
];

/// The declaration for a route, if it has one.
pub fn declared(method: Method, uri: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, u, _)| *m == method.as_str() && *u == uri)
        .map(|(_, _, a)| *a)
}

/// The declaration for a mounted route.
pub fn for_route(route: &Route) -> Option<Access> {
    declared(route.method, &route.uri.to_string())
}
