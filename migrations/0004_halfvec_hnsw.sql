-- HNSW graphs over half-precision copies of the vectors (pgvector's half-precision indexing).
--
-- The columns keep full precision: exact search and every returned distance use them; only
-- the graph walk compares half-precision values. Measured at 100k real MiniLM vectors
-- (docs/performance.md, "HNSW index variants"): the graph is 43 % smaller (112 against
-- 196 MiB), builds faster, and answers 30-50 % more queries per second at the same
-- ef_search with recall@10 within 0.003. Queries must use the same expression,
-- `embedding::halfvec(384) <-> $v::halfvec(384)`, or the planner cannot use the index
-- (api/src/search.rs).
DROP INDEX memories_semantic_hnsw;
CREATE INDEX memories_semantic_hnsw ON memories_semantic USING hnsw ((embedding::halfvec(384)) halfvec_l2_ops);
DROP INDEX memories_episodic_hnsw;
CREATE INDEX memories_episodic_hnsw ON memories_episodic USING hnsw ((embedding::halfvec(384)) halfvec_l2_ops);
DROP INDEX memories_procedural_hnsw;
CREATE INDEX memories_procedural_hnsw ON memories_procedural USING hnsw ((embedding::halfvec(384)) halfvec_l2_ops);
