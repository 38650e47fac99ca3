-- Search support: what properties items carry (the queryables), typed
-- accessors for filters and sorts, and expression indexes on the
-- properties filtered most often.

-- Items keep their document as `json` (the text as written: serving it is a
-- copy, where `jsonb` output re-formats every number and string, about
-- 50 µs for a 4 KB item) and their properties as `jsonb` (small, indexed,
-- what every filter reads).
ALTER TABLE items ADD COLUMN properties jsonb;
UPDATE items SET properties = content->'properties';
ALTER TABLE items ALTER COLUMN content TYPE json USING content::json;
ALTER TABLE items ALTER COLUMN links TYPE json USING links::json;

-- One row per collection, property name and JSON kind seen on an item.
-- Written with each batch of items (a handful of rows per batch, never per
-- item); never shrunk on delete, so it may list a property no item still has.
CREATE TABLE item_properties (
    collection  text NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL,
    CONSTRAINT item_properties_pkey PRIMARY KEY (collection, name, kind)
);

-- Typed reads of a property value: NULL when the value has another type, so
-- a filter never fails on an item that stores something unexpected.
CREATE FUNCTION arcolake_number(v jsonb) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(v) = 'number' THEN v::float8 END;

CREATE FUNCTION arcolake_boolean(v jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(v) = 'boolean' THEN v::boolean END;

-- Declared immutable so it can be indexed: the strings it reads carry their
-- offset (RFC 3339), so the session time zone does not change the result.
CREATE FUNCTION arcolake_timestamp(v jsonb) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    RETURN (v #>> '{}')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE FUNCTION arcolake_unaccent(t text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN unaccent(t);

-- The kind of a JSON value as the catalog names it (timestamps apart from
-- other strings), matching the writer's classification.
CREATE FUNCTION arcolake_kind(v jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE jsonb_typeof(v)
        WHEN 'string' THEN CASE
            WHEN (v #>> '{}') ~ '^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d' AND arcolake_timestamp(v) IS NOT NULL
            THEN 'datetime' ELSE 'string' END
        WHEN 'null' THEN NULL
        ELSE jsonb_typeof(v) END;

INSERT INTO item_properties (collection, name, kind)
SELECT DISTINCT i.collection, p.key, arcolake_kind(p.value)
FROM items AS i, jsonb_each(i.properties) AS p
WHERE arcolake_kind(p.value) IS NOT NULL
ON CONFLICT DO NOTHING;

-- Expression indexes: the filter compiler writes exactly these expressions.
CREATE INDEX items_eo_cloud_cover_idx ON items (arcolake_number(properties->'eo:cloud_cover'));
CREATE INDEX items_gsd_idx ON items (arcolake_number(properties->'gsd'));
CREATE INDEX items_proj_epsg_idx ON items (arcolake_number(properties->'proj:epsg'));
CREATE INDEX items_proj_code_idx ON items ((properties->>'proj:code'));
CREATE INDEX items_platform_idx ON items ((properties->>'platform'));
-- The spatio-temporal index also holds cloud cover: "this area, clear
-- scenes, newest first" is answered inside one index scan.
DROP INDEX items_geometry_datetime_idx;
CREATE INDEX items_geometry_datetime_cloud_idx ON items
    USING gist (geometry, datetime, arcolake_number(properties->'eo:cloud_cover'));
-- Sorting by cloud cover pages through this index, keyset by keyset.
CREATE INDEX items_eo_cloud_cover_sort_idx ON items (
    (arcolake_number(properties->'eo:cloud_cover') IS NULL),
    arcolake_number(properties->'eo:cloud_cover'),
    collection, id);
