//! Background jobs on a Postgres-backed queue: [graphile_worker] (a Rust port of Graphile
//! Worker), not a hand-rolled loop.
//!
//! Every API pod runs a worker (`PINAK_JOBS=false` turns it off in a pod). The queue lives in
//! the database, so:
//! - **exactly once across replicas**: workers claim jobs with `FOR UPDATE SKIP LOCKED`, and each
//!   cron tick is enqueued once for all workers (graphile's `known_crontabs` bookkeeping);
//! - **a killed pod loses nothing**: every worker heartbeats into `_private_workers`; a worker
//!   silent for [`SWEEP_THRESHOLD`] is declared dead by any surviving worker's sweep, which
//!   unlocks its jobs so another pod runs them (graphile's worker recovery). Graceful shutdown
//!   (`serve` returning) releases in-flight jobs at once instead.
//! - every job is idempotent and works in bounded, separately committed batches, so a rerun
//!   after a kill repeats at most one batch.
//!
//! **Where the queue lives.** graphile's tables and functions go in their own schema, one per
//! store: [`worker_schema`] = `"<store schema>_worker"`. It must not be the shared default
//! (`graphile_worker`): several stores share one database, and a shared queue would let store A's
//! pods run store B's jobs against store A's tables. It is not the store schema itself either:
//! graphile's migrations create generic names (`jobs`, `add_job`, `_private_*`, its own
//! `migrations` table) that would sit among the store's tables and, since the pool's
//! `search_path` starts with the store schema, could shadow or be shadowed by them.
//!
//! Operators and tests can enqueue from SQL:
//! `SELECT "<store>_worker".add_job('purge_expired', '{}'::json, job_key := 'manual-purge');`
//! and every run leaves one row in the store's `job_runs` table.

use std::time::Duration;

use graphile_worker::{
    Cron, CronBuilder, Crontab, CrontabFill, CrontabTimerError, IntoTaskHandlerResult, JobKeyMode, JobSpec,
    TaskHandler, Worker, WorkerContext, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::watch;

use crate::governance::audit;
use crate::runtime::config::Config;
use crate::runtime::state::AppState;
use crate::security::credentials::DbCredentials;
use crate::store::layers::Layer;
use crate::store::records::row_json;

/// Rows deleted per statement by the purge jobs: a large backlog is cleared in many short
/// transactions instead of one long one.
pub const DELETE_BATCH: i64 = 10_000;
/// Rows embedded and committed together by `reembed`.
pub const REEMBED_BATCH: i64 = 64;
/// A worker whose heartbeat is older than this is dead; its jobs go back to the queue.
pub const SWEEP_THRESHOLD: Duration = Duration::from_secs(5 * 60);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How long in-flight jobs may finish after shutdown before they are released.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Job key of the re-embed pass enqueued at startup: replicas starting together add one job.
pub const STARTUP_REEMBED_KEY: &str = "reembed:startup";

/// Schema holding this store's job queue (see the module docs). Postgres truncates identifiers
/// at 63 bytes, so a long store name is shortened with a hash to stay unique.
pub fn worker_schema(store: &str) -> String {
    const SUFFIX: &str = "_worker";
    if store.len() + SUFFIX.len() <= 63 {
        return format!("{store}{SUFFIX}");
    }
    let hash = hex::encode(&Sha256::digest(store.as_bytes())[..4]);
    format!("{}_{hash}{SUFFIX}", &store[..63 - SUFFIX.len() - 9])
}

/// The worker's own small pool: same store `search_path` as the API pool, but separate, so
/// jobs (and graphile's LISTEN connection) never take connections from requests, and an
/// operator can tell them apart in `pg_stat_activity` (`application_name = pinak-jobs:<store>`).
/// Like the API pool, it follows the credential files (`credentials`).
pub fn pool(cfg: &Config, credentials: &std::sync::Arc<DbCredentials>) -> Result<PgPool, sqlx::Error> {
    let opts = crate::store::db::connect_options(cfg, &credentials.current())?
        .application_name(&format!("pinak-jobs:{}", cfg.db_schema));
    let pool = credentials
        .retire_stale(PgPoolOptions::new())
        .max_connections(cfg.jobs_concurrency as u32 + 4)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(opts);
    credentials.track(&pool);
    Ok(pool)
}

/// What the handlers get through graphile's extensions.
#[derive(Clone)]
struct JobEnv {
    state: AppState,
    /// The worker pool (search_path = the store schema).
    pool: PgPool,
}

impl std::fmt::Debug for JobEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEnv").field("schema", &self.state.config.db_schema).finish()
    }
}

fn options(env: &JobEnv, shutdown: watch::Receiver<bool>) -> WorkerOptions {
    let cfg = &env.state.config;
    let mut rx = shutdown;
    WorkerOptions::default()
        .schema(worker_schema(&cfg.db_schema))
        .concurrency(cfg.jobs_concurrency)
        .pg_pool(env.pool.clone())
        .add_extension(env.clone())
        .define_job::<PurgeExpired>()
        .define_job::<PruneAccessLog>()
        .define_job::<PruneRevocations>()
        .define_job::<Reembed>()
        .define_job::<VerifyVectors>()
        .define_job::<ExportAuditHeads>()
        .with_crons(crontab())
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .sweep_interval(SWEEP_INTERVAL)
        .sweep_threshold(SWEEP_THRESHOLD)
        // The dead worker has been silent for SWEEP_THRESHOLD already: rerun its jobs at once.
        .recovery_delay(Duration::ZERO)
        // main.rs owns the signals and calls `serve`'s shutdown; the worker follows that.
        .listen_os_shutdown_signals(false)
        .shutdown_grace_period(SHUTDOWN_GRACE)
        .shutdown_signal(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
}

/// The schedule: hourly, spread over the hour; reembed every 10 minutes. Each tick is enqueued
/// once for all replicas (graphile tracks ticks in `known_crontabs`).
pub fn crontab() -> Vec<Crontab> {
    const HOUR: CrontabFill = CrontabFill::hours(1);
    vec![
        scheduled(Cron::hourly_at::<PurgeExpired>(5), HOUR),
        scheduled(Cron::hourly_at::<PruneAccessLog>(15), HOUR),
        scheduled(Cron::hourly_at::<PruneRevocations>(25), HOUR),
        scheduled(Cron::hourly_at::<VerifyVectors>(35), HOUR),
        scheduled(Cron::hourly_at::<ExportAuditHeads>(45), HOUR),
        scheduled(Cron::every_n_minutes::<Reembed>(10), CrontabFill::minutes(10)),
    ]
}

/// One crontab entry, with its task's payload: without one, graphile enqueues JSON `null` (its
/// `add_job` turns only SQL NULL into `{}`), which no handler accepts, so every tick failed.
/// `fill` is the entry's period: a tick missed while no pod of the store ran (a rollout, a
/// database outage) runs when a worker starts within one period after it, instead of waiting
/// for the next tick; `known_crontabs` keeps a tick from running twice.
fn scheduled<T: TaskHandler + Default>(timer: Result<CronBuilder<T>, CrontabTimerError>, fill: CrontabFill) -> Crontab {
    let entry = timer.expect("valid schedule").fill(fill);
    entry.payload(T::default()).expect("a job struct serializes").build()
}

/// A running worker (see [`start`]).
pub struct Jobs {
    pub task: tokio::task::JoinHandle<()>,
    pool: PgPool,
    stop: watch::Sender<bool>,
}

impl Jobs {
    /// The worker's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Graceful stop: no new jobs are taken, in-flight jobs get [`SHUTDOWN_GRACE`] to finish and
    /// are otherwise released back to the queue (not left locked), then the pool closes.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(2), &mut task).await.is_err() {
            tracing::warn!("job worker did not stop in time");
            task.abort();
        }
        // Bounded: with the database stalled, a connection may never come back to the pool.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.pool.close()).await;
    }
}

/// Installs or upgrades the queue schema ([`worker_schema`]) by initialising a worker that is
/// never run. Failures are logged only: the worker retries when it starts.
pub async fn install(state: &AppState) {
    let Ok(pool) = pool(&state.config, &state.credentials) else { return };
    let env = JobEnv { state: state.clone(), pool: pool.clone() };
    let (_stop, rx) = watch::channel(false);
    if let Err(e) = options(&env, rx).init().await {
        tracing::warn!(error = %e, "cannot install the job queue yet; the worker will retry");
    }
    pool.close().await;
}

/// Starts this pod's worker in the background. It installs/migrates the queue schema (retrying
/// while the database is unreachable), enqueues one startup re-embed pass, then runs until
/// [`Jobs::shutdown`].
pub fn start(state: &AppState) -> Result<Jobs, sqlx::Error> {
    let pool = pool(&state.config, &state.credentials)?;
    let env = JobEnv { state: state.clone(), pool: pool.clone() };
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        // Restarted after an error (e.g. the database went away), until asked to stop. Jobs a
        // failed run left locked are recovered by heartbeat like a dead pod's.
        loop {
            if *stop_rx.borrow() {
                return;
            }
            match options(&env, stop_rx.clone()).init().await {
                Ok(worker) => {
                    enqueue_startup(&worker).await;
                    tracing::info!(schema = %worker.schema(), concurrency = env.state.config.jobs_concurrency, "job worker running");
                    match worker.run().await {
                        Ok(()) if *stop_rx.borrow() => return,
                        Ok(()) => tracing::warn!("job worker stopped unexpectedly; restarting in 5s"),
                        Err(e) => tracing::error!(error = %e, "job worker failed; restarting in 5s"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "job worker cannot start yet; retrying in 5s"),
            }
            let mut rx = stop_rx.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = rx.wait_for(|stop| *stop) => return,
            }
        }
    });
    Ok(Jobs { task, pool, stop })
}

/// `unsafe_dedupe`: if a job with the key exists in any state, leave it alone. Replicas starting
/// together add one job, and a pod starting while another pod's pass is running (or waiting to
/// be recovered from a dead pod) neither replaces nor retires it (`replace` would retire a locked
/// job, so a recovered pass would never rerun). Should that job ever fail permanently, its row
/// keeps the key until removed; the 10-minute cron pass (no key) still runs meanwhile.
async fn enqueue_startup(worker: &Worker) {
    let spec = JobSpec::builder().job_key(STARTUP_REEMBED_KEY).job_key_mode(JobKeyMode::UnsafeDedupe).build();
    if let Err(e) = worker.create_utils().add_job(Reembed {}, spec).await {
        tracing::warn!(error = %e, "cannot enqueue the startup re-embed pass");
    }
}

// ---------------------------------------------------------------------------------------------
// Run bookkeeping: one `job_runs` row per run.

type JobResult = Result<(), String>;

async fn run_recorded<F, Fut>(ctx: &WorkerContext, job: &'static str, body: F) -> JobResult
where
    F: FnOnce(JobEnv) -> Fut,
    Fut: std::future::Future<Output = Result<(i64, Value), sqlx::Error>>,
{
    let env = ctx.get_ext::<JobEnv>().ok_or("job environment missing")?.clone();
    let run_id: i64 = sqlx::query_scalar("INSERT INTO job_runs (job, job_id, worker) VALUES ($1, $2, $3) RETURNING id")
        .bind(job)
        .bind(*ctx.job().id())
        .bind(ctx.worker_id())
        .fetch_one(&env.pool)
        .await
        .map_err(|e| e.to_string())?;
    let pool = env.pool.clone();
    let (rows, detail) = body(env).await.map_err(|e| {
        tracing::warn!(job, error = %e, "job failed; it will be retried");
        e.to_string()
    })?;
    sqlx::query("UPDATE job_runs SET finished_at = now(), rows = $2, detail = $3 WHERE id = $1")
        .bind(run_id)
        .bind(rows)
        .bind(&detail)
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(job, rows, "job finished");
    Ok(())
}

/// Deletes `predicate` rows of `table` in batches of [`DELETE_BATCH`], each its own statement.
async fn delete_batched(pool: &PgPool, table: &str, predicate: &str, bind: Option<i64>) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {predicate} LIMIT {DELETE_BATCH}))"
    );
    let mut total = 0i64;
    loop {
        let mut q = sqlx::query(AssertSqlSafe(sql.clone()));
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let n = q.execute(pool).await?.rows_affected() as i64;
        total += n;
        if n < DELETE_BATCH {
            return Ok(total);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The jobs.

/// Deletes expired working-memory and session-log rows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PurgeExpired {}

impl TaskHandler for PurgeExpired {
    const IDENTIFIER: &'static str = "purge_expired";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let working = delete_batched(&env.pool, "working_memory", "expires_at < now()", None).await?;
            let session = delete_batched(&env.pool, "logs_session", "expires_at < now()", None).await?;
            Ok((working + session, json!({"working_memory": working, "logs_session": session})))
        })
        .await
    }
}

/// Deletes access-log rows older than `PINAK_ACCESS_LOG_RETENTION_DAYS`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PruneAccessLog {}

impl TaskHandler for PruneAccessLog {
    const IDENTIFIER: &'static str = "prune_access_log";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let days = i64::from(env.state.config.access_log_retention_days);
            let n = delete_batched(&env.pool, "logs_access", "ts < now() - make_interval(days => $1::int)", Some(days))
                .await?;
            Ok((n, json!({"logs_access": n, "retention_days": days})))
        })
        .await
    }
}

/// Deletes revocations of tokens that have expired anyway.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PruneRevocations {}

impl TaskHandler for PruneRevocations {
    const IDENTIFIER: &'static str = "prune_revocations";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let n = delete_batched(&env.pool, "revoked_jti", "expires_at < now()", None).await?;
            Ok((n, json!({"revoked_jti": n})))
        })
        .await
    }
}

/// Writes every tenant's audit-chain head to the log (`event = "audit_head"`), signed when
/// `PINAK_AUDIT_SIGNING_KEY` is set: the log leaves the database, so a head kept there is an
/// anchor that `maintenance/verify` can check a chain against even if someone able to rewrite
/// `logs_audit` recomputed every hash. The run's detail holds the same heads.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExportAuditHeads {}

impl TaskHandler for ExportAuditHeads {
    const IDENTIFIER: &'static str = "export_audit_heads";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let key = env.state.config.audit_signing_key.clone();
            let mut exported = Vec::new();
            for (tenant, seq, head_hash, ts) in audit::heads(&env.pool).await? {
                let signature = match &key {
                    Some(key) => Some(
                        audit::sign_head(key, &tenant, seq, &head_hash)
                            .map_err(|e| sqlx::Error::Protocol(format!("signing the audit head failed: {e}")))?,
                    ),
                    None => None,
                };
                tracing::info!(event = "audit_head", tenant = %tenant, seq, head_hash = %head_hash, ts = %ts, signature = signature.as_deref().unwrap_or(""), "audit chain head");
                exported.push(json!({"tenant": tenant, "seq": seq, "head_hash": head_hash, "ts": ts, "signature": signature}));
            }
            Ok((exported.len() as i64, json!({"signed": key.is_some(), "heads": exported})))
        })
        .await
    }
}

/// Embeds rows without a vector with the configured embedder, in batches of
/// [`REEMBED_BATCH`] committed one by one. Vectors of another model are replaced only when
/// `PINAK_REEMBED_FROM` names that model (or is `*`): a model change must be asked for, so a
/// pod started with the wrong backend leaves them alone; they are counted and logged instead.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reembed {}

impl TaskHandler for Reembed {
    const IDENTIFIER: &'static str = "reembed";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let Some(model) = env.state.embedder.model_name().map(str::to_owned) else {
                return Ok((0, json!({"skipped": "embeddings disabled"})));
            };
            let replace_from = &env.state.config.reembed_from;
            let mut detail = serde_json::Map::new();
            let mut total = 0i64;
            for layer in Layer::VECTOR_LAYERS {
                let n = reembed_layer(&env, layer, &model, replace_from).await?;
                let kept = kept_foreign(&env, layer, &model).await?;
                if !kept.is_empty() {
                    let rows: i64 = kept.iter().map(|(_, n)| n).sum();
                    let models: Vec<&str> = kept.iter().map(|(m, _)| m.as_str()).collect();
                    tracing::warn!(
                        layer = layer.name(),
                        rows,
                        models = ?models,
                        current = %model,
                        "vectors of another model are kept; set PINAK_REEMBED_FROM to those models to replace them"
                    );
                }
                let kept: serde_json::Map<String, Value> = kept.into_iter().map(|(m, n)| (m, json!(n))).collect();
                detail.insert(layer.name().to_owned(), json!({"embedded": n, "kept_foreign": kept}));
                total += n;
            }
            Ok((total, Value::Object(detail)))
        })
        .await
    }
}

/// Vectors of other models left in `layer`, by model (a vector without a model as `""`).
async fn kept_foreign(env: &JobEnv, layer: Layer, model: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT coalesce(embedding_model, ''), count(*) FROM {} \
         WHERE embedding IS NOT NULL AND embedding_model IS DISTINCT FROM $1 GROUP BY 1 ORDER BY 1",
        layer.table()
    )))
    .bind(model)
    .fetch_all(&env.pool)
    .await
}

/// `replace_from`: the models whose vectors this pass may replace (`PINAK_REEMBED_FROM`; `*`: any).
async fn reembed_layer(env: &JobEnv, layer: Layer, model: &str, replace_from: &[String]) -> Result<i64, sqlx::Error> {
    let table = layer.table();
    // Keyset pagination by id: every pass moves forward, so the job ends even if a row keeps
    // changing under it (the API re-embeds rows it updates anyway).
    let select = format!(
        "SELECT id, updated_at, {} AS row FROM {table} t \
         WHERE (embedding IS NULL OR (embedding_model IS DISTINCT FROM $1 AND ('*' = ANY($3) OR embedding_model = ANY($3)))) \
           AND ($2::uuid IS NULL OR id > $2) \
         ORDER BY id LIMIT {REEMBED_BATCH}",
        row_json(layer)
    );
    // Only if the row is unchanged since we read its text.
    let update = format!(
        "UPDATE {table} SET embedding = $2, embedding_model = $3, embedding_dim = $4 \
         WHERE id = $1 AND updated_at IS NOT DISTINCT FROM $5"
    );
    let mut after: Option<uuid::Uuid> = None;
    let mut done = 0i64;
    loop {
        let rows = sqlx::query(AssertSqlSafe(select.clone()))
            .bind(model)
            .bind(after)
            .bind(replace_from)
            .fetch_all(&env.pool)
            .await?;
        let Some(last) = rows.last() else { return Ok(done) };
        after = Some(last.try_get("id")?);
        let mut texts = Vec::with_capacity(rows.len());
        for row in &rows {
            let json: Value = row.try_get("row")?;
            texts.push(layer.embedding_text(&layer.payload_of_row(&json)).unwrap_or_default());
        }
        let vectors = match env.state.embedder.embed(texts).await {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(done),
            Err(e) => return Err(sqlx::Error::Protocol(format!("embedding failed: {e}"))),
        };
        let mut tx = env.pool.begin().await?;
        for (row, vector) in rows.iter().zip(vectors) {
            let id: uuid::Uuid = row.try_get("id")?;
            let updated_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get("updated_at")?;
            let dim = vector.len() as i32;
            done += sqlx::query(AssertSqlSafe(update.clone()))
                .bind(id)
                .bind(pgvector::Vector::from(vector))
                .bind(model)
                .bind(dim)
                .bind(updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected() as i64;
        }
        tx.commit().await?;
        if (rows.len() as i64) < REEMBED_BATCH {
            return Ok(done);
        }
    }
}

/// Counts, per vector layer, rows without a vector, with another model's vector, or whose
/// recorded dimension disagrees with the stored vector; warns when any is non-zero.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VerifyVectors {}

impl TaskHandler for VerifyVectors {
    const IDENTIFIER: &'static str = "verify_vectors";
    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_recorded(&ctx, Self::IDENTIFIER, |env| async move {
            let model = env.state.embedder.model_name().map(str::to_owned);
            let mut detail = serde_json::Map::new();
            let mut total = 0i64;
            for layer in Layer::VECTOR_LAYERS {
                let table = layer.table();
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT count(*) FILTER (WHERE embedding IS NULL) AS missing, \
                            count(*) FILTER (WHERE embedding IS NOT NULL AND embedding_model IS DISTINCT FROM $1) AS foreign_model, \
                            count(*) FILTER (WHERE embedding IS NOT NULL AND embedding_dim IS DISTINCT FROM vector_dims(embedding)) AS bad_dim \
                     FROM {table}"
                )))
                .bind(&model)
                .fetch_one(&env.pool)
                .await?;
                let (missing, foreign, bad_dim): (i64, i64, i64) = (row.try_get("missing")?, row.try_get("foreign_model")?, row.try_get("bad_dim")?);
                // With vectors disabled, rows without one are expected.
                let missing = if model.is_some() { missing } else { 0 };
                let foreign = if model.is_some() { foreign } else { 0 };
                if missing + foreign + bad_dim > 0 {
                    tracing::warn!(layer = layer.name(), missing, foreign_model = foreign, bad_dim, "vector/row inconsistencies");
                }
                total += missing + foreign + bad_dim;
                detail.insert(layer.name().to_owned(), json!({"missing": missing, "foreign_model": foreign, "bad_dim": bad_dim}));
            }
            Ok((total, Value::Object(detail)))
        })
        .await
    }
}
