-- Recurring agreements: one row per platform agreement, kept in step by the sync (backfilled
-- with the payments, re-read with a payment taken under one). `status_rank` only ever grows
-- (created 0, active 1, cancelled/inactive 2), so a late or stale read never moves an
-- agreement back. Times are UTC microseconds like the journeys'. The card is only its summary.
CREATE TABLE agreements (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id       INTEGER NOT NULL REFERENCES services (id),
    agreement_id     TEXT    NOT NULL,                   -- the platform's id
    reference        TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    user_identifier  TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('created', 'active', 'cancelled', 'inactive')),
    status_rank      INTEGER NOT NULL,
    card_brand       TEXT,
    card_last4       TEXT,
    card_expiry      TEXT,                               -- MM/YY
    card_type        TEXT,
    created_at       INTEGER NOT NULL,
    cancelled_at     INTEGER,
    observed_at      INTEGER NOT NULL,
    first_seen_at    INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (service_id, agreement_id)
);
CREATE INDEX agreements_reference ON agreements (service_id, reference COLLATE NOCASE);
CREATE INDEX agreements_created ON agreements (service_id, created_at);

-- An agreement's status history: each status once, when it was reached (the platform's own
-- time where it gives one, paydesk's observation otherwise).
CREATE TABLE agreement_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id    INTEGER NOT NULL REFERENCES services (id),
    agreement_id  TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    occurred_at   INTEGER NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('platform', 'observed')),
    recorded_at   INTEGER NOT NULL,
    UNIQUE (service_id, agreement_id, status)
);

-- Which payments were taken under which agreement (a payment's `agreement_id`), written by the
-- sync beside the journey.
CREATE TABLE agreement_payments (
    service_id    INTEGER NOT NULL REFERENCES services (id),
    payment_id    TEXT    NOT NULL,
    agreement_id  TEXT    NOT NULL,
    PRIMARY KEY (service_id, payment_id)
);
CREATE INDEX agreement_payments_agreement ON agreement_payments (service_id, agreement_id);

-- A person's (or an API client's) request to cancel an agreement, sent to the platform by one
-- job. At most one is pending per agreement, so simultaneous requests make one platform call.
CREATE TABLE agreement_cancellations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id    INTEGER NOT NULL REFERENCES services (id),
    agreement_id  TEXT    NOT NULL,
    requested_by  TEXT    NOT NULL,                 -- the audit actor, e.g. staff:12
    reason        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'refused')),
    outcome       TEXT,                             -- in plain words, once over
    requested_at  INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE UNIQUE INDEX agreement_cancellations_pending
    ON agreement_cancellations (service_id, agreement_id) WHERE state = 'pending';
CREATE INDEX agreement_cancellations_agreement ON agreement_cancellations (service_id, agreement_id);

-- The backfill walks agreements as a fourth stream: widen sync_state's check (SQLite rebuilds
-- the table to change one).
CREATE TABLE sync_state_new (
    service_id      INTEGER NOT NULL REFERENCES services (id),
    stream          TEXT    NOT NULL CHECK (stream IN ('payments', 'refunds', 'disputes', 'agreements')),
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
