//! Liveness and monitoring: `/healthz` for load balancers, `/metrics` for Prometheus.

use std::time::Duration;

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Request, State};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::Mode;
use crate::metrics::Gauge;
use crate::store::jobs as job_store;
use crate::AppState;

/// 200 with the database's status, or 503 when the database does not answer within 2 s.
#[rocket::get("/healthz")]
pub async fn healthz(state: &State<AppState>) -> (Status, Json<Value>) {
    let database_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await,
        Ok(Ok(()))
    );
    if database_ok {
        (
            Status::Ok,
            Json(json!({"status": "ok", "database": "ok", "backend": state.db.backend().name()})),
        )
    } else {
        (
            Status::ServiceUnavailable,
            Json(
                json!({"status": "unavailable", "database": "unreachable", "backend": state.db.backend().name()}),
            ),
        )
    }
}

/// Who may read `/metrics`: holders of the configured bearer token. Without a token, in the
/// release profile nobody (404: behind a reverse proxy every client is a loopback client);
/// elsewhere clients on the loopback interface whose request no proxy forwarded.
pub struct MetricsReader;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsReader {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let Some(state) = req.rocket().state::<AppState>() else {
            return Outcome::Error((Status::InternalServerError, ()));
        };
        let allowed = match &state.config.metrics_token {
            Some(token) => req
                .headers()
                .get_one("Authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes()))),
            None if state.config.mode == Mode::Release => {
                return Outcome::Error((Status::NotFound, ()));
            }
            None => {
                let headers = req.headers();
                let forwarded =
                    super::request::uncovered_forwarding_header(|h| headers.contains(h), None)
                        .is_some();
                !forwarded && req.remote().is_some_and(|addr| addr.ip().is_loopback())
            }
        };
        if allowed {
            Outcome::Success(MetricsReader)
        } else {
            Outcome::Error((Status::Forbidden, ()))
        }
    }
}

#[rocket::get("/metrics")]
pub async fn metrics(state: &State<AppState>, _reader: MetricsReader) -> (ContentType, String) {
    let mut gauges = Vec::new();
    let (open, idle, max) = state.db.pool_usage();
    for (kind, value) in [("open", open), ("idle", idle), ("max", max)] {
        gauges.push(Gauge {
            name: "paydesk_db_pool_connections",
            help: "Database pool connections.",
            labels: vec![("kind", kind.into())],
            value: value.into(),
        });
    }
    let up = match job_store::depth_by_state(&state.db).await {
        Ok(depth) => {
            for state_name in ["queued", "running", "succeeded", "dead"] {
                let n = depth
                    .iter()
                    .find(|(s, _)| s == state_name)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                gauges.push(Gauge {
                    name: "paydesk_jobs",
                    help: "Jobs in the queue by state.",
                    labels: vec![("state", state_name.into())],
                    value: n as f64,
                });
            }
            1.0
        }
        Err(_) => 0.0,
    };
    gauges.push(Gauge {
        name: "paydesk_database_up",
        help: "Whether the database answered this scrape.",
        labels: vec![],
        value: up,
    });
    (
        ContentType::new("text", "plain").with_params(("version", "0.0.4")),
        state.metrics.render(&gauges),
    )
}
