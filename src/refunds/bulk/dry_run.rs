//! The dry run, pure: every row of a bulk file checked by the same rules as a single refund
//! (`refunds::check`, the one money parser through `HowMuch::from_form`, the service's
//! settings), against what is still refundable (the platform's amount less open requests,
//! less earlier rows of the same file for the same payment), and a summary of the whole.
//! Looking payments up is the caller's; this decides.

use std::collections::{BTreeMap, HashMap};

use super::file::InputRow;
use crate::refunds::rules::{self, AmountProblem, Reason};
use crate::refunds::{check, Ask, HowMuch, NotAsked, RefundSettings};

/// What paydesk knows of a payment a row may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFacts {
    pub journey_id: i64,
    pub service_id: i64,
    pub payment_id: String,
    pub reference: String,
    pub refund_status: Option<String>,
    /// Still refundable for a new request: the platform's amount less open requests.
    pub available: i64,
}

/// The payments a file's rows name, by payment id and by lower-cased reference.
#[derive(Debug, Default)]
pub struct Payments {
    pub by_id: HashMap<String, Vec<PaymentFacts>>,
    pub by_reference: HashMap<String, Vec<PaymentFacts>>,
}

impl Payments {
    pub fn add(&mut self, p: PaymentFacts) {
        self.by_reference
            .entry(p.reference.to_lowercase())
            .or_default()
            .push(p.clone());
        self.by_id.entry(p.payment_id.clone()).or_default().push(p);
    }
}

/// Why a row is refused, for the summary's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    Unreadable,
    NotFound,
    NotYours,
    Ambiguous,
    NotRefundable,
    Amount,
    MoreThanLeft,
    Duplicate,
    CaseReference,
    Reason,
    Text,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unreadable => "Row cannot be read",
            Refusal::NotFound => "Payment not found",
            Refusal::NotYours => "Payment in a service you cannot refund",
            Refusal::Ambiguous => "Reference matches more than one payment",
            Refusal::NotRefundable => "Payment cannot be refunded",
            Refusal::Amount => "Amount not valid",
            Refusal::MoreThanLeft => "More than is left to refund",
            Refusal::Duplicate => "Repeats an earlier row",
            Refusal::CaseReference => "Case reference missing or not valid",
            Refusal::Reason => "Reason not valid",
            Refusal::Text => "Comment not valid",
        }
    }
}

/// A row's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowOutcome {
    pub input: InputRow,
    /// None when ready; the first problem's kind otherwise.
    #[serde(skip)]
    pub refusal: Option<Refusal>,
    /// Every problem of the row, in words, joined (empty when ready).
    pub message: String,
    pub service_id: Option<i64>,
    pub journey_id: Option<i64>,
    pub payment_id: Option<String>,
    pub amount: Option<i64>,
    pub reason: Option<String>,
    pub comment: Option<String>,
    pub case_reference: Option<String>,
    pub needs_approval: bool,
}

impl RowOutcome {
    pub fn ready(&self) -> bool {
        self.refusal.is_none()
    }
}

/// The dry run of a whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    pub rows: Vec<RowOutcome>,
    pub ready: usize,
    pub refused: usize,
    pub refused_by: BTreeMap<Refusal, usize>,
    /// The total of the ready rows, pence.
    pub total: i64,
    /// Ready rows above their service's approval threshold.
    pub rows_needing_approval: usize,
    /// Whether a second person must approve the batch: a row, or a service's total, above
    /// that service's threshold.
    pub needs_approval: bool,
}

/// Check every row. `may_refund` says whether the person may make bulk refunds in a service;
/// `settings` are each service's refund settings (absent: the defaults).
pub fn run(
    rows: &[InputRow],
    payments: &Payments,
    may_refund: &dyn Fn(i64) -> bool,
    settings: &HashMap<i64, RefundSettings>,
) -> DryRun {
    let mut used: HashMap<i64, i64> = HashMap::new();
    let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(one(
            row, payments, may_refund, settings, &mut used, &mut seen,
        ));
    }
    summarise(out, settings)
}

fn summarise(rows: Vec<RowOutcome>, settings: &HashMap<i64, RefundSettings>) -> DryRun {
    let mut refused_by = BTreeMap::new();
    let mut per_service: HashMap<i64, i64> = HashMap::new();
    let (mut ready, mut total, mut rows_needing_approval) = (0, 0, 0);
    for r in &rows {
        match r.refusal {
            Some(kind) => *refused_by.entry(kind).or_insert(0) += 1,
            None => {
                ready += 1;
                let amount = r.amount.unwrap_or(0);
                total += amount;
                if let Some(s) = r.service_id {
                    *per_service.entry(s).or_insert(0) += amount;
                }
                if r.needs_approval {
                    rows_needing_approval += 1;
                }
            }
        }
    }
    let service_over = per_service.iter().any(|(s, sum)| {
        rules::needs_approval(
            *sum,
            settings.get(s).and_then(|x| x.refund_approval_threshold),
        )
    });
    DryRun {
        refused: rows.len() - ready,
        rows,
        ready,
        refused_by,
        total,
        rows_needing_approval,
        needs_approval: rows_needing_approval > 0 || service_over,
    }
}

/// A reason as a file may give it: its name or its label, in any case.
fn reason_name(cell: &str) -> String {
    let t = cell.trim();
    Reason::ALL
        .into_iter()
        .find(|r| r.name().eq_ignore_ascii_case(t) || r.label().eq_ignore_ascii_case(t))
        .map(|r| r.name().to_string())
        .unwrap_or_else(|| t.to_string())
}

fn refused(input: &InputRow, kind: Refusal, message: impl Into<String>) -> RowOutcome {
    RowOutcome {
        input: input.clone(),
        refusal: Some(kind),
        message: message.into(),
        service_id: None,
        journey_id: None,
        payment_id: None,
        amount: None,
        reason: None,
        comment: None,
        case_reference: None,
        needs_approval: false,
    }
}

/// The payment a row names, or why none.
fn find<'a>(
    row: &InputRow,
    payments: &'a Payments,
    may_refund: &dyn Fn(i64) -> bool,
) -> Result<&'a PaymentFacts, (Refusal, String)> {
    let id = row.payment_id.trim();
    let reference = row.reference.trim();
    let candidates: Vec<&PaymentFacts> = if !id.is_empty() {
        payments
            .by_id
            .get(id)
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    } else if !reference.is_empty() {
        payments
            .by_reference
            .get(&reference.to_lowercase())
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    } else {
        return Err((
            Refusal::NotFound,
            "Enter the payment id or the reference of the payment to refund".into(),
        ));
    };
    let named = if id.is_empty() {
        format!("reference {reference}")
    } else {
        format!("payment id {id}")
    };
    if candidates.is_empty() {
        return Err((
            Refusal::NotFound,
            format!("There is no payment with {named}"),
        ));
    }
    let yours: Vec<&PaymentFacts> = candidates
        .iter()
        .copied()
        .filter(|p| may_refund(p.service_id))
        .collect();
    match yours.as_slice() {
        [] => Err((
            Refusal::NotYours,
            format!("The payment with {named} is in a service where you cannot make bulk refunds"),
        )),
        [one] => {
            if !id.is_empty()
                && !reference.is_empty()
                && !one.reference.eq_ignore_ascii_case(reference)
            {
                return Err((
                    Refusal::NotFound,
                    format!(
                        "The payment with {named} has the reference {}, not {reference}",
                        one.reference
                    ),
                ));
            }
            Ok(one)
        }
        _ => Err((
            Refusal::Ambiguous,
            format!(
                "{} payments have the {named}: use the payment id instead",
                yours.len()
            ),
        )),
    }
}

fn one(
    row: &InputRow,
    payments: &Payments,
    may_refund: &dyn Fn(i64) -> bool,
    settings: &HashMap<i64, RefundSettings>,
    used: &mut HashMap<i64, i64>,
    seen: &mut HashMap<Vec<String>, usize>,
) -> RowOutcome {
    if let Some((had, wanted)) = row.field_count_mismatch {
        return refused(
            row,
            Refusal::Unreadable,
            format!("This row has {had} fields but the header has {wanted}: check for a missing separator or an unquoted comma"),
        );
    }
    let key: Vec<String> = [
        row.payment_id.trim().to_string(),
        row.reference.trim().to_lowercase(),
        row.amount.trim().to_lowercase(),
        reason_name(&row.reason),
        row.comment.trim().to_string(),
        row.case_reference.trim().to_string(),
    ]
    .into();
    if let Some(first) = seen.get(&key) {
        return refused(
            row,
            Refusal::Duplicate,
            format!("This row repeats row {first}: remove one of them"),
        );
    }
    seen.insert(key, row.line);
    let payment = match find(row, payments, may_refund) {
        Ok(p) => p,
        Err((kind, message)) => return refused(row, kind, message),
    };
    let default = RefundSettings::default();
    let s = settings.get(&payment.service_id).unwrap_or(&default);
    let before = used.get(&payment.journey_id).copied().unwrap_or(0);
    let available = rules::still_available(payment.available, before);
    let amount_cell = row.amount.trim();
    // A file's amount column holds plain pounds and pence: a currency sign ("£5", "$5") is
    // refused by name, so that a column copied from a spreadsheet formatted as another
    // currency is never read as pounds.
    let currency = amount_cell
        .chars()
        .any(|c| matches!(c, '£' | '$' | '€' | '¥'));
    let how_much = if amount_cell.eq_ignore_ascii_case("full") {
        Ok(HowMuch::Full)
    } else if currency {
        Err(NotAsked::Amount(AmountProblem::NotAnAmount))
    } else {
        HowMuch::from_form("partial", amount_cell)
    };
    let ask = Ask {
        service_id: payment.service_id,
        journey_id: payment.journey_id,
        payment_id: payment.payment_id.clone(),
        how_much,
        reason: reason_name(&row.reason),
        comment: row.comment.clone(),
        case_reference: row.case_reference.clone(),
        form_key: String::new(),
    };
    let mut problems: Vec<(Refusal, String)> = Vec::new();
    // A formula in a text cell would run in the spreadsheet of whoever opens the results.
    for (cell, name) in [
        (&row.comment, "comment"),
        (&row.case_reference, "case reference"),
    ] {
        if crate::csv::looks_like_formula(cell.trim()) {
            problems.push((
                if name == "comment" { Refusal::Text } else { Refusal::CaseReference },
                format!("The {name} must not start with =, +, -, @ or a tab: a spreadsheet would run it as a formula"),
            ));
        }
    }
    let checked = match check(&ask, s, payment.refund_status.as_deref(), available) {
        Ok(c) => Some(c),
        Err(found) => {
            for (field, message) in found {
                // Refundable in itself, with nothing left after earlier rows of this file.
                let used_up = field == "how_much" && before > 0 && available < 1;
                let kind = match field {
                    "how_much" if used_up => Refusal::MoreThanLeft,
                    "how_much" => Refusal::NotRefundable,
                    "amount" if message.contains("can still be refunded") => Refusal::MoreThanLeft,
                    "amount" => Refusal::Amount,
                    "reason" => Refusal::Reason,
                    "case_reference" => Refusal::CaseReference,
                    _ => Refusal::Text,
                };
                let message = match (kind, field) {
                    (Refusal::NotRefundable, _) => format!(
                        "This payment cannot be refunded: the platform says its refund status is {} (for example, it is disputed, not paid, or already refunded in full)",
                        payment.refund_status.as_deref().unwrap_or("unknown")
                    ),
                    (Refusal::MoreThanLeft, _) if used_up => format!(
                        "Nothing is left to refund on this payment after {} asked for in earlier rows of this file",
                        rules::pounds(before)
                    ),
                    (Refusal::MoreThanLeft, _) if before > 0 => format!(
                        "{message}, after {} asked for in earlier rows of this file",
                        rules::pounds(before)
                    ),
                    (Refusal::Amount, _) if currency => format!(
                        "The amount {amount_cell} has a currency sign: write plain pounds and pence without £, like 5.00, or full"
                    ),
                    (Refusal::Amount, _) if amount_cell.is_empty() => {
                        "Enter the amount to refund in pounds and pence, like 12.50, or full".into()
                    }
                    (Refusal::Amount, _) if message.contains("like 12.50") => format!(
                        "The amount {amount_cell} cannot be read: enter pounds and pence like 12.50 (no minus sign, no thousands separator, at most 2 decimals), or full"
                    ),
                    (Refusal::Reason, _) => format!(
                        "The reason {:?} is not one paydesk knows: use one of {}",
                        row.reason.trim(),
                        Reason::ALL.map(|r| r.name()).join(", ")
                    ),
                    _ => message,
                };
                problems.push((kind, message));
            }
            None
        }
    };
    match (checked, problems.is_empty()) {
        (Some(c), true) => {
            *used.entry(payment.journey_id).or_insert(0) += c.amount;
            RowOutcome {
                input: row.clone(),
                refusal: None,
                message: String::new(),
                service_id: Some(payment.service_id),
                journey_id: Some(payment.journey_id),
                payment_id: Some(payment.payment_id.clone()),
                amount: Some(c.amount),
                reason: Some(c.reason.name().to_string()),
                needs_approval: rules::needs_approval(c.amount, s.refund_approval_threshold),
                comment: c.comment,
                case_reference: c.case_reference,
            }
        }
        _ => {
            let kind = problems.first().map_or(Refusal::Text, |p| p.0);
            let message = problems
                .into_iter()
                .map(|p| p.1)
                .collect::<Vec<_>>()
                .join("; ");
            RowOutcome {
                service_id: Some(payment.service_id),
                journey_id: Some(payment.journey_id),
                payment_id: Some(payment.payment_id.clone()),
                ..refused(row, kind, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::file;
    use super::*;

    fn payments() -> Payments {
        let mut p = Payments::default();
        let mut add =
            |journey_id, service_id, id: &str, reference: &str, status: &str, available| {
                p.add(PaymentFacts {
                    journey_id,
                    service_id,
                    payment_id: id.into(),
                    reference: reference.into(),
                    refund_status: Some(status.into()),
                    available,
                })
            };
        add(1, 1, "pay1", "REF-1", "available", 1000);
        add(2, 1, "pay2", "REF-2", "available", 5000);
        add(3, 1, "pay3", "REF-SAME", "available", 5000);
        add(4, 1, "pay4", "REF-SAME", "available", 5000);
        add(5, 1, "pay5", "REF-5", "unavailable", 0);
        add(6, 2, "pay6", "REF-6", "available", 5000);
        p
    }

    fn dry(text: &str, settings: &HashMap<i64, RefundSettings>) -> DryRun {
        let f = file::read(text.as_bytes()).unwrap();
        run(&f.rows, &payments(), &|s| s == 1, settings)
    }

    fn outcome(text_rows: &str) -> Vec<(Option<Refusal>, String)> {
        let d = dry(
            &format!("payment_id,reference,amount,reason,comment,case_reference\n{text_rows}"),
            &HashMap::new(),
        );
        d.rows.into_iter().map(|r| (r.refusal, r.message)).collect()
    }

    #[test]
    fn ready_rows_are_counted_and_totalled() {
        let d = dry(
            "payment_id,amount,reason\npay1,5.00,duplicate\npay2,full,Duplicate payment\n",
            &HashMap::new(),
        );
        assert_eq!((d.ready, d.refused, d.total), (2, 0, 5500));
        assert_eq!(d.rows[1].reason.as_deref(), Some("duplicate"));
        assert!(!d.needs_approval);
    }

    #[test]
    fn every_bad_amount_is_named_on_its_row() {
        let rows = outcome(
            "pay2,,-1,duplicate,,\npay2,,5.001,duplicate,,\npay2,,1e3,duplicate,,\npay2,,\"1,000.00\",duplicate,,\npay2,,0,duplicate,,\npay2,,,duplicate,,\npay2,,£5,duplicate,,\n",
        );
        for (i, (kind, message)) in rows.iter().enumerate().take(4) {
            assert_eq!(*kind, Some(Refusal::Amount), "row {i}: {message}");
            assert!(message.contains("cannot be read"), "{message}");
        }
        assert_eq!(rows[4].0, Some(Refusal::Amount));
        assert!(rows[4].1.contains("at least 1p"));
        assert!(rows[5].1.contains("Enter the amount"));
        // A file's amount column is plain pounds and pence: a pound sign is named.
        assert_eq!(rows[6].0, Some(Refusal::Amount));
        assert!(rows[6].1.contains("currency sign"), "{}", rows[6].1);
    }

    #[test]
    fn the_same_payment_twice_counts_earlier_rows() {
        let rows = outcome("pay1,,6.00,duplicate,,\npay1,,5.00,fraud,,\npay1,,4.00,fraud,,\n");
        assert_eq!(rows[0].0, None);
        assert_eq!(rows[1].0, Some(Refusal::MoreThanLeft));
        assert!(
            rows[1].1.contains("£4.00 or less") && rows[1].1.contains("earlier rows"),
            "{}",
            rows[1].1
        );
        assert_eq!(rows[2].0, None, "what is left is still refundable");
        // Everything used up by earlier rows: named as such, not as a payment that cannot
        // be refunded.
        let rows = outcome("pay1,,10.00,duplicate,,\npay1,,1.00,fraud,,\n");
        assert_eq!(rows[1].0, Some(Refusal::MoreThanLeft));
        assert!(rows[1].1.contains("Nothing is left"), "{}", rows[1].1);
    }

    #[test]
    fn a_repeated_row_is_refused() {
        let rows = outcome("pay2,,1.00,duplicate,,\npay2,,1.00,Duplicate,,\n");
        assert_eq!(rows[1].0, Some(Refusal::Duplicate));
        assert!(rows[1].1.contains("row 2"));
    }

    #[test]
    fn payments_not_found_not_yours_ambiguous_or_not_refundable() {
        let rows = outcome(
            "nope,,1,duplicate,,\npay6,,1,duplicate,,\n,REF-SAME,1,duplicate,,\n,ref-2,1,duplicate,,\npay5,,1,duplicate,,\n,,1,duplicate,,\npay1,REF-2,1,duplicate,,\n",
        );
        assert_eq!(rows[0].0, Some(Refusal::NotFound));
        assert_eq!(rows[1].0, Some(Refusal::NotYours));
        assert_eq!(rows[2].0, Some(Refusal::Ambiguous));
        assert_eq!(rows[3].0, None, "references match in any case");
        assert_eq!(rows[4].0, Some(Refusal::NotRefundable));
        assert!(rows[4].1.contains("disputed"));
        assert_eq!(rows[5].0, Some(Refusal::NotFound));
        assert_eq!(rows[6].0, Some(Refusal::NotFound), "{}", rows[6].1);
    }

    #[test]
    fn formulas_reasons_and_case_references() {
        let rows = outcome(
            "pay2,,1,duplicate,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",\npay2,,2,because,,\npay2,,3,other,,\npay2,,4,duplicate,,@SUM(1)\n",
        );
        assert_eq!(rows[0].0, Some(Refusal::Text));
        assert!(rows[0].1.contains("formula"));
        assert_eq!(rows[1].0, Some(Refusal::Reason));
        assert!(rows[1].1.contains("requested_by_payer"));
        assert_eq!(rows[2].0, Some(Refusal::Text), "other needs a comment");
        assert_eq!(rows[3].0, Some(Refusal::CaseReference));
        let strict = HashMap::from([(
            1,
            RefundSettings {
                refund_case_reference_required: true,
                ..Default::default()
            },
        )]);
        let d = dry("payment_id,amount,reason\npay2,1,duplicate\n", &strict);
        assert_eq!(d.rows[0].refusal, Some(Refusal::CaseReference));
    }

    #[test]
    fn approval_by_row_or_by_a_services_total() {
        let threshold = |t| {
            HashMap::from([(
                1,
                RefundSettings {
                    refund_approval_threshold: Some(t),
                    ..Default::default()
                },
            )])
        };
        let d = dry(
            "payment_id,amount,reason\npay2,30,duplicate\npay3,1,duplicate\n",
            &threshold(2000),
        );
        assert_eq!(d.rows_needing_approval, 1);
        assert!(d.needs_approval);
        let d = dry(
            "payment_id,amount,reason\npay2,15,duplicate\npay3,15,duplicate\n",
            &threshold(2000),
        );
        assert_eq!(d.rows_needing_approval, 0);
        assert!(d.needs_approval, "the total is above the threshold");
        let d = dry(
            "payment_id,amount,reason\npay2,5,duplicate\npay3,5,duplicate\n",
            &threshold(2000),
        );
        assert!(!d.needs_approval);
    }

    #[test]
    fn a_short_row_is_refused_and_the_summary_counts_by_reason() {
        let d = dry(
            "payment_id,amount,reason\npay2,1\nnope,1,duplicate\nnope2,1,duplicate\npay2,1,duplicate\n",
            &HashMap::new(),
        );
        assert_eq!(d.rows[0].refusal, Some(Refusal::Unreadable));
        assert_eq!(d.refused_by.get(&Refusal::NotFound), Some(&2));
        assert_eq!((d.ready, d.refused, d.total), (1, 3, 100));
    }
}
