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
ALTER TABLE services ADD COLUMN updated_at BIGINT;

CREATE TABLE journeys (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id          BIGINT NOT NULL REFERENCES services (id),
    payment_id          TEXT    NOT NULL,                -- the platform's id
    status              TEXT    NOT NULL,
    status_rank         BIGINT NOT NULL,                -- only ever grows: a state never moves back
    finished            BOOLEAN NOT NULL,
    state_code          TEXT,
    state_message       TEXT,
    amount              BIGINT NOT NULL,
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
    created_at          BIGINT NOT NULL,
    capture_submitted_at BIGINT,
    captured_date       TEXT,                            -- YYYY-MM-DD
    settled_date        TEXT,                            -- YYYY-MM-DD
    fee                 BIGINT,
    net_amount          BIGINT,
    corporate_surcharge BIGINT,
    total_amount        BIGINT,
    refund_status       TEXT,
    refund_available    BIGINT,
    refund_submitted    BIGINT,
    metadata            TEXT,                            -- JSON object, as the platform holds it
    case_reference      TEXT,
    delayed_capture     BOOLEAN,
    moto                BOOLEAN,
    needs_attention     BOOLEAN NOT NULL DEFAULT FALSE,
    attention_reason    TEXT,
    observed_at         BIGINT NOT NULL,                -- when the platform's view was read
    state_changed_at    BIGINT,                         -- when paydesk last saw the state move on
    first_seen_at       BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (service_id, payment_id)
);
CREATE INDEX journeys_service_created ON journeys (service_id, created_at, id);
CREATE INDEX journeys_unfinished ON journeys (created_at) WHERE finished = FALSE;

-- A journey's timeline: platform state changes, refunds, webhooks received and, later, staff
-- actions. `dedupe_key` makes recording the same fact twice a no-op.
CREATE TABLE journey_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journey_id   BIGINT NOT NULL REFERENCES journeys (id),
    occurred_at  BIGINT NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('state', 'refund', 'webhook', 'staff', 'attention')),
    status       TEXT,
    code         TEXT,
    message      TEXT,
    amount       BIGINT,
    detail       TEXT,                                   -- JSON
    -- platform: from the platform's own event history (exact time); observed: seen by paydesk
    -- in a search or a read (time approximate); paydesk: recorded by paydesk itself.
    source       TEXT    NOT NULL CHECK (source IN ('platform', 'observed', 'paydesk')),
    dedupe_key   TEXT    NOT NULL,
    recorded_at  BIGINT NOT NULL,
    UNIQUE (journey_id, dedupe_key)
);

CREATE TABLE platform_refunds (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id   BIGINT NOT NULL REFERENCES services (id),
    refund_id    TEXT    NOT NULL,
    payment_id   TEXT    NOT NULL,                       -- the platform's payment id
    amount       BIGINT NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('submitted', 'success', 'error')),
    status_rank  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    settled_date TEXT,
    observed_at  BIGINT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (service_id, refund_id)
);
CREATE INDEX platform_refunds_payment ON platform_refunds (service_id, payment_id);

-- Webhooks received, by the platform's message id: a duplicate delivery finds its row here.
-- Only what the timeline needs is kept, not the payer's data in the message body.
CREATE TABLE webhook_inbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id   BIGINT NOT NULL REFERENCES services (id),
    message_id   TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    resource_id  TEXT    NOT NULL,
    created_date TEXT,
    received_at  BIGINT NOT NULL,
    UNIQUE (service_id, message_id)
);
CREATE INDEX webhook_inbox_resource ON webhook_inbox (service_id, resource_id);

-- Each service's backfill: the cursor (everything created before it has been imported), the
-- run in progress (its window and the next page to fetch, so a crash resumes where it left
-- off), and what a person asking "is it up to date?" needs to see.
CREATE TABLE sync_state (
    service_id      BIGINT NOT NULL REFERENCES services (id),
    stream          TEXT    NOT NULL CHECK (stream IN ('payments', 'refunds')),
    cursor_at       BIGINT,
    run_from        BIGINT,
    run_to          BIGINT,
    run_next_page   TEXT,
    run_imported    BIGINT NOT NULL DEFAULT 0,
    run_reached     BIGINT,                             -- oldest created time seen in this run
    run_started_at  BIGINT,
    imported_total  BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT,
    last_error      TEXT,
    last_error_at   BIGINT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (service_id, stream)
);

-- The job that keeps each service in step, so that however many paydesk instances share the
-- database, one sync runs per service at a time.
CREATE TABLE sync_schedule (
    service_id   BIGINT PRIMARY KEY REFERENCES services (id),
    job_id       BIGINT,
    next_run_at  BIGINT NOT NULL
);

