-- Bulk refunds (src/refunds/bulk/): a file of refunds uploaded, checked by a dry run, approved
-- as a whole by a second person when it is large, then sent row by row as ordinary refund
-- requests (each linked back to its batch).

CREATE TABLE refund_batches (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    file_name        TEXT    NOT NULL,
    -- The file exactly as uploaded, and the SHA-256 of those bytes (hex): what the approver
    -- approves is bound to this hash.
    file_bytes       BLOB    NOT NULL,
    file_hash        TEXT    NOT NULL,
    row_count        INTEGER NOT NULL,
    ready_count      INTEGER NOT NULL,
    refused_count    INTEGER NOT NULL,
    total_amount     INTEGER NOT NULL,
    approval_rows    INTEGER NOT NULL,
    needs_approval   BOOLEAN NOT NULL,
    -- The uploader chose to go on without the refused rows.
    leave_out_refused BOOLEAN NOT NULL DEFAULT FALSE,
    state            TEXT    NOT NULL CHECK (state IN ('checked', 'awaiting_approval', 'sending',
                                 'paused', 'sent', 'cancelled')),
    uploaded_by      INTEGER NOT NULL REFERENCES staff (id),
    uploaded_at      INTEGER NOT NULL,
    approved_by      INTEGER REFERENCES staff (id),
    approved_at      INTEGER,
    sending_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX refund_batches_uploaded ON refund_batches (uploaded_at);

CREATE TABLE refund_batch_rows (
    batch_id        INTEGER NOT NULL REFERENCES refund_batches (id),
    line            INTEGER NOT NULL,
    -- The row as the file gave it (JSON) and its dry-run outcome.
    input           TEXT    NOT NULL,
    ready           BOOLEAN NOT NULL,
    -- Why it was refused, as the summary counts it (NULL: ready).
    refusal         TEXT,
    message         TEXT    NOT NULL,
    service_id      INTEGER,
    journey_id      INTEGER,
    payment_id      TEXT,
    amount          INTEGER,
    reason          TEXT,
    comment         TEXT,
    case_reference  TEXT,
    needs_approval  BOOLEAN NOT NULL,
    -- Sending: 'waiting' (ready, not yet a request), 'requested' (request_id made),
    -- 'not_sent' (refused when its turn came: message says why), 'left_out' (refused in the
    -- dry run).
    send_state      TEXT    NOT NULL CHECK (send_state IN ('waiting', 'requested', 'not_sent', 'left_out')),
    request_id      INTEGER REFERENCES refund_requests (id),
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX refund_batch_rows_waiting ON refund_batch_rows (batch_id, send_state, line);

ALTER TABLE refund_requests ADD COLUMN batch_id INTEGER REFERENCES refund_batches (id);
CREATE INDEX refund_requests_batch ON refund_requests (batch_id) WHERE batch_id IS NOT NULL;

-- A bulk file names payments by id (journeys_payment_id, 0004) or by reference, in any of
-- the person's services.
CREATE INDEX journeys_reference_key ON journeys (reference_key);
