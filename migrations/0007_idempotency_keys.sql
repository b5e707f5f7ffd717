-- Idempotency-Key on write routes (issue 20): the first answer to a key, per tenant and
-- project, replayed to its retries. `status` is NULL while the first request runs.
CREATE TABLE idempotency_keys (
    tenant       text NOT NULL,
    project_id   text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       int2,
    content_type text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, project_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
