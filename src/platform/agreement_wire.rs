//! The recurring agreements' wire format (`GET|POST /v1/agreements`, `GET /v1/agreements/{id}`,
//! `POST /v1/agreements/{id}/cancel` in `govuk-pay-publicapi.json`): what the client reads and
//! the sandbox writes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::types::{wire_time, CardDetails, SearchLinks};

/// Where an agreement is (`Agreement.status`): `created` until its first payment sets it up,
/// `active` while payments may be taken under it, `cancelled` by the service or `inactive` once
/// its card can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgreementStatus {
    Created,
    Active,
    Cancelled,
    Inactive,
}

impl AgreementStatus {
    pub const ALL: [AgreementStatus; 4] = [
        AgreementStatus::Created,
        AgreementStatus::Active,
        AgreementStatus::Cancelled,
        AgreementStatus::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgreementStatus::Created => "created",
            AgreementStatus::Active => "active",
            AgreementStatus::Cancelled => "cancelled",
            AgreementStatus::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<AgreementStatus> {
        AgreementStatus::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// created → active → cancelled or inactive: an agreement only ever moves to a higher
    /// rank, and an ended one never changes again.
    pub fn rank(self) -> i32 {
        match self {
            AgreementStatus::Created => 0,
            AgreementStatus::Active => 1,
            AgreementStatus::Cancelled | AgreementStatus::Inactive => 2,
        }
    }
}

/// `Agreement.payment_instrument` (`PaymentInstrument`): the card payments are taken from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentInstrument {
    /// The contract spells this key with capitals.
    #[serde(
        rename = "CardDetails",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub card_details: Option<CardDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub instrument_type: Option<String>,
}

/// An agreement (`Agreement`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub agreement_id: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub description: String,
    pub status: AgreementStatus,
    #[serde(with = "wire_time")]
    pub created_date: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_instrument: Option<PaymentInstrument>,
}

/// `GET /v1/agreements` (`AgreementSearchResults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementsPage {
    pub total: i64,
    pub count: i64,
    pub page: i64,
    pub results: Vec<Agreement>,
    #[serde(rename = "_links", default)]
    pub links: SearchLinks,
}

/// `POST /v1/agreements` (`CreateAgreementRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateAgreement {
    pub reference: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_identifier: Option<String>,
}

/// `GET /v1/agreements` filters (the first page; later pages follow `_links.next_page`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgreementSearch {
    pub reference: Option<String>,
    pub status: Option<AgreementStatus>,
    pub page: Option<u32>,
    pub display_size: Option<u32>,
}

impl AgreementSearch {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(r) = &self.reference {
            q.push(("reference", r.clone()));
        }
        if let Some(s) = self.status {
            q.push(("status", s.as_str().to_string()));
        }
        if let Some(p) = self.page {
            q.push(("page", p.to_string()));
        }
        if let Some(d) = self.display_size {
            q.push(("display_size", d.to_string()));
        }
        q
    }
}
