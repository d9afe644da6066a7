-- The walks of the payments search check their remaining filters against the index rather
-- than the table when the index holds what they need: the state code (status groups such as
-- "declined" are a status and a code) and the amount (amount ranges), and the dashboard's
-- sums. Measured with `paydesk bench search`: a declined-only or brand-and-amount search
-- reads index entries instead of one table row per entry.
DROP INDEX journeys_service_status;
CREATE INDEX journeys_service_status ON journeys (service_id, status, created_at, id, state_code, amount);
DROP INDEX journeys_service_brand;
CREATE INDEX journeys_service_brand ON journeys (service_id, card_brand, created_at, id, amount);
DROP INDEX journeys_service_created;
CREATE INDEX journeys_service_created ON journeys (service_id, created_at, id, amount);
