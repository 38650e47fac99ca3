-- Collections: one row per STAC Collection, the full document as JSONB.
CREATE TABLE collections (
    id          text        NOT NULL,
    content     jsonb       NOT NULL,
    links       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT collections_pkey PRIMARY KEY (id),
    CONSTRAINT collections_id_not_empty CHECK (id <> '')
);
