//! The route × role matrix: every mounted route is requested signed out and as every role,
//! and must answer as its declaration in `web::access::ROUTES` says. A route without a
//! declaration fails the test, so nobody can add a route without deciding who may use it.

use paydesk::identity::permissions::Role;
use paydesk::web::access::{self, Access};
use rocket::http::{ContentType, Cookie, Method, Status};
use rocket::local::asynchronous::Client;

use crate::common::*;

/// A concrete path for a route URI: sample values for its parameters, no query.
fn sample_path(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or(uri);
    path.split('/')
        .map(|segment| match segment {
            "<path..>" => "paydesk.css".to_string(),
            "<id>" => "999999".to_string(),
            "<provider>" => "unknown-provider".to_string(),
            "<token>" => "A".repeat(43),
            s if s.starts_with('<') => "sample".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    SignedOut,
    NoRole,
    Role(Role),
}

#[tokio::test]
async fn every_route_answers_every_role_as_declared() {
    let app = TestApp::new().await;
    app.service("parking").await;
    let mut people = vec![(Who::NoRole, None)];
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let service = if role.is_global() {
            None
        } else {
            Some("parking")
        };
        let p = app
            .person(&format!("p{i}@example.gov.uk"), role, service)
            .await;
        people.push((Who::Role(role), Some(p)));
    }
    let nobody = {
        let account = paydesk::identity::accounts::add_staff(
            &app.state,
            paydesk::audit::Actor::System,
            "none@example.gov.uk",
            "No Role",
            Role::Viewer,
            Some("parking"),
        )
        .await
        .unwrap()
        .unwrap();
        // Take the role away again: a signed-in person who holds nothing.
        let mut tx = app.state.db.begin().await.unwrap();
        paydesk::store::staff::set_status(&mut tx, account.staff_id, "active", 0)
            .await
            .unwrap();
        paydesk::store::staff::delete_grants_of(&mut tx, account.staff_id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Person {
            id: account.staff_id,
            email: "none@example.gov.uk".into(),
            password: String::new(),
            secret: vec![],
        }
    };
    people[0].1 = Some(nobody);

    // An untracked client: each request carries exactly the cookies given to it.
    let client = Client::untracked(paydesk::app(app.state.clone()))
        .await
        .unwrap();
    let config = &app.state.config;
    let session_name = paydesk::web::session::session_cookie_name(config);
    let pre_value = "B".repeat(43);
    let pre_token = paydesk::web::csrf::token_for(&config.csrf_key(), &format!("pre:{pre_value}"));

    let mut undeclared = Vec::new();
    let mut wrong = Vec::new();
    let routes: Vec<(Method, String)> = client
        .rocket()
        .routes()
        .map(|r| (r.method, r.uri.to_string()))
        .collect();
    assert!(routes.len() >= 20, "routes are mounted");
    for (method, uri) in routes {
        let Some(declared) = access::declared(method, &uri) else {
            undeclared.push(format!("{method} {uri}"));
            continue;
        };
        let path = sample_path(&uri);
        let mut whos = vec![(Who::SignedOut, None)];
        whos.extend(people.iter().map(|(w, p)| (*w, p.clone())));
        for (who, person) in whos {
            let (cookie, token) = match &person {
                None => (
                    Cookie::new("paydesk_csrf", pre_value.clone()),
                    pre_token.clone(),
                ),
                Some(p) => {
                    let c = app.session_for(p).await;
                    let t = paydesk::web::csrf::token_for(&config.csrf_key(), c.value());
                    (Cookie::new(session_name, c.value().to_string()), t)
                }
            };
            let request = match method {
                Method::Get => client.get(path.clone()),
                Method::Post => client
                    .post(path.clone())
                    .header(ContentType::Form)
                    .body(form_body(&[("csrf_token", &token)])),
                Method::Put => client
                    .put(path.clone())
                    .header(ContentType::Form)
                    .body(form_body(&[("csrf_token", &token)])),
                other => panic!("unexpected method {other}"),
            };
            let response = request.cookie(cookie).dispatch().await;
            let status = response.status();
            // The answer to "not signed in": the sign-in page, keeping the way back.
            let loc = location(&response);
            let to_login = status == Status::SeeOther
                && (loc == "/login"
                    || loc.starts_with("/login?next=")
                    || loc.contains("reason=timeout"));
            let ok = match (declared, who) {
                (_, _) if status.code >= 500 => false,
                (Access::Public, _) => {
                    status != Status::Unauthorized && status != Status::Forbidden
                }
                (Access::SigningIn, _) => to_login,
                // No token and no peer address here: refused to everyone alike.
                (Access::MetricsReader, _) => status == Status::Forbidden,
                // A form post is not a signed platform message, whoever sends it.
                (Access::PlatformSigned, _) => status == Status::Unauthorized,
                // A session is not an API token, whoever holds it.
                (Access::ApiToken, _) => status == Status::Unauthorized,
                (_, Who::SignedOut) => to_login,
                (Access::SignedIn, _) => !to_login && status != Status::Forbidden,
                (Access::Permission(_) | Access::AnyPermission(_), Who::NoRole) => {
                    status == Status::Forbidden
                }
                (Access::AnyPermission(any), Who::Role(role)) => {
                    if any.iter().any(|p| role.allows(*p)) {
                        !to_login && status != Status::Forbidden
                    } else {
                        status == Status::Forbidden
                    }
                }
                (Access::Permission(p), Who::Role(role)) => {
                    if role.allows(p) {
                        !to_login && status != Status::Forbidden
                    } else {
                        status == Status::Forbidden
                    }
                }
            };
            if !ok {
                wrong.push(format!(
                    "{method} {path} as {who:?}: {status} (declared {declared:?})"
                ));
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "routes with no access declaration: {undeclared:#?}"
    );
    assert!(
        wrong.is_empty(),
        "routes answering against their declaration: {wrong:#?}"
    );
}

/// A route that uses the sign-in guard but is missing from the table answers 404 to everyone,
/// even a platform admin, and the matrix test above would name it.
#[tokio::test]
async fn an_undeclared_route_is_refused_to_everyone() {
    #[rocket::get("/undeclared")]
    fn undeclared(_staff: paydesk::web::session::SignedIn) -> &'static str {
        "should never be seen"
    }
    let app = TestApp::build(|_| {}, |r| r.mount("/", rocket::routes![undeclared])).await;
    let admin = app
        .person("admin@example.gov.uk", Role::PlatformAdmin, None)
        .await;
    let cookie = app.session_for(&admin).await;
    let r = app
        .client
        .get("/undeclared")
        .cookie(cookie)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);
    assert!(access::declared(Method::Get, "/undeclared").is_none());
}
