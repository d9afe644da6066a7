-- The payment platform: each service's platform account, the payment journeys paydesk keeps
-- in step with it, their timelines, the platform's refunds, the webhook inbox and the progress
-- of each service's backfill. Times are integer microseconds since the Unix epoch, UTC; money
-- is integer minor units (pence).

ALTER TABLE services ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'Europe/London';
ALTER TABLE services ADD COLUMN platform_url TEXT;
-- Sealed JSON: an API key, or OAuth2 client credentials (client id, secret, token URL, scopes).
ALTER TABLE services ADD COLUMN credentials TEXT;
-- Sealed: the secret the platform signs its webhooks with.
ALTER TABLE services ADD COLUMN webhook_secret TEXT;
ALTER TABLE services ADD COLUMN updated_at INTEGER;

CREATE TABLE journeys (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id          INTEGER NOT NULL REFERENCES services (id),
    payment_id          TEXT    NOT NULL,                -- the platform's id
    status              TEXT    NOT NULL,
    status_rank         INTEGER NOT NULL,                -- only ever grows: a state never moves back
    finished            INTEGER NOT NULL,
    state_code          TEXT,
    state_message       TEXT,
    amount              INTEGER NOT NULL,
    description         TEXT    NOT NULL,
    reference           TEXT    NOT NULL,
    reference_key       TEXT    NOT NULL,                -- lower-cased, for case-insensitive search
    email               TEXT,
    email_key           TEXT,
    language            TEXT,
    cardholder_name     TEXT,
    card_brand          TEXT,
    card_type           TEXT,
    first_digits        TEXT,                            -- never more than the first 6
    last_digits         TEXT,                            -- and the last 4
    expiry_date         TEXT,
    wallet_type         TEXT,
    payment_provider    TEXT,
    provider_id         TEXT,
    created_at          INTEGER NOT NULL,
    capture_submitted_at INTEGER,
    captured_date       TEXT,                            -- YYYY-MM-DD
    settled_date        TEXT,                            -- YYYY-MM-DD
    fee                 INTEGER,
    net_amount          INTEGER,
    corporate_surcharge INTEGER,
    total_amount        INTEGER,
    refund_status       TEXT,
    refund_available    INTEGER,
    refund_submitted    INTEGER,
    metadata            TEXT,                            -- JSON object, as the platform holds it
    case_reference      TEXT,
    delayed_capture     INTEGER,
    moto                INTEGER,
    needs_attention     INTEGER NOT NULL DEFAULT FALSE,
    attention_reason    TEXT,
    observed_at         INTEGER NOT NULL,                -- when the platform's view was read
    state_changed_at    INTEGER,                         -- when paydesk last saw the state move on
    first_seen_at       INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (service_id, payment_id)
);
CREATE INDEX journeys_service_created ON journeys (service_id, created_at, id);
CREATE INDEX journeys_unfinished ON journeys (created_at) WHERE finished = FALSE;

-- A journey's timeline: platform state changes, refunds, webhooks received and, later, staff
-- actions. `dedupe_key` makes recording the same fact twice a no-op.
CREATE TABLE journey_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    journey_id   INTEGER NOT NULL REFERENCES journeys (id),
    occurred_at  INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('state', 'refund', 'webhook', 'staff', 'attention')),
    status       TEXT,
    code         TEXT,
    message      TEXT,
    amount       INTEGER,
    detail       TEXT,                                   -- JSON
    -- platform: from the platform's own event history (exact time); observed: seen by paydesk
    -- in a search or a read (time approximate); paydesk: recorded by paydesk itself.
    source       TEXT    NOT NULL CHECK (source IN ('platform', 'observed', 'paydesk')),
    dedupe_key   TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL,
    UNIQUE (journey_id, dedupe_key)
);

CREATE TABLE platform_refunds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id   INTEGER NOT NULL REFERENCES services (id),
    refund_id    TEXT    NOT NULL,
    payment_id   TEXT    NOT NULL,                       -- the platform's payment id
    amount       INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('submitted', 'success', 'error')),
    status_rank  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    settled_date TEXT,
    observed_at  INTEGER NOT NULL,
    first_seen_at INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (service_id, refund_id)
);
CREATE INDEX platform_refunds_payment ON platform_refunds (service_id, payment_id);

-- Webhooks received, by the platform's message id: a duplicate delivery finds its row here.
-- Only what the timeline needs is kept, not the payer's data in the message body.
CREATE TABLE webhook_inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id   INTEGER NOT NULL REFERENCES services (id),
    message_id   TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    resource_id  TEXT    NOT NULL,
    created_date TEXT,
    received_at  INTEGER NOT NULL,
    UNIQUE (service_id, message_id)
);
CREATE INDEX webhook_inbox_resource ON webhook_inbox (service_id, resource_id);

-- Each service's backfill: the cursor (everything created before it has been imported), the
-- run in progress (its window and the next page to fetch, so a crash resumes where it left
-- off), and what a person asking "is it up to date?" needs to see.
CREATE TABLE sync_state (
    service_id      INTEGER NOT NULL REFERENCES services (id),
    stream          TEXT    NOT NULL CHECK (stream IN ('payments', 'refunds')),
    cursor_at       INTEGER,
    run_from        INTEGER,
    run_to          INTEGER,
    run_next_page   TEXT,
    run_imported    INTEGER NOT NULL DEFAULT 0,
    run_reached     INTEGER,                             -- oldest created time seen in this run
    run_started_at  INTEGER,
    imported_total  INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (service_id, stream)
);

-- The job that keeps each service in step, so that however many paydesk instances share the
-- database, one sync runs per service at a time.
CREATE TABLE sync_schedule (
    service_id   INTEGER PRIMARY KEY REFERENCES services (id),
    job_id       INTEGER,
    next_run_at  INTEGER NOT NULL
);

