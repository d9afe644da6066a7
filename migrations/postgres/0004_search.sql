-- Finding payments. Each index serves one kind of search (see src/search/plan.rs, which
-- says which filter drives a query, and `paydesk bench search`, which prints the plans).
-- Every index leads with service_id: a search only ever looks inside the services the
-- person holds, one service at a time.

-- Trigram indexes for "contains" searches (pg_trgm ships with PostgreSQL and is a trusted
-- extension: the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Exact and prefix references, case-insensitive (reference_key is lower-cased; text_pattern_ops
-- lets LIKE 'abc%' use it whatever the database's collation).
CREATE INDEX journeys_service_reference ON journeys (service_id, reference_key text_pattern_ops);
-- A whole email address typed into the search box.
CREATE INDEX journeys_service_email ON journeys (service_id, email_key);
-- Card digits: the last 4 or the first 6, exact.
CREATE INDEX journeys_service_last4 ON journeys (service_id, last_digits);
CREATE INDEX journeys_service_first6 ON journeys (service_id, first_digits);
-- Case references in any case; provider ids exactly.
CREATE INDEX journeys_service_case ON journeys (service_id, lower(case_reference));
CREATE INDEX journeys_service_provider ON journeys (service_id, provider_id);
-- The search box's payment id, which may belong to any of the person's services.
CREATE INDEX journeys_payment_id ON journeys (payment_id);
-- Status groups and card brands, newest first within each.
CREATE INDEX journeys_service_status ON journeys (service_id, status, created_at, id);
CREATE INDEX journeys_service_brand ON journeys (service_id, card_brand, created_at, id);
-- Settled-date searches and sorting by amount.
CREATE INDEX journeys_service_settled ON journeys (service_id, settled_date, created_at, id);
CREATE INDEX journeys_service_amount ON journeys (service_id, amount, id);
-- "Needs attention only".
CREATE INDEX journeys_service_attention ON journeys (service_id, created_at, id)
    WHERE needs_attention;
-- "Contains" on the payer's email and the cardholder's name.
CREATE INDEX journeys_email_trgm ON journeys USING gin (email_key gin_trgm_ops);
CREATE INDEX journeys_cardholder_trgm ON journeys USING gin (lower(cardholder_name) gin_trgm_ops);

-- Metadata key/value pairs, one row each, kept by a trigger so that every writer of
-- journeys (sync, webhooks, refresh) keeps them without knowing they exist.
CREATE TABLE journey_metadata (
    journey_id  BIGINT NOT NULL REFERENCES journeys (id),
    service_id  BIGINT NOT NULL,
    key         TEXT   NOT NULL,
    value_key   TEXT   NOT NULL,        -- lower-cased text of the value
    PRIMARY KEY (journey_id, key)
);
CREATE INDEX journey_metadata_lookup ON journey_metadata (service_id, key, value_key);

CREATE FUNCTION journeys_keep_metadata() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.metadata IS NOT DISTINCT FROM OLD.metadata THEN
            RETURN NULL;
        END IF;
        DELETE FROM journey_metadata WHERE journey_id = NEW.id;
    END IF;
    -- paydesk writes metadata from the platform's JSON object (src/journeys/record.rs).
    IF NEW.metadata IS NOT NULL AND jsonb_typeof(NEW.metadata::jsonb) = 'object' THEN
        INSERT INTO journey_metadata (journey_id, service_id, key, value_key)
        SELECT NEW.id, NEW.service_id, e.key, lower(e.value #>> '{}')
        FROM jsonb_each(NEW.metadata::jsonb) AS e
        WHERE jsonb_typeof(e.value) IN ('string', 'number', 'boolean');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER journeys_metadata AFTER INSERT OR UPDATE OF metadata ON journeys
    FOR EACH ROW EXECUTE FUNCTION journeys_keep_metadata();

-- Journeys already held get their metadata rows now.
INSERT INTO journey_metadata (journey_id, service_id, key, value_key)
SELECT j.id, j.service_id, e.key, lower(e.value #>> '{}')
FROM journeys AS j, jsonb_each(j.metadata::jsonb) AS e
WHERE j.metadata IS NOT NULL AND j.metadata LIKE '{%'
  AND jsonb_typeof(e.value) IN ('string', 'number', 'boolean');
