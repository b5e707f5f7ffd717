//! The store schema's migrations (the `NNNN_*.sql` files beside this crate's manifest) and the
//! one runner that applies them, for pinak-operator (as the store's owner role) and pinak-api
//! (standalone mode, `PINAK_MIGRATE=true`). README.md has the rules a new migration follows.
//!
//! The runner keeps sqlx's bookkeeping (`_sqlx_migrations`, checksums, [`Migrate::apply`]) but
//! not sqlx's `Migrator::run` around it, which cannot build an index on a live store:
//! - it waits for a database-wide advisory lock in a blocking `pg_advisory_lock`. A session
//!   blocked there holds a snapshot, `CREATE INDEX CONCURRENTLY` waits for every older snapshot
//!   in the database, and Postgres breaks that cycle with a deadlock error, often by cancelling
//!   the index build. The store's own lock is polled instead (`lock`).
//! - it keeps the connection's `lock_timeout` (the operator's is 10 s) for a concurrent build,
//!   which cancels the build when it waits that long for an older transaction anywhere in the
//!   database.
//! - it retries a failed concurrent build over the INVALID index the failure left behind.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::migrate::{Migrate, MigrateError, Migration, Migrator};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Executor};

#[cfg(test)]
mod rules;

/// The store schema's migrations, embedded at compile time (build.rs rebuilds on a new file).
/// The path names this directory from its parent: sqlx refuses a bare `.`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// sqlx's bookkeeping table, in the store schema (the first schema on the search path).
const TABLE: &str = "_sqlx_migrations";

/// How often a runner that finds the store's lock taken asks again.
const LOCK_POLL: Duration = Duration::from_millis(250);

/// What [`migrate`] sets up before it applies the migrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The schema and pgvector exist: the operator provisions them with its admin rights.
    Provisioned,
    /// Create the schema and pgvector if missing (pinak-api in standalone mode).
    CreateIfMissing,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] sqlx::Error),

    #[error(transparent)]
    Migrate(#[from] MigrateError),

    #[error(
        "migration {version} is recorded as failed in _sqlx_migrations, but it runs in a transaction, \
         which leaves no record when it fails: the row was written by something else and what the \
         migration changed is unknown. Not recovering it automatically: check the store schema by hand, \
         then delete that row"
    )]
    DirtyInTransaction { version: i64 },

    #[error(
        "migration {version} is recorded as failed in _sqlx_migrations and this build does not have it \
         (a newer build ran it): run a build that has it"
    )]
    DirtyUnknown { version: i64 },
}

/// Applies `migrator` to the store schema `schema` on `conn`, whose search path (and, for the
/// operator, role) the caller has set, under the advisory lock `pinak-migrate:<schema>` and
/// without a statement timeout. Both are back as they were when it returns.
pub async fn migrate(conn: &mut PgConnection, schema: &str, setup: Setup, migrator: &Migrator) -> Result<(), Error> {
    let key = format!("pinak-migrate:{schema}");
    lock(conn, &key).await?;
    let result = async {
        // Index builds may outlast any statement timeout meant for requests or DDL.
        conn.execute(sqlx::raw_sql("SET statement_timeout = 0")).await?;
        if setup == Setup::CreateIfMissing {
            create_schema(conn, schema).await?;
        }
        apply(conn, schema, migrator).await
    }
    .await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))").bind(&key).execute(&mut *conn).await;
    // The connection's startup value: pinak-api's connection goes back to its pool.
    let reset = conn.execute(sqlx::raw_sql("RESET statement_timeout")).await;
    result?;
    unlock?;
    reset?;
    Ok(())
}

/// The latest migration applied successfully to the store schema on the search path (`None`
/// before the first), as health checks and the operator's status report it.
pub async fn applied_version<'e>(db: impl Executor<'e, Database = Postgres>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(db).await
}

/// Takes the store's advisory lock, polling: a session blocked in `pg_advisory_lock` would
/// hold a snapshot that a concurrent index build in the lock holder waits for (a deadlock).
async fn lock(conn: &mut PgConnection, key: &str) -> Result<(), sqlx::Error> {
    let mut announced = false;
    while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?
    {
        if !announced {
            tracing::info!(lock = key, "another session is migrating this store; waiting for it");
            announced = true;
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
    Ok(())
}

async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", schema.replace('"', "\"\""));
    conn.execute(sqlx::raw_sql(AssertSqlSafe(create))).await?;
    let has_vector: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')")
        .fetch_one(&mut *conn)
        .await?;
    if !has_vector {
        conn.execute(sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")).await?;
    }
    Ok(())
}

/// sqlx's `run_direct` without its lock, recovering what a failed concurrent build leaves.
async fn apply(conn: &mut PgConnection, schema: &str, migrator: &Migrator) -> Result<(), Error> {
    conn.ensure_migrations_table(TABLE).await?;
    while let Some(version) = conn.dirty_version(TABLE).await? {
        forget_failed(conn, migrator, version).await?;
    }
    let applied = conn.list_applied_migrations(TABLE).await?;
    // What makes an older build refuse a store a newer one migrated (docs/upgrade.md).
    if let Some(unknown) = applied.iter().find(|a| !migrator.version_exists(a.version)) {
        return Err(MigrateError::VersionMissing(unknown.version).into());
    }
    let applied: HashMap<i64, _> = applied.into_iter().map(|a| (a.version, a.checksum)).collect();
    for migration in migrator.iter().filter(|m| m.migration_type.is_up_migration()) {
        match applied.get(&migration.version) {
            Some(checksum) if *checksum != migration.checksum => {
                return Err(MigrateError::VersionMismatch(migration.version).into());
            }
            Some(_) => {}
            None => apply_one(conn, schema, migration).await?,
        }
    }
    Ok(())
}

/// Clears the failure record of a `-- no-transaction` migration so that it runs again (after
/// [`drop_invalid_indexes`]); refuses any other: a transactional migration that failed left no
/// trace, so such a record means someone else changed the schema.
async fn forget_failed(conn: &mut PgConnection, migrator: &Migrator, version: i64) -> Result<(), Error> {
    let Some(migration) = migrator.iter().find(|m| m.version == version && m.migration_type.is_up_migration()) else {
        return Err(Error::DirtyUnknown { version });
    };
    if !migration.no_tx {
        return Err(Error::DirtyInTransaction { version });
    }
    tracing::warn!(version, "a concurrent migration is recorded as failed; retrying it");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1 AND NOT success")
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn apply_one(conn: &mut PgConnection, schema: &str, migration: &Migration) -> Result<(), Error> {
    let elapsed = if migration.no_tx {
        // A concurrent build waits for every older transaction in the database, and lock_timeout
        // would cancel it there. Waiting is harmless: it holds only SHARE UPDATE EXCLUSIVE, which
        // no read or write of the store waits for (README.md keeps no-transaction files to that).
        let previous: String =
            sqlx::query_scalar("SELECT current_setting('lock_timeout')").fetch_one(&mut *conn).await?;
        conn.execute(sqlx::raw_sql("SET lock_timeout = 0")).await?;
        let result = async {
            drop_invalid_indexes(conn, schema).await?;
            Ok::<_, Error>(conn.apply(TABLE, migration).await?)
        }
        .await;
        let restore =
            sqlx::query("SELECT set_config('lock_timeout', $1, false)").bind(previous).execute(&mut *conn).await;
        let elapsed = result?;
        restore?;
        elapsed
    } else {
        conn.apply(TABLE, migration).await?
    };
    tracing::info!(
        version = migration.version,
        description = %migration.description,
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "applied migration"
    );
    Ok(())
}

/// Drops the store schema's INVALID indexes: what a failed `CREATE INDEX CONCURRENTLY` (or
/// `DROP INDEX CONCURRENTLY`) leaves. A retry's `IF NOT EXISTS` would otherwise keep the broken
/// index and record the migration as done. No concurrent build of ours is in progress: we hold
/// the store's lock.
async fn drop_invalid_indexes(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'i' AND NOT i.indisvalid
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    for index in invalid {
        tracing::warn!(%index, "dropping an INVALID index left by a failed concurrent index build");
        conn.execute(sqlx::raw_sql(AssertSqlSafe(format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")))).await?;
    }
    Ok(())
}
