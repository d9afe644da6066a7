//! Journeys stored as a sync would store them, from plain records.

use super::app::TestApp;

/// A successful card payment with plain values, as the platform would report it; tests change
/// what they need.
pub fn journey_record(
    payment_id: &str,
    reference: &str,
    created_at: time::OffsetDateTime,
) -> paydesk::journeys::record::JourneyRecord {
    paydesk::journeys::record::JourneyRecord {
        payment_id: payment_id.into(),
        status: paydesk::platform::types::PaymentStatus::Success,
        state_code: None,
        state_message: None,
        amount: 1000,
        description: "Parking permit".into(),
        reference: reference.into(),
        email: Some("someone@example.org".into()),
        language: Some("en".into()),
        cardholder_name: Some("Sam Person".into()),
        card_brand: Some("visa".into()),
        card_type: Some("debit".into()),
        first_digits: Some("424242".into()),
        last_digits: Some("4242".into()),
        expiry_date: Some("12/30".into()),
        wallet_type: None,
        payment_provider: Some("sandbox".into()),
        provider_id: None,
        created_at,
        capture_submitted_at: None,
        captured_date: None,
        settled_date: None,
        fee: None,
        net_amount: None,
        corporate_surcharge: None,
        total_amount: None,
        refund_status: None,
        refund_available: None,
        refund_submitted: None,
        metadata: None,
        case_reference: None,
        delayed_capture: None,
        moto: None,
    }
}

/// Store journeys as a sync would.
pub async fn store_journeys(
    app: &TestApp,
    service_id: i64,
    records: &[paydesk::journeys::record::JourneyRecord],
) {
    let now = paydesk::store::to_micros(app.state.clock.now());
    let mut tx = app.state.db.begin().await.expect("begin");
    paydesk::store::journeys::upsert_journeys(&mut tx, service_id, records, now, now)
        .await
        .expect("store journeys");
    tx.commit().await.expect("commit");
}
