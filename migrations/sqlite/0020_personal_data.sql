-- Personal data (issue 21): how long each service keeps payers' personal data, when a
-- journey's personal data was removed, legal holds that keep it, and the audit log's personal
-- values kept beside the chain (the chained text holds only a salted hash of each).

-- Days a journey's payer data is kept after the payment was made (2,555 = 7 years).
ALTER TABLE services ADD COLUMN retention_days INTEGER NOT NULL DEFAULT 2555;

-- When the journey's payer data was removed (by retention or erasure), and why.
ALTER TABLE journeys ADD COLUMN redacted_at INTEGER;
ALTER TABLE journeys ADD COLUMN redacted_reason TEXT;
CREATE INDEX journeys_unredacted ON journeys (service_id, created_at, id) WHERE redacted_at IS NULL;

-- A hold keeps a journey's personal data past its retention period until it is released.
CREATE TABLE personal_data_holds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id   INTEGER NOT NULL REFERENCES services (id),
    journey_id   INTEGER NOT NULL REFERENCES journeys (id),
    reason       TEXT    NOT NULL,
    placed_by    INTEGER NOT NULL REFERENCES staff (id),
    placed_at    INTEGER NOT NULL,
    released_by  INTEGER REFERENCES staff (id),
    released_at  INTEGER
);
CREATE INDEX personal_data_holds_open ON personal_data_holds (journey_id) WHERE released_at IS NULL;
CREATE INDEX personal_data_holds_service ON personal_data_holds (service_id, placed_at);

-- Personal values an audit entry needs (a refund's comment, a case reference), kept outside
-- the chained text: the entry's details hold `{"personal": "<digest>"}` where digest =
-- SHA-256(salt ‖ value). Erasing sets value and salt to NULL; the chain still verifies.
CREATE TABLE audit_personal (
    digest     TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL,        -- the audit entry that commits to it
    target     TEXT    NOT NULL,        -- the entry's target, e.g. payment:<id>
    salt       TEXT,
    value      TEXT,
    created_at INTEGER NOT NULL,
    erased_at  INTEGER
);
CREATE INDEX audit_personal_target ON audit_personal (target);
CREATE INDEX audit_personal_seq ON audit_personal (seq);

-- Erasure on request: asked for by one person with personal_data:manage, carried out only when
-- a second one approves. Who the payer is (email, or card last 4 and name) is cleared once the
-- request is decided; the outcome keeps counts and the held payments' ids.
CREATE TABLE erasure_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_by    INTEGER NOT NULL REFERENCES staff (id),
    requested_at    INTEGER NOT NULL,
    service_ids     TEXT    NOT NULL,          -- JSON array
    email_key       TEXT,
    last4           TEXT,
    name_key        TEXT,
    reason          TEXT    NOT NULL,
    case_reference  TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('awaiting_approval', 'done', 'rejected')),
    decided_by      INTEGER REFERENCES staff (id),
    decided_at      INTEGER,
    outcome         TEXT                       -- JSON: counts and held payments
);
CREATE INDEX erasure_requests_state ON erasure_requests (state, requested_at);
