-- Bulk refunds (src/refunds/bulk/): a file of refunds uploaded, checked by a dry run, approved
-- as a whole by a second person when it is large, then sent row by row as ordinary refund
-- requests (each linked back to its batch).

CREATE TABLE refund_batches (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name        TEXT    NOT NULL,
    -- The file exactly as uploaded, and the SHA-256 of those bytes (hex): what the approver
    -- approves is bound to this hash.
    file_bytes       BYTEA   NOT NULL,
    file_hash        TEXT    NOT NULL,
    row_count        BIGINT NOT NULL,
    ready_count      BIGINT NOT NULL,
    refused_count    BIGINT NOT NULL,
    total_amount     BIGINT NOT NULL,
    approval_rows    BIGINT NOT NULL,
    needs_approval   BOOLEAN NOT NULL,
    -- The uploader chose to go on without the refused rows.
    leave_out_refused BOOLEAN NOT NULL DEFAULT FALSE,
    state            TEXT    NOT NULL CHECK (state IN ('checked', 'awaiting_approval', 'sending',
                                 'paused', 'sent', 'cancelled')),
    uploaded_by      BIGINT NOT NULL REFERENCES staff (id),
    uploaded_at      BIGINT NOT NULL,
    approved_by      BIGINT REFERENCES staff (id),
    approved_at      BIGINT,
    sending_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX refund_batches_uploaded ON refund_batches (uploaded_at);

CREATE TABLE refund_batch_rows (
    batch_id        BIGINT NOT NULL REFERENCES refund_batches (id),
    line            BIGINT NOT NULL,
    -- The row as the file gave it (JSON) and its dry-run outcome.
    input           TEXT    NOT NULL,
    ready           BOOLEAN NOT NULL,
    -- Why it was refused, as the summary counts it (NULL: ready).
    refusal         TEXT,
    message         TEXT    NOT NULL,
    service_id      BIGINT,
    journey_id      BIGINT,
    payment_id      TEXT,
    amount          BIGINT,
    reason          TEXT,
    comment         TEXT,
    case_reference  TEXT,
    needs_approval  BOOLEAN NOT NULL,
    -- Sending: 'waiting' (ready, not yet a request), 'requested' (request_id made),
    -- 'not_sent' (refused when its turn came: message says why), 'left_out' (refused in the
    -- dry run).
    send_state      TEXT    NOT NULL CHECK (send_state IN ('waiting', 'requested', 'not_sent', 'left_out')),
    request_id      BIGINT REFERENCES refund_requests (id),
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX refund_batch_rows_waiting ON refund_batch_rows (batch_id, send_state, line);

ALTER TABLE refund_requests ADD COLUMN batch_id BIGINT REFERENCES refund_batches (id);
CREATE INDEX refund_requests_batch ON refund_requests (batch_id) WHERE batch_id IS NOT NULL;

-- A bulk file names payments by id (journeys_payment_id, 0004) or by reference, in any of
-- the person's services.
CREATE INDEX journeys_reference_key ON journeys (reference_key);
