//! Outgoing email. A message is rendered (plain text and HTML, from `templates/mail/`) when the
//! change that causes it commits, and queued as a `mail_send` job in the same transaction; the
//! worker hands it to the configured transport (SMTP, or a folder for development and the demo).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rocket_dyn_templates::tera::{Context, Tera};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::{self, JobContext, JobFailure, JobHandler, JobKind, JobRun};
use crate::store::{StoreError, Tx};

pub const MAIL_SEND: JobKind = JobKind {
    name: "mail_send",
    // A mail server that is down for a few minutes should not lose a reset link; one that is
    // down for hours makes the link expire anyway.
    retry_delays_secs: &[15, 60, 300, 900],
};

/// One message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail template {0}: {1}")]
    Template(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The mail templates, loaded once at start-up.
pub struct MailTemplates {
    tera: Tera,
}

impl MailTemplates {
    /// Load `<template_dir>/mail/*.tera`.
    pub fn load(template_dir: &Path) -> Result<MailTemplates, MailError> {
        let pattern = template_dir.join("mail").join("*.tera");
        let mut tera = Tera::new(&pattern.to_string_lossy())
            .map_err(|e| MailError::Template(pattern.display().to_string(), e.to_string()))?;
        // HTML mail is escaped like pages are; the plain-text part is not HTML at all.
        tera.autoescape_on(vec![".html.tera"]);
        Ok(MailTemplates { tera })
    }

    /// Render `<name>.txt.tera` and `<name>.html.tera` with `context`; the subject is the text
    /// template's first line (`Subject: …`).
    pub fn render(&self, name: &str, to: &str, context: &Value) -> Result<Mail, MailError> {
        let ctx = Context::from_value(context.clone())
            .map_err(|e| MailError::Template(name.to_string(), e.to_string()))?;
        let render = |file: String| {
            self.tera
                .render(&file, &ctx)
                .map_err(|e| MailError::Template(file.clone(), e.to_string()))
        };
        let text = render(format!("{name}.txt.tera"))?;
        let html = render(format!("{name}.html.tera"))?;
        let (subject, body) = match text.split_once('\n') {
            Some((first, rest)) if first.starts_with("Subject:") => (
                first.trim_start_matches("Subject:").trim().to_string(),
                rest.trim_start_matches('\n').to_string(),
            ),
            _ => {
                return Err(MailError::Template(
                    name.to_string(),
                    "the text template must start with a `Subject:` line".into(),
                ))
            }
        };
        Ok(Mail {
            to: to.to_string(),
            subject,
            text: body,
            html,
        })
    }
}

/// Queue `mail` for sending once the transaction commits.
pub async fn enqueue(
    tx: &mut Tx,
    mail: &Mail,
    now: time::OffsetDateTime,
) -> Result<i64, StoreError> {
    let payload = serde_json::to_value(mail).unwrap_or(Value::Null);
    jobs::enqueue(tx, MAIL_SEND, &payload, now, now).await
}

/// Sends queued mail.
pub struct MailSender;

#[async_trait::async_trait]
impl JobHandler for MailSender {
    fn kind(&self) -> JobKind {
        MAIL_SEND
    }

    /// Messages carry one-time links; once delivered, the queue keeps no copy.
    fn scrub_on_success(&self) -> bool {
        true
    }

    async fn run(&self, ctx: &JobContext, job: &JobRun) -> Result<(), JobFailure> {
        let mail: Mail = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::permanent(format!("not a mail payload: {e}")))?;
        let message = build_message(&ctx.config.mail_from, &mail)
            .map_err(|e| JobFailure::permanent(format!("cannot build the message: {e}")))?;
        send(&ctx.config.mail_url, message).await
    }
}

fn build_message(from: &str, mail: &Mail) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("from address: {e}"))?;
    let to: Mailbox = mail.to.parse().map_err(|e| format!("to address: {e}"))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html.clone()),
                ),
        )
        .map_err(|e| e.to_string())
}

async fn send(mail_url: &str, message: Message) -> Result<(), JobFailure> {
    if let Some(folder) = mail_url.strip_prefix("file://") {
        let folder = PathBuf::from(folder);
        std::fs::create_dir_all(&folder)
            .map_err(|e| JobFailure::retry(format!("cannot create {}: {e}", folder.display())))?;
        AsyncFileTransport::<Tokio1Executor>::new(folder)
            .send(message)
            .await
            .map_err(|e| JobFailure::retry(format!("cannot write the message: {e}")))?;
        return Ok(());
    }
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(mail_url)
        .map_err(|e| JobFailure::permanent(format!("bad mail URL: {e}")))?
        .timeout(Some(std::time::Duration::from_secs(30)))
        .build();
    match transport.send(message).await {
        Ok(_) => Ok(()),
        // 5xx answers (unknown mailbox, say) will not change on retry.
        Err(e) if e.is_permanent() => Err(JobFailure::permanent(format!(
            "the mail server refused the message: {e}"
        ))),
        Err(e) => Err(JobFailure::retry(format!(
            "could not reach the mail server: {e}"
        ))),
    }
}

/// Shared handle to the templates.
pub type Templates = Arc<MailTemplates>;

/// This module's job handlers: sending queued mail.
pub fn handlers() -> Vec<std::sync::Arc<dyn JobHandler>> {
    vec![std::sync::Arc::new(MailSender)]
}
