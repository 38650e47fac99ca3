-- Vector datasets of the lake published as tile layers (`arcolake
-- publish`): each publication is a table of its own in the schema
-- `layers` (geometry reprojected to EPSG:4326 on import, a GIST index,
-- the attributes as one jsonb), named here. Publishing again fills a new
-- table and swaps it in within one transaction: readers see the old layer
-- or the new one, never a half-filled one.

CREATE SCHEMA IF NOT EXISTS layers;

CREATE TABLE published_layers (
    collection   text        NOT NULL,
    item         text        NOT NULL,
    asset        text        NOT NULL,
    table_name   text        NOT NULL UNIQUE,
    href         text        NOT NULL,
    -- The file's change token (ETag, else size and modification time)
    -- when it was imported: a crawl republishes only when it changed.
    source_token text        NOT NULL,
    -- The EPSG code of the file's geometry.
    source_srid  integer     NOT NULL,
    -- [[name, kind], ...] of the attribute columns.
    columns      jsonb       NOT NULL DEFAULT '[]',
    features     bigint      NOT NULL,
    bbox         float8[],
    stamp        bigint      NOT NULL DEFAULT nextval('change_stamps'),
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, item, asset)
);
