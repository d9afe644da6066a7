-- Bulk refunds, continued: a batch sent through the CRM API belongs to the token's service
-- (the API shows it to that service's tokens only), and a batch can be cancelled (who and
-- when are kept with it, as for its upload and approval).

ALTER TABLE refund_batches ADD COLUMN service_id BIGINT REFERENCES services (id);
ALTER TABLE refund_batches ADD COLUMN api_token_id BIGINT REFERENCES api_tokens (id);
ALTER TABLE refund_batches ADD COLUMN cancelled_by BIGINT REFERENCES staff (id);
ALTER TABLE refund_batches ADD COLUMN cancelled_at BIGINT;
CREATE INDEX refund_batches_service ON refund_batches (service_id, id) WHERE service_id IS NOT NULL;
