-- Personal data (issue 21, the places retention did not reach): a recurring agreement's payer
-- data (the service's identifier for the payer, its description, staff's cancellation reasons)
-- is removed like a journey's, and a finished bulk refund file is dropped once it names a
-- payment whose data was removed (its SHA-256 stays, so what was approved is still provable).

-- When the agreement's payer data was removed (by retention or erasure).
ALTER TABLE agreements ADD COLUMN redacted_at BIGINT;
-- When the uploaded file's bytes were removed (file_hash is kept).
ALTER TABLE refund_batches ADD COLUMN file_removed_at BIGINT;
-- A redaction empties the bulk file rows of its payments: find them by journey.
CREATE INDEX refund_batch_rows_journey ON refund_batch_rows (journey_id) WHERE journey_id IS NOT NULL;
