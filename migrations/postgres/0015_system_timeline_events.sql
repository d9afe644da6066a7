-- Timeline events paydesk recorded by itself (a refund job sending a refund, hearing how it
-- ended) were stored as staff events and shown as "Staff action". They now carry what they
-- were in `status` (a staff event has none); mark the ones written before, by their words.
UPDATE journey_events SET status = 'refund_sent'
 WHERE kind = 'staff' AND status IS NULL AND source = 'paydesk'
   AND message LIKE 'The refund of % was sent to the platform';
UPDATE journey_events SET status = 'refund_failed'
 WHERE kind = 'staff' AND status IS NULL AND source = 'paydesk'
   AND message LIKE 'The refund of % failed: %';
UPDATE journey_events SET status = 'refund_succeeded'
 WHERE kind = 'staff' AND status IS NULL AND source = 'paydesk'
   AND message LIKE 'The refund of % succeeded';
