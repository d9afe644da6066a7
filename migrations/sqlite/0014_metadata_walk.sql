-- A search by a metadata key and value that matches many payments walks the metadata rows
-- in the page's order (newest first) instead of checking the metadata of every payment it
-- passes: each row carries its journey's created time, kept by the triggers, and an index
-- holds the rows of one key and value in time order.
ALTER TABLE journey_metadata ADD COLUMN created_at INTEGER;
UPDATE journey_metadata
SET created_at = (SELECT j.created_at FROM journeys j WHERE j.id = journey_metadata.journey_id);
CREATE INDEX journey_metadata_walk
    ON journey_metadata (service_id, key, value_key, created_at, journey_id);

DROP TRIGGER journeys_metadata_insert;
CREATE TRIGGER journeys_metadata_insert AFTER INSERT ON journeys
WHEN NEW.metadata IS NOT NULL AND json_valid(NEW.metadata)
BEGIN
    INSERT OR REPLACE INTO journey_metadata (journey_id, service_id, key, value_key, created_at)
    SELECT NEW.id, NEW.service_id, e.key,
        CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
             ELSE lower(CAST(e.value AS TEXT)) END,
        NEW.created_at
    FROM json_each(NEW.metadata) AS e
    WHERE e.type IN ('text', 'integer', 'real', 'true', 'false');
END;

DROP TRIGGER journeys_metadata_update;
CREATE TRIGGER journeys_metadata_update AFTER UPDATE OF metadata ON journeys
WHEN NEW.metadata IS NOT OLD.metadata
BEGIN
    DELETE FROM journey_metadata WHERE journey_id = NEW.id;
    INSERT OR REPLACE INTO journey_metadata (journey_id, service_id, key, value_key, created_at)
    SELECT NEW.id, NEW.service_id, e.key,
        CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
             ELSE lower(CAST(e.value AS TEXT)) END,
        NEW.created_at
    FROM json_each(CASE WHEN json_valid(NEW.metadata) THEN NEW.metadata ELSE '{}' END) AS e
    WHERE e.type IN ('text', 'integer', 'real', 'true', 'false');
END;

CREATE TRIGGER journeys_metadata_created AFTER UPDATE OF created_at ON journeys
WHEN NEW.created_at IS NOT OLD.created_at
BEGIN
    UPDATE journey_metadata SET created_at = NEW.created_at WHERE journey_id = NEW.id;
END;
