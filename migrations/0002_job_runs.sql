-- One row per background-job run (api/src/jobs.rs), for operators and tests. The job queue
-- itself lives in graphile_worker's own per-store schema "<store schema>_worker".
CREATE TABLE job_runs (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    job_id      bigint,          -- graphile job id
    worker      text,            -- graphile worker id (one per pod)
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,     -- NULL: still running, or the pod died mid-run
    rows        bigint,          -- rows deleted / re-embedded / found inconsistent
    detail      jsonb
);
CREATE INDEX job_runs_job ON job_runs (job, started_at DESC);
