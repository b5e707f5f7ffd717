//! The runner against the real Postgres + pgvector that `scripts/test` starts
//! (`PINAK_TEST_DATABASE_URL`, an admin URL). Every test migrates a schema of its own and drops
//! it again, so tests run in parallel and beside the rest of the suite.
//!
//! An index build is held at a known phase by a transaction the test keeps open (a writer on the
//! table, or an older snapshot), so what is asserted "during the build" never depends on how
//! fast the machine is. A read or write of the store that waits for a lock fails with
//! `lock_timeout` instead of hanging; a lock wait happens only when something blocks it.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pinak_migrations::{Error, MIGRATOR, Setup, migrate};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

static CONCURRENT: Migrator = sqlx::migrate!("tests/fixtures/concurrent");
static BLOCKING: Migrator = sqlx::migrate!("tests/fixtures/blocking");
static UNIQUE: Migrator = sqlx::migrate!("tests/fixtures/unique");

/// The real migrations and one fixture after them, as the next release would ship them.
fn with(fixture: &Migrator) -> Migrator {
    Migrator::with_migrations(MIGRATOR.iter().chain(fixture.iter()).cloned().collect())
}

static WITH_CONCURRENT: LazyLock<Migrator> = LazyLock::new(|| with(&CONCURRENT));
static WITH_BLOCKING: LazyLock<Migrator> = LazyLock::new(|| with(&BLOCKING));
static WITH_UNIQUE: LazyLock<Migrator> = LazyLock::new(|| with(&UNIQUE));

const FIXTURE_VERSION: i64 = 9001;

/// How long a test waits for something that must happen, before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(120);

fn admin_url() -> String {
    std::env::var("PINAK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| panic!("PINAK_TEST_DATABASE_URL is not set: run the suite with scripts/test"))
}

/// A store schema of the test's own, dropped when the test ends (also when it fails).
struct Scratch {
    schema: String,
}

impl Scratch {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        Self { schema: format!("migtest_{test}_{}_{nanos}", std::process::id()) }
    }

    /// A connection as pinak-api opens one: the store schema first on the search path.
    async fn connect(&self, settings: &[(&str, &str)]) -> PgConnection {
        let search_path = format!("\"{}\",public", self.schema);
        let mut options = vec![("search_path", search_path.as_str())];
        options.extend_from_slice(settings);
        PgConnectOptions::from_str(&admin_url()).unwrap().options(options).connect().await.expect("connect")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        // Its own runtime on its own thread: the test's runtime may be the one being dropped.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let options = PgConnectOptions::from_str(&admin_url()).unwrap().options([("lock_timeout", "30s")]);
                if let Ok(mut conn) = options.connect().await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut conn).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(conn).await.map(|_| ())
}

async fn scalar<T>(conn: &mut PgConnection, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_one(conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

async fn backend_pid(conn: &mut PgConnection) -> i32 {
    scalar(conn, "SELECT pg_backend_pid()").await
}

/// `rows` memories in distinct (tenant, project, content) with a few agents, as a store has.
async fn fill(conn: &mut PgConnection, rows: i32) {
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, tags, agent_id)
         SELECT gen_random_uuid(), 't' || (g % 3), 'p' || (g % 5), 'memory number ' || g,
                jsonb_build_array('tag' || (g % 11)), 'agent-' || (g % 40)
         FROM generate_series(1, $1) AS g",
    )
    .bind(rows)
    .execute(conn)
    .await
    .unwrap();
}

/// One memory, as a client writes it.
async fn insert_memory(conn: &mut PgConnection, agent: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, agent_id)
         VALUES (gen_random_uuid(), 't-live', 'p-live', 'written during the build ' || $1, $1)",
    )
    .bind(agent)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Polls `probe` until it holds, or fails the test after [`PATIENCE`].
async fn wait_until(what: &str, conn: &mut PgConnection, probe: &str) {
    let start = Instant::now();
    while !scalar::<bool>(conn, probe).await {
        assert!(start.elapsed() < PATIENCE, "still not true after {PATIENCE:?}: {what} ({probe})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn phase_is(pid: i32, phase: &str) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE pid = {pid} AND phase = '{phase}')")
}

async fn index_valid(conn: &mut PgConnection, index: &str) -> Option<bool> {
    sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relname = $1 AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
    )
    .bind(index)
    .fetch_optional(conn)
    .await
    .unwrap()
}

async fn recorded(conn: &mut PgConnection, version: i64) -> Option<bool> {
    sqlx::query_scalar("SELECT success FROM _sqlx_migrations WHERE version = $1")
        .bind(version)
        .fetch_optional(conn)
        .await
        .unwrap()
}

/// A client of the store writes a memory and reads the table; any lock wait fails it.
async fn client_reads_and_writes(client: &mut PgConnection, agent: &str) {
    insert_memory(client, agent).await.unwrap_or_else(|e| panic!("a write waited for the index build: {e}"));
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM memories_semantic WHERE agent_id = $1")
        .bind(agent)
        .fetch_one(&mut *client)
        .await
        .unwrap_or_else(|e| panic!("a read waited for the index build: {e}"));
    assert_eq!(found, 1);
}

#[tokio::test]
async fn a_concurrent_index_build_leaves_the_store_readable_and_writable() {
    let scratch = Scratch::new("build");
    // The operator's connections carry lock_timeout 10s and statement_timeout 60s: shorter here,
    // to show that the runner lifts the first for the build and restores both.
    let mut migrator = scratch.connect(&[("lock_timeout", "1s"), ("statement_timeout", "45s")]).await;
    migrate(&mut migrator, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    fill(&mut migrator, 30_000).await;
    let pid = backend_pid(&mut migrator).await;
    let mut client = scratch.connect(&[("lock_timeout", "5s")]).await;
    let mut observer = scratch.connect(&[]).await;

    // Two gates: an older snapshot (the build's last wait is for those) and an open write on the
    // table (its first wait).
    let mut snapshot_holder = scratch.connect(&[]).await;
    let mut snapshot = snapshot_holder.begin().await.unwrap();
    exec(&mut snapshot, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    exec(&mut snapshot, "SELECT count(*) FROM logs_events").await.unwrap();
    let mut writer_conn = scratch.connect(&[]).await;
    let mut writer = writer_conn.begin().await.unwrap();
    insert_memory(&mut writer, "writer-gate").await.unwrap();

    let schema = scratch.schema.clone();
    let run = tokio::spawn(async move {
        let result = migrate(&mut migrator, &schema, Setup::CreateIfMissing, &WITH_CONCURRENT).await;
        (migrator, result)
    });

    wait_until("the build waits for the open write", &mut observer, &phase_is(pid, "waiting for writers before build"))
        .await;
    let locks: Vec<String> = sqlx::query_scalar(
        "SELECT mode FROM pg_locks WHERE pid = $1 AND granted AND relation = 'memories_semantic'::regclass",
    )
    .bind(pid)
    .fetch_all(&mut observer)
    .await
    .unwrap();
    assert_eq!(locks, ["ShareUpdateExclusiveLock"], "the build's locks on the table");
    // Longer than the connection's lock_timeout: a build still under it would be cancelled by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(scalar::<bool>(&mut observer, &phase_is(pid, "waiting for writers before build")).await);
    client_reads_and_writes(&mut client, "client-before-build").await;

    writer.commit().await.unwrap();
    wait_until("the built index waits for older snapshots", &mut observer, &phase_is(pid, "waiting for old snapshots"))
        .await;
    assert_eq!(index_valid(&mut observer, "memories_semantic_by_agent").await, Some(false), "not valid yet");
    client_reads_and_writes(&mut client, "client-after-build").await;
    assert!(!run.is_finished());

    snapshot.commit().await.unwrap();
    let (mut migrator, result) = run.await.unwrap();
    result.unwrap();
    assert_eq!(index_valid(&mut observer, "memories_semantic_by_agent").await, Some(true));
    assert_eq!(recorded(&mut observer, FIXTURE_VERSION).await, Some(true));
    assert_eq!(scalar::<i64>(&mut observer, "SELECT count(*) FROM memories_semantic").await, 30_003);
    let settings: (String, String) =
        sqlx::query_as("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
            .fetch_one(&mut migrator)
            .await
            .unwrap();
    assert_eq!(settings, ("1s".to_owned(), "45s".to_owned()), "the connection's settings are back");
}

/// The check above against a build that does block: it must notice.
#[tokio::test]
async fn a_blocking_index_build_is_noticed_by_the_same_check() {
    let scratch = Scratch::new("blocking");
    let mut migrator = scratch.connect(&[]).await;
    migrate(&mut migrator, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    fill(&mut migrator, 1_000).await;
    let pid = backend_pid(&mut migrator).await;
    let mut client = scratch.connect(&[("lock_timeout", "2s")]).await;
    let mut observer = scratch.connect(&[]).await;
    let mut writer_conn = scratch.connect(&[]).await;
    let mut writer = writer_conn.begin().await.unwrap();
    insert_memory(&mut writer, "writer-gate").await.unwrap();

    let schema = scratch.schema.clone();
    let run = tokio::spawn(async move {
        let result = migrate(&mut migrator, &schema, Setup::CreateIfMissing, &WITH_BLOCKING).await;
        (migrator, result)
    });
    let waits =
        format!("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid} AND wait_event_type = 'Lock')");
    wait_until("the plain CREATE INDEX waits for the open write", &mut observer, &waits).await;
    let err = insert_memory(&mut client, "client").await.expect_err("a write queues behind CREATE INDEX's SHARE lock");
    assert_eq!(sqlstate(&err).as_deref(), Some("55P03"), "lock_timeout: {err}");

    writer.commit().await.unwrap();
    run.await.unwrap().1.unwrap();
    assert_eq!(index_valid(&mut observer, "memories_semantic_by_agent").await, Some(true));
}

/// A second runner (another API replica, or the operator beside a standalone pod) waits for
/// the store's lock while the first builds an index. Waiting in a blocking `pg_advisory_lock`
/// would make Postgres report a deadlock and cancel one of them.
#[tokio::test]
async fn a_runner_waiting_for_the_lock_does_not_break_a_concurrent_build() {
    let scratch = Scratch::new("waiter");
    let mut first = scratch.connect(&[]).await;
    migrate(&mut first, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    fill(&mut first, 5_000).await;
    let first_pid = backend_pid(&mut first).await;
    let mut second = scratch.connect(&[]).await;
    let second_pid = backend_pid(&mut second).await;
    let mut observer = scratch.connect(&[]).await;
    let mut writer_conn = scratch.connect(&[]).await;
    let mut writer = writer_conn.begin().await.unwrap();
    insert_memory(&mut writer, "writer-gate").await.unwrap();

    let schema = scratch.schema.clone();
    let first_run = tokio::spawn(async move {
        let result = migrate(&mut first, &schema, Setup::CreateIfMissing, &WITH_CONCURRENT).await;
        (first, result)
    });
    wait_until("the first build starts", &mut observer, &phase_is(first_pid, "waiting for writers before build")).await;
    let schema = scratch.schema.clone();
    let second_run = tokio::spawn(async move {
        let result = migrate(&mut second, &schema, Setup::CreateIfMissing, &WITH_CONCURRENT).await;
        (second, result)
    });
    let asked = format!(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {second_pid} AND query LIKE '%advisory_lock%')"
    );
    wait_until("the second runner asks for the store's lock", &mut observer, &asked).await;

    // The build now runs to its end, past its wait for older snapshots.
    writer.commit().await.unwrap();
    first_run.await.unwrap().1.expect("the first runner builds the index");
    second_run.await.unwrap().1.expect("the second runner finds nothing left to do");
    assert_eq!(index_valid(&mut observer, "memories_semantic_by_agent").await, Some(true));
}

async fn add_duplicate(conn: &mut PgConnection) {
    exec(
        conn,
        "INSERT INTO memories_semantic (id, tenant, project_id, content)
         SELECT gen_random_uuid(), tenant, project_id, content FROM memories_semantic LIMIT 1",
    )
    .await
    .unwrap();
}

async fn remove_duplicates(conn: &mut PgConnection) {
    exec(
        conn,
        "DELETE FROM memories_semantic m USING memories_semantic o
         WHERE (m.tenant, m.project_id, m.content) = (o.tenant, o.project_id, o.content) AND m.id > o.id",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_failed_concurrent_build_is_dropped_and_retried() {
    let scratch = Scratch::new("failed");
    let mut conn = scratch.connect(&[]).await;
    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    fill(&mut conn, 1_000).await;
    add_duplicate(&mut conn).await;

    let err = migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &WITH_UNIQUE).await.unwrap_err();
    match &err {
        Error::Migrate(MigrateError::ExecuteMigration(e, FIXTURE_VERSION)) => {
            assert_eq!(sqlstate(e).as_deref(), Some("23505"), "{e}");
        }
        other => panic!("expected the unique violation of migration {FIXTURE_VERSION}, got {other:?}"),
    }
    assert_eq!(index_valid(&mut conn, "memories_semantic_unique_content").await, Some(false), "left INVALID");
    // sqlx 0.9 records nothing when a migration fails on Postgres, also without a transaction:
    // the retry below is an ordinary pending migration. (A failure record is the next test.)
    assert_eq!(recorded(&mut conn, FIXTURE_VERSION).await, None);
    // The lock was released on the way out.
    let key = format!("pinak-migrate:{}", scratch.schema);
    let mut other = scratch.connect(&[]).await;
    let free: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))").bind(&key).fetch_one(&mut other).await.unwrap();
    assert!(free, "the store's lock is released after a failure");
    drop(other);

    remove_duplicates(&mut conn).await;
    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &WITH_UNIQUE).await.unwrap();
    // With the INVALID index kept, IF NOT EXISTS would have skipped the build.
    assert_eq!(index_valid(&mut conn, "memories_semantic_unique_content").await, Some(true));
    assert_eq!(recorded(&mut conn, FIXTURE_VERSION).await, Some(true));
}

#[tokio::test]
async fn a_concurrent_migration_recorded_as_failed_is_recovered() {
    let scratch = Scratch::new("dirty");
    let mut conn = scratch.connect(&[]).await;
    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    fill(&mut conn, 100).await;
    // What a failed attempt of the fixture leaves, and a failure record for it.
    add_duplicate(&mut conn).await;
    let failed = exec(
        &mut conn,
        "CREATE UNIQUE INDEX CONCURRENTLY memories_semantic_unique_content ON memories_semantic (tenant, project_id, content)",
    )
    .await
    .expect_err("duplicates");
    assert_eq!(sqlstate(&failed).as_deref(), Some("23505"));
    remove_duplicates(&mut conn).await;
    let fixture = UNIQUE.iter().next().unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, $2, false, $3, -1)",
    )
    .bind(fixture.version)
    .bind(&*fixture.description)
    .bind(&*fixture.checksum)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(index_valid(&mut conn, "memories_semantic_unique_content").await, Some(false));

    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &WITH_UNIQUE).await.unwrap();
    assert_eq!(index_valid(&mut conn, "memories_semantic_unique_content").await, Some(true));
    assert_eq!(recorded(&mut conn, FIXTURE_VERSION).await, Some(true));
}

#[tokio::test]
async fn a_transactional_migration_recorded_as_failed_is_refused() {
    let scratch = Scratch::new("refused");
    let mut conn = scratch.connect(&[]).await;
    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    exec(&mut conn, "UPDATE _sqlx_migrations SET success = false WHERE version = 6").await.unwrap();

    let err = migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &WITH_CONCURRENT).await.unwrap_err();
    assert!(matches!(err, Error::DirtyInTransaction { version: 6 }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("migration 6 ") && message.contains("by hand"), "{message}");
    // Nothing was touched: the record stays, and the pending migration did not run.
    assert_eq!(recorded(&mut conn, 6).await, Some(false));
    assert_eq!(recorded(&mut conn, FIXTURE_VERSION).await, None);
    assert_eq!(index_valid(&mut conn, "memories_semantic_by_agent").await, None);
}

/// pinak-api's standalone start: schema and pgvector created, then a restart changes nothing.
#[tokio::test]
async fn standalone_setup_creates_the_schema_and_a_rerun_is_a_no_op() {
    let scratch = Scratch::new("standalone");
    let mut conn = scratch.connect(&[("statement_timeout", "45s")]).await;
    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    let latest = MIGRATOR.iter().map(|m| m.version).max();
    let applied = "SELECT max(version) FROM _sqlx_migrations WHERE success";
    assert_eq!(scalar::<Option<i64>>(&mut conn, applied).await, latest);
    let installed = "SELECT max(installed_on)::text FROM _sqlx_migrations";
    let before: String = scalar(&mut conn, installed).await;

    migrate(&mut conn, &scratch.schema, Setup::CreateIfMissing, &MIGRATOR).await.unwrap();
    assert_eq!(scalar::<String>(&mut conn, installed).await, before);
    assert_eq!(scalar::<String>(&mut conn, "SELECT current_setting('statement_timeout')").await, "45s");
}
