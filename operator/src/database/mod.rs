//! Provisioning of a store in Postgres: roles, schemas, pgvector and the migrations, and
//! dropping them again on `reclaimPolicy: Delete`. The statements come from [`plan`] (pure);
//! this module only observes, runs them, and reads back versions.

pub mod plan;
pub mod scram;
pub mod sql;

use std::str::FromStr;
use std::time::Duration;

use pinak_migrations::Setup;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

use crate::error::{Error, Result};
use crate::names::StoreNames;
pub use plan::{Extension, Observed, ReclaimPlan, Target};

/// The store schema's migrations: the same files, and the same runner, as pinak-api's.
pub use pinak_migrations::MIGRATOR;

/// A reconcile must not hang on a Postgres that accepts TCP but never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Postgres admin URL, read from the Secret named in `spec.database.adminCredentials`.
#[derive(Clone)]
pub struct AdminUrl(url::Url);

// The URL holds a password: never print it.
impl std::fmt::Debug for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminUrl({}@{:?})", self.0.username(), self.0.host_str())
    }
}

impl AdminUrl {
    /// Parses and checks the URL; the error text is safe to show (it never echoes the URL).
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!("scheme {:?} is not postgres:// or postgresql://", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("it names no host; the API pods connect over TCP".to_owned());
        }
        PgConnectOptions::from_str(url.as_str()).map_err(|e| format!("not a Postgres URL ({e})"))?;
        Ok(Self(url))
    }

    /// The same server and database as the admin URL (and its parameters, e.g. `sslmode`),
    /// without credentials: the pods' `PINAK_DATABASE_URL`, which stays the same across
    /// password rotations (the user and password reach the pods as files).
    pub fn for_pods(&self) -> String {
        let mut url = self.0.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.to_string()
    }

    /// The same server and database as the admin URL, with a login role and its password.
    pub fn for_login(&self, user: &str, password: &str) -> String {
        let mut url = self.0.clone();
        // Both only fail for URLs without a host, which `parse` refused.
        let _ = url.set_username(user);
        let _ = url.set_password(Some(password));
        url.to_string()
    }

    async fn connect(&self) -> Result<PgConnection> {
        let options = PgConnectOptions::from_str(self.0.as_str())
            .map_err(Error::from_sqlx)?
            .application_name("pinak-operator")
            // A DDL statement waiting on a lock blocks every query queued behind it: give up
            // fast and retry later instead of stalling the store's traffic.
            .options([("lock_timeout", "10s"), ("statement_timeout", "60s")]);
        match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
            Ok(conn) => conn.map_err(Error::from_sqlx),
            Err(_) => Err(Error::DatabaseUnreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
        }
    }
}

/// What provisioning found, for the store's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbReport {
    pub migration_version: Option<i64>,
    pub pgvector_version: String,
}

/// Brings the store's roles, schemas, pgvector and migrations to `target`. Idempotent; when
/// everything is in place it only reads.
pub async fn provision(admin: &AdminUrl, target: &Target<'_>) -> Result<DbReport> {
    let mut conn = admin.connect().await?;
    let result = provision_on(&mut conn, target).await;
    let _ = conn.close().await;
    result
}

async fn provision_on(conn: &mut PgConnection, target: &Target<'_>) -> Result<DbReport> {
    let names = target.names;
    let observed = observe(conn, names, target.login_role).await?;
    let statements = plan::setup_plan(target, &observed, || scram::new_verifier(target.password))?;
    if !statements.is_empty() {
        run_in_transaction(conn, &statements).await?;
        tracing::info!(schema = %names.schema, statements = statements.len(), "provisioned database objects");
    }
    let migration_version = migrate(conn, names).await?;
    let pgvector_version = match observe_vector(conn).await? {
        Some(ext) => ext.version,
        None => return Err(Error::Pgvector("the vector extension is missing after CREATE EXTENSION".into())),
    };
    Ok(DbReport { migration_version, pgvector_version })
}

/// Drops the store's schemas and roles (only those carrying its ownership marker).
pub async fn reclaim(admin: &AdminUrl, names: &StoreNames) -> Result<()> {
    let mut conn = admin.connect().await?;
    let result = reclaim_on(&mut conn, names).await;
    let _ = conn.close().await;
    result
}

async fn reclaim_on(conn: &mut PgConnection, names: &StoreNames) -> Result<()> {
    let observed = observe(conn, names, &names.login_role).await?;
    let plan = plan::reclaim_plan(names, &observed);
    if !plan.lock_out.is_empty() {
        run_in_transaction(conn, &plan.lock_out).await?;
        // Pods still connected would hold locks DROP SCHEMA waits for. Best effort: without
        // the right to signal them, the drop waits (lock_timeout) and the reconcile retries.
        let ended = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = ANY($1) AND pid <> pg_backend_pid()",
        )
        .bind(names.login_roles())
        .fetch_one(&mut *conn)
        .await;
        if let Err(e) = ended {
            tracing::warn!(schema = %names.schema, error = %e, "cannot end the store login roles' sessions");
        }
    }
    if !plan.drop.is_empty() {
        run_in_transaction(conn, &plan.drop).await?;
        tracing::info!(schema = %names.schema, statements = plan.drop.len(), "dropped database objects");
    }
    Ok(())
}

/// Reads what exists among the store's names.
/// What Postgres has for the store's names; `login_in_owner` is about `login_role`.
pub async fn observe(conn: &mut PgConnection, names: &StoreNames, login_role: &str) -> Result<Observed> {
    let schemas: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT nspname::text, obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = ANY($1)",
    )
    .bind([names.schema.as_str(), names.worker_schema.as_str()])
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from_sqlx)?;
    let roles: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT rolname::text, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = ANY($1)",
    )
    .bind([names.owner_role.as_str(), names.login_role.as_str(), names.login_role_b.as_str()])
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from_sqlx)?;
    let (admin_is_superuser, admin_in_owner, login_in_owner): (bool, bool, bool) = sqlx::query_as(
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                        WHERE r.rolname = $1 AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)),
                EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                        WHERE r.rolname = $1 AND u.rolname = $2)",
    )
    .bind(&names.owner_role)
    .bind(login_role)
    .fetch_one(&mut *conn)
    .await
    .map_err(Error::from_sqlx)?;
    Ok(Observed {
        schemas: schemas.into_iter().collect(),
        roles: roles.into_iter().collect(),
        login_in_owner,
        admin_is_superuser,
        admin_in_owner,
        vector: observe_vector(conn).await?,
    })
}

async fn observe_vector(conn: &mut PgConnection) -> Result<Option<Extension>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT extversion, extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::from_sqlx)?;
    Ok(row.map(|(version, schema)| Extension { version, schema }))
}

async fn run_in_transaction(conn: &mut PgConnection, statements: &[String]) -> Result<()> {
    let mut tx = conn.begin().await.map_err(Error::from_sqlx)?;
    for stmt in statements {
        tx.execute(sqlx::raw_sql(AssertSqlSafe(stmt.as_str()))).await.map_err(|e| statement_error(stmt, e))?;
    }
    tx.commit().await.map_err(Error::from_sqlx)
}

/// Names the failing statement, minus any password literal.
fn statement_error(stmt: &str, e: sqlx::Error) -> Error {
    let shown = stmt.split(" PASSWORD ").next().unwrap_or(stmt);
    match Error::from_sqlx(e) {
        Error::InsufficientPrivilege(msg) => Error::InsufficientPrivilege(format!("{msg} (in: {shown})")),
        Error::Database(sqlx::Error::Database(db)) if db.message().contains("extension \"vector\"") => {
            Error::Pgvector(db.message().to_owned())
        }
        other => {
            tracing::warn!(statement = %shown, error = %other, "provisioning statement failed");
            other
        }
    }
}

/// Applies `migrations/` in the store schema, as the owner role so every object belongs to it,
/// and returns the latest version applied.
async fn migrate(conn: &mut PgConnection, names: &StoreNames) -> Result<Option<i64>> {
    let setup =
        format!("SET search_path = {}, public; SET ROLE {}", sql::ident(&names.schema), sql::ident(&names.owner_role));
    conn.execute(sqlx::raw_sql(AssertSqlSafe(setup))).await.map_err(Error::from_sqlx)?;
    // The runner lifts the connection's statement_timeout (an index build on a large store runs
    // longer than a DDL statement should) and, for concurrent index builds only, lock_timeout.
    // Its advisory lock is the one pinak-api takes for its own migrations (PINAK_MIGRATE=true),
    // so a pod started in standalone mode never races the operator.
    let migrated = pinak_migrations::migrate(conn, &names.schema, Setup::Provisioned, &MIGRATOR).await;
    migrated.map_err(migration_error)?;
    let version = pinak_migrations::applied_version(&mut *conn).await.map_err(Error::from_sqlx)?;
    conn.execute(sqlx::raw_sql("RESET ROLE; RESET search_path")).await.map_err(Error::from_sqlx)?;
    Ok(version)
}

/// Errors of the runner's own statements (its lock, its clean-up) are classified like any other
/// statement's, so an outage keeps its own reason; the rest is `MigrationFailed`.
fn migration_error(e: pinak_migrations::Error) -> Error {
    match e {
        pinak_migrations::Error::Database(e) => Error::from_sqlx(e),
        other => Error::Migration(other),
    }
}

/// The highest migration this operator applies: what `status.migrationVersion` reaches.
pub fn latest_migration() -> Option<i64> {
    MIGRATOR.iter().map(|m| m.version).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_url_keeps_server_database_and_parameters() {
        let admin = AdminUrl::parse("postgres://postgres:s3cret@db.pg.svc:5433/pinak?sslmode=require").unwrap();
        assert_eq!(
            admin.for_login("ms_a_b_a", "pw-_x"),
            "postgres://ms_a_b_a:pw-_x@db.pg.svc:5433/pinak?sslmode=require"
        );
        assert!(!format!("{admin:?}").contains("s3cret"));
    }

    #[test]
    fn bad_admin_urls_are_explained_without_echoing_them() {
        for bad in ["", "not a url", "mysql://u:secretpw@h/db", "postgres:no-host"] {
            let err = AdminUrl::parse(bad).unwrap_err();
            assert!(!err.contains("secretpw"), "{err}");
        }
    }

    #[test]
    fn migrations_are_embedded() {
        assert!(latest_migration().is_some_and(|v| v >= 5));
    }
}
