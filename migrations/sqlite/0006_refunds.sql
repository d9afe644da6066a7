-- Refunds staff ask for, approve and submit. A request is a row with a state machine
-- (src/refunds/rules.rs): awaiting_approval -> approved -> submitting -> submitted ->
-- succeeded | failed, or rejected / expired. Each move happens in one transaction with its
-- audit entry and its job.

-- A service's refund settings: above the threshold (pence) a second person approves (NULL:
-- nobody needs to); whether a case reference is required; whether the payer is emailed when
-- the refund succeeds, and the email's own wording (NULL: paydesk's standard text).
ALTER TABLE services ADD COLUMN refund_approval_threshold INTEGER;
ALTER TABLE services ADD COLUMN refund_case_reference_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE services ADD COLUMN refund_email_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE services ADD COLUMN refund_email_subject TEXT;
ALTER TABLE services ADD COLUMN refund_email_text TEXT;

CREATE TABLE refund_requests (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id         INTEGER NOT NULL REFERENCES services (id),
    journey_id         INTEGER NOT NULL REFERENCES journeys (id),
    payment_id         TEXT    NOT NULL,
    amount             INTEGER NOT NULL CHECK (amount >= 1),
    reason             TEXT    NOT NULL,
    comment            TEXT,
    case_reference     TEXT,
    state              TEXT    NOT NULL CHECK (state IN ('awaiting_approval', 'approved', 'submitting',
                                   'submitted', 'succeeded', 'failed', 'rejected', 'expired')),
    -- The request form's one-time key: submitting the same form twice makes one request.
    form_key           TEXT    NOT NULL,
    requested_by       INTEGER NOT NULL REFERENCES staff (id),
    requested_at       INTEGER NOT NULL,
    approval_required  BOOLEAN NOT NULL,
    decided_by         INTEGER REFERENCES staff (id),
    decided_at         INTEGER,
    decision_comment   TEXT,
    -- Undecided requests, and approvals not yet submitted, lapse at this time.
    expires_at         INTEGER NOT NULL,
    -- Submission: when it started, the platform's amount_available read just before the
    -- call, the platform's refund id once known.
    submit_started_at  INTEGER,
    available_before   INTEGER,
    platform_refund_id TEXT,
    submitted_at       INTEGER,
    finished_at        INTEGER,
    failure            TEXT,
    updated_at         INTEGER NOT NULL,
    UNIQUE (service_id, form_key)
);
CREATE INDEX refund_requests_journey ON refund_requests (journey_id, requested_at);
CREATE INDEX refund_requests_queue ON refund_requests (service_id, state, requested_at);
CREATE UNIQUE INDEX refund_requests_platform ON refund_requests (service_id, platform_refund_id)
    WHERE platform_refund_id IS NOT NULL;
