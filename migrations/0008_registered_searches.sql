-- Searches registered for their tiles (POST /searches): a long filter is
-- sent once and its tiles are named by a content hash. Serving them only
-- reads this table, so it works on a read-only replica.
CREATE TABLE registered_searches (
    id         text        NOT NULL,
    body       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT registered_searches_pkey PRIMARY KEY (id)
);
