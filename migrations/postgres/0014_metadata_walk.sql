-- A search by a metadata key and value that matches many payments walks the metadata rows
-- in the page's order (newest first) instead of checking the metadata of every payment it
-- passes: each row carries its journey's created time, kept by the trigger, and an index
-- holds the rows of one key and value in time order.
ALTER TABLE journey_metadata ADD COLUMN created_at BIGINT;
UPDATE journey_metadata m SET created_at = j.created_at FROM journeys j WHERE j.id = m.journey_id;
CREATE INDEX journey_metadata_walk
    ON journey_metadata (service_id, key, value_key, created_at, journey_id);

CREATE OR REPLACE FUNCTION journeys_keep_metadata() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.metadata IS NOT DISTINCT FROM OLD.metadata THEN
            IF NEW.created_at IS DISTINCT FROM OLD.created_at THEN
                UPDATE journey_metadata SET created_at = NEW.created_at WHERE journey_id = NEW.id;
            END IF;
            RETURN NULL;
        END IF;
        DELETE FROM journey_metadata WHERE journey_id = NEW.id;
    END IF;
    -- paydesk writes metadata from the platform's JSON object (src/journeys/record.rs).
    IF NEW.metadata IS NOT NULL AND jsonb_typeof(NEW.metadata::jsonb) = 'object' THEN
        INSERT INTO journey_metadata (journey_id, service_id, key, value_key, created_at)
        SELECT NEW.id, NEW.service_id, e.key, lower(e.value #>> '{}'), NEW.created_at
        FROM jsonb_each(NEW.metadata::jsonb) AS e
        WHERE jsonb_typeof(e.value) IN ('string', 'number', 'boolean');
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER journeys_metadata ON journeys;
CREATE TRIGGER journeys_metadata AFTER INSERT OR UPDATE OF metadata, created_at ON journeys
    FOR EACH ROW EXECUTE FUNCTION journeys_keep_metadata();
