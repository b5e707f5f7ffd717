-- Full-text indexes without a pending list (GIN `fastupdate = off`).
--
-- With fastupdate on (Postgres's default), a new row's entries wait in an unsorted pending
-- list until a vacuum or the list's size limit (4 MB) merges them, and every full-text query
-- reads that whole list. Measured at 100k (docs/performance.md, mixed load): right after ~600
-- adds the search statement ran at 560 req/s, after VACUUM at 875. A memory store is read far
-- more often than written, so each insert now pays its own index update instead.
ALTER INDEX memories_semantic_fts SET (fastupdate = off);
ALTER INDEX memories_episodic_fts SET (fastupdate = off);
ALTER INDEX memories_procedural_fts SET (fastupdate = off);
ALTER INDEX memories_rag_fts SET (fastupdate = off);
ALTER INDEX working_memory_fts SET (fastupdate = off);
-- Entries already pending are merged now (the setting only stops new ones).
SELECT gin_clean_pending_list(i::regclass)
FROM unnest(ARRAY['memories_semantic_fts', 'memories_episodic_fts', 'memories_procedural_fts', 'memories_rag_fts', 'working_memory_fts']) AS i;
