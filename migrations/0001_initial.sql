-- Pinak store schema, version 1. Runs inside the store's own schema (search_path is set to
-- "<store schema>, public"; the `vector` type lives in public). Nothing here is schema-qualified,
-- so the same file provisions any number of stores side by side.
--
-- Tenancy: every table carries (tenant, project_id) taken from the signed token; every index
-- that serves a read starts with them, so per-project queries never scan other projects.
-- Vectors are columns of their rows (vector(384) + model name/dim): deleting or updating the
-- row deletes or replaces the vector in the same transaction.

CREATE TABLE memories_semantic (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    project_id      text NOT NULL,
    content         text NOT NULL,
    tags            jsonb NOT NULL DEFAULT '[]'::jsonb,
    agent_id        text,
    client_id       text,
    client_name     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    embedding       vector(384),
    embedding_model text,
    embedding_dim   integer,
    fts             tsvector GENERATED ALWAYS AS (
                        to_tsvector('simple', content) || jsonb_to_tsvector('simple', tags, '["string"]')
                    ) STORED
);
CREATE INDEX memories_semantic_scope ON memories_semantic (tenant, project_id, created_at DESC);
CREATE INDEX memories_semantic_fts ON memories_semantic USING gin (fts);
CREATE INDEX memories_semantic_hnsw ON memories_semantic USING hnsw (embedding vector_l2_ops);

CREATE TABLE memories_episodic (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    project_id      text NOT NULL,
    content         text NOT NULL,
    goal            text,
    outcome         text,
    plan            jsonb,
    steps           jsonb,           -- the API calls it tool_logs
    salience        integer NOT NULL DEFAULT 0,
    agent_id        text,
    client_id       text,
    client_name     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    embedding       vector(384),
    embedding_model text,
    embedding_dim   integer,
    fts             tsvector GENERATED ALWAYS AS (
                        to_tsvector('simple', content || ' ' || coalesce(goal, '') || ' ' || coalesce(outcome, ''))
                    ) STORED
);
CREATE INDEX memories_episodic_scope ON memories_episodic (tenant, project_id, created_at DESC);
CREATE INDEX memories_episodic_fts ON memories_episodic USING gin (fts);
CREATE INDEX memories_episodic_hnsw ON memories_episodic USING hnsw (embedding vector_l2_ops);

CREATE TABLE memories_procedural (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    project_id      text NOT NULL,
    skill_name      text NOT NULL,
    trigger         text,
    steps           jsonb NOT NULL DEFAULT '[]'::jsonb,
    description     text,
    code_snippet    text,
    agent_id        text,
    client_id       text,
    client_name     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    embedding       vector(384),
    embedding_model text,
    embedding_dim   integer,
    fts             tsvector GENERATED ALWAYS AS (
                        to_tsvector('simple', skill_name || ' ' || coalesce(trigger, '') || ' ' || coalesce(description, ''))
                        || jsonb_to_tsvector('simple', steps, '["string"]')
                    ) STORED
);
CREATE INDEX memories_procedural_scope ON memories_procedural (tenant, project_id, created_at DESC);
CREATE INDEX memories_procedural_fts ON memories_procedural USING gin (fts);
CREATE INDEX memories_procedural_hnsw ON memories_procedural USING hnsw (embedding vector_l2_ops);

CREATE TABLE memories_rag (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    project_id      text NOT NULL,
    query           text NOT NULL,
    external_source text NOT NULL,
    content         text NOT NULL,
    agent_id        text,
    client_id       text,
    client_name     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz,
    fts             tsvector GENERATED ALWAYS AS (
                        to_tsvector('simple', query || ' ' || content || ' ' || external_source)
                    ) STORED
);
CREATE INDEX memories_rag_scope ON memories_rag (tenant, project_id, created_at DESC);
CREATE INDEX memories_rag_fts ON memories_rag USING gin (fts);

CREATE TABLE working_memory (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    project_id  text NOT NULL,
    session_id  text NOT NULL DEFAULT 'global',
    key         text NOT NULL DEFAULT 'current_context',
    value       text NOT NULL,
    agent_id    text,
    client_id   text,
    client_name text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    fts         tsvector GENERATED ALWAYS AS (to_tsvector('simple', value)) STORED
);
CREATE INDEX working_memory_scope ON working_memory (tenant, project_id, updated_at DESC);
CREATE INDEX working_memory_fts ON working_memory USING gin (fts);
CREATE INDEX working_memory_expiry ON working_memory (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE logs_session (
    id               uuid PRIMARY KEY,
    tenant           text NOT NULL,
    project_id       text NOT NULL,
    session_id       text NOT NULL,
    content          text NOT NULL,
    role             text NOT NULL,
    tool_calls       jsonb,
    agent_id         text,
    client_id        text,
    client_name      text,
    parent_client_id text,
    child_client_id  text,
    ts               timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz
);
CREATE INDEX logs_session_scope ON logs_session (tenant, project_id, session_id, ts);
CREATE INDEX logs_session_expiry ON logs_session (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE logs_events (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    project_id  text NOT NULL,
    event_type  text NOT NULL,
    payload     jsonb NOT NULL,
    ts          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logs_events_scope ON logs_events (tenant, project_id, ts DESC);

CREATE TABLE clients_registry (
    id               uuid PRIMARY KEY,
    tenant           text NOT NULL,
    project_id       text NOT NULL,
    client_id        text NOT NULL,
    client_name      text,
    parent_client_id text,
    status           text NOT NULL,
    metadata         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz,
    UNIQUE (tenant, project_id, client_id)
);
CREATE INDEX clients_registry_parent ON clients_registry (tenant, project_id, parent_client_id);

CREATE TABLE logs_agents (
    id               uuid PRIMARY KEY,
    tenant           text NOT NULL,
    project_id       text NOT NULL,
    agent_id         text NOT NULL,
    client_name      text NOT NULL,
    client_id        text,
    parent_client_id text,
    hostname         text,
    pid              text,
    status           text NOT NULL,
    meta             jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_seen        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, project_id, agent_id, client_name)
);
CREATE INDEX logs_agents_seen ON logs_agents (tenant, project_id, last_seen DESC);

CREATE TABLE logs_access (
    id               bigserial PRIMARY KEY,
    tenant           text NOT NULL,
    project_id       text NOT NULL,
    agent_id         text,
    client_name      text,
    client_id        text,
    parent_client_id text,
    child_client_id  text,
    event_type       text NOT NULL,
    target_layer     text,
    query            text,
    memory_id        text,
    result_count     integer,
    status           text NOT NULL,
    detail           text,
    ts               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX logs_access_scope ON logs_access (tenant, project_id, ts DESC);
CREATE INDEX logs_access_ts ON logs_access (ts);

CREATE TABLE memory_quarantine (
    id                uuid PRIMARY KEY,
    tenant            text NOT NULL,
    project_id        text NOT NULL,
    layer             text NOT NULL,
    payload           jsonb NOT NULL,
    status            text NOT NULL,
    agent_id          text,
    client_id         text,
    client_name       text,
    validation_errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    reviewed_at       timestamptz,
    reviewed_by       text
);
CREATE INDEX memory_quarantine_scope ON memory_quarantine (tenant, project_id, status, created_at DESC);

CREATE TABLE memory_units (
    id          uuid PRIMARY KEY,
    tenant      text NOT NULL,
    project_id  text NOT NULL,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memory_unit_members (
    unit_id     uuid NOT NULL REFERENCES memory_units (id) ON DELETE CASCADE,
    tenant      text NOT NULL,
    project_id  text NOT NULL,
    layer       text NOT NULL,
    record_id   text NOT NULL,
    role        text NOT NULL,
    position    integer NOT NULL,
    PRIMARY KEY (unit_id, layer, record_id),
    UNIQUE (tenant, project_id, layer, record_id)
);

CREATE TABLE logs_client_issues (
    id               uuid PRIMARY KEY,
    tenant           text NOT NULL,
    project_id       text NOT NULL,
    client_id        text NOT NULL,
    client_name      text,
    agent_id         text,
    parent_client_id text,
    child_client_id  text,
    layer            text,
    error_code       text NOT NULL,
    message          text NOT NULL,
    payload          jsonb,
    metadata         jsonb,
    status           text NOT NULL DEFAULT 'open',
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_by      text,
    resolution       text
);
CREATE INDEX logs_client_issues_scope ON logs_client_issues (tenant, project_id, status, created_at DESC);

-- Revocations are store-wide (a jti is unique); the check runs before tenant resolution.
CREATE TABLE revoked_jti (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    revoked_by  text
);
CREATE INDEX revoked_jti_expiry ON revoked_jti (expires_at);

-- Hash-chained audit log, one chain per tenant. Appends take a per-tenant advisory lock in the
-- writing transaction, so concurrent writers (any replica) cannot fork a chain.
CREATE TABLE logs_audit (
    id          bigserial PRIMARY KEY,
    tenant      text NOT NULL,
    seq         bigint NOT NULL,
    event_type  text NOT NULL,
    payload     jsonb NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL,
    ts          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, seq)
);
