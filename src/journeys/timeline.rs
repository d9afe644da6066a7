//! A journey's timeline as people and systems read it: each stored event turned into a title
//! and a line of text, newest first, ending with "First seen by paydesk" and "Payment
//! created" so it always starts somewhere. The journey page and the CRM API both show this.
//! Pure: no I/O.

use serde_json::{Map, Value};

use crate::money::pounds as money;
use crate::search::query::StatusGroup;
use crate::store::journeys::{EventRow, JourneyRow};

/// One entry, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened: UTC microseconds.
    pub at: i64,
    /// `state`, `refund`, `webhook`, `staff`, `attention`, `seen` or `created`.
    pub kind: String,
    pub title: String,
    pub text: String,
    /// Who says it happened: `platform`, `observed` (seen by paydesk, time approximate) or
    /// `paydesk`.
    pub source: String,
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

/// The timeline of `journey` from its stored `events` (newest first, as the store reads
/// them). Webhooks received are left out unless `with_webhooks`.
pub fn entries(journey: &JourneyRow, events: &[EventRow], with_webhooks: bool) -> Vec<Entry> {
    let mut out = Vec::with_capacity(events.len() + 2);
    for e in events {
        if !with_webhooks && e.kind == "webhook" {
            continue;
        }
        let detail: Map<String, Value> = e
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let (title, text) = match e.kind.as_str() {
            "state" => {
                let g = e
                    .status
                    .as_deref()
                    .map(|s| StatusGroup::of(s, e.code.as_deref()).label())
                    .unwrap_or("Status");
                let raw = e.status.clone().unwrap_or_default();
                let text = match (&e.code, &e.message) {
                    (Some(code), Some(msg)) => format!("{raw} — {code}: {msg}"),
                    _ => raw,
                };
                (g.to_string(), text)
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
                    format!("Refund {}", e.status.clone().unwrap_or_default()),
                    format!("{amount}{by}{approved}"),
                )
            }
            "webhook" => (
                "Webhook received".to_string(),
                e.status.clone().unwrap_or_default(),
            ),
            "staff" => (
                "Staff action".to_string(),
                e.message.clone().unwrap_or_default(),
            ),
            _ => (
                "Needs attention".to_string(),
                e.message.clone().unwrap_or_default(),
            ),
        };
        let kind = match e.kind.as_str() {
            k @ ("state" | "refund" | "webhook" | "staff") => k,
            _ => "attention",
        };
        out.push(Entry {
            at: e.occurred_at,
            kind: kind.to_string(),
            title,
            text,
            source: e.source.clone(),
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
    });
    out.push(Entry {
        at: journey.created_at,
        kind: "created".into(),
        title: "Payment created".into(),
        text: money(journey.amount),
        source: "platform".into(),
    });
    out
}
