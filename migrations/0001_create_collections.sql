-- Collections: one row per STAC Collection, the full document as JSONB.
CREATE TABLE collections (
    id          text        NOT NULL,
    content     jsonb       NOT NULL,
    links       jsonb,
    -- The longest time span of any item ever written to the collection:
    -- bounds how far before a search interval an item's start can lie.
    max_item_span interval NOT NULL DEFAULT '0',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collections_pkey PRIMARY KEY (id),
    CONSTRAINT collections_id_not_empty CHECK (id <> '')
);
