-- Change stamps: every write to a collection's items (insert, update,
-- delete; by the API, a load or a crawl) and every change of the collection
-- document records a new stamp for the collection. Tile URLs and ETags carry
-- the newest, so caches may keep tiles forever and a change shows at once.
--
-- The log is append-only (one row per writing statement and collection):
-- writers never wait for one another on a shared counter row, and no lock
-- order between collections can deadlock. Stamps come from one sequence, so
-- a collection deleted and created again never sees an old stamp again.

CREATE SEQUENCE change_stamps;

CREATE TABLE collection_changes (
    collection text        NOT NULL,
    stamp      bigint      NOT NULL DEFAULT nextval('change_stamps'),
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX collection_changes_latest_idx ON collection_changes (collection, stamp DESC);

CREATE FUNCTION record_item_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO collection_changes (collection) SELECT DISTINCT collection FROM old_rows;
    ELSE
        INSERT INTO collection_changes (collection) SELECT DISTINCT collection FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_inserted AFTER INSERT ON items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_item_changes();
CREATE TRIGGER items_updated AFTER UPDATE ON items
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_item_changes();
CREATE TRIGGER items_deleted AFTER DELETE ON items
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION record_item_changes();

CREATE FUNCTION record_collection_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO collection_changes (collection) VALUES (NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER collections_changed AFTER INSERT OR UPDATE OF content, links ON collections
    FOR EACH ROW EXECUTE FUNCTION record_collection_change();

INSERT INTO collection_changes (collection) SELECT id FROM collections;
