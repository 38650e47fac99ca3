-- What the crawler knows about each storage object, between crawls.
--
-- One row per registered object: its change token (ETag, else size and
-- modification time), the item and asset it feeds, and the part of the
-- item it contributes, so an item grouped from several files can be
-- rebuilt when one of them changes or disappears. Rows and items are
-- written in the same transaction: a crawl killed at any point leaves
-- them consistent.
CREATE TABLE crawl_objects (
    source text NOT NULL,
    path text NOT NULL,
    token text NOT NULL,
    collection text NOT NULL,
    item_id text NOT NULL,
    part jsonb NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (source, path)
);

CREATE INDEX crawl_objects_item ON crawl_objects (collection, item_id);
CREATE INDEX crawl_objects_generation ON crawl_objects (source, generation);

-- One row per source: the generation of its latest crawl.
CREATE TABLE crawl_runs (
    source text PRIMARY KEY,
    generation bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    complete boolean NOT NULL DEFAULT false
);
