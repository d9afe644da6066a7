//! The columns of a reconciliation export and how one row is written.
//!
//! The first 24 columns are GOV.UK Pay's own CSV, in its order, so that finance's existing
//! spreadsheets keep working; paydesk's columns follow, then one column per metadata key
//! (sorted). A payment row's Total Amount and Net count only money taken
//! (`payment_total_and_net`). A refund row carries its payment's fields; its Amount, Total
//! Amount and Net are the refund as a negative number, and its State is "Refund success".

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::csv::Record;
use crate::search::query::StatusGroup;
use crate::store::exports::ExportRow;
use crate::timezone::Zone;

/// GOV.UK Pay's CSV columns, in its order.
pub const BASELINE: [&str; 24] = [
    "Reference",
    "Description",
    "Email",
    "Amount",
    "Card Brand",
    "Cardholder Name",
    "Card Expiry Date",
    "Card Number (last 4)",
    "State",
    "Finished",
    "Error Code",
    "Error Message",
    "Provider ID",
    "Payment ID",
    "Issued By",
    "Date Created",
    "Time Created",
    "Corporate Card Surcharge",
    "Total Amount",
    "Wallet Type",
    "Fee",
    "Net",
    "Card Type",
    "Payment Provider",
];

/// paydesk's own columns, after the baseline.
pub const PAYDESK: [&str; 11] = [
    "Record Type",
    "Service",
    "Case Reference",
    "Case Link",
    "Refund ID",
    "Refund Reason",
    "Requested By",
    "Approved By",
    "Settled Date",
    "Dispute ID",
    "Dispute Reason",
];

/// The last column, after the metadata columns (so that every earlier column keeps its
/// place): a refund row's bulk refund batch, empty for any other row.
pub const TRAILING: &str = "Bulk Refund Batch";

/// At most this many metadata columns; keys beyond them are left out (and said so).
pub const METADATA_COLUMNS_MAX: usize = 100;

/// What writing rows needs besides the rows.
pub struct Layout {
    pub zone: Zone,
    /// Service names by id.
    pub services: HashMap<i64, String>,
    /// Each service's deep-link template into its case system, where it has one.
    pub deep_links: HashMap<i64, String>,
    pub metadata_keys: Vec<String>,
}

impl Layout {
    pub fn header(&self, out: &mut Vec<u8>) {
        let mut r = Record::start(out);
        for name in BASELINE.iter().chain(PAYDESK.iter()) {
            r.plain(name);
        }
        for key in &self.metadata_keys {
            r.text(key);
        }
        r.plain(TRAILING);
        r.end();
    }

    /// Write one row. Payment, refund and dispute rows share the columns.
    pub fn row(&self, out: &mut Vec<u8>, service_id: i64, row: &ExportRow<'_>) {
        let kind = Kind::of(row);
        let mut r = Record::start(out);
        r.text(&row.reference)
            .text(&row.description)
            .opt_text(row.email.as_deref());
        match &kind {
            Kind::Payment => r.money(row.amount),
            Kind::Refund(minus) => r.money(*minus),
            Kind::Dispute(m) => r.money(m.amount),
        };
        r.opt_text(row.card_brand.as_deref())
            .opt_text(row.cardholder_name.as_deref())
            .opt_text(row.expiry_date.as_deref())
            .opt_text(row.last_digits.as_deref());
        match &kind {
            Kind::Payment => r
                .plain(state_label(&row.status, row.state_code.as_deref()))
                .plain(if row.finished { "true" } else { "false" })
                .opt_text(row.state_code.as_deref())
                .opt_text(row.state_message.as_deref()),
            Kind::Refund(_) => r.plain("Refund success").plain("true").plain("").plain(""),
            Kind::Dispute(m) => r
                .plain(m.state)
                .plain(if m.finished { "true" } else { "false" })
                .plain("")
                .plain(""),
        };
        r.opt_text(row.provider_id.as_deref())
            .text(&row.payment_id)
            .opt_text(row.requested_by.as_deref());
        let (date, clock) = local_date_time(self.zone, row.created_at);
        r.plain(&date.text()).plain(&clock.text());
        match &kind {
            Kind::Payment => {
                let (total, net) = payment_total_and_net(row);
                r.opt_money(row.corporate_surcharge)
                    .opt_money(total)
                    .opt_text(row.wallet_type.as_deref())
                    .opt_money(row.fee)
                    .opt_money(net);
            }
            Kind::Refund(minus) => {
                r.plain("")
                    .money(*minus)
                    .opt_text(row.wallet_type.as_deref())
                    .plain("")
                    .money(*minus);
            }
            Kind::Dispute(m) => {
                r.plain("")
                    .opt_money(m.total)
                    .opt_text(row.wallet_type.as_deref())
                    .opt_money(m.fee)
                    .opt_money(m.net);
            }
        }
        r.opt_text(row.card_type.as_deref())
            .opt_text(row.payment_provider.as_deref());
        // paydesk's columns.
        r.plain(match kind {
            Kind::Payment => "Payment",
            Kind::Refund(_) => "Refund",
            Kind::Dispute(_) => "Dispute",
        })
        .text(
            self.services
                .get(&service_id)
                .map(String::as_str)
                .unwrap_or(""),
        )
        .opt_text(row.case_reference.as_deref())
        .opt_text(self.case_link(service_id, row).as_deref())
        .opt_text(row.refund_id.as_deref())
        .opt_text(row.refund_reason.as_deref().map(reason_label))
        .opt_text(row.requested_by.as_deref())
        .opt_text(row.approved_by.as_deref())
        .opt_text(row.settled_date.as_deref())
        .opt_text(row.dispute_id.as_deref());
        match row.dispute_reason.as_deref() {
            Some(reason) => r.text(&crate::disputes::rules::reason_label(reason)),
            None => r.plain(""),
        };
        if !self.metadata_keys.is_empty() {
            let metadata = row
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str::<Metadata<'_>>(m).ok());
            for key in &self.metadata_keys {
                match metadata.as_ref().and_then(|m| m.get(key)) {
                    Some(text) => r.text(text),
                    None => r.plain(""),
                };
            }
        }
        match row.batch_id {
            Some(id) => r.int(id),
            None => r.plain(""),
        };
        r.end();
    }
}

/// What a row is: a payment, a refund (its amount, negative) or a dispute (its money).
enum Kind {
    Payment,
    Refund(i64),
    Dispute(DisputeMoney),
}

impl Kind {
    fn of(row: &ExportRow<'_>) -> Kind {
        if let Some(status) = row.dispute_status.as_deref() {
            Kind::Dispute(dispute_money(
                status,
                row.dispute_amount.unwrap_or(0),
                row.dispute_fee,
            ))
        } else if let Some(amount) = row.refund_amount {
            Kind::Refund(-amount)
        } else {
            Kind::Payment
        }
    }
}

/// A dispute row's cells, as GOV.UK Pay's CSV writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeMoney {
    /// State, in GOV.UK Pay's words.
    pub state: &'static str,
    pub finished: bool,
    /// Amount: positive for a dispute won, negative otherwise.
    pub amount: i64,
    /// Total Amount, Fee and Net: the money the dispute moved.
    pub total: Option<i64>,
    pub fee: Option<i64>,
    pub net: Option<i64>,
}

/// A dispute row's cells. Amount is positive when the dispute is won (the money stays with
/// the service) and negative otherwise. Only a lost dispute moves money: the platform takes
/// its amount and its fee from the next payout, so Total Amount is the amount taken, Fee the
/// fee and Net both (Total Amount less Fee, as for any row). A won dispute is finished and
/// moved nothing (0.00); an open one is in progress (empty), like an unfinished payment. The
/// month-end totals sum the same (`store::exports::totals_by_settlement`).
pub fn dispute_money(status: &str, amount: i64, fee: Option<i64>) -> DisputeMoney {
    let (state, finished) = match status {
        "needs_response" => ("Dispute awaiting evidence", false),
        "under_review" => ("Dispute under review", false),
        "won" => ("Dispute won in your favour", true),
        "lost" => ("Dispute lost to customer", true),
        _ => ("Dispute", false),
    };
    let (total, fee, net) = match status {
        "lost" => {
            let fee = fee.unwrap_or(0);
            (Some(-amount), Some(fee), Some(-amount - fee))
        }
        "won" => (Some(0), None, Some(0)),
        _ => (None, None, None),
    };
    DisputeMoney {
        state,
        finished,
        amount: if status == "won" { amount } else { -amount },
        total,
        fee,
        net,
    }
}

/// A payment row's Total Amount and Net, as GOV.UK Pay's CSV writes them: the money taken
/// (amount with any surcharge) and that less the fee for a successful payment; 0.00 and 0.00
/// for a finished payment that took nothing (failed, declined, cancelled, timed out, error);
/// empty while the payment is still in progress. So the sum of Net over any export is the
/// money the service keeps, as the month-end totals count it.
pub fn payment_total_and_net(row: &ExportRow<'_>) -> (Option<i64>, Option<i64>) {
    if row.status == "success" {
        let total = row.total_amount.unwrap_or(row.amount);
        (Some(total), Some(total - row.fee.unwrap_or(0)))
    } else if row.finished {
        (Some(0), Some(0))
    } else {
        (None, None)
    }
}

impl Layout {
    /// The link into the service's case system for the row's case reference, if both exist.
    fn case_link(&self, service_id: i64, row: &ExportRow<'_>) -> Option<String> {
        let template = self.deep_links.get(&service_id)?;
        let case_ref = row.case_reference.as_deref()?;
        crate::integrations::deep_link::render(template, case_ref, &row.payment_id, &row.reference)
    }
}

/// A payment's state as finance reads it: its status group ("Success", "Declined"…).
pub fn state_label(status: &str, code: Option<&str>) -> &'static str {
    StatusGroup::ALL
        .into_iter()
        .find(|g| {
            g.members()
                .iter()
                .any(|(s, c)| *s == status && (c.is_none() || *c == code))
        })
        .map(StatusGroup::label)
        .unwrap_or(match status {
            "failed" => "Failed",
            _ => "Unknown",
        })
}

fn reason_label(name: &str) -> &str {
    crate::refunds::rules::Reason::parse(name)
        .map(|r| r.label())
        .unwrap_or(name)
}

/// A few ASCII characters written by paydesk (a date, a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<const N: usize>([u8; N]);

impl<const N: usize> Stamp<N> {
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

fn two(n: u8) -> [u8; 2] {
    [b'0' + n / 10 % 10, b'0' + n % 10]
}

/// A time as a local date (YYYY-MM-DD) and time (HH:MM:SS) in `zone`.
pub fn local_date_time(zone: Zone, us: i64) -> (Stamp<10>, Stamp<8>) {
    let t = crate::store::from_micros(us);
    let local = t.to_offset(zone.offset_at(t));
    let year = local.year().clamp(0, 9999) as u16;
    let (y1, y2) = (two((year / 100) as u8), two((year % 100) as u8));
    let (month, day) = (two(u8::from(local.month())), two(local.day()));
    let (h, m, sec) = (two(local.hour()), two(local.minute()), two(local.second()));
    (
        Stamp([
            y1[0], y1[1], y2[0], y2[1], b'-', month[0], month[1], b'-', day[0], day[1],
        ]),
        Stamp([h[0], h[1], b':', m[0], m[1], b':', sec[0], sec[1]]),
    )
}

/// A row's metadata, read without copying where it can: each key with its value as its
/// cell's text (a string as it is, null as nothing, any other value as its JSON).
struct Metadata<'a>(Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>);

impl Metadata<'_> {
    /// A key's cell text; of a key given twice, the last (as a JSON reader keeps it).
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
}

impl<'de> Deserialize<'de> for Metadata<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Metadata<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata<'de>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(Cell(key)) = map.next_key::<Cell<'de>>()? {
                    let Cell(value) = map.next_value::<Cell<'de>>()?;
                    pairs.push((key.unwrap_or_default(), value));
                }
                Ok(Metadata(pairs))
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// One metadata value as its cell's text.
struct Cell<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Cell<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        fn json<E>(v: serde_json::Value) -> Result<Cell<'static>, E> {
            Ok(Cell(Some(Cow::Owned(v.to_string()))))
        }
        impl<'de> Visitor<'de> for Text {
            type Value = Cell<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cell<'de>, E> {
                Ok(Cell(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell<'de>, E> {
                Ok(Cell(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell<'de>, E> {
                Ok(Cell(Some(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
                Ok(Cell(None))
            }
            fn visit_none<E>(self) -> Result<Cell<'de>, E> {
                Ok(Cell(None))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell<'de>, E> {
                json(v.into())
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell<'de>, E> {
                json(v.into())
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell<'de>, E> {
                json(v.into())
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell<'de>, E> {
                json(v.into())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell<'de>, A::Error> {
                json(serde_json::Value::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell<'de>, A::Error> {
                json(serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?)
            }
        }
        d.deserialize_any(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ExportRow<'static> {
        ExportRow {
            id: 1,
            settled_date: Some("2026-11-02".into()),
            created_at: 1_793_491_200_000_000, // 2026-11-01T00:00:00Z
            payment_id: "pay1".into(),
            reference: "=REF".into(),
            description: "Permit, \"annual\"".into(),
            email: Some("a@example.com".into()),
            amount: 1250,
            card_brand: Some("visa".into()),
            cardholder_name: Some("A Payer".into()),
            expiry_date: Some("12/29".into()),
            last_digits: Some("4242".into()),
            status: "success".into(),
            state_code: None,
            state_message: None,
            finished: true,
            provider_id: Some("pr1".into()),
            corporate_surcharge: Some(50),
            total_amount: Some(1300),
            wallet_type: None,
            fee: Some(20),
            card_type: Some("debit".into()),
            payment_provider: Some("sandbox".into()),
            case_reference: Some("C-1".into()),
            metadata: Some(r#"{"ledger":"-7","n":3}"#.into()),
            refund_id: None,
            refund_amount: None,
            refund_reason: None,
            requested_by: None,
            approved_by: None,
            dispute_id: None,
            dispute_status: None,
            dispute_amount: None,
            dispute_fee: None,
            dispute_reason: None,
            batch_id: None,
        }
    }

    fn layout() -> Layout {
        Layout {
            zone: Zone::named("Europe/London").unwrap(),
            services: HashMap::from([(7, "Parking permits".to_string())]),
            deep_links: HashMap::from([(
                7,
                "https://crm.example.gov/cases/{case_ref}".to_string(),
            )]),
            metadata_keys: vec!["ledger".into(), "n".into(), "absent".into()],
        }
    }

    #[test]
    fn header_lists_baseline_then_paydesk_then_metadata() {
        let mut out = Vec::new();
        layout().header(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Reference,Description,Email,Amount,Card Brand,"));
        assert!(text.ends_with(
            "Payment Provider,Record Type,Service,Case Reference,Case Link,Refund ID,Refund Reason,Requested By,Approved By,Settled Date,Dispute ID,Dispute Reason,ledger,n,absent,Bulk Refund Batch\r\n"
        ));
    }

    #[test]
    fn payment_and_refund_rows() {
        let l = layout();
        let mut out = Vec::new();
        l.row(&mut out, 7, &row());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "'=REF,\"Permit, \"\"annual\"\"\",a@example.com,12.50,visa,A Payer,12/29,4242,Success,true,,,pr1,pay1,,2026-11-01,00:00:00,0.50,13.00,,0.20,12.80,debit,sandbox,Payment,Parking permits,C-1,https://crm.example.gov/cases/C-1,,,,,2026-11-02,,,'-7,3,,\r\n"
        );
        let mut refund = row();
        refund.refund_id = Some("rf1".into());
        refund.refund_amount = Some(500);
        refund.refund_reason = Some("duplicate".into());
        refund.requested_by = Some("case@example.gov".into());
        refund.batch_id = Some(12);
        let mut out = Vec::new();
        l.row(&mut out, 7, &refund);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(",'-7,3,,12\r\n"),
            "the batch is the last column: {text}"
        );
        assert!(text.contains(",-5.00,visa,"), "{text}");
        assert!(text.contains(",Refund success,true,,,pr1,pay1,case@example.gov,"));
        assert!(text.contains(",,-5.00,,,-5.00,debit,sandbox,Refund,Parking permits,C-1,https://crm.example.gov/cases/C-1,rf1,"));
    }

    #[test]
    fn dispute_rows_carry_their_payment_and_move_money_only_when_lost() {
        let lost = dispute_money("lost", 4200, Some(2000));
        assert_eq!(
            (lost.amount, lost.total, lost.fee, lost.net),
            (-4200, Some(-4200), Some(2000), Some(-6200))
        );
        assert_eq!(lost.net, Some(lost.total.unwrap() - lost.fee.unwrap()));
        let won = dispute_money("won", 4200, Some(2000));
        assert_eq!(
            (won.amount, won.total, won.fee, won.net, won.finished),
            (4200, Some(0), None, Some(0), true)
        );
        for open in ["needs_response", "under_review"] {
            let m = dispute_money(open, 4200, Some(2000));
            assert_eq!(
                (m.amount, m.total, m.net, m.finished),
                (-4200, None, None, false)
            );
        }
        let mut d = row();
        d.dispute_id = Some("dp1".into());
        d.dispute_status = Some("lost".into());
        d.dispute_amount = Some(1250);
        d.dispute_fee = Some(2000);
        d.dispute_reason = Some("fraudulent".into());
        let mut out = Vec::new();
        layout().row(&mut out, 7, &d);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("'=REF,"), "{text}");
        assert!(text.contains(",-12.50,visa,"), "{text}");
        assert!(
            text.contains(",Dispute lost to customer,true,,,pr1,pay1,,"),
            "{text}"
        );
        assert!(
            text.contains(",,-12.50,,20.00,-32.50,debit,sandbox,Dispute,Parking permits,C-1,"),
            "{text}"
        );
        assert!(text.contains(",2026-11-02,dp1,Fraudulent,'-7,3,"), "{text}");
    }

    #[test]
    fn total_and_net_count_only_money_taken() {
        let ok = row();
        assert_eq!(payment_total_and_net(&ok), (Some(1300), Some(1280)));
        let mut no_fee = row();
        no_fee.fee = None;
        no_fee.total_amount = None;
        assert_eq!(payment_total_and_net(&no_fee), (Some(1250), Some(1250)));
        for status in ["failed", "cancelled", "error"] {
            let mut done = row();
            done.status = status.into();
            assert_eq!(payment_total_and_net(&done), (Some(0), Some(0)), "{status}");
        }
        for status in ["created", "started", "submitted", "capturable"] {
            let mut open = row();
            open.status = status.into();
            open.finished = false;
            assert_eq!(payment_total_and_net(&open), (None, None), "{status}");
        }
        // Written as GOV.UK Pay writes them: 0.00 when finished, empty while in progress.
        let l = layout();
        let mut failed = row();
        failed.status = "failed".into();
        failed.fee = None;
        failed.corporate_surcharge = None;
        let mut out = Vec::new();
        l.row(&mut out, 7, &failed);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(",00:00:00,,0.00,,,0.00,debit,"), "{text}");
        let mut open = failed.clone();
        open.status = "started".into();
        open.finished = false;
        let mut out = Vec::new();
        l.row(&mut out, 7, &open);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(",00:00:00,,,,,,debit,"), "{text}");
    }

    #[test]
    fn created_times_follow_the_zone_across_summer_time() {
        let london = Zone::named("Europe/London").unwrap();
        // 2026-06-30T23:30:00Z is 1 July, 00:30 in London (BST).
        let us = 1_782_862_200_000_000;
        let text = |(d, t): (Stamp<10>, Stamp<8>)| (d.text().to_string(), t.text().to_string());
        assert_eq!(
            text(local_date_time(london, us)),
            ("2026-07-01".into(), "00:30:00".into())
        );
        assert_eq!(
            text(local_date_time(Zone::utc(), us)),
            ("2026-06-30".into(), "23:30:00".into())
        );
    }

    #[test]
    fn states() {
        assert_eq!(state_label("success", None), "Success");
        assert_eq!(state_label("failed", Some("P0010")), "Declined");
        assert_eq!(state_label("failed", Some("P0020")), "Timed out");
        assert_eq!(state_label("failed", Some("P0030")), "Cancelled");
        assert_eq!(state_label("failed", Some("P0050")), "Failed");
        assert_eq!(state_label("created", None), "In progress");
    }
}
