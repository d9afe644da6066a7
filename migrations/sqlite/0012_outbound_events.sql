-- Outbound events to a service's CRM or case-management system (Standard Webhooks).
-- An event row is written in the same transaction as the change that causes it, with one
-- delivery per subscribed endpoint and one job per delivery (src/integrations/events.rs).

-- Where a service's events go. The signing secret (`whsec_…`) is sealed (src/crypto.rs);
-- during a rotation the previous secret keeps signing too, until `previous_secret_until`.
CREATE TABLE event_endpoints (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id            INTEGER NOT NULL REFERENCES services (id),
    url                   TEXT    NOT NULL,
    description           TEXT    NOT NULL DEFAULT '',
    -- Space-separated event types, e.g. "refund.succeeded refund.failed".
    event_types           TEXT    NOT NULL,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason       TEXT,
    secret                TEXT,
    previous_secret       TEXT,
    previous_secret_until INTEGER,
    created_by            INTEGER REFERENCES staff (id),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX event_endpoints_service ON event_endpoints (service_id, id);

-- One event (one Standard Webhooks message): its id is the `webhook-id` every delivery and
-- retry of it carries; its payload is the exact body that is signed and sent.
CREATE TABLE outbound_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id  INTEGER NOT NULL REFERENCES services (id),
    message_id  TEXT    NOT NULL UNIQUE,
    event_type  TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    -- Makes "once" hold for events that must happen once (a payment's final state, say).
    dedupe_key  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX outbound_events_dedupe ON outbound_events (service_id, dedupe_key);

-- An event on its way to one endpoint: pending -> retrying -> succeeded | failed.
CREATE TABLE event_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL REFERENCES outbound_events (id),
    endpoint_id     INTEGER NOT NULL REFERENCES event_endpoints (id),
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The job that delivers it now (a replay makes a new one).
    job_id          INTEGER,
    last_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX event_deliveries_endpoint ON event_deliveries (endpoint_id, id);
CREATE INDEX event_deliveries_status ON event_deliveries (status, endpoint_id);

-- Every attempt, for the delivery log: what the endpoint answered and how fast.
CREATE TABLE event_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES event_deliveries (id),
    attempted_at     INTEGER NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    latency_ms       INTEGER NOT NULL,
    response_excerpt TEXT,
    succeeded        BOOLEAN NOT NULL
);
CREATE INDEX event_attempts_delivery ON event_attempts (delivery_id, id);
