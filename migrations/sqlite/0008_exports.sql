-- Reconciliation exports. Refund rows are read in created or settlement order per service,
-- so platform_refunds gets the two indexes a keyset walk needs. Background exports are
-- records: who asked, for what (the filter as JSON), how far the writing has got (so a
-- restarted worker goes on from the last page it saved), and when the file is deleted.

CREATE INDEX platform_refunds_service_created ON platform_refunds (service_id, created_at, id);
CREATE INDEX platform_refunds_service_settled ON platform_refunds (service_id, settled_date, created_at, id);

CREATE TABLE exports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_by   INTEGER NOT NULL REFERENCES staff (id),
    service_ids    TEXT    NOT NULL,                     -- JSON array of service ids
    filter         TEXT    NOT NULL,                     -- JSON: what was asked for
    gzip           BOOLEAN NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed', 'expired')),
    rows_expected  INTEGER NOT NULL,
    rows_written   INTEGER NOT NULL,
    bytes_written  INTEGER NOT NULL,
    progress       TEXT,                                 -- JSON: the next page to write
    file_name      TEXT    NOT NULL,                     -- under the export folder
    failure        TEXT,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    expires_at     INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX exports_requester ON exports (requested_by, created_at);
CREATE INDEX exports_created ON exports (created_at);
CREATE INDEX exports_expiry ON exports (state, expires_at);
