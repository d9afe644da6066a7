-- Finding payments. Each index serves one kind of search (see src/search/plan.rs, which
-- says which filter drives a query, and `paydesk bench search`, which prints the plans).
-- Every index leads with service_id: a search only ever looks inside the services the
-- person holds, one service at a time.

-- Exact and prefix references, case-insensitive (reference_key is lower-cased).
CREATE INDEX journeys_service_reference ON journeys (service_id, reference_key);
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

-- Metadata key/value pairs, one row each, kept by triggers so that every writer of
-- journeys (sync, webhooks, refresh) keeps them without knowing they exist.
CREATE TABLE journey_metadata (
    journey_id  INTEGER NOT NULL REFERENCES journeys (id),
    service_id  INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    value_key   TEXT    NOT NULL,       -- lower-cased text of the value
    PRIMARY KEY (journey_id, key)
) WITHOUT ROWID;
CREATE INDEX journey_metadata_lookup ON journey_metadata (service_id, key, value_key);

CREATE TRIGGER journeys_metadata_insert AFTER INSERT ON journeys
WHEN NEW.metadata IS NOT NULL AND json_valid(NEW.metadata)
BEGIN
    INSERT OR REPLACE INTO journey_metadata (journey_id, service_id, key, value_key)
    SELECT NEW.id, NEW.service_id, e.key,
        CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
             ELSE lower(CAST(e.value AS TEXT)) END
    FROM json_each(NEW.metadata) AS e
    WHERE e.type IN ('text', 'integer', 'real', 'true', 'false');
END;

CREATE TRIGGER journeys_metadata_update AFTER UPDATE OF metadata ON journeys
WHEN NEW.metadata IS NOT OLD.metadata
BEGIN
    DELETE FROM journey_metadata WHERE journey_id = NEW.id;
    INSERT OR REPLACE INTO journey_metadata (journey_id, service_id, key, value_key)
    SELECT NEW.id, NEW.service_id, e.key,
        CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
             ELSE lower(CAST(e.value AS TEXT)) END
    FROM json_each(CASE WHEN json_valid(NEW.metadata) THEN NEW.metadata ELSE '{}' END) AS e
    WHERE e.type IN ('text', 'integer', 'real', 'true', 'false');
END;

-- "Contains" searches on the payer's email and the cardholder's name: a trigram index
-- (FTS5), kept by triggers. Only the two columns' text is held here, under the journey's id.
CREATE VIRTUAL TABLE journey_text USING fts5 (
    email, cardholder_name,
    content = '', contentless_delete = 1, tokenize = 'trigram'
);

CREATE TRIGGER journeys_text_insert AFTER INSERT ON journeys
BEGIN
    INSERT INTO journey_text (rowid, email, cardholder_name)
    VALUES (NEW.id, coalesce(NEW.email, ''), coalesce(NEW.cardholder_name, ''));
END;

CREATE TRIGGER journeys_text_update AFTER UPDATE OF email, cardholder_name ON journeys
WHEN NEW.email IS NOT OLD.email OR NEW.cardholder_name IS NOT OLD.cardholder_name
BEGIN
    DELETE FROM journey_text WHERE rowid = NEW.id;
    INSERT INTO journey_text (rowid, email, cardholder_name)
    VALUES (NEW.id, coalesce(NEW.email, ''), coalesce(NEW.cardholder_name, ''));
END;

-- Journeys already held get their metadata rows and text now.
INSERT OR REPLACE INTO journey_metadata (journey_id, service_id, key, value_key)
SELECT j.id, j.service_id, e.key,
        CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
             ELSE lower(CAST(e.value AS TEXT)) END
FROM journeys AS j,
     json_each(CASE WHEN json_valid(j.metadata) THEN j.metadata ELSE '{}' END) AS e
WHERE e.type IN ('text', 'integer', 'real', 'true', 'false');
INSERT INTO journey_text (rowid, email, cardholder_name)
SELECT id, coalesce(email, ''), coalesce(cardholder_name, '') FROM journeys;
