//! The sandbox platform against the platform's contract (`tests/specs/govuk-pay-publicapi.json`,
//! GOV.UK Pay API 1.0.3): every endpoint paydesk uses, and their error answers, are called on
//! a real `paydesk sandbox` process and each answer is checked against the spec's schema for
//! that status code. The request bodies paydesk sends (built from `platform::types`) are
//! checked against the spec's request schemas too.
//!
//! The validator covers the part of OpenAPI the spec uses ($ref, type, enum, required,
//! properties, items, nullable, and number/length bounds) and is strict: a property the schema
//! does not declare is an error (but for a payment's `disputed`, `agreement_id` and
//! `authorisation_mode: agreement`, which DOMAIN.md §6 gives and the 1.0.3 spec leaves out). Two places hold free keys by design: `metadata`
//! (ExternalMetadata: keys with string, number or boolean values) and schemas that only
//! declare `additionalProperties` (springdoc's rendering of a Java `Map<String, Object>`,
//! whose values may be anything, e.g. `PostLink.params`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::sandbox::SandboxProcess;
use paydesk::platform::signature;
use paydesk::platform::types::{CreatePayment, RefundRequest};

const SPEC: &str = include_str!("../specs/govuk-pay-publicapi.json");

struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Spec {
        Spec {
            doc: serde_json::from_str(SPEC).expect("the spec is JSON"),
        }
    }

    fn named(&self, name: &str) -> &Value {
        let schema = &self.doc["components"]["schemas"][name];
        assert!(schema.is_object(), "the spec has no schema {name}");
        schema
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "the spec has no {method} {path}");
        op
    }

    /// The JSON schema of a response, `None` when the spec gives that status no body.
    fn response_schema(&self, path: &str, method: &str, status: u16) -> Option<&Value> {
        let response = &self.operation(path, method)["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "the spec has no {status} answer for {method} {path}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        schema.is_object().then_some(schema)
    }

    fn request_schema(&self, path: &str, method: &str) -> &Value {
        &self.operation(path, method)["requestBody"]["content"]["application/json"]["schema"]
    }

    /// Every way `value` breaks `schema`, as `path: problem` lines.
    fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, value, "$", &mut out);
        out
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
            if name == "ExternalMetadata" {
                return check_metadata(value, at, out);
            }
            return self.check(self.named(name), value, at, out);
        }
        if value.is_null() {
            if schema.get("nullable") != Some(&Value::Bool(true)) {
                out.push(format!("{at}: null is not allowed"));
            }
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                out.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let kind = schema.get("type").and_then(Value::as_str).or_else(|| {
            schema
                .get("properties")
                .map(|_| "object")
                .or_else(|| schema.get("items").map(|_| "array"))
        });
        match kind {
            Some("object") => self.check_object(schema, value, at, out),
            Some("array") => match value.as_array() {
                None => out.push(format!("{at}: expected an array, got {value}")),
                Some(items) => {
                    let item_schema = schema.get("items").unwrap_or(&Value::Null);
                    for (i, item) in items.iter().enumerate() {
                        if item_schema.is_object() {
                            self.check(item_schema, item, &format!("{at}[{i}]"), out);
                        }
                    }
                }
            },
            Some("string") => match value.as_str() {
                None => out.push(format!("{at}: expected a string, got {value}")),
                Some(s) => {
                    let len = s.chars().count() as u64;
                    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                        if len > max {
                            out.push(format!("{at}: longer than {max}"));
                        }
                    }
                    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                        if len < min {
                            out.push(format!("{at}: shorter than {min}"));
                        }
                    }
                }
            },
            Some("integer") => {
                if value.as_i64().is_none() && value.as_u64().is_none() {
                    out.push(format!("{at}: expected an integer, got {value}"));
                } else {
                    check_bounds(schema, value, at, out);
                }
            }
            Some("number") => {
                if value.is_number() {
                    check_bounds(schema, value, at, out);
                } else {
                    out.push(format!("{at}: expected a number, got {value}"));
                }
            }
            Some("boolean") if !value.is_boolean() => {
                out.push(format!("{at}: expected a boolean, got {value}"));
            }
            Some("boolean") => {}
            Some(other) => panic!("unsupported schema type {other} at {at}"),
            None => {}
        }
    }

    fn check_object(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let Some(obj) = value.as_object() else {
            out.push(format!("{at}: expected an object, got {value}"));
            return;
        };
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(name) {
                out.push(format!("{at}: required property {name} is missing"));
            }
        }
        let declared = schema.get("properties").and_then(Value::as_object);
        let free_keys = declared.is_none() && schema.get("additionalProperties").is_some();
        for (key, v) in obj {
            let payment = declared.is_some_and(|d| d.contains_key("refund_summary"));
            match declared.and_then(|d| d.get(key)) {
                // A payment taken under a recurring agreement (DOMAIN.md §6): the 1.0.3
                // spec's `authorisation_mode` enum leaves `agreement` out.
                Some(_) if payment && key == "authorisation_mode" && v == "agreement" => {}
                Some(property) => self.check(property, v, &format!("{at}.{key}"), out),
                None if free_keys => {}
                // The one payment field paydesk reads that the 1.0.3 spec leaves out:
                // `disputed` (DOMAIN.md §6, as the ledger gives it), a boolean.
                None if key == "disputed"
                    && declared.is_some_and(|d| d.contains_key("refund_summary")) =>
                {
                    if !v.is_boolean() {
                        out.push(format!("{at}.disputed: expected a boolean, got {v}"));
                    }
                }
                // ...and its `agreement_id`, which the spec leaves out too.
                None if key == "agreement_id" && payment => {
                    if !v.is_string() {
                        out.push(format!("{at}.agreement_id: expected a string, got {v}"));
                    }
                }
                None => out.push(format!("{at}: property {key} is not in the schema")),
            }
        }
    }
}

fn check_bounds(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(n) = value.as_f64() else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        if n < min {
            out.push(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        if n > max {
            out.push(format!("{at}: {n} is above the maximum {max}"));
        }
    }
}

/// ExternalMetadata: free keys (1–30 characters, at most 15) with string, number or boolean
/// values, as the platform documents them.
fn check_metadata(value: &Value, at: &str, out: &mut Vec<String>) {
    let Some(obj) = value.as_object() else {
        out.push(format!("{at}: metadata must be an object, got {value}"));
        return;
    };
    if obj.len() > 15 {
        out.push(format!("{at}: more than 15 metadata keys"));
    }
    for (k, v) in obj {
        if k.is_empty() || k.chars().count() > 30 {
            out.push(format!("{at}: metadata key {k:?} must be 1-30 characters"));
        }
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            out.push(format!(
                "{at}.{k}: metadata values are strings, numbers or booleans"
            ));
        }
    }
}

fn assert_schema(spec: &Spec, schema: &Value, value: &Value, what: &str) {
    let problems = spec.problems(schema, value);
    assert!(
        problems.is_empty(),
        "{what} does not match the spec:\n  {}\nbody: {}",
        problems.join("\n  "),
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

// ---- the validator's own tests: each must be able to fail ---------------------------------

fn sample_payment() -> Value {
    json!({
        "payment_id": "hu20sqlact5260q2nanm0q8u93",
        "amount": 1200,
        "description": "Pay your council tax",
        "reference": "12345",
        "state": {"status": "success", "finished": true},
        "created_date": "2016-01-21T17:15:00.000Z",
        "card_details": {"card_brand": "Visa", "card_type": "debit", "last_digits_card_number": "1234"},
        "metadata": {"ledger_code": "AB100", "fund": 200, "urgent": true},
        "refund_summary": {"status": "available", "amount_available": 1200, "amount_submitted": 0},
        "_links": {
            "self": {"href": "https://x/v1/payments/hu20", "method": "GET"},
            "next_url_post": {"href": "https://x/pay", "method": "POST", "params": {"chargeTokenId": "abc"}, "type": "application/x-www-form-urlencoded"}
        }
    })
}

#[test]
fn the_validator_accepts_a_payment_the_spec_describes() {
    let spec = Spec::load();
    let schema = spec.named("PaymentWithAllLinks").clone();
    assert_eq!(
        spec.problems(&schema, &sample_payment()),
        Vec::<String>::new()
    );
}

#[test]
fn the_validator_rejects_a_wrong_type() {
    let spec = Spec::load();
    let schema = spec.named("PaymentWithAllLinks").clone();
    let mut p = sample_payment();
    p["amount"] = json!("1200");
    let problems = spec.problems(&schema, &p);
    assert!(
        problems
            .iter()
            .any(|m| m.contains("$.amount") && m.contains("integer")),
        "{problems:?}"
    );
    let mut p = sample_payment();
    p["amount"] = json!(12.5);
    assert!(
        !spec.problems(&schema, &p).is_empty(),
        "a fraction is not an integer"
    );
    let mut p = sample_payment();
    p["state"]["finished"] = json!("true");
    assert!(
        !spec.problems(&schema, &p).is_empty(),
        "a string is not a boolean"
    );
}

#[test]
fn the_validator_rejects_a_bad_enum_value() {
    let spec = Spec::load();
    let mut p = sample_payment();
    p["card_details"]["card_type"] = json!("prepaid");
    let problems = spec.problems(spec.named("PaymentWithAllLinks"), &p);
    assert!(
        problems.iter().any(|m| m.contains("card_type")),
        "{problems:?}"
    );
    let refund = json!({"refund_id": "r", "amount": 1, "status": "pending", "created_date": "x"});
    assert!(!spec.problems(spec.named("Refund"), &refund).is_empty());
}

#[test]
fn the_validator_rejects_an_unknown_field_at_any_depth() {
    let spec = Spec::load();
    let schema = spec.named("PaymentWithAllLinks");
    let mut p = sample_payment();
    p["colour"] = json!("red");
    let problems = spec.problems(schema, &p);
    assert!(
        problems.iter().any(|m| m.contains("colour")),
        "{problems:?}"
    );
    let mut p = sample_payment();
    p["refund_summary"]["amount_refunded"] = json!(0);
    assert!(
        !spec.problems(schema, &p).is_empty(),
        "unknown nested field"
    );
    // Search results have no payer links.
    let mut p = sample_payment();
    p["_links"]["next_url"] = json!({"href": "https://x/pay/t", "method": "GET"});
    assert!(spec.problems(schema, &p).is_empty());
    assert!(!spec
        .problems(spec.named("PaymentDetailForSearch"), &p)
        .is_empty());
}

#[test]
fn the_validator_checks_metadata_values_and_required_fields() {
    let spec = Spec::load();
    let mut p = sample_payment();
    p["metadata"]["list"] = json!([1, 2]);
    assert!(!spec
        .problems(spec.named("PaymentWithAllLinks"), &p)
        .is_empty());
    let create = json!({"amount": 100, "reference": "r", "return_url": "https://x"});
    let problems = spec.problems(spec.named("CreateCardPaymentRequest"), &create);
    assert!(
        problems.iter().any(|m| m.contains("description")),
        "{problems:?}"
    );
    let too_big = json!({"amount": 10_000_001});
    assert!(!spec
        .problems(spec.named("PaymentRefundRequest"), &too_big)
        .is_empty());
}

// ---- what paydesk sends ------------------------------------------------------------------

#[test]
fn the_request_bodies_paydesk_sends_match_the_spec() {
    let spec = Spec::load();
    let mut metadata = serde_json::Map::new();
    metadata.insert("case_reference".into(), json!("CASE-2026-004512"));
    metadata.insert("priority".into(), json!(2));
    let create = CreatePayment {
        amount: 12_000,
        reference: "PMT-00012345".into(),
        description: "Resident parking permit".into(),
        return_url: "https://paydesk.example/journeys/42/return".into(),
        email: Some("payer@example.com".into()),
        language: Some("en".into()),
        metadata: Some(metadata),
        delayed_capture: Some(false),
        moto: Some(false),
    };
    let body = serde_json::to_value(&create).expect("serialise");
    assert_schema(
        &spec,
        spec.request_schema("/v1/payments", "post"),
        &body,
        "CreatePayment",
    );
    for request in [
        RefundRequest {
            amount: 500,
            refund_amount_available: Some(12_000),
        },
        RefundRequest {
            amount: 1,
            refund_amount_available: None,
        },
    ] {
        let body = serde_json::to_value(&request).expect("serialise");
        assert_schema(
            &spec,
            spec.request_schema("/v1/payments/{paymentId}/refunds", "post"),
            &body,
            "RefundRequest",
        );
    }
}

// ---- the sandbox's answers -----------------------------------------------------------------

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

struct Contract {
    spec: Spec,
    sandbox: SandboxProcess,
    http: reqwest::Client,
}

impl Contract {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.sandbox.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the sandbox answers");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    /// Call, expect `status`, and check the body against the spec's schema for it.
    async fn expect(
        &self,
        method: &str,
        template: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        status: u16,
    ) -> Answer {
        let answer = self.call(method, path, key, body).await;
        assert_eq!(
            answer.status, status,
            "{method} {path}: expected {status}, got {}: {}",
            answer.status, answer.text
        );
        let what = format!("{method} {path} ({status})");
        match self
            .spec
            .response_schema(template, &method.to_lowercase(), status)
        {
            Some(schema) => assert_schema(&self.spec, schema, &answer.json(), &what),
            None if status == 412 => {
                // The spec gives 412 no body; the platform sends its usual error body.
                assert_schema(
                    &self.spec,
                    self.spec.named("RequestError"),
                    &answer.json(),
                    &what,
                )
            }
            None => assert!(
                answer.text.is_empty(),
                "{what} should have no body: {}",
                answer.text
            ),
        }
        answer
    }
}

const KEY: &str = "sandbox-key-1";

#[tokio::test]
async fn every_endpoint_paydesk_uses_answers_as_the_spec_says() {
    let c = Contract {
        spec: Spec::load(),
        sandbox: SandboxProcess::start_with(&[
            "--seed",
            "300",
            "--accounts",
            "2",
            "--refund-delay-ms",
            "300",
        ]),
        http: reqwest::Client::new(),
    };
    let key = Some(KEY);

    // Search: every seeded payment, in one page of 500, each one checked.
    let page = c
        .expect("GET", "/v1/payments", "/v1/payments", key, None, 200)
        .await
        .json();
    assert_eq!(page["total"], 300);
    assert_eq!(page["count"], 300);
    let results = page["results"].as_array().cloned().unwrap_or_default();
    let first = |f: &dyn Fn(&Value) -> bool| {
        results
            .iter()
            .find(|p| f(p))
            .cloned()
            .expect("a seeded payment of that kind")
    };
    let refunded = first(&|p| p["refund_summary"]["amount_submitted"].as_i64() > Some(0));
    let with_metadata = first(&|p| p["metadata"].is_object());
    let failed = first(&|p| p["state"]["status"] == "failed");
    let stripe_success =
        first(&|p| p["payment_provider"] == "stripe" && p["state"]["status"] == "success");
    // Filters and paging, with absolute links that repeat the filters.
    let filtered = c
        .expect(
            "GET",
            "/v1/payments",
            "/v1/payments?state=success&card_brand=visa&display_size=20&page=2",
            key,
            None,
            200,
        )
        .await
        .json();
    assert!(filtered["results"].as_array().is_some_and(|r| r
        .iter()
        .all(|p| p["state"]["status"] == "success" && p["card_details"]["card_brand"] == "Visa")));
    let next = filtered["_links"]["next_page"]["href"]
        .as_str()
        .unwrap_or("");
    assert!(
        next.starts_with(&c.sandbox.base_url)
            && next.contains("state=success")
            && next.contains("page=3"),
        "{next}"
    );
    let bad = c
        .expect(
            "GET",
            "/v1/payments",
            "/v1/payments?from_date=yesterday&display_size=900",
            key,
            None,
            422,
        )
        .await
        .json();
    assert_eq!(bad["code"], "P0401");
    assert!(bad["description"]
        .as_str()
        .is_some_and(|d| d.contains("from_date, display_size")));
    c.expect("GET", "/v1/payments", "/v1/payments", None, None, 401)
        .await;
    let wrong = c
        .expect(
            "GET",
            "/v1/payments",
            "/v1/payments",
            Some("not-a-key"),
            None,
            401,
        )
        .await;
    assert_eq!(
        wrong
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );

    // One payment, its events and its refunds, for payments of every shape.
    for p in [&refunded, &with_metadata, &failed, &stripe_success] {
        let id = p["payment_id"].as_str().expect("payment_id");
        let full = c
            .expect(
                "GET",
                "/v1/payments/{paymentId}",
                &format!("/v1/payments/{id}"),
                key,
                None,
                200,
            )
            .await
            .json();
        assert_eq!(full["payment_id"], id);
        let events = c
            .expect(
                "GET",
                "/v1/payments/{paymentId}/events",
                &format!("/v1/payments/{id}/events"),
                key,
                None,
                200,
            )
            .await
            .json();
        assert_eq!(events["events"][0]["state"]["status"], "created");
        assert_eq!(
            events["events"]
                .as_array()
                .and_then(|e| e.last())
                .map(|e| &e["state"]),
            Some(&full["state"])
        );
        c.expect(
            "GET",
            "/v1/payments/{paymentId}/refunds",
            &format!("/v1/payments/{id}/refunds"),
            key,
            None,
            200,
        )
        .await;
    }
    assert!(stripe_success["fee"].is_i64() && stripe_success["net_amount"].is_i64());
    let refunded_id = refunded["payment_id"].as_str().unwrap_or_default();
    let refunds = c
        .call(
            "GET",
            &format!("/v1/payments/{refunded_id}/refunds"),
            key,
            None,
        )
        .await
        .json();
    let refund_id = refunds["_embedded"]["refunds"][0]["refund_id"]
        .as_str()
        .expect("a refund")
        .to_string();
    c.expect(
        "GET",
        "/v1/payments/{paymentId}/refunds/{refundId}",
        &format!("/v1/payments/{refunded_id}/refunds/{refund_id}"),
        key,
        None,
        200,
    )
    .await;
    // Refund search.
    let refund_page = c
        .expect("GET", "/v1/refunds", "/v1/refunds", key, None, 200)
        .await
        .json();
    assert!(refund_page["total"].as_i64() > Some(0));
    assert!(refund_page["results"][0]["payment_id"].is_string());
    c.expect(
        "GET",
        "/v1/refunds",
        "/v1/refunds?to_settled_date=tomorrow",
        key,
        None,
        422,
    )
    .await;

    // Not found, for each endpoint, and a payment of another account is not found either.
    let other = c
        .call(
            "GET",
            "/v1/payments?display_size=1",
            Some("sandbox-key-2"),
            None,
        )
        .await
        .json();
    let other_id = other["results"][0]["payment_id"]
        .as_str()
        .expect("account 2 has payments")
        .to_string();
    for id in ["aaaaaaaaaaaaaaaaaaaaaaaaaa", other_id.as_str()] {
        let not_found = c
            .expect(
                "GET",
                "/v1/payments/{paymentId}",
                &format!("/v1/payments/{id}"),
                key,
                None,
                404,
            )
            .await
            .json();
        assert_eq!(not_found["code"], "P0200");
        c.expect(
            "GET",
            "/v1/payments/{paymentId}/events",
            &format!("/v1/payments/{id}/events"),
            key,
            None,
            404,
        )
        .await;
        c.expect(
            "GET",
            "/v1/payments/{paymentId}/refunds",
            &format!("/v1/payments/{id}/refunds"),
            key,
            None,
            404,
        )
        .await;
        c.expect(
            "GET",
            "/v1/payments/{paymentId}/refunds/{refundId}",
            &format!("/v1/payments/{id}/refunds/{refund_id}"),
            key,
            None,
            404,
        )
        .await;
        let cancel = c
            .expect(
                "POST",
                "/v1/payments/{paymentId}/cancel",
                &format!("/v1/payments/{id}/cancel"),
                key,
                None,
                404,
            )
            .await
            .json();
        assert_eq!(cancel["code"], "P0500");
        let refund = c
            .expect(
                "POST",
                "/v1/payments/{paymentId}/refunds",
                &format!("/v1/payments/{id}/refunds"),
                key,
                Some(r#"{"amount": 100}"#),
                404,
            )
            .await
            .json();
        assert_eq!(refund["code"], "P0600");
    }

    // Create a payment; bad bodies.
    let create = r#"{"amount": 4500, "reference": "PMT-CONTRACT-1", "description": "Contract test",
        "return_url": "https://service.example/return", "email": "payer@example.com",
        "metadata": {"case_reference": "CASE-2026-004512", "priority": 2, "urgent": true}}"#;
    let created = c
        .expect(
            "POST",
            "/v1/payments",
            "/v1/payments",
            key,
            Some(create),
            201,
        )
        .await;
    assert!(created.headers.get("location").is_some());
    let created = created.json();
    assert_eq!(created["state"]["status"], "created");
    let next_url = created["_links"]["next_url"]["href"]
        .as_str()
        .expect("next_url")
        .to_string();
    let id = created["payment_id"].as_str().expect("id").to_string();
    let bad_json = c
        .expect("POST", "/v1/payments", "/v1/payments", key, Some("{"), 400)
        .await
        .json();
    assert_eq!(bad_json["code"], "P0197");
    let missing = c
        .expect(
            "POST",
            "/v1/payments",
            "/v1/payments",
            key,
            Some(r#"{"amount": 100, "reference": "r", "return_url": "https://x.example"}"#),
            400,
        )
        .await
        .json();
    assert_eq!(
        (missing["code"].as_str(), missing["field"].as_str()),
        (Some("P0101"), Some("description"))
    );
    let invalid = c
        .expect(
            "POST",
            "/v1/payments",
            "/v1/payments",
            key,
            Some(r#"{"amount": 10000001, "reference": "r", "description": "d", "return_url": "https://x.example"}"#),
            422,
        )
        .await
        .json();
    assert_eq!(invalid["code"], "P0102");
    c.expect(
        "POST",
        "/v1/payments",
        "/v1/payments",
        None,
        Some(create),
        401,
    )
    .await;

    // The payer pays with a test card on the card page; the payment succeeds.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = no_redirects.get(&next_url).send().await.expect("card page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("<label for=\"card_number\">") && html.contains("Contract test"));
    let paid = no_redirects
        .post(&next_url)
        .form(&[
            ("card_number", "4111111111111111"),
            ("expiry_month", "12"),
            ("expiry_year", "2035"),
            ("cardholder_name", "Siân O'Brien"),
            ("cvc", "123"),
            ("action", "pay"),
        ])
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status().as_u16(), 303);
    assert_eq!(
        paid.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("https://service.example/return")
    );
    let after = c
        .expect(
            "GET",
            "/v1/payments/{paymentId}",
            &format!("/v1/payments/{id}"),
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(after["state"]["status"], "success");
    assert_eq!(after["card_details"]["last_digits_card_number"], "1111");
    assert!(!after.to_string().contains("4111111111111111"));
    let events = c
        .call("GET", &format!("/v1/payments/{id}/events"), key, None)
        .await
        .json();
    let statuses: Vec<&str> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["state"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["created", "started", "submitted", "success"]);

    // Refunds: stale available amount → 412; too much → 400; a good one → 200 Refund.
    let stale = c
        .expect(
            "POST",
            "/v1/payments/{paymentId}/refunds",
            &format!("/v1/payments/{id}/refunds"),
            key,
            Some(r#"{"amount": 500, "refund_amount_available": 4000}"#),
            412,
        )
        .await
        .json();
    assert_eq!(stale["code"], "P0604");
    let too_much = c
        .call(
            "POST",
            &format!("/v1/payments/{id}/refunds"),
            key,
            Some(r#"{"amount": 4501, "refund_amount_available": 4500}"#),
        )
        .await;
    assert_eq!(
        (too_much.status, too_much.json()["code"].clone()),
        (400, json!("P0602"))
    );
    let refund = c
        .expect(
            "POST",
            "/v1/payments/{paymentId}/refunds",
            &format!("/v1/payments/{id}/refunds"),
            key,
            Some(r#"{"amount": 500, "refund_amount_available": 4500}"#),
            200,
        )
        .await
        .json();
    assert_eq!(refund["status"], "submitted");
    let summary = c
        .call("GET", &format!("/v1/payments/{id}"), key, None)
        .await
        .json()["refund_summary"]
        .clone();
    assert_eq!(summary["amount_available"], 4000);

    // Cancel: a new payment can be cancelled (204), a finished one cannot (409).
    let to_cancel = c.sandbox.create_payment(KEY, 700, "PMT-CANCEL").await;
    let cancel_id = to_cancel["payment_id"].as_str().expect("id").to_string();
    c.expect(
        "POST",
        "/v1/payments/{paymentId}/cancel",
        &format!("/v1/payments/{cancel_id}/cancel"),
        key,
        None,
        204,
    )
    .await;
    let conflict = c
        .expect(
            "POST",
            "/v1/payments/{paymentId}/cancel",
            &format!("/v1/payments/{cancel_id}/cancel"),
            key,
            None,
            409,
        )
        .await
        .json();
    assert_eq!(conflict["code"], "P0502");

    // Faults: 429 with Retry-After, then 500.
    c.sandbox
        .set_faults(
            "account-1",
            json!({"rate_limit_next": 1, "retry_after_secs": 3, "error_next": 1}),
        )
        .await;
    let limited = c
        .expect(
            "GET",
            "/v1/payments/{paymentId}",
            &format!("/v1/payments/{id}"),
            key,
            None,
            429,
        )
        .await;
    assert_eq!(limited.json()["code"], "P0900");
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let broken = c
        .expect("GET", "/v1/payments", "/v1/payments", key, None, 500)
        .await
        .json();
    assert_eq!(broken["code"], "P0999");
    c.expect(
        "GET",
        "/v1/payments/{paymentId}",
        &format!("/v1/payments/{id}"),
        key,
        None,
        200,
    )
    .await;

    // OAuth2 client credentials give a bearer token that works like the API key.
    let token = c
        .http
        .post(c.sandbox.url("/oauth/token"))
        .basic_auth("sandbox-client-1", Some("sandbox-secret-1"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status().as_u16(), 200);
    let token: Value = token.json().await.expect("token JSON");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let access = token["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    c.expect(
        "GET",
        "/v1/payments/{paymentId}",
        &format!("/v1/payments/{id}"),
        Some(&access),
        None,
        200,
    )
    .await;
    let refused = c
        .http
        .post(c.sandbox.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox-client-1"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(refused.status().as_u16(), 401);
    let refused: Value = refused.json().await.expect("error JSON");
    assert_eq!(
        refused,
        json!({"error": "invalid_client", "error_description": "Invalid client credentials"})
    );

    // The refund settles (300 ms) and the totals count it.
    let settled = crate::common::eventually(Duration::from_secs(10), || async {
        let r = c
            .call("GET", &format!("/v1/payments/{id}/refunds"), key, None)
            .await
            .json();
        (r["_embedded"]["refunds"][0]["status"] == "success").then_some(())
    })
    .await;
    assert!(settled.is_some(), "the refund succeeded");
    let totals = c.sandbox.totals("account-1").await;
    assert_eq!(totals["payments"], 302);
    assert_eq!(
        totals["by_status"]["cancelled"]["count"]
            .as_i64()
            .map(|n| n >= 1),
        Some(true)
    );
}

/// A webhook receiver on a plain socket: answers 200 and hands over (headers, body).
async fn receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    let _ = tx.send((head, body));
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn webhooks_are_signed_and_carry_the_payment_as_the_api_shows_it() {
    let spec = Spec::load();
    let sandbox = SandboxProcess::start_with(&["--seed", "20", "--accounts", "1"]);
    let (url, mut received) = receiver().await;
    sandbox.set_webhook("account-1", &url, "whsec-test").await;
    let payment = sandbox.create_payment(KEY, 1999, "PMT-HOOK").await;
    let id = payment["payment_id"].as_str().expect("id").to_string();
    sandbox.advance_payment(&id, "success", None).await;

    let mut events = Vec::new();
    while events.len() < 2 {
        let (head, body) = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a webhook within 10 s")
            .expect("receiver open");
        let sig = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("pay-signature: ")
                    .or_else(|| l.strip_prefix("Pay-Signature: "))
            })
            .expect("a Pay-Signature header")
            .to_string();
        assert!(
            signature::verify("whsec-test", &body, &sig),
            "signature verifies on the raw body"
        );
        let message: Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(message["resource_id"], id.as_str());
        assert_eq!(message["api_version"], 1);
        assert_eq!(message["resource_type"], "payment");
        assert!(message["webhook_message_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_schema(
            &spec,
            spec.named("PaymentWithAllLinks"),
            &message["resource"],
            "webhook resource",
        );
        events.push(
            message["event_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(events, ["card_payment_started", "card_payment_succeeded"]);
    // The log records the 200 just after the receiver sends it.
    let delivered = crate::common::eventually(Duration::from_secs(5), || async {
        let log = sandbox.webhooks("account-1").await;
        (log.len() == 2 && log.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;
    assert!(
        delivered.is_some(),
        "{:?}",
        sandbox.webhooks("account-1").await
    );
}

/// Disputes: the search with its filters and paging, a disputed payment (its refunds refused
/// with P0603) and a dispute moving on with sandbox time, every answer checked against the spec.
#[tokio::test]
async fn the_dispute_search_answers_as_the_spec_says() {
    let c = Contract {
        spec: Spec::load(),
        sandbox: SandboxProcess::start_with(&["--seed", "0", "--accounts", "1"]),
        http: reqwest::Client::new(),
    };
    let key = Some(KEY);
    let mut paid = Vec::new();
    for (n, amount) in [(1, 4_200), (2, 1_000), (3, 700)] {
        let p = c
            .sandbox
            .create_payment(KEY, amount, &format!("DSP-{n}"))
            .await;
        let id = p["payment_id"].as_str().unwrap().to_string();
        c.sandbox.advance_payment(&id, "success", None).await;
        paid.push(id);
    }
    let lost = c.sandbox.raise_dispute(&paid[0], "lost", 10).await;
    assert_eq!(lost["status"], "needs_response");
    assert_eq!(lost["fee"], 2000);
    assert!(lost.get("net_amount").is_none());
    c.sandbox.raise_dispute(&paid[1], "won", 2).await;
    // Twice, or on a payment that is not successful: refused.
    let again = c
        .http
        .post(
            c.sandbox
                .url(&format!("/sandbox/payments/{}/dispute", paid[0])),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);

    let page = c
        .expect("GET", "/v1/disputes", "/v1/disputes", key, None, 200)
        .await
        .json();
    assert_eq!(
        (page["total"].as_i64(), page["count"].as_i64()),
        (Some(2), Some(2))
    );
    // Newest first; the page links are `links`.
    assert_eq!(page["results"][0]["payment_id"], paid[1].as_str());
    assert!(page.get("_links").is_none() && page["links"]["self"]["href"].is_string());
    let one = c
        .expect(
            "GET",
            "/v1/disputes",
            "/v1/disputes?display_size=1&status=needs_response",
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(one["count"], 1);
    let next = one["links"]["next_page"]["href"].as_str().unwrap();
    assert!(
        next.contains("status=needs_response") && next.contains("page=2"),
        "{next}"
    );
    let none = c
        .expect(
            "GET",
            "/v1/disputes",
            "/v1/disputes?status=won",
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(none["total"], 0);
    c.expect(
        "GET",
        "/v1/disputes",
        "/v1/disputes?status=open&from_date=yesterday",
        key,
        None,
        422,
    )
    .await;
    c.expect("GET", "/v1/disputes", "/v1/disputes", None, None, 401)
        .await;

    // The disputed payment says so, and its refunds are refused before anything is made.
    let payment = c
        .expect(
            "GET",
            "/v1/payments/{paymentId}",
            &format!("/v1/payments/{}", paid[0]),
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(payment["disputed"], true);
    assert_eq!(payment["refund_summary"]["status"], "unavailable");
    // The spec lists no 400 for a refund; the platform answers one in its error shape.
    let refused = c
        .call(
            "POST",
            &format!("/v1/payments/{}/refunds", paid[0]),
            key,
            Some(r#"{"amount": 100}"#),
        )
        .await;
    assert_eq!(refused.status, 400);
    let refused = refused.json();
    assert_schema(&c.spec, c.spec.named("RequestError"), &refused, "P0603");
    assert_eq!(refused["code"], "P0603");
    assert!(refused["description"]
        .as_str()
        .unwrap()
        .contains("disputed"));
    assert_eq!(c.sandbox.totals("account-1").await["refunds"], 0);
    let undisputed = c
        .call("GET", &format!("/v1/payments/{}", paid[2]), key, None)
        .await
        .json();
    assert!(undisputed.get("disputed").is_none());

    // Time moves them on: under review once the evidence is due, then decided; a lost one
    // shows what the provider takes, and when, once it has.
    c.sandbox.advance_clock(3 * 86_400).await;
    let moved = c
        .expect(
            "GET",
            "/v1/disputes",
            "/v1/disputes?status=under_review",
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(moved["results"][0]["payment_id"], paid[1].as_str());
    c.sandbox.advance_clock(40 * 86_400).await;
    let decided = c
        .expect("GET", "/v1/disputes", "/v1/disputes", key, None, 200)
        .await
        .json();
    let by_payment = |id: &str| {
        decided["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["payment_id"] == id)
            .cloned()
            .unwrap()
    };
    let lost = by_payment(&paid[0]);
    assert_eq!(lost["status"], "lost");
    assert_eq!(lost["net_amount"], -(4_200 + 2_000));
    assert!(lost["settlement_summary"]["settled_date"].is_string());
    let won = by_payment(&paid[1]);
    assert_eq!(won["status"], "won");
    assert!(won.get("net_amount").is_none() && won.get("settlement_summary").is_none());
    let settled = c
        .expect(
            "GET",
            "/v1/disputes",
            "/v1/disputes?from_settled_date=2000-01-01",
            key,
            None,
            200,
        )
        .await
        .json();
    assert_eq!(settled["total"], 1);
}
