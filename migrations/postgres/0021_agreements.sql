-- Recurring agreements: one row per platform agreement, kept in step by the sync (backfilled
-- with the payments, re-read with a payment taken under one). `status_rank` only ever grows
-- (created 0, active 1, cancelled/inactive 2), so a late or stale read never moves an
-- agreement back. Times are UTC microseconds like the journeys'. The card is only its summary.
CREATE TABLE agreements (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id       BIGINT NOT NULL REFERENCES services (id),
    agreement_id     TEXT    NOT NULL,                   -- the platform's id
    reference        TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    user_identifier  TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('created', 'active', 'cancelled', 'inactive')),
    status_rank      BIGINT NOT NULL,
    card_brand       TEXT,
    card_last4       TEXT,
    card_expiry      TEXT,                               -- MM/YY
    card_type        TEXT,
    created_at       BIGINT NOT NULL,
    cancelled_at     BIGINT,
    observed_at      BIGINT NOT NULL,
    first_seen_at    BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (service_id, agreement_id)
);
CREATE INDEX agreements_reference ON agreements (service_id, lower(reference));
CREATE INDEX agreements_created ON agreements (service_id, created_at);

-- An agreement's status history: each status once, when it was reached (the platform's own
-- time where it gives one, paydesk's observation otherwise).
CREATE TABLE agreement_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id    BIGINT NOT NULL REFERENCES services (id),
    agreement_id  TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    occurred_at   BIGINT NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('platform', 'observed')),
    recorded_at   BIGINT NOT NULL,
    UNIQUE (service_id, agreement_id, status)
);

-- Which payments were taken under which agreement (a payment's `agreement_id`), written by the
-- sync beside the journey.
CREATE TABLE agreement_payments (
    service_id    BIGINT NOT NULL REFERENCES services (id),
    payment_id    TEXT    NOT NULL,
    agreement_id  TEXT    NOT NULL,
    PRIMARY KEY (service_id, payment_id)
);
CREATE INDEX agreement_payments_agreement ON agreement_payments (service_id, agreement_id);

-- A person's (or an API client's) request to cancel an agreement, sent to the platform by one
-- job. At most one is pending per agreement, so simultaneous requests make one platform call.
CREATE TABLE agreement_cancellations (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id    BIGINT NOT NULL REFERENCES services (id),
    agreement_id  TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,                 -- the audit actor, e.g. staff:12
    reason        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'refused')),
    outcome       TEXT,                             -- in plain words, once over
    requested_at  BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE UNIQUE INDEX agreement_cancellations_pending
    ON agreement_cancellations (service_id, agreement_id) WHERE state = 'pending';
CREATE INDEX agreement_cancellations_agreement ON agreement_cancellations (service_id, agreement_id);

-- The backfill walks agreements as a fourth stream.
ALTER TABLE sync_state DROP CONSTRAINT sync_state_stream_check;
ALTER TABLE sync_state ADD CONSTRAINT sync_state_stream_check
    CHECK (stream IN ('payments', 'refunds', 'disputes', 'agreements'));
