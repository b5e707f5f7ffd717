//! Database credentials from files: `PINAK_DATABASE_USERNAME_FILE` and
//! `PINAK_DATABASE_PASSWORD_FILE` override the user and the password of `PINAK_DATABASE_URL`, as
//! a mounted Kubernetes Secret provides them, and are re-read while the service runs.
//!
//! - At start every configured file must be readable and hold a value (its content with trailing
//!   whitespace and newlines trimmed); else the service does not start (a configuration error).
//! - A task re-reads the files by path every [`POLL_INTERVAL`] and compares their content.
//!   Kubernetes updates a mounted Secret by swapping its `..data` symlink, so each read opens the
//!   path afresh: no descriptor is held and no inotify watch set.
//! - On a change, every pool built from the files (the API pool and the job worker's, see
//!   [`DbCredentials::track`]) gets its own current connect options with the new user and
//!   password ([`sqlx::Pool::set_connect_options`]), so each keeps its session settings (the API
//!   pool's `statement_timeout`, the worker's `application_name`). Open connections stay open
//!   (Postgres does not end sessions on a password change); new connections log in with the new
//!   credentials.
//! - A file that becomes unreadable or empty is logged once (never its content) and its last
//!   good value stays in use.
//! - The task ends when the state holding the [`DbCredentials`] is dropped or all its pools are
//!   closed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sqlx::Postgres;
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::runtime::config::{Config, ConfigError};
use crate::security::secret_file::{POLL_INTERVAL, Watched, read_value};

const USERNAME_VAR: &str = "PINAK_DATABASE_USERNAME_FILE";
const PASSWORD_VAR: &str = "PINAK_DATABASE_PASSWORD_FILE";

/// The files' values; `None` keeps the URL's.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// `opts` with these values in place of the user and password it has.
    pub fn apply(&self, mut opts: PgConnectOptions) -> PgConnectOptions {
        if let Some(username) = &self.username {
            opts = opts.username(username);
        }
        if let Some(password) = &self.password {
            opts = opts.password(password);
        }
        opts
    }
}

/// The credential files, their current values, and the pools that use them.
pub struct DbCredentials {
    username_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
    tracked: Mutex<Tracked>,
    /// When the credentials last changed, in nanoseconds after `started` (0: never). An atomic,
    /// not part of `tracked`, because every pool acquire reads it.
    changed_at: AtomicU64,
    started: Instant,
}

struct Tracked {
    current: Credentials,
    pools: Vec<PgPool>,
}

impl DbCredentials {
    /// Reads the files named by `cfg` and, when any is set, starts the task that re-reads them
    /// (within a Tokio runtime). A file that cannot be read or is empty is an error.
    pub fn start(cfg: &Config) -> Result<Arc<DbCredentials>, ConfigError> {
        let (username_file, password_file) = (cfg.database_username_file.clone(), cfg.database_password_file.clone());
        let initial = |var: &'static str, path: &Option<PathBuf>| -> Result<Option<String>, ConfigError> {
            let Some(path) = path else { return Ok(None) };
            read_value(path).map(Some).map_err(|reason| ConfigError::Invalid {
                name: var,
                value: path.display().to_string(),
                reason: format!("cannot read a database credential from it: {reason}"),
            })
        };
        let current = Credentials {
            username: initial(USERNAME_VAR, &username_file)?,
            password: initial(PASSWORD_VAR, &password_file)?,
        };
        let configured = username_file.is_some() || password_file.is_some();
        let creds = Arc::new(DbCredentials {
            username_file,
            password_file,
            tracked: Mutex::new(Tracked { current, pools: Vec::new() }),
            changed_at: AtomicU64::new(0),
            started: Instant::now(),
        });
        if configured {
            spawn_poller(Arc::downgrade(&creds));
        }
        Ok(creds)
    }

    /// The values connections are opened with now.
    pub fn current(&self) -> Credentials {
        self.lock().current.clone()
    }

    /// Keeps `pool` on the files' credentials from now on. Its options are brought up to date
    /// here too, so a change between building the pool and this call is not missed.
    pub fn track(&self, pool: &PgPool) {
        if !self.is_configured() {
            return;
        }
        let mut tracked = self.lock();
        set_credentials(pool, &tracked.current);
        tracked.pools.retain(|p| !p.is_closed());
        tracked.pools.push(pool.clone());
    }

    fn is_configured(&self) -> bool {
        self.username_file.is_some() || self.password_file.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switches every open pool to `new`; `false` once every pool is closed (nothing left to do).
    fn update(&self, new: Credentials) -> bool {
        let mut tracked = self.lock();
        if !tracked.pools.is_empty() && tracked.pools.iter().all(PgPool::is_closed) {
            return false;
        }
        tracked.pools.retain(|p| !p.is_closed());
        if tracked.current != new {
            for pool in &tracked.pools {
                set_credentials(pool, &new);
            }
            tracing::info!(
                username_changed = tracked.current.username != new.username,
                password_changed = tracked.current.password != new.password,
                pools = tracked.pools.len(),
                "database credentials reloaded; new connections use them"
            );
            tracked.current = new;
            // At least 1: 0 means "never changed".
            let since_start = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1);
            self.changed_at.store(since_start, Ordering::Release);
        }
        true
    }

    /// Whether a pooled connection of age `age` was opened before the credentials last changed.
    /// Such connections still work (Postgres keeps sessions when a password changes), but a
    /// rotation retires the old login role next time, so they are closed as they come back to be
    /// used: never mid-request, and the pool opens fresh ones with the new credentials.
    pub fn predates_change(&self, age: Duration) -> bool {
        match self.changed_at.load(Ordering::Acquire) {
            0 => false,
            at => age > self.started.elapsed().saturating_sub(Duration::from_nanos(at)),
        }
    }

    /// `options` with the hook that retires connections opened before a credential change.
    pub fn retire_stale(self: &Arc<Self>, options: PoolOptions<Postgres>) -> PoolOptions<Postgres> {
        if !self.is_configured() {
            return options;
        }
        let me = Arc::downgrade(self);
        options.before_acquire(move |_conn, meta| {
            let stale = me.upgrade().is_some_and(|c| c.predates_change(meta.age));
            Box::pin(async move { Ok(!stale) })
        })
    }
}

/// The pool's own options (session settings, application name) with `creds` applied.
fn set_credentials(pool: &PgPool, creds: &Credentials) {
    pool.set_connect_options(creds.apply((*pool.connect_options()).clone()));
}

fn spawn_poller(creds: Weak<DbCredentials>) {
    let Some(c) = creds.upgrade() else { return };
    let watched = |var, path: &Option<PathBuf>| path.clone().map(|path| Watched::new(var, path));
    let (mut username, mut password) =
        (watched(USERNAME_VAR, &c.username_file), watched(PASSWORD_VAR, &c.password_file));
    drop(c);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if creds.strong_count() == 0 {
                return;
            }
            let paths = (username.as_ref().map(|w| w.path.clone()), password.as_ref().map(|w| w.path.clone()));
            // A slow or hung mount must not block the runtime.
            let read = tokio::task::spawn_blocking(move || {
                (paths.0.as_deref().map(read_value), paths.1.as_deref().map(read_value))
            });
            let Ok((u, p)) = read.await else { continue };
            let Some(live) = creds.upgrade() else { return };
            let last = live.current();
            let new = Credentials {
                username: match (&mut username, u) {
                    (Some(w), Some(now)) => w.check(now).or(last.username),
                    _ => last.username,
                },
                password: match (&mut password, p) {
                    (Some(w), Some(now)) => w.check(now).or(last.password),
                    _ => last.password,
                },
            };
            if !live.update(new) {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(vars: &[(&str, &str)]) -> Config {
        let mut all = vec![
            ("PINAK_DATABASE_URL", "postgres://url-user:url-pass@127.0.0.1:1/db"),
            ("PINAK_JWT_SECRET", "0123456789abcdef0123456789abcdef-test"),
            ("PINAK_EMBEDDING_BACKEND", "dummy"),
            ("PINAK_DB_SCHEMA", "creds_unit"),
        ];
        all.extend_from_slice(vars);
        Config::from_lookup(|k| all.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).unwrap()
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pinak-creds-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn values_are_trimmed_and_empty_or_missing_files_refused() {
        let dir = temp_dir();
        let file = dir.join("password");
        std::fs::write(&file, "s3cret \n\n").unwrap();
        assert_eq!(read_value(&file).unwrap(), "s3cret");
        std::fs::write(&file, " \n").unwrap();
        assert_eq!(read_value(&file).unwrap_err(), "the file is empty");
        assert!(read_value(&dir.join("absent")).is_err());
        assert_eq!(read_value(&dir).unwrap_err(), "not a regular file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_bad_file_at_start_is_a_config_error_naming_the_variable() {
        let dir = temp_dir();
        let missing = dir.join("missing");
        let err = DbCredentials::start(&cfg(&[(PASSWORD_VAR, missing.to_str().unwrap())])).err().unwrap();
        assert!(err.to_string().starts_with(PASSWORD_VAR), "{err}");
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let empty = dir.join("empty");
        let err = DbCredentials::start(&cfg(&[(USERNAME_VAR, empty.to_str().unwrap())])).err().unwrap();
        assert!(err.to_string().contains("empty"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Both pools take the files' values and keep their own session settings, at build and on
    /// every reload; the secret never shows in Debug output.
    #[tokio::test]
    async fn reload_switches_both_pools_and_keeps_their_own_options() {
        let dir = temp_dir();
        let (user_file, pass_file) = (dir.join("username"), dir.join("password"));
        std::fs::write(&user_file, "file-user\n").unwrap();
        std::fs::write(&pass_file, "file-pass\n").unwrap();
        let cfg = cfg(&[(USERNAME_VAR, user_file.to_str().unwrap()), (PASSWORD_VAR, pass_file.to_str().unwrap())]);
        let creds = DbCredentials::start(&cfg).unwrap();
        assert!(!format!("{:?}", creds.current()).contains("file-pass"));
        let api = crate::store::db::pool(&cfg, &creds).unwrap();
        let jobs = crate::runtime::jobs::pool(&cfg, &creds).unwrap();
        let check = |pool: &PgPool, user: &str| {
            let opts = pool.connect_options();
            assert_eq!(opts.get_username(), user);
            assert!(opts.get_options().unwrap_or_default().contains("search_path"), "{:?}", opts.get_options());
        };
        check(&api, "file-user");
        check(&jobs, "file-user");
        assert!(!creds.predates_change(Duration::from_secs(3600)), "no change yet: no connection is stale");

        std::fs::write(&user_file, "other-user").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while api.connect_options().get_username() != "other-user" {
            assert!(std::time::Instant::now() < deadline, "the username file change was not picked up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check(&api, "other-user");
        check(&jobs, "other-user");
        // Connections opened before the change are retired as they are next acquired.
        assert!(creds.predates_change(Duration::from_secs(3600)));
        assert!(!creds.predates_change(Duration::ZERO));
        assert!(api.connect_options().get_options().unwrap_or_default().contains("statement_timeout"));
        assert!(!jobs.connect_options().get_options().unwrap_or_default().contains("statement_timeout"));
        assert_eq!(api.connect_options().get_application_name(), Some("pinak-api"));
        assert_eq!(jobs.connect_options().get_application_name(), Some("pinak-jobs:creds_unit"));

        // An emptied file keeps the last good value; the other file still reloads.
        std::fs::write(&pass_file, "").unwrap();
        std::fs::write(&user_file, "third-user").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while jobs.connect_options().get_username() != "third-user" {
            assert!(std::time::Instant::now() < deadline, "the username file change was not picked up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(creds.current().password.as_deref(), Some("file-pass"));

        std::fs::remove_dir_all(dir).unwrap();
    }
}
