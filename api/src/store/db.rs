//! Connection pool and migrations. Each store lives in its own schema: the pool pins
//! `search_path` to `"<schema>", public` (pgvector's types live in public) and the session
//! time zone to UTC, so timestamps render as RFC 3339 in UTC.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::runtime::config::Config;
use crate::security::credentials::{Credentials, DbCredentials};

pub use pinak_migrations::MIGRATOR;

/// Options of every pool: the URL with the credential files' user and password
/// (api/src/security/credentials.rs), and the session settings of every connection. The HNSW
/// ones serve search.rs, the text-search configuration its keyword leg (keyword.rs): set once per connection instead of per query, so a search stays one
/// round trip.
pub fn connect_options(cfg: &Config, credentials: &Credentials) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(credentials
        .apply(PgConnectOptions::from_str(&cfg.database_url)?)
        .options([
            ("search_path", format!("\"{}\",public", cfg.db_schema).as_str()),
            ("timezone", "UTC"),
            ("hnsw.ef_search", cfg.hnsw_ef_search.to_string().as_str()),
            ("hnsw.iterative_scan", "relaxed_order"),
            ("default_text_search_config", cfg.text_search_config.as_str()),
        ])
        .application_name("pinak-api"))
}

/// The `statement_timeout` of the API pool's connections: just below the request timeout
/// (90% of it), so Postgres cancels a statement the API has already answered 503 for instead of
/// running it on. The jobs pool has none: its statements are not bounded by a request.
pub fn statement_timeout(cfg: &Config) -> Duration {
    (cfg.request_timeout * 9 / 10).max(Duration::from_millis(1))
}

/// A lazy pool: the service starts (and answers liveness) while the database is down and
/// connects when it comes back. Connections are not pinged before each use: a search takes
/// three of them from the pool (revocation check, search, read log), and the pings cost as
/// much Postgres CPU as those statements' own round trips. A connection the database dropped
/// fails its next statement instead, is discarded, and the pool opens a fresh one.
/// `credentials` keeps the pool on the credential files' values while they change.
pub fn pool(cfg: &Config, credentials: &Arc<DbCredentials>) -> Result<PgPool, sqlx::Error> {
    let pool = credentials
        .retire_stale(PgPoolOptions::new())
        .max_connections(cfg.db_pool_size)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(
            connect_options(cfg, &credentials.current())?
                .options([("statement_timeout", format!("{}ms", statement_timeout(cfg).as_millis()).as_str())]),
        );
    credentials.track(&pool);
    Ok(pool)
}

/// Standalone mode: create the schema and pgvector if missing, then apply `migrations/`, the
/// way the operator does (pinak-migrations). In operator mode (`PINAK_MIGRATE=false`) the
/// operator has done this with owner rights.
pub async fn migrate(pool: &PgPool, schema: &str) -> Result<(), pinak_migrations::Error> {
    let mut conn = pool.acquire().await?;
    pinak_migrations::migrate(&mut conn, schema, pinak_migrations::Setup::CreateIfMissing, &MIGRATOR).await
}

/// Latest applied migration version, for health and status reporting.
pub async fn migration_version(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    pinak_migrations::applied_version(pool).await
}
