//! Every text column paydesk keeps, classified: payer personal data (and what happens to it
//! when a journey is redacted) or not. The inventory test lists every text column of every
//! table on the database and fails on one missing here, so a new column holding payer data
//! cannot appear unnoticed. The README's "Where personal data lives" says the same in prose.

/// What a column holds, as far as a payer's personal data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Payer personal data, emptied when the journey is redacted (retention or erasure).
    Redacted,
    /// May hold payer data in free text (a comment, a stored answer, a mail); the redaction
    /// empties the copies that belong to a redacted journey.
    RedactedCopy,
    /// An identifier or figure kept for reconciliation (a reference, a case link, card last 4):
    /// names a payment, not a person, and stays.
    KeptForReconciliation,
    /// Not payer data: staff, configuration, secrets, machinery.
    NotPayerData,
    /// May name or identify a payer, and retention does not reach it yet. No column may stay
    /// so (`personal_inventory_leaves_nothing_unredacted`): a new one is for a branch in
    /// progress only.
    NotYetRedacted,
}

use Class::*;

/// `(table, column, class)` for every text column.
pub const COLUMNS: &[(&str, &str, Class)] = &[
    // Journeys: the payer's own data.
    ("journeys", "email", Redacted),
    ("journeys", "email_key", Redacted),
    ("journeys", "cardholder_name", Redacted),
    ("journeys", "metadata", Redacted),
    ("journeys", "description", Redacted),
    ("journeys", "payment_id", KeptForReconciliation),
    ("journeys", "status", NotPayerData),
    ("journeys", "state_code", NotPayerData),
    ("journeys", "state_message", NotPayerData),
    ("journeys", "reference", KeptForReconciliation),
    ("journeys", "reference_key", KeptForReconciliation),
    ("journeys", "language", NotPayerData),
    ("journeys", "card_brand", KeptForReconciliation),
    ("journeys", "card_type", KeptForReconciliation),
    ("journeys", "first_digits", KeptForReconciliation),
    ("journeys", "last_digits", KeptForReconciliation),
    ("journeys", "expiry_date", KeptForReconciliation),
    ("journeys", "wallet_type", NotPayerData),
    ("journeys", "payment_provider", NotPayerData),
    ("journeys", "provider_id", KeptForReconciliation),
    ("journeys", "captured_date", KeptForReconciliation),
    ("journeys", "settled_date", KeptForReconciliation),
    ("journeys", "refund_status", NotPayerData),
    ("journeys", "case_reference", KeptForReconciliation),
    ("journeys", "attention_reason", NotPayerData),
    ("journeys", "redacted_reason", NotPayerData),
    // Search indexes: SQLite's FTS5 table (PostgreSQL's trigram indexes are on journeys'
    // columns and follow them), and the metadata values' index.
    ("journey_text", "email", Redacted),
    ("journey_text", "cardholder_name", Redacted),
    ("journey_metadata", "key", RedactedCopy),
    ("journey_metadata", "value_key", Redacted),
    // Timeline: staff notes' details carry a refund's comment.
    ("journey_events", "kind", NotPayerData),
    ("journey_events", "status", NotPayerData),
    ("journey_events", "code", NotPayerData),
    ("journey_events", "message", RedactedCopy),
    ("journey_events", "detail", RedactedCopy),
    ("journey_events", "source", NotPayerData),
    ("journey_events", "dedupe_key", NotPayerData),
    // Refunds: staff-typed comments may name the payer.
    ("refund_requests", "payment_id", KeptForReconciliation),
    ("refund_requests", "reason", NotPayerData),
    ("refund_requests", "comment", RedactedCopy),
    ("refund_requests", "decision_comment", RedactedCopy),
    ("refund_requests", "case_reference", KeptForReconciliation),
    ("refund_requests", "state", NotPayerData),
    ("refund_requests", "form_key", NotPayerData),
    (
        "refund_requests",
        "platform_refund_id",
        KeptForReconciliation,
    ),
    ("refund_requests", "failure", NotPayerData),
    ("platform_refunds", "refund_id", KeptForReconciliation),
    ("platform_refunds", "payment_id", KeptForReconciliation),
    ("platform_refunds", "status", NotPayerData),
    ("platform_refunds", "settled_date", KeptForReconciliation),
    // The webhook inbox keeps ids only (no raw bodies).
    ("webhook_inbox", "message_id", NotPayerData),
    ("webhook_inbox", "event_type", NotPayerData),
    ("webhook_inbox", "resource_id", KeptForReconciliation),
    ("webhook_inbox", "created_date", NotPayerData),
    // Stored API answers (a day, for idempotency) and unconfirmed form answers (an hour).
    ("api_idempotency", "idem_key", NotPayerData),
    ("api_idempotency", "fingerprint", NotPayerData),
    ("api_idempotency", "body", RedactedCopy),
    // Recurring agreements: the service's identifier for the payer and its description are
    // emptied once the agreement has ended and none of its payments keeps payer data (retention:
    // ended before the cutoff; erasure: with the payer's payments); staff's reasons for
    // cancelling go with them. The card summary is kept like a payment's.
    ("agreements", "agreement_id", KeptForReconciliation),
    ("agreements", "reference", KeptForReconciliation),
    ("agreements", "description", Redacted),
    ("agreements", "user_identifier", Redacted),
    ("agreements", "status", NotPayerData),
    ("agreements", "card_brand", KeptForReconciliation),
    ("agreements", "card_last4", KeptForReconciliation),
    ("agreements", "card_expiry", KeptForReconciliation),
    ("agreements", "card_type", KeptForReconciliation),
    ("agreement_events", "agreement_id", KeptForReconciliation),
    ("agreement_events", "status", NotPayerData),
    ("agreement_events", "source", NotPayerData),
    ("agreement_payments", "payment_id", KeptForReconciliation),
    ("agreement_payments", "agreement_id", KeptForReconciliation),
    (
        "agreement_cancellations",
        "agreement_id",
        KeptForReconciliation,
    ),
    ("agreement_cancellations", "requested_by", NotPayerData),
    ("agreement_cancellations", "reason", RedactedCopy),
    ("agreement_cancellations", "state", NotPayerData),
    ("agreement_cancellations", "outcome", NotPayerData),
    // Disputes: the platform's ids and words, no payer data.
    ("disputes", "dispute_id", KeptForReconciliation),
    ("disputes", "payment_id", KeptForReconciliation),
    ("disputes", "reason", NotPayerData),
    ("disputes", "status", NotPayerData),
    ("disputes", "settled_date", NotPayerData),
    ("dispute_events", "dispute_id", KeptForReconciliation),
    ("dispute_events", "payment_id", KeptForReconciliation),
    ("dispute_events", "status", NotPayerData),
    ("dispute_events", "source", NotPayerData),
    // Bulk refunds: a row's comment (and the row as given, which holds it) is emptied with its
    // payment's redaction; rows that found no payment, once the file is past retention.
    ("refund_batch_rows", "input", RedactedCopy),
    ("refund_batch_rows", "refusal", NotPayerData),
    ("refund_batch_rows", "message", NotPayerData),
    ("refund_batch_rows", "payment_id", KeptForReconciliation),
    ("refund_batch_rows", "reason", NotPayerData),
    ("refund_batch_rows", "comment", RedactedCopy),
    ("refund_batch_rows", "case_reference", KeptForReconciliation),
    ("refund_batch_rows", "send_state", NotPayerData),
    // The uploaded file as it came (bytes): its comments may name payers. Once the batch is
    // finished and names a redacted payment (or is past every service's retention period) the
    // bytes are dropped; `file_hash` stays, so what was approved is still provable.
    ("refund_batches", "file_bytes", RedactedCopy),
    ("refund_batches", "file_name", NotPayerData),
    ("refund_batches", "file_hash", NotPayerData),
    ("refund_batches", "state", NotPayerData),
    ("form_drafts", "draft_key", NotPayerData),
    ("form_drafts", "kind", NotPayerData),
    ("form_drafts", "body", RedactedCopy),
    // Outbound events carry payment ids, amounts and case references only.
    ("outbound_events", "message_id", NotPayerData),
    ("outbound_events", "event_type", NotPayerData),
    ("outbound_events", "payload", KeptForReconciliation),
    ("outbound_events", "dedupe_key", NotPayerData),
    ("event_deliveries", "status", NotPayerData),
    ("event_attempts", "error", NotPayerData),
    ("event_attempts", "response_excerpt", NotPayerData),
    ("event_endpoints", "url", NotPayerData),
    ("event_endpoints", "description", NotPayerData),
    ("event_endpoints", "event_types", NotPayerData),
    ("event_endpoints", "disabled_reason", NotPayerData),
    ("event_endpoints", "secret", NotPayerData),
    ("event_endpoints", "previous_secret", NotPayerData),
    // The job queue: a mail job's payload is the mail itself (a refund's confirmation to the
    // payer); other jobs carry ids.
    ("jobs", "kind", NotPayerData),
    ("jobs", "payload", RedactedCopy),
    ("jobs", "state", NotPayerData),
    ("jobs", "locked_by", NotPayerData),
    ("jobs", "last_error", RedactedCopy),
    ("job_attempts", "worker", NotPayerData),
    ("job_attempts", "outcome", NotPayerData),
    // An attempt's error can quote a mail's address (an SMTP answer): emptied with the mail.
    ("job_attempts", "error", RedactedCopy),
    // Exports: the filter asked for; the files themselves expire (see the README).
    ("exports", "service_ids", NotPayerData),
    ("exports", "filter", NotPayerData),
    ("exports", "state", NotPayerData),
    ("exports", "progress", NotPayerData),
    ("exports", "file_name", NotPayerData),
    ("exports", "failure", NotPayerData),
    // The audit log names payments by id; personal values sit beside it.
    ("audit_log", "actor_type", NotPayerData),
    ("audit_log", "actor_id", NotPayerData),
    ("audit_log", "actor_label", NotPayerData),
    ("audit_log", "action", NotPayerData),
    ("audit_log", "target", KeptForReconciliation),
    ("audit_log", "outcome", NotPayerData),
    ("audit_log", "origin_ip", NotPayerData),
    ("audit_log", "details", NotPayerData),
    ("audit_log", "hash", NotPayerData),
    ("audit_head", "hash", NotPayerData),
    ("audit_personal", "digest", NotPayerData),
    ("audit_personal", "target", KeptForReconciliation),
    ("audit_personal", "salt", RedactedCopy),
    ("audit_personal", "value", RedactedCopy),
    // Erasure requests: who the payer is, cleared once the request is decided.
    ("erasure_requests", "service_ids", NotPayerData),
    ("erasure_requests", "email_key", Redacted),
    ("erasure_requests", "last4", Redacted),
    ("erasure_requests", "name_key", Redacted),
    ("erasure_requests", "reason", NotPayerData),
    ("erasure_requests", "case_reference", KeptForReconciliation),
    ("erasure_requests", "state", NotPayerData),
    ("erasure_requests", "outcome", KeptForReconciliation),
    // Holds name payments and why they are held (staff-typed, about the case).
    ("personal_data_holds", "reason", NotPayerData),
    // Services, staff, sessions, tokens, sync: not payer data.
    ("services", "slug", NotPayerData),
    ("services", "name", NotPayerData),
    ("services", "time_zone", NotPayerData),
    ("services", "platform_url", NotPayerData),
    ("services", "credentials", NotPayerData),
    ("services", "webhook_secret", NotPayerData),
    ("services", "refund_email_subject", NotPayerData),
    ("services", "refund_email_text", NotPayerData),
    ("services", "deep_link_template", NotPayerData),
    ("staff", "email", NotPayerData),
    ("staff", "email_key", NotPayerData),
    ("staff", "name", NotPayerData),
    ("staff", "status", NotPayerData),
    ("staff", "password_hash", NotPayerData),
    ("staff", "totp_secret", NotPayerData),
    ("staff_grants", "role", NotPayerData),
    ("staff_grants", "granted_by", NotPayerData),
    ("password_history", "password_hash", NotPayerData),
    ("sessions", "id_hash", NotPayerData),
    ("sessions", "stage", NotPayerData),
    ("sessions", "auth_method", NotPayerData),
    ("sessions", "pending_totp_secret", NotPayerData),
    ("sessions", "return_to", NotPayerData),
    ("sessions", "ip", NotPayerData),
    ("sessions", "user_agent", NotPayerData),
    ("staff_links", "id_hash", NotPayerData),
    ("staff_links", "purpose", NotPayerData),
    ("oidc_identities", "issuer", NotPayerData),
    ("oidc_identities", "subject", NotPayerData),
    ("oidc_flows", "state_hash", NotPayerData),
    ("oidc_flows", "provider", NotPayerData),
    ("oidc_flows", "nonce", NotPayerData),
    ("oidc_flows", "pkce_verifier", NotPayerData),
    ("oidc_flows", "return_to", NotPayerData),
    ("api_tokens", "name", NotPayerData),
    ("api_tokens", "token_hash", NotPayerData),
    ("api_tokens", "token_prefix", NotPayerData),
    ("api_tokens", "scopes", NotPayerData),
    ("periodic_runs", "name", NotPayerData),
    ("sync_state", "stream", NotPayerData),
    ("sync_state", "run_next_page", NotPayerData),
    ("sync_state", "last_error", NotPayerData),
];

/// The class of a column, if the inventory knows it.
pub fn class_of(table: &str, column: &str) -> Option<Class> {
    COLUMNS
        .iter()
        .find(|(t, c, _)| *t == table && *c == column)
        .map(|(_, _, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_inventory_names_each_column_once() {
        for (i, (t, c, _)) in COLUMNS.iter().enumerate() {
            assert!(
                !COLUMNS[i + 1..]
                    .iter()
                    .any(|(t2, c2, _)| t == t2 && c == c2),
                "{t}.{c} is listed twice"
            );
        }
        assert_eq!(class_of("journeys", "email"), Some(Class::Redacted));
        assert_eq!(class_of("journeys", "nope"), None);
    }

    #[test]
    fn personal_inventory_leaves_nothing_unredacted() {
        let left: Vec<String> = COLUMNS
            .iter()
            .filter(|(_, _, class)| *class == Class::NotYetRedacted)
            .map(|(t, c, _)| format!("{t}.{c}"))
            .collect();
        assert!(left.is_empty(), "retention does not reach {left:?}");
    }
}
