//! A journey's timeline as people and systems read it: each stored event turned into a title
//! in the words of GOV.UK Pay's own timeline (Submitted, Successful, Declined, Refund
//! successful...) and a line of text, in time order, newest first, with one "Payment created"
//! and "First seen by paydesk" so it always starts somewhere. What staff did is a "Staff
//! action"; what paydesk did by itself (sending a refund, hearing how it ended) says so. The
//! journey page and the CRM API both show this. Pure: no I/O.

use serde_json::{Map, Value};

use crate::money::pounds as money;
use crate::store::journeys::{EventRow, JourneyRow};

/// One entry, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened: UTC microseconds.
    pub at: i64,
    /// `state`, `refund`, `dispute`, `webhook`, `staff`, `system` (done by paydesk itself),
    /// `attention`, `seen` or `created`.
    pub kind: String,
    pub title: String,
    pub text: String,
    /// Who says it happened: `platform`, `observed` (seen by paydesk, time approximate) or
    /// `paydesk`.
    pub source: String,
    /// The bulk refund batch the entry is about (a row of it asked for this refund).
    pub batch: Option<i64>,
}

impl Entry {
    /// How the source is put to people.
    pub fn source_label(&self) -> &'static str {
        match self.source.as_str() {
            "platform" => "Reported by the platform",
            "observed" => "Seen by paydesk (time approximate)",
            _ => "Recorded by paydesk",
        }
    }
}

/// A state as GOV.UK Pay's timeline names it.
pub fn state_title(status: &str, code: Option<&str>) -> &'static str {
    match (status, code) {
        ("created", _) => "Payment created",
        ("started", _) => "Payment started",
        ("submitted", _) => "Submitted",
        ("capturable", _) => "Awaiting capture",
        ("success", _) => "Successful",
        ("failed", Some("P0010")) => "Declined",
        ("failed", Some("P0020")) => "Timed out",
        ("failed", Some("P0030")) => "Cancelled by the payer",
        ("failed", _) => "Failed",
        ("cancelled", _) => "Cancelled by the service",
        ("error", _) => "Error",
        _ => "Status changed",
    }
}

/// A platform refund's state as GOV.UK Pay's timeline names it.
pub fn refund_title(status: &str) -> String {
    match status {
        "submitted" => "Refund submitted".into(),
        "success" => "Refund successful".into(),
        "error" => "Refund failed".into(),
        other => format!("Refund {other}"),
    }
}

/// A dispute's status as GOV.UK Pay's timeline names it.
pub fn dispute_title(status: &str) -> &'static str {
    match status {
        "needs_response" => "Dispute awaiting evidence",
        "under_review" => "Dispute under review",
        "lost" => "Dispute lost to user",
        "won" => "Dispute won in your favour",
        _ => "Dispute",
    }
}

/// What paydesk did by itself (`journey_store::SystemEvent`), as a title.
fn system_title(what: &str) -> &'static str {
    match what {
        "refund_sent" => "Refund sent to the platform",
        "refund_failed" => "Refund failed",
        "refund_succeeded" => "Refund successful",
        _ => "Recorded by paydesk",
    }
}

/// The timeline of `journey` from its stored `events`. Webhooks received are left out unless
/// `with_webhooks`.
pub fn entries(journey: &JourneyRow, events: &[EventRow], with_webhooks: bool) -> Vec<Entry> {
    let mut out = Vec::with_capacity(events.len() + 2);
    for e in events {
        if !with_webhooks && e.kind == "webhook" {
            continue;
        }
        // The platform's own "created" is the one "Payment created" entry added below.
        if e.kind == "state" && e.status.as_deref() == Some("created") {
            continue;
        }
        let detail: Map<String, Value> = e
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let (kind, title, text) = match e.kind.as_str() {
            "state" => {
                let raw = e.status.clone().unwrap_or_default();
                let title = state_title(&raw, e.code.as_deref());
                let text = match (&e.code, &e.message) {
                    (Some(code), Some(msg)) => format!("{raw} — {code}: {msg}"),
                    _ => raw,
                };
                ("state", title.to_string(), text)
            }
            "refund" => {
                let amount = e.amount.map(money).unwrap_or_default();
                let by = detail
                    .get("requested_by")
                    .and_then(Value::as_str)
                    .map(|who| format!(", requested by {who}"))
                    .unwrap_or_default();
                let approved = detail
                    .get("approved_by")
                    .and_then(Value::as_str)
                    .map(|who| format!(", approved by {who}"))
                    .unwrap_or_default();
                (
                    "refund",
                    refund_title(e.status.as_deref().unwrap_or_default()),
                    format!("{amount}{by}{approved}"),
                )
            }
            "dispute" => (
                "dispute",
                dispute_title(e.status.as_deref().unwrap_or_default()).to_string(),
                e.amount.map(money).unwrap_or_default(),
            ),
            "webhook" => (
                "webhook",
                "Webhook received".to_string(),
                e.status.clone().unwrap_or_default(),
            ),
            // A staff event with a `status` is one paydesk recorded by itself.
            "staff" => match e.status.as_deref() {
                Some(what) => (
                    "system",
                    system_title(what).to_string(),
                    e.message.clone().unwrap_or_default(),
                ),
                None => (
                    "staff",
                    "Staff action".to_string(),
                    e.message.clone().unwrap_or_default(),
                ),
            },
            _ => (
                "attention",
                "Needs attention".to_string(),
                e.message.clone().unwrap_or_default(),
            ),
        };
        out.push(Entry {
            at: e.occurred_at,
            kind: kind.to_string(),
            title,
            text,
            source: e.source.clone(),
            batch: detail.get("batch").and_then(Value::as_i64),
        });
    }
    // A journey first met in a search has no events from before paydesk saw it: say when it
    // was created and first seen, so the timeline always starts somewhere.
    out.push(Entry {
        at: journey.first_seen_at,
        kind: "seen".into(),
        title: "First seen by paydesk".into(),
        text: format!("Status {}", journey.status),
        source: "paydesk".into(),
        batch: None,
    });
    out.push(Entry {
        at: journey.created_at,
        kind: "created".into(),
        title: "Payment created".into(),
        text: money(journey.amount),
        source: "platform".into(),
        batch: None,
    });
    // Newest first, in time order whatever the source; at one instant, "Payment created"
    // stays last (the sort keeps the order of equals).
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64, kind: &str, status: Option<&str>, code: Option<&str>) -> EventRow {
        EventRow {
            occurred_at: at,
            kind: kind.into(),
            status: status.map(str::to_string),
            code: code.map(str::to_string),
            message: Some("m".into()),
            amount: Some(500),
            detail: None,
            source: "platform".into(),
        }
    }

    #[test]
    fn in_time_order_with_one_payment_created_and_plain_titles() {
        let j = JourneyRow {
            created_at: 100,
            first_seen_at: 250,
            amount: 1000,
            ..Default::default()
        };
        // Deliberately out of order, as an observed event recorded late can be.
        let events = vec![
            event(300, "state", Some("success"), None),
            event(400, "refund", Some("success"), None),
            event(200, "state", Some("submitted"), None),
            event(100, "state", Some("created"), None),
            event(350, "staff", None, None),
            event(360, "staff", Some("refund_sent"), None),
            event(500, "dispute", Some("needs_response"), None),
        ];
        let got = entries(&j, &events, false);
        let titles: Vec<&str> = got.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Dispute awaiting evidence",
                "Refund successful",
                "Refund sent to the platform",
                "Staff action",
                "Successful",
                "First seen by paydesk",
                "Submitted",
                "Payment created"
            ]
        );
        assert!(got.windows(2).all(|w| w[0].at >= w[1].at));
        assert_eq!(got[0].kind, "dispute");
        assert_eq!(got[2].kind, "system");
        assert_eq!(got[3].kind, "staff");
    }

    #[test]
    fn states_are_named_as_the_platform_names_them() {
        assert_eq!(state_title("failed", Some("P0010")), "Declined");
        assert_eq!(state_title("failed", Some("P0020")), "Timed out");
        assert_eq!(
            state_title("failed", Some("P0030")),
            "Cancelled by the payer"
        );
        assert_eq!(
            state_title("cancelled", Some("P0040")),
            "Cancelled by the service"
        );
        assert_eq!(state_title("error", Some("P0050")), "Error");
        assert_eq!(refund_title("error"), "Refund failed");
    }
}
