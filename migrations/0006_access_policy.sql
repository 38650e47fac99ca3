-- Access policy: a collection is public unless its document says
-- "arcolake:access": "restricted"; restricted collections are seen only by
-- callers an API key or token grants them to.

ALTER TABLE collections
    ADD COLUMN restricted boolean NOT NULL
        GENERATED ALWAYS AS (coalesce(content->>'arcolake:access' = 'restricted', false)) STORED;

CREATE INDEX collections_restricted_idx ON collections (id) WHERE restricted;

-- API keys: the public id is shown by `arcolake keys list`; the secret is
-- kept only as its SHA-256.
CREATE TABLE api_keys (
    id          text        NOT NULL,
    name        text,
    secret_hash bytea       NOT NULL,
    collections text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_hash_length CHECK (octet_length(secret_hash) = 32)
);
