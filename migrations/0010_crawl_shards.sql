-- Sharded crawls (`arcolake crawl --shard K/N`).
--
-- An object belongs to shard K of N when its item's shard hash modulo N is
-- K. The hash is of the item id, so every file of a grouped item (and a
-- Zarr store, one object) is in one shard whatever N is; it is the first 32
-- bits of the id's MD5, computed the same way by the crawler before it
-- reads a file. Stored, so that a shard's removal pass and its removal
-- guard filter on a column, not on a hash per row.
CREATE FUNCTION crawl_shard_hash(item_id text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ('x' || left(md5(item_id), 8))::bit(32)::bigint;

ALTER TABLE crawl_objects
    ADD COLUMN shard_hash bigint GENERATED ALWAYS AS (crawl_shard_hash(item_id)) STORED;

-- The runs of each shard of a source, per shard count: a shard's removal
-- pass waits for nothing, but the collection's extent and its published
-- layers are worked out once, when every shard of a round has completed
-- (by the last shard, or by `arcolake crawl --finalize`). A round is the
-- set of shard runs that started after the last finalization.
CREATE TABLE crawl_shards (
    source      text        NOT NULL REFERENCES crawl_runs (source) ON DELETE CASCADE,
    shards      integer     NOT NULL CHECK (shards > 0),
    shard       integer     NOT NULL CHECK (shard >= 0 AND shard < shards),
    generation  bigint      NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    complete    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (source, shards, shard)
);

-- The crawl generation of the source when its collection was last
-- finalized (extent worked out after a complete crawl).
ALTER TABLE crawl_runs ADD COLUMN finalized_generation bigint NOT NULL DEFAULT 0;
