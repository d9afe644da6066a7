-- Reconciliation exports. Refund rows are read in created or settlement order per service,
-- so platform_refunds gets the two indexes a keyset walk needs. Background exports are
-- records: who asked, for what (the filter as JSON), how far the writing has got (so a
-- restarted worker goes on from the last page it saved), and when the file is deleted.

CREATE INDEX platform_refunds_service_created ON platform_refunds (service_id, created_at, id);
CREATE INDEX platform_refunds_service_settled ON platform_refunds (service_id, settled_date, created_at, id);

CREATE TABLE exports (
    id             BIGSERIAL PRIMARY KEY,
    requested_by   BIGINT  NOT NULL REFERENCES staff (id),
    service_ids    TEXT    NOT NULL,                     -- JSON array of service ids
    filter         TEXT    NOT NULL,                     -- JSON: what was asked for
    gzip           BOOLEAN NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed', 'expired')),
    rows_expected  BIGINT  NOT NULL,
    rows_written   BIGINT  NOT NULL,
    bytes_written  BIGINT  NOT NULL,
    progress       TEXT,                                 -- JSON: the next page to write
    file_name      TEXT    NOT NULL,                     -- under the export folder
    failure        TEXT,
    created_at     BIGINT  NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    expires_at     BIGINT,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX exports_requester ON exports (requested_by, created_at);
CREATE INDEX exports_created ON exports (created_at);
CREATE INDEX exports_expiry ON exports (state, expires_at);
