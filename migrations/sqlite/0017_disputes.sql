-- Disputes (chargebacks): one row per platform dispute, kept in step by the sync (backfilled
-- with the payments, re-read with their payment). `status_rank` only ever grows
-- (needs_response 0, under_review 1, won/lost 2), so a late or stale read never moves a
-- dispute back. Money is in pence; times are UTC microseconds like the journeys'.
CREATE TABLE disputes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id       INTEGER NOT NULL REFERENCES services (id),
    dispute_id       TEXT    NOT NULL,                   -- the platform's id
    payment_id       TEXT    NOT NULL,                   -- the platform's payment id
    journey_id       INTEGER REFERENCES journeys (id),   -- once the payment is known here
    amount           INTEGER NOT NULL,
    fee              INTEGER,
    net_amount       INTEGER,                            -- only for a lost dispute (negative)
    reason           TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
    status_rank      INTEGER NOT NULL,
    evidence_due_at  INTEGER,
    created_at       INTEGER NOT NULL,                   -- when the bank raised it
    settled_date     TEXT,                               -- YYYY-MM-DD, a lost dispute taken from a payout
    observed_at      INTEGER NOT NULL,
    first_seen_at    INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (service_id, dispute_id)
);
CREATE INDEX disputes_payment ON disputes (service_id, payment_id);
CREATE INDEX disputes_due ON disputes (status_rank, evidence_due_at);
CREATE INDEX disputes_created ON disputes (service_id, created_at);

-- A dispute's history, for the payment's timeline: each status once, when it was reached
-- (the platform's own time for the first, paydesk's observation for the rest).
CREATE TABLE dispute_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id   INTEGER NOT NULL REFERENCES services (id),
    dispute_id   TEXT    NOT NULL,
    payment_id   TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    amount       INTEGER,
    occurred_at  INTEGER NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('platform', 'observed')),
    recorded_at  INTEGER NOT NULL,
    UNIQUE (service_id, dispute_id, status)
);
CREATE INDEX dispute_events_payment ON dispute_events (service_id, payment_id);

-- The backfill walks disputes as a third stream: widen sync_state's check (SQLite rebuilds the
-- table to change one).
CREATE TABLE sync_state_new (
    service_id      INTEGER NOT NULL REFERENCES services (id),
    stream          TEXT    NOT NULL CHECK (stream IN ('payments', 'refunds', 'disputes')),
    cursor_at       INTEGER,
    run_from        INTEGER,
    run_to          INTEGER,
    run_next_page   TEXT,
    run_imported    INTEGER NOT NULL DEFAULT 0,
    run_reached     INTEGER,
    run_started_at  INTEGER,
    imported_total  INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (service_id, stream)
);
INSERT INTO sync_state_new (service_id, stream, cursor_at, run_from, run_to, run_next_page,
    run_imported, run_reached, run_started_at, imported_total, last_success_at, last_error,
    last_error_at, updated_at)
SELECT service_id, stream, cursor_at, run_from, run_to, run_next_page, run_imported,
    run_reached, run_started_at, imported_total, last_success_at, last_error, last_error_at,
    updated_at FROM sync_state;
DROP TABLE sync_state;
ALTER TABLE sync_state_new RENAME TO sync_state;
