-- The dashboard sums successful payments per day: with the amount in the status index, a
-- year of a service's payments is read from the index alone (an index-only scan).
DROP INDEX journeys_service_status;
CREATE INDEX journeys_service_status ON journeys (service_id, status, created_at, id) INCLUDE (amount);
