-- Shards that own directories (`arcolake crawl --shard K/N --shard-depth D`):
-- an object inside a directory D levels below the source's root belongs to
-- the shard of that directory's path, so each shard lists only the levels
-- above D and the trees of its own directories. An object nearer the root
-- belongs, as with depth 0, to the shard of its item's id. The crawler
-- computes the same key before it reads a file (`Shard::key`).
CREATE FUNCTION crawl_shard_key(path text, item_id text, depth integer) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN depth > 0 AND cardinality(string_to_array(path, '/')) > depth
                THEN array_to_string((string_to_array(path, '/'))[1:depth], '/')
                ELSE item_id END;

-- The depth each shard run used: the shards of one round must agree, or
-- directories would be listed by no shard or by two.
ALTER TABLE crawl_shards ADD COLUMN depth integer NOT NULL DEFAULT 0 CHECK (depth >= 0);
