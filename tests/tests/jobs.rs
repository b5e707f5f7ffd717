//! Background jobs (api/src/runtime/jobs.rs) against the real Postgres: the crontab as graphile schedules
//! it, each job's effect, re-embedding, exactly-once execution across two replicas, and recovery
//! of a job whose pod was killed. Apart from the crontab test, jobs are enqueued from SQL
//! (graphile's `add_job`), as an operator would, rather than waiting for their cron tick.

use std::time::{Duration, Instant};

use pinak_api::embedding::DummyEmbedder;
use pinak_api::runtime::jobs::{REEMBED_BATCH, worker_schema};
use pinak_api::store::layers::Layer;
use pinak_tests::TestApi;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgConnection, Row};

/// Polls `$cond` (an expression that may `.await`) until it holds, failing after `$secs`.
macro_rules! wait_until {
    ($what:expr, $secs:expr, $cond:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        while !$cond {
            assert!(Instant::now() < deadline, "timed out waiting for: {}", $what);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

async fn scalar_i64(c: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(AssertSqlSafe(sql.to_owned())).fetch_one(c).await.unwrap().unwrap_or(0)
}

/// Waits until `n` workers of this store are registered (installed queue + running worker).
async fn wait_workers(api: &TestApi, n: i64) {
    let w = worker_schema(&api.schema);
    let mut c = api.db().await;
    wait_until!(format!("{n} worker(s) in {w}"), 30, {
        let installed: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("\"{w}\"._private_workers"))
            .fetch_one(&mut c)
            .await
            .unwrap();
        installed && scalar_i64(&mut c, &format!("SELECT count(*) FROM \"{w}\"._private_workers")).await >= n
    });
}

/// Enqueues `task` with a job key through graphile's SQL API; returns the job id.
async fn enqueue(api: &TestApi, task: &str, key: &str) -> i64 {
    let w = worker_schema(&api.schema);
    let mut c = api.db().await;
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM \"{w}\".add_job($1, '{{}}'::json, job_key := $2)")))
        .bind(task)
        .bind(key)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// Waits until every job in `ids` has a finished `job_runs` row.
async fn wait_finished(api: &TestApi, ids: &[i64]) {
    let mut c = api.db().await;
    wait_until!(format!("jobs {ids:?} finished"), 60, {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT job_id) FROM job_runs WHERE job_id = ANY($1) AND finished_at IS NOT NULL",
        )
        .bind(ids)
        .fetch_one(&mut c)
        .await
        .unwrap();
        done == ids.len() as i64
    });
}

/// Every crontab entry, enqueued by graphile's cron runner with the entry's own payload (not by
/// hand), runs to success. The runner enqueues an entry at its tick or, when a worker starts, for
/// the latest tick missed within the entry's `fill` window; both go through the same job spec
/// and SQL (`CrontabJob::for_cron`, `schedule_cron_jobs`). The test takes the second way, so it
/// needs no wait for a wall-clock tick: it records every entry as last run two hours ago (a store
/// whose pods were all down at the last tick) and starts a worker, whose cron runner enqueues
/// each entry's latest tick at once.
#[tokio::test]
async fn every_crontab_entry_is_scheduled_and_succeeds() {
    let api = TestApi::builder().env("PINAK_JOBS", "false").start().await;
    pinak_api::runtime::jobs::install(&api.state).await;
    let w = worker_schema(&api.schema);
    let mut c = api.db().await;
    let crontab = pinak_api::runtime::jobs::crontab();
    let entries: Vec<String> = crontab.iter().map(|e| e.identifier().to_owned()).collect();
    let mut tasks: Vec<String> = crontab.iter().map(|e| e.task_identifier.clone()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{w}\"._private_known_crontabs (identifier, known_since, last_execution)
         SELECT e, now() - interval '2 hours', now() - interval '2 hours' FROM unnest($1::text[]) e"
    )))
    .bind(&entries)
    .execute(&mut c)
    .await
    .unwrap();

    let jobs = pinak_api::runtime::jobs::start(&api.state).unwrap();
    wait_until!(format!("every crontab entry of {entries:?} scheduled and run"), 60, {
        // A failing job stays queued with its error (and is retried later): fail with it now.
        let failed: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT string_agg(t.identifier || ': ' || j.last_error, '; ')
             FROM \"{w}\"._private_jobs j JOIN \"{w}\"._private_tasks t ON t.id = j.task_id
             WHERE j.last_error IS NOT NULL"
        )))
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(failed, None, "scheduled jobs failed");
        // Each entry's tick is enqueued in the statement that moves its last_execution on.
        let scheduled: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{w}\"._private_known_crontabs
             WHERE identifier = ANY($1) AND last_execution > now() - interval '90 minutes'"
        )))
        .bind(&entries)
        .fetch_one(&mut c)
        .await
        .unwrap();
        // Failed jobs stay queued, so an empty queue after scheduling means all succeeded.
        let queued = scalar_i64(&mut c, &format!("SELECT count(*) FROM \"{w}\"._private_jobs")).await;
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT job) FROM job_runs WHERE job = ANY($1) AND finished_at IS NOT NULL",
        )
        .bind(&tasks)
        .fetch_one(&mut c)
        .await
        .unwrap();
        scheduled == entries.len() as i64 && queued == 0 && finished == tasks.len() as i64
    });
    jobs.shutdown().await;
    api.stop().await;
}

#[tokio::test]
async fn purge_and_prune_jobs_delete_only_what_is_due() {
    let api = TestApi::builder().env("PINAK_ACCESS_LOG_RETENTION_DAYS", "30").start().await;
    let mut c = api.db().await;
    for sql in [
        "INSERT INTO working_memory (id, tenant, project_id, value, expires_at) VALUES
            (gen_random_uuid(), 't', 'p', 'expired-1', now() - interval '1 hour'),
            (gen_random_uuid(), 't', 'p', 'expired-2', now() - interval '1 second'),
            (gen_random_uuid(), 't', 'p', 'live', now() + interval '1 hour'),
            (gen_random_uuid(), 't', 'p', 'forever', NULL)",
        "INSERT INTO logs_session (id, tenant, project_id, session_id, content, role, expires_at) VALUES
            (gen_random_uuid(), 't', 'p', 's', 'expired', 'user', now() - interval '1 minute'),
            (gen_random_uuid(), 't', 'p', 's', 'live', 'user', now() + interval '1 day'),
            (gen_random_uuid(), 't', 'p', 's', 'forever', 'user', NULL)",
        "INSERT INTO logs_access (tenant, project_id, event_type, status, detail, ts) VALUES
            ('t', 'p', 'read', 'ok', 'old', now() - interval '31 days'),
            ('t', 'p', 'read', 'ok', 'ancient', now() - interval '400 days'),
            ('t', 'p', 'read', 'ok', 'recent', now() - interval '29 days')",
        "INSERT INTO revoked_jti (tenant, jti, expires_at) VALUES
            ('t', 'gone-1', now() - interval '1 minute'), ('t', 'gone-2', now() - interval '10 days'), ('t', 'kept', now() + interval '1 hour')",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    wait_workers(&api, 1).await;
    let ids = [
        enqueue(&api, "purge_expired", "t-purge").await,
        enqueue(&api, "prune_access_log", "t-access").await,
        enqueue(&api, "prune_revocations", "t-revoked").await,
    ];
    wait_finished(&api, &ids).await;

    let texts = |sql: &'static str| {
        let api = &api;
        async move {
            let mut c = api.db().await;
            let mut v: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
            v.sort();
            v
        }
    };
    assert_eq!(texts("SELECT value FROM working_memory").await, ["forever", "live"]);
    assert_eq!(texts("SELECT content FROM logs_session").await, ["forever", "live"]);
    assert_eq!(texts("SELECT detail FROM logs_access").await, ["recent"]);
    assert_eq!(texts("SELECT jti FROM revoked_jti").await, ["kept"]);
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT job, rows FROM job_runs WHERE job_id = ANY($1) ORDER BY job")
        .bind(&ids[..])
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows, [("prune_access_log".into(), 2), ("prune_revocations".into(), 2), ("purge_expired".into(), 3)]);
    api.stop().await;
}

/// The text each layer embeds, computed from a stored row the way the API does.
async fn expected_vectors(c: &mut PgConnection, layer: Layer) -> Vec<(String, Option<String>, Vec<f32>, Vec<f32>)> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {} AS row, embedding_model, embedding::real[] AS v FROM {} t ORDER BY id",
        pinak_api::store::records::ROW_JSON,
        layer.table()
    )))
    .fetch_all(c)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let row: Value = r.get("row");
            let text = layer.embedding_text(&layer.payload_of_row(&row)).unwrap();
            (
                text.clone(),
                r.get("embedding_model"),
                r.get::<Option<Vec<f32>>, _>("v").unwrap_or_default(),
                DummyEmbedder.embed_one(&text),
            )
        })
        .collect()
}

#[tokio::test]
async fn reembed_replaces_vectors_of_another_model() {
    let api = TestApi::builder().env("PINAK_REEMBED_FROM", "old-model").start().await;
    let mut c = api.db().await;
    let stale = "array_fill(0.5::real, ARRAY[384])::vector";
    for sql in [
        format!(
            "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim)
             SELECT gen_random_uuid(), 't', 'p', 'fact ' || i, {stale}, 'old-model', 384 FROM generate_series(1, 150) i"
        ),
        "INSERT INTO memories_semantic (id, tenant, project_id, content) VALUES (gen_random_uuid(), 't', 'p', 'never embedded')".into(),
        format!(
            "INSERT INTO memories_episodic (id, tenant, project_id, content, goal, outcome, embedding, embedding_model, embedding_dim)
             SELECT gen_random_uuid(), 't', 'p', 'episode ' || i, 'goal ' || i, NULL, {stale}, 'old-model', 384 FROM generate_series(1, 5) i"
        ),
        format!(
            "INSERT INTO memories_procedural (id, tenant, project_id, skill_name, trigger, description, embedding, embedding_model, embedding_dim)
             SELECT gen_random_uuid(), 't', 'p', 'skill ' || i, 'when ' || i, 'does ' || i, {stale}, 'old-model', 384 FROM generate_series(1, 5) i"
        ),
    ] {
        sqlx::query(AssertSqlSafe(sql)).execute(&mut c).await.unwrap();
    }
    // Already the current model: must be left alone (its deliberately wrong vector stays).
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim)
         VALUES (gen_random_uuid(), 't', 'p', 'current', {stale}, '{}', 384)",
        DummyEmbedder::MODEL_NAME
    )))
    .execute(&mut c)
    .await
    .unwrap();
    wait_workers(&api, 1).await;
    let id = enqueue(&api, "reembed", "t-reembed").await;
    wait_finished(&api, &[id]).await;

    for layer in Layer::VECTOR_LAYERS {
        let rows = expected_vectors(&mut c, layer).await;
        assert!(!rows.is_empty());
        for (text, model, got, want) in rows {
            assert_eq!(model.as_deref(), Some(DummyEmbedder::MODEL_NAME), "{layer:?} {text}");
            if text == "current" {
                assert_eq!(got, vec![0.5f32; 384], "a row of the current model is not re-embedded");
            } else {
                assert_eq!(got, want, "{layer:?} {text}: the dummy vector of its text");
            }
        }
    }
    let dims =
        scalar_i64(&mut c, "SELECT count(*) FROM memories_semantic WHERE embedding_dim IS DISTINCT FROM 384").await;
    assert_eq!(dims, 0);

    // verify_vectors now finds nothing wrong.
    let v = enqueue(&api, "verify_vectors", "t-verify").await;
    wait_finished(&api, &[v]).await;
    assert_eq!(scalar_i64(&mut c, &format!("SELECT rows FROM job_runs WHERE job_id = {v}")).await, 0);
    api.stop().await;
}

/// Item 21 of issue 19: a pod started with another backend than the store's (here the dummy
/// model over vectors of "the-store-model") embeds only rows without a vector; the store's
/// vectors stay until PINAK_REEMBED_FROM names their model, and the run reports them.
#[tokio::test]
async fn reembed_keeps_vectors_of_another_model_unless_asked() {
    let api = TestApi::start().await;
    let mut c = api.db().await;
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim) VALUES
            (gen_random_uuid(), 't', 'p', 'the store''s', array_fill(0.5::real, ARRAY[384])::vector, 'the-store-model', 384),
            (gen_random_uuid(), 't', 'p', 'never embedded', NULL, NULL, NULL)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    wait_workers(&api, 1).await;
    let id = enqueue(&api, "reembed", "t-keep").await;
    wait_finished(&api, &[id]).await;
    let rows = expected_vectors(&mut c, Layer::Semantic).await;
    for (text, model, got, want) in rows {
        match text.as_str() {
            "the store's" => {
                assert_eq!(model.as_deref(), Some("the-store-model"));
                assert_eq!(got, vec![0.5f32; 384], "a vector of the store's model was replaced");
            }
            _ => assert_eq!(got, want, "a row without a vector is embedded"),
        }
    }
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM job_runs WHERE job_id = $1").bind(id).fetch_one(&mut c).await.unwrap();
    assert_eq!(detail["semantic"]["kept_foreign"], json!({"the-store-model": 1}), "{detail}");
    api.stop().await;
}

#[tokio::test]
async fn verify_vectors_counts_inconsistencies() {
    let api = TestApi::builder().env("PINAK_JOBS_CONCURRENCY", "2").start().await;
    let mut c = api.db().await;
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim) VALUES
            (gen_random_uuid(), 't', 'p', 'missing', NULL, NULL, NULL),
            (gen_random_uuid(), 't', 'p', 'foreign', array_fill(0.1::real, ARRAY[384])::vector, 'old-model', 384),
            (gen_random_uuid(), 't', 'p', 'bad dim', array_fill(0.1::real, ARRAY[384])::vector, 'dummy-sha256-384', 12)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // Top priority, so it usually runs before the startup re-embed pass gets to these rows.
    wait_workers(&api, 1).await;
    let w = worker_schema(&api.schema);
    let v: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT id FROM \"{w}\".add_job('verify_vectors', '{{}}'::json, job_key := 'v', priority := -10)"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();
    wait_finished(&api, &[v]).await;
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM job_runs WHERE job_id = $1").bind(v).fetch_one(&mut c).await.unwrap();
    // The startup re-embed may have repaired "missing"/"foreign" before verify ran, but never
    // the bad dimension (it only re-embeds rows of another model or without a vector).
    let sem = &detail["semantic"];
    assert_eq!(sem["bad_dim"], 1, "{detail}");
    let rows: i64 =
        sqlx::query_scalar("SELECT rows FROM job_runs WHERE job_id = $1").bind(v).fetch_one(&mut c).await.unwrap();
    assert_eq!(rows, sem["missing"].as_i64().unwrap() + sem["foreign_model"].as_i64().unwrap() + 1);
    api.stop().await;
}

#[tokio::test]
async fn jobs_run_exactly_once_across_two_replicas() {
    let a = TestApi::start().await;
    let b = TestApi::builder().env("PINAK_DB_SCHEMA", &a.schema).start().await;
    wait_workers(&a, 2).await;
    const N: usize = 40;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(enqueue(&a, "verify_vectors", &format!("once-{i}")).await);
    }
    wait_finished(&a, &ids).await;
    // Give a would-be duplicate execution time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut c = a.db().await;
    let (runs, distinct, workers): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT job_id), count(DISTINCT worker) FROM job_runs WHERE job_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((runs, distinct), (N as i64, N as i64), "every job ran exactly once");
    eprintln!("{N} jobs ran on {workers} worker(s)");
    let w = worker_schema(&a.schema);
    assert_eq!(
        scalar_i64(&mut c, &format!("SELECT count(*) FROM \"{w}\"._private_jobs WHERE id = ANY(ARRAY{ids:?})")).await,
        0
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_job_of_a_killed_pod_is_finished_by_another() {
    // Pod A serves without the built-in worker; the test runs A's worker itself so it can kill it.
    let a = TestApi::builder().env("PINAK_JOBS", "false").start().await;
    let w = worker_schema(&a.schema);
    let mut c = a.db().await;
    const ROWS: i64 = 300;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding_model)
         SELECT gen_random_uuid(), 't', 'p', 'fact ' || i, 'old-model' FROM generate_series(1, {ROWS}) i"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    // Hold the last row (in re-embed order) so A's job stops deterministically mid-run: the first
    // batches commit, the last one waits on this lock.
    let mut holder = a.db().await;
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT id FROM memories_semantic ORDER BY id DESC LIMIT 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let jobs_a = pinak_api::runtime::jobs::start(&a.state).unwrap(); // enqueues the startup re-embed
    let committed = (ROWS / REEMBED_BATCH) * REEMBED_BATCH;
    let app = format!("pinak-jobs:{}", a.schema);
    wait_until!("A's re-embed blocked mid-run", 30, {
        let done =
            scalar_i64(&mut c, "SELECT count(*) FROM memories_semantic WHERE embedding_model = 'dummy-sha256-384'")
                .await;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&app)
        .fetch_one(&mut c)
        .await
        .unwrap();
        done == committed && waiting == 1
    });
    let (job_id, worker_a): (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT j.id, j.locked_by FROM \"{w}\"._private_jobs j JOIN \"{w}\"._private_tasks t ON t.id = j.task_id
         WHERE t.identifier = 'reembed' AND j.locked_by IS NOT NULL"
    )))
    .fetch_one(&mut c)
    .await
    .unwrap();

    // Kill A abruptly: no graceful release. Its pool refuses new connections, its task is gone,
    // and its open connections are cut (what Postgres sees when a pod dies).
    let _ = tokio::time::timeout(Duration::from_millis(200), jobs_a.pool().close()).await;
    jobs_a.task.abort();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1")
        .bind(&app)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A is really dead: nothing more was embedded and the job is still locked by A.
    assert_eq!(
        scalar_i64(&mut c, "SELECT count(*) FROM memories_semantic WHERE embedding_model = 'dummy-sha256-384'").await,
        committed
    );
    let locked_by: Option<String> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT locked_by FROM \"{w}\"._private_jobs WHERE id = {job_id}")))
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(locked_by.as_deref(), Some(worker_a.as_str()));

    // A's last heartbeat is now 1 hour old: this stands in for SWEEP_THRESHOLD (5 minutes) of
    // wall clock without heartbeats, after which any live worker declares A dead and unlocks its
    // jobs. (graphile_worker 0.14 recovers by heartbeat; a lock's age alone frees nothing.)
    let backdated = sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{w}\"._private_workers SET last_heartbeat_at = now() - interval '1 hour' WHERE id = $1"
    )))
    .bind(&worker_a)
    .execute(&mut c)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(backdated, 1, "A registered a heartbeat");

    let b = TestApi::builder().env("PINAK_DB_SCHEMA", &a.schema).start().await;
    wait_finished(&b, &[job_id]).await;
    // The run is recorded as finished inside the handler; graphile deletes the job row just after
    // it returns.
    wait_until!("the recovered job completed (its row gone)", 30, {
        scalar_i64(&mut c, &format!("SELECT count(*) FROM \"{w}\"._private_jobs WHERE id = {job_id}")).await == 0
    });
    let finisher: String =
        sqlx::query_scalar("SELECT worker FROM job_runs WHERE job_id = $1 AND finished_at IS NOT NULL")
            .bind(job_id)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_ne!(finisher, worker_a, "finished by B");
    for (text, model, got, want) in expected_vectors(&mut c, Layer::Semantic).await {
        assert_eq!(model.as_deref(), Some(DummyEmbedder::MODEL_NAME), "{text}");
        assert_eq!(got, want, "{text}");
    }
    b.stop().await;
    a.stop().await;
}

/// Item 12 of issue 19: every tenant's chain head is exported on a schedule, signed, so a copy
/// outside the database can anchor a later verification.
#[tokio::test]
async fn audit_heads_are_exported_signed_for_every_tenant() {
    const KEY: &str = "audit-head-signing-key-0123456789abcdef";
    let api = TestApi::builder().env("PINAK_AUDIT_SIGNING_KEY", KEY).start().await;
    for tenant in ["acme", "globex"] {
        let token = pinak_tests::Token::new(tenant, "p").sign();
        let (status, body) = api.post(&token, "/add", json!({"content": format!("a fact of {tenant}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    wait_workers(&api, 1).await;
    let id = enqueue(&api, "export_audit_heads", "t-heads").await;
    wait_finished(&api, &[id]).await;
    let mut c = api.db().await;
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM job_runs WHERE job_id = $1").bind(id).fetch_one(&mut c).await.unwrap();
    assert_eq!(detail["signed"], true, "{detail}");
    let heads = detail["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 2, "{detail}");
    for head in heads {
        let tenant = head["tenant"].as_str().unwrap();
        let (seq, hash, _) = pinak_api::governance::audit::head(&api.state.pool, tenant).await.unwrap().unwrap();
        let claims = pinak_api::governance::audit::verify_head(KEY, head["signature"].as_str().unwrap())
            .expect("a valid signature");
        assert_eq!((claims.tenant.as_str(), claims.seq, claims.head_hash.as_str()), (tenant, seq, hash.as_str()));
        assert!(
            pinak_api::governance::audit::verify_head(
                "another-key-0123456789abcdef0123456",
                head["signature"].as_str().unwrap()
            )
            .is_none()
        );
    }
    api.stop().await;
}

/// `PINAK_REEMBED_FROM=*` replaces the vectors of any other model.
#[tokio::test]
async fn reembed_from_any_model_replaces_every_foreign_vector() {
    let api = TestApi::builder().env("PINAK_REEMBED_FROM", "*").start().await;
    let mut c = api.db().await;
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, embedding, embedding_model, embedding_dim) VALUES
            (gen_random_uuid(), 't', 'p', 'some model''s', array_fill(0.5::real, ARRAY[384])::vector, 'some-model', 384)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    wait_workers(&api, 1).await;
    let id = enqueue(&api, "reembed", "t-any").await;
    wait_finished(&api, &[id]).await;
    for (text, model, got, want) in expected_vectors(&mut c, Layer::Semantic).await {
        assert_eq!(model.as_deref(), Some(DummyEmbedder::MODEL_NAME), "{text}");
        assert_eq!(got, want, "{text}: replaced by the current model's vector");
    }
    api.stop().await;
}
