-- Disputes (chargebacks): one row per platform dispute, kept in step by the sync (backfilled
-- with the payments, re-read with their payment). `status_rank` only ever grows
-- (needs_response 0, under_review 1, won/lost 2), so a late or stale read never moves a
-- dispute back. Money is in pence; times are UTC microseconds like the journeys'.
CREATE TABLE disputes (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id       BIGINT NOT NULL REFERENCES services (id),
    dispute_id       TEXT    NOT NULL,                   -- the platform's id
    payment_id       TEXT    NOT NULL,                   -- the platform's payment id
    journey_id       BIGINT REFERENCES journeys (id),    -- once the payment is known here
    amount           BIGINT NOT NULL,
    fee              BIGINT,
    net_amount       BIGINT,                             -- only for a lost dispute (negative)
    reason           TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
    status_rank      BIGINT NOT NULL,
    evidence_due_at  BIGINT,
    created_at       BIGINT NOT NULL,                    -- when the bank raised it
    settled_date     TEXT,                               -- YYYY-MM-DD, a lost dispute taken from a payout
    observed_at      BIGINT NOT NULL,
    first_seen_at    BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (service_id, dispute_id)
);
CREATE INDEX disputes_payment ON disputes (service_id, payment_id);
CREATE INDEX disputes_due ON disputes (status_rank, evidence_due_at);
CREATE INDEX disputes_created ON disputes (service_id, created_at);

-- A dispute's history, for the payment's timeline: each status once, when it was reached
-- (the platform's own time for the first, paydesk's observation for the rest).
CREATE TABLE dispute_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id   BIGINT NOT NULL REFERENCES services (id),
    dispute_id   TEXT    NOT NULL,
    payment_id   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    amount       BIGINT,
    occurred_at  BIGINT NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('platform', 'observed')),
    recorded_at  BIGINT NOT NULL,
    UNIQUE (service_id, dispute_id, status)
);
CREATE INDEX dispute_events_payment ON dispute_events (service_id, payment_id);

-- The backfill walks disputes as a third stream.
ALTER TABLE sync_state DROP CONSTRAINT sync_state_stream_check;
ALTER TABLE sync_state ADD CONSTRAINT sync_state_stream_check
    CHECK (stream IN ('payments', 'refunds', 'disputes'));
