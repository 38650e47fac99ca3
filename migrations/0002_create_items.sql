-- Items, partitioned by collection (one LIST partition per collection).
--
-- Real columns carry what every query touches; `content` holds the Item as
-- posted, without `links` (built at the edge) and with `collection` set.
-- `start_datetime` and `end_datetime` hold the item's time span (both equal
-- to its datetime for an instant). `datetime` is the sort instant, the start
-- of the span, so a temporal filter's upper bound (`datetime <= end`) is an
-- index condition of the sorted scan and its lower bound (`end_datetime >=
-- start`) a cheap filter. `revision` counts writes (1 for a new item).
CREATE TABLE items (
    collection      text        NOT NULL,
    id              text        NOT NULL,
    geometry        geometry(Geometry, 4326),
    datetime        timestamptz NOT NULL,
    start_datetime  timestamptz NOT NULL,
    end_datetime    timestamptz NOT NULL,
    content         jsonb       NOT NULL,
    links           jsonb,
    revision        integer     NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT items_pkey PRIMARY KEY (collection, id),
    CONSTRAINT items_time_range CHECK (start_datetime <= end_datetime)
) PARTITION BY LIST (collection);

-- Created on the parent, so every partition gets its own copy. The spatial
-- index carries the sort instant too (btree_gist), so a search in space and
-- time is answered from one index scan instead of two bitmaps ANDed.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX items_geometry_datetime_idx ON items USING gist (geometry, datetime);
CREATE INDEX items_datetime_idx ON items (datetime, collection, id);

-- The partition of a collection is created with it and dropped with it.
-- Names are derived from a hash of the id; the id itself reaches the DDL only
-- through format('%L'), never through string concatenation.
CREATE FUNCTION items_partition_name(collection text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'items_' || md5(collection);

-- Items of a few KB stay inline (toast_tuple_target near the page size) and
-- larger ones are compressed with lz4 rather than pglz: both keep bulk loads
-- and page reads from spending their time in (de)compression.
CREATE FUNCTION collections_create_partition() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    part text := items_partition_name(NEW.id);
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF items FOR VALUES IN (%L) WITH (toast_tuple_target = 8160)',
                   part, NEW.id);
    BEGIN
        EXECUTE format('ALTER TABLE %I ALTER COLUMN content SET COMPRESSION lz4', part);
    EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
        NULL; -- a server built without lz4 keeps its default compression
    END;
    RETURN NEW;
END
$$;

CREATE FUNCTION collections_drop_partition() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TABLE IF EXISTS %I', items_partition_name(OLD.id));
    RETURN OLD;
END
$$;

CREATE TRIGGER collections_create_partition AFTER INSERT ON collections
    FOR EACH ROW EXECUTE FUNCTION collections_create_partition();
CREATE TRIGGER collections_drop_partition AFTER DELETE ON collections
    FOR EACH ROW EXECUTE FUNCTION collections_drop_partition();
