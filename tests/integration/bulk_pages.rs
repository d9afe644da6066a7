//! The bulk refund pages through HTTP, against a real sandbox platform process: a finance
//! person uploads a file (after the second factor), sees the refused rows against their row
//! numbers, uploads a fixed file, a second person approves it, the refunds reach the platform
//! and the results download; bad files change nothing; caseworkers cannot reach the pages.

use paydesk::identity::permissions::Role;
use paydesk::refunds::RefundSettings;
use paydesk::store::refund_batches as batch_store;
use rocket::http::{ContentType, Status};

use crate::common::sandbox::SandboxProcess;
use crate::common::{location, refund_app, refund_sandbox, set_refund_settings, Person, TestApp};

struct World {
    app: TestApp,
    sandbox: SandboxProcess,
    finance: Person,
    admin: Person,
    caseworker: Person,
}

async fn world() -> World {
    let sandbox = refund_sandbox(1);
    let app = refund_app(|_| {}).await;
    let service_id = sandbox.connect(&app, "parking", 1).await;
    set_refund_settings(
        &app,
        service_id,
        &RefundSettings {
            refund_approval_threshold: Some(500),
            ..Default::default()
        },
    )
    .await;
    World {
        finance: app
            .person("fin@example.gov.uk", Role::Finance, Some("parking"))
            .await,
        admin: app
            .person("admin@example.gov.uk", Role::ServiceAdmin, Some("parking"))
            .await,
        caseworker: app
            .person("cw@example.gov.uk", Role::Caseworker, Some("parking"))
            .await,
        app,
        sandbox,
    }
}

impl World {
    async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> rocket::local::asynchronous::LocalResponse<'_> {
        let boundary = "----paydesk-test-boundary";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{}\r\n",
                self.app.token()
            )
            .as_bytes(),
        );
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.app
            .client
            .post("/refunds/bulk")
            .header(ContentType::new("multipart", "form-data").with_params(("boundary", boundary)))
            .body(body)
            .dispatch()
            .await
    }

    async fn page(&self, path: &str) -> (Status, String) {
        let r = self.app.client.get(path.to_string()).dispatch().await;
        (r.status(), r.into_string().await.unwrap_or_default())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (Status, String) {
        let token = self.app.token();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        let r = self.app.post_form(path, &all).await;
        let status = r.status();
        let body = if status == Status::SeeOther {
            location(&r)
        } else {
            r.into_string().await.unwrap_or_default()
        };
        (status, body)
    }

    async fn sign_out(&self) {
        let (status, _) = self.post("/logout", &[]).await;
        assert_eq!(status, Status::SeeOther);
    }

    async fn run_jobs(&self) {
        let runner = self.app.state.job_runner();
        for _ in 0..60 {
            let pass = runner.run_due().await.unwrap();
            if pass.claimed == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                if runner.run_due().await.unwrap().claimed == 0 {
                    break;
                }
            }
        }
    }

    async fn batches(&self) -> usize {
        batch_store::recent(&self.app.state.db, 100)
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn upload_fix_approve_send_and_download() {
    let w = world().await;
    let (a, _) = w
        .sandbox
        .payment_in(&w.app, "parking", 1, 5000, "BULK-A", Some("success"))
        .await;
    let (b, _) = w
        .sandbox
        .payment_in(&w.app, "parking", 1, 5000, "BULK-B", Some("success"))
        .await;
    w.app.sign_in(&w.finance).await;
    let (status, html) = w.page("/refunds/bulk").await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("enctype=\"multipart/form-data\""),
        "the upload form, just after signing in"
    );

    // Bad files: named, and nothing kept.
    for (bytes, says) in [
        (&b""[..], "The selected file is empty"),
        (&b"payment_id,amount,reason\r\n"[..], "no refunds"),
        (
            &b"payment_id,amount,reason,colour\r\np,1,fraud,red\r\n"[..],
            "colour",
        ),
        (&b"PK\x03\x04\x00\x00binary"[..], "UTF-8"),
    ] {
        let r = w.upload("bad.csv", bytes).await;
        assert_eq!(r.status(), Status::UnprocessableEntity);
        let html = r.into_string().await.unwrap_or_default();
        assert!(html.contains(says), "{says}: {html}");
        assert!(html.contains("govuk-error-summary"));
    }
    assert_eq!(w.batches().await, 0);

    // A file with a bad row: the row is named on the batch's page; it cannot go on as it is.
    let text = format!(
        "\u{FEFF}payment_id;amount;reason;comment\r\n{a};3.00;duplicate;\"one; two\"\r\n{b};1,000.00;duplicate;\r\n"
    );
    let r = w.upload("first.csv", text.as_bytes()).await;
    assert_eq!(r.status(), Status::SeeOther);
    let first = location(&r);
    let (_, html) = w.page(&first).await;
    assert!(html.contains("id=\"row-3\""), "{html}");
    assert!(html.contains("1,000.00") && html.contains("cannot be read"));
    let id: i64 = first.rsplit('/').next().unwrap().parse().unwrap();
    let hash = batch_store::by_id(&w.app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .file_hash;
    let (status, html) = w
        .post(&format!("{first}/confirm"), &[("hash", &hash)])
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("Some rows were refused"));

    // Fixed and uploaded again: £6.00 in all is above the £5.00 threshold.
    let text = format!("payment_id,amount,reason\n{a},3.00,duplicate\n{b},3.00,duplicate\n");
    let r = w.upload("fixed.csv", text.as_bytes()).await;
    let second = location(&r);
    let id: i64 = second.rsplit('/').next().unwrap().parse().unwrap();
    let hash = batch_store::by_id(&w.app.state.db, id)
        .await
        .unwrap()
        .unwrap()
        .file_hash;
    let (status, to) = w
        .post(&format!("{second}/confirm"), &[("hash", &hash)])
        .await;
    assert_eq!(status, Status::SeeOther, "{to}");
    let (_, html) = w.page(&to).await;
    assert!(html.contains("Awaiting approval"));
    assert!(
        !html.contains("/approve\""),
        "no approve form for the uploader"
    );
    let (status, html) = w
        .post(&format!("{second}/approve"), &[("hash", &hash)])
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(html.contains("someone else must approve"), "{html}");

    // A second person approves, for the file they saw.
    w.sign_out().await;
    w.app.sign_in(&w.admin).await;
    let (_, html) = w.page(&second).await;
    assert!(html.contains("Approve 2 refunds totalling £6.00"));
    let (status, _) = w
        .post(&format!("{second}/approve"), &[("hash", "0000")])
        .await;
    assert_eq!(status, Status::UnprocessableEntity);
    let (status, _) = w
        .post(&format!("{second}/approve"), &[("hash", &hash)])
        .await;
    assert_eq!(status, Status::SeeOther);
    w.run_jobs().await;
    let totals = w.sandbox.totals("account-1").await;
    assert_eq!(totals["refunds"].as_i64(), Some(2));
    let (_, html) = w.page(&second).await;
    assert!(html.contains("data-progress"));
    let r = w
        .app
        .client
        .get(format!("{second}/results.csv"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let csv = r.into_string().await.unwrap_or_default();
    assert!(csv.starts_with("line,payment_id,reference,amount,reason"));
    assert_eq!(csv.lines().count(), 3);
    // Each row is an ordinary refund request that names its batch.
    let rows = batch_store::rows(&w.app.state.db, id, 0, 10).await.unwrap();
    let request = rows[0].request_id.expect("the row's request");
    let (_, html) = w.page(&format!("/refunds/{request}")).await;
    assert!(
        html.contains(&format!("href=\"/refunds/bulk/{id}\"")),
        "{html}"
    );
    let (_, html) = w.page("/refunds").await;
    assert!(html.contains("href=\"/refunds/bulk\""));
    let r = w
        .app
        .client
        .get(format!("{second}/progress"))
        .dispatch()
        .await;
    let json: serde_json::Value = r.into_json().await.unwrap();
    assert_eq!(json["progress"]["requested"], 2);
}

#[tokio::test]
async fn a_caseworker_cannot_reach_bulk_refunds_and_the_upload_needs_a_recent_second_factor() {
    let w = world().await;
    w.app.sign_in(&w.caseworker).await;
    let (status, _) = w.page("/refunds/bulk").await;
    assert!(
        matches!(status, Status::Forbidden | Status::NotFound),
        "{status}"
    );
    w.sign_out().await;
    w.app.sign_in(&w.finance).await;
    w.app.clock.advance(time::Duration::minutes(6));
    let (_, html) = w.page("/refunds/bulk").await;
    assert!(!html.contains("enctype=\"multipart/form-data\""));
    assert!(html.contains("/refunds/bulk/confirm-identity"));
    let r = w
        .upload("late.csv", b"payment_id,amount,reason\np,1,fraud\n")
        .await;
    assert_eq!(r.status(), Status::UnprocessableEntity);
    assert!(r
        .into_string()
        .await
        .unwrap_or_default()
        .contains("Confirm it"));
    assert_eq!(w.batches().await, 0);
    let (status, to) = w.post("/refunds/bulk/confirm-identity", &[]).await;
    assert_eq!(status, Status::SeeOther);
    assert!(to.starts_with("/confirm-identity"), "{to}");
}
