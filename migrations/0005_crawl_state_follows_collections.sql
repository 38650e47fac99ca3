-- Crawl state belongs to the collection it fills: deleting a collection
-- deletes what the crawler remembered about it, so a re-created collection
-- is filled again by the next crawl instead of being skipped as unchanged.

DELETE FROM crawl_objects o
WHERE NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = o.collection);

ALTER TABLE crawl_objects
    ADD CONSTRAINT crawl_objects_collection_fkey FOREIGN KEY (collection)
        REFERENCES collections (id) ON DELETE CASCADE;

-- Runs are kept per "source -> collection"; the collection gets its own
-- column so that the run goes with it.
ALTER TABLE crawl_runs ADD COLUMN collection text;
UPDATE crawl_runs SET collection = split_part(source, ' -> ', 2);
DELETE FROM crawl_runs r
WHERE NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = r.collection);
ALTER TABLE crawl_runs
    ALTER COLUMN collection SET NOT NULL,
    ADD CONSTRAINT crawl_runs_collection_fkey FOREIGN KEY (collection)
        REFERENCES collections (id) ON DELETE CASCADE;
