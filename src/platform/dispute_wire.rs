//! The dispute search's wire format (`GET /v1/disputes` in `govuk-pay-publicapi.json`): what
//! the client reads and the sandbox writes, beside the payment and refund shapes of `types`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::types::{format_date, wire_time, Link, RefundSettlement, SearchLinks};

/// Where a dispute is (`DisputeDetailForSearch.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    NeedsResponse,
    UnderReview,
    Won,
    Lost,
}

impl DisputeStatus {
    pub const ALL: [DisputeStatus; 4] = [
        DisputeStatus::NeedsResponse,
        DisputeStatus::UnderReview,
        DisputeStatus::Won,
        DisputeStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::NeedsResponse => "needs_response",
            DisputeStatus::UnderReview => "under_review",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<DisputeStatus> {
        DisputeStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// needs_response → under_review → won or lost: a dispute only ever moves to a higher
    /// rank, and a decided one never changes again.
    pub fn rank(self) -> i32 {
        match self {
            DisputeStatus::NeedsResponse => 0,
            DisputeStatus::UnderReview => 1,
            DisputeStatus::Won | DisputeStatus::Lost => 2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DisputeLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Link>,
}

/// A dispute as `GET /v1/disputes` gives it (`DisputeDetailForSearch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispute {
    pub dispute_id: String,
    pub payment_id: String,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<i64>,
    /// Only for a lost dispute: what the provider takes from the next payout (negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_amount: Option<i64>,
    #[serde(with = "wire_time")]
    pub created_date: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_due_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: DisputeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_summary: Option<RefundSettlement>,
    #[serde(default, rename = "_links", skip_serializing_if = "Option::is_none")]
    pub links: Option<DisputeLinks>,
}

/// One page of `GET /v1/disputes` (`DisputesSearchResults`: its links are `links`, not
/// `_links` as on the other searches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisputesPage {
    pub total: i64,
    pub count: i64,
    pub page: i64,
    pub results: Vec<Dispute>,
    #[serde(default)]
    pub links: SearchLinks,
}

/// Query for `GET /v1/disputes`: `from_date` inclusive, `to_date` exclusive (created, UTC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DisputeSearch {
    pub from_date: Option<OffsetDateTime>,
    pub to_date: Option<OffsetDateTime>,
    pub from_settled_date: Option<time::Date>,
    pub to_settled_date: Option<time::Date>,
    pub status: Option<DisputeStatus>,
    pub page: Option<u32>,
    pub display_size: Option<u32>,
}

impl DisputeSearch {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        // The platform wants second-level accuracy here: `YYYY-MM-DDThh:mm:ssZ`. The window
        // only ever widens to whole seconds (`from` down, the exclusive `to` up), so nothing
        // raised in its last part-second is missed.
        let second = |t: OffsetDateTime| {
            let s = wire_time::format(t);
            format!("{}Z", &s[..19])
        };
        let mut q = Vec::new();
        if let Some(d) = self.from_date {
            q.push(("from_date", second(d)));
        }
        if let Some(d) = self.to_date {
            let up = if d.nanosecond() == 0 {
                d
            } else {
                d + time::Duration::seconds(1)
            };
            q.push(("to_date", second(up)));
        }
        if let Some(d) = self.from_settled_date {
            q.push(("from_settled_date", format_date(d)));
        }
        if let Some(d) = self.to_settled_date {
            q.push(("to_settled_date", format_date(d)));
        }
        if let Some(s) = self.status {
            q.push(("status", s.as_str().to_string()));
        }
        if let Some(p) = self.page {
            q.push(("page", p.to_string()));
        }
        if let Some(p) = self.display_size {
            q.push(("display_size", p.to_string()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispute_search_widens_its_window_to_whole_seconds() {
        let at = |s: &str| wire_time::parse(s).unwrap();
        let q = DisputeSearch {
            from_date: Some(at("2026-12-07T17:08:00.700Z")),
            to_date: Some(at("2026-12-07T17:08:00.300Z")),
            status: Some(DisputeStatus::UnderReview),
            ..Default::default()
        };
        assert_eq!(
            q.pairs(),
            vec![
                ("from_date", "2026-12-07T17:08:00Z".to_string()),
                ("to_date", "2026-12-07T17:08:01Z".to_string()),
                ("status", "under_review".to_string()),
            ]
        );
    }
}
