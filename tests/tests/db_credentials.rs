//! Database credentials from files (`PINAK_DATABASE_PASSWORD_FILE`, `PINAK_DATABASE_USERNAME_FILE`)
//! and a refused database login, against the real Postgres and a real `pinak-api` process.
//!
//! The shared test cluster trusts local logins, except for the roles named `ms_*` (the
//! operator's) and `pinakcred_*` (only this file makes such roles): scripts/stack.sh puts lines
//! at the top of its `pg_hba.conf` that make them log in over TCP with a SCRAM password.
//! [`require_passwords`] waits until the cluster does so.
//!
//! The credential files live in a directory laid out as a mounted Kubernetes Secret: visible
//! names are symlinks through `..data`, which each update swaps atomically to a new directory.

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use pinak_api::web::error::{is_login_rejected, is_unavailable};
use pinak_tests::operator::workspace_bin;
use pinak_tests::{Token, database_url, unique};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Roles whose name matches this log in with a password (see the module docs).
const ROLE_PREFIX: &str = "pinakcred_";
/// The database watch pings every 2 s and the files are re-read every second.
const WITHIN: Duration = Duration::from_secs(20);
const REFUSED_MESSAGE: &str = "the database refuses the API's login";
const RELOADED_MESSAGE: &str = "database credentials reloaded";

// ------------------------------------------------------------------ Postgres ---

async fn connect_admin() -> PgConnection {
    PgConnection::connect(&database_url()).await.expect("connect as the test cluster's admin")
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned())).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Waits until the cluster checks the password of `role`, which must exist with a password
/// other than `not-the-password`.
async fn require_passwords(role: &str) {
    // scripts/stack.sh makes the test cluster check passwords for these roles (pg_hba.conf);
    // everything else trusts local logins. The postmaster may still be reloading.
    eventually("the cluster to check passwords (scripts/stack.sh pg_require_passwords)", WITHIN, || async {
        match PgConnection::connect_with(&options_for(role, "not-the-password")).await {
            Err(e) if is_login_rejected(&e) => Ok(()),
            Err(e) => Err(format!("unexpected error: {e}")),
            Ok(_) => Err("a wrong password was accepted".into()),
        }
    })
    .await;
}

/// `PINAK_TEST_DATABASE_URL` as `user`, without a password.
fn url_for(user: &str) -> String {
    let url = database_url();
    let (scheme, rest) = url.split_once("://").expect("database URL has a scheme");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn options_for(user: &str, password: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(&url_for(user)).unwrap().password(password)
}

/// Ends every session of `role` (the API's pools then open new connections).
async fn terminate(admin: &mut PgConnection, role: &str) {
    sqlx::query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1")
        .bind(role)
        .execute(&mut *admin)
        .await
        .unwrap();
}

/// `application_name`s of the sessions of `role`.
async fn sessions_of(admin: &mut PgConnection, role: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT coalesce(application_name, '') FROM pg_stat_activity WHERE usename = $1 ORDER BY application_name",
    )
    .bind(role)
    .fetch_all(&mut *admin)
    .await
    .unwrap()
}

/// A store's roles as the operator makes them: a NOLOGIN owner role, and login roles that act
/// as it (`SET role`), so each login role reaches the same tables. The owner may create schemas
/// (standalone migrations and the job queue's installer need that).
struct Roles {
    owner: String,
    logins: Vec<String>,
}

impl Roles {
    async fn create(admin: &mut PgConnection, id: &str) -> Roles {
        let owner = format!("{ROLE_PREFIX}{id}_owner");
        exec(admin, &format!("CREATE ROLE \"{owner}\" NOLOGIN")).await;
        let db: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut *admin).await.unwrap();
        exec(admin, &format!("GRANT CREATE ON DATABASE \"{db}\" TO \"{owner}\"")).await;
        Roles { owner, logins: Vec::new() }
    }

    async fn add_login(&mut self, admin: &mut PgConnection, name: &str, password: &str) -> String {
        let role = format!("{}_{name}", self.owner.trim_end_matches("_owner"));
        exec(admin, &format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}' IN ROLE \"{}\"", self.owner)).await;
        exec(admin, &format!("ALTER ROLE \"{role}\" SET role = '{}'", self.owner)).await;
        self.logins.push(role.clone());
        role
    }

    /// Drops the roles and everything the owner owns (the store's schemas).
    async fn remove(self, admin: &mut PgConnection) {
        for login in &self.logins {
            terminate(admin, login).await;
        }
        exec(admin, &format!("DROP OWNED BY \"{}\" CASCADE", self.owner)).await;
        for role in self.logins.iter().chain([&self.owner]) {
            exec(admin, &format!("DROP ROLE IF EXISTS \"{role}\"")).await;
        }
    }
}

// ------------------------------------------------------------ Secret files ---

/// A directory laid out as kubelet mounts a Secret: `<name>` -> `..data/<name>`, `..data` ->
/// `..<version>`; every update writes a new version directory and renames a new `..data`
/// symlink over the old one.
struct SecretDir {
    dir: PathBuf,
    version: u32,
}

impl SecretDir {
    fn new(files: &[(&str, &str)]) -> SecretDir {
        let dir = std::env::temp_dir().join(unique("pinak-db-credentials"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut secret = SecretDir { dir, version: 0 };
        secret.update(files);
        secret
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        for (name, content) in files {
            std::fs::write(self.dir.join(&version).join(name), content).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            match std::os::unix::fs::symlink(Path::new("..data").join(name), self.dir.join(name)) {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => panic!("symlink {name}: {e}"),
                _ => {}
            }
        }
        if self.version > 1 {
            std::fs::remove_dir_all(self.dir.join(format!("..v{}", self.version - 1))).unwrap();
        }
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- process ---

/// A `pinak-api` process; killed when dropped.
struct ApiProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
    base: String,
    client: reqwest::Client,
}

impl ApiProcess {
    /// Starts the binary with `env` (over test defaults) and waits until it reports ready.
    async fn start(log: PathBuf, env: &[(&str, &str)]) -> ApiProcess {
        let child = spawn_api(&log, env);
        let pid = child.id();
        let mut api = ApiProcess { child, pid, log, base: String::new(), client: reqwest::Client::new() };
        let addr = eventually("pinak-api to report ready", Duration::from_secs(60), || {
            let exited = api.child.try_wait().ok().flatten();
            let logs = api.logs();
            async move {
                if let Some(status) = exited {
                    panic!("pinak-api exited during startup ({status}):\n{logs}");
                }
                logs.lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|l| l["message"] == "pinak-api ready")
                    .and_then(|l| l["addr"].as_str().map(str::to_owned))
                    .ok_or_else(|| "not ready yet".to_owned())
            }
        })
        .await;
        api.base = format!("http://{addr}");
        api
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines (JSON) whose message starts with `message`, at `level`.
    fn log_lines(&self, level: &str, message: &str) -> usize {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["level"] == level && l["message"].as_str().is_some_and(|m| m.starts_with(message)))
            .count()
    }

    /// Still the process started first: it never exited (no restart).
    fn assert_running(&mut self) {
        assert_eq!(self.child.id(), self.pid);
        assert!(matches!(self.child.try_wait(), Ok(None)), "pinak-api exited:\n{}", self.logs());
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut rb =
            self.client.request(method.clone(), format!("{}{path}", self.base)).timeout(Duration::from_secs(30));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("{method} {path}: no response: {e}"));
        pinak_tests::response(resp).await
    }

    async fn add(&self, token: &str, content: &str) -> (u16, Value) {
        self.call(Method::POST, "/api/v1/memory/add", Some(token), Some(json!({ "content": content }))).await
    }

    /// Stores `content` and finds it by search.
    async fn assert_store_and_search(&self, token: &str, content: &str) {
        let (s, body) = self.add(token, content).await;
        assert_eq!(s, 201, "add {content:?}: {body}");
        let query = content.replace(' ', "%20");
        let (s, hits) =
            self.call(Method::GET, &format!("/api/v1/memory/search?query={query}&k=5"), Some(token), None).await;
        assert_eq!(s, 200, "search {content:?}: {hits}");
        let found = hits.as_array().is_some_and(|h| h.iter().any(|h| h["content"] == content));
        assert!(found, "search finds {content:?}: {hits}");
    }

    async fn status(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None, None).await
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_api(log: &Path, env: &[(&str, &str)]) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(workspace_bin("pinak-api"));
    cmd.env("PINAK_LISTEN", "127.0.0.1:0")
        .env("PINAK_JWT_SECRET", pinak_tests::SECRET)
        .env("PINAK_EMBEDDING_BACKEND", "dummy")
        .env("PINAK_DB_POOL_SIZE", "2")
        .env("RUST_LOG", "info,sqlx=warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(file.try_clone().unwrap()).stderr(file).stdin(Stdio::null()).spawn().expect("pinak-api starts")
}

// ---------------------------------------------------------------- helpers ---

/// Polls `check` until it returns `Ok`, or fails with its last reason after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(reason) if started.elapsed() >= within => panic!("waited {within:?} for {what}: {reason}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The two shapes of "database unavailable": the handler's, or the readiness gate's.
fn is_unavailable_body(body: &Value) -> bool {
    body == &json!({"detail": "Database unavailable"})
        || body == &json!({"detail": {"status": "not_ready", "verification": "database_unavailable"}})
}

/// Runs `scenario`, then `cleanup` whether or not it panicked, then re-raises its panic.
async fn with_cleanup(scenario: impl Future<Output = ()> + Send + 'static, cleanup: impl Future<Output = ()>) {
    let outcome = tokio::spawn(scenario).await;
    cleanup.await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ------------------------------------------------------------------ tests ---

/// sqlx reports a refused login as the server's error (`sqlx::Error::Database` with the
/// SQLSTATE), from a connect and from a pool's acquire, at once: that is what lets the API tell
/// it from a query bug and answer 503.
#[tokio::test]
async fn a_refused_login_is_a_database_error_counted_as_unavailable() {
    let mut admin = connect_admin().await;
    let mut roles = Roles::create(&mut admin, &uuid::Uuid::new_v4().simple().to_string()).await;
    let role = roles.add_login(&mut admin, "x", "right-password").await;
    require_passwords(&role).await;
    with_cleanup(refused_login_errors(role), roles.remove(&mut admin)).await;
}

async fn refused_login_errors(role: String) {
    PgConnection::connect_with(&options_for(&role, "right-password")).await.expect("the right password logs in");

    let e = PgConnection::connect_with(&options_for(&role, "wrong")).await.unwrap_err();
    let sqlx::Error::Database(db) = &e else { panic!("wrong password: not a database error: {e:?}") };
    assert_eq!(db.code().as_deref(), Some("28P01"), "{e}");
    assert!(is_login_rejected(&e) && is_unavailable(&e), "{e}");

    // Through a lazy pool, as the API's: the acquire fails at once with the same error (no
    // retry until the acquire timeout, no PoolTimedOut).
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options_for(&role, "wrong"));
    let started = Instant::now();
    let e = pool.acquire().await.unwrap_err();
    assert!(matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01")), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "acquire took {:?}", started.elapsed());
    assert!(is_unavailable(&e));

    // 28000: a role that may not log in (checked after the password).
    exec(&mut connect_admin().await, &format!("ALTER ROLE \"{role}\" NOLOGIN")).await;
    let e = PgConnection::connect_with(&options_for(&role, "right-password")).await.unwrap_err();
    assert!(matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some("28000")), "{e:?}");
    assert!(is_login_rejected(&e) && is_unavailable(&e), "{e}");
}

/// A missing or empty credential file stops the service at start, naming the variable.
#[tokio::test]
async fn a_missing_or_empty_credential_file_is_a_startup_error() {
    let secret = SecretDir::new(&[("password", "\n")]);
    for (var, file, reason) in [
        ("PINAK_DATABASE_PASSWORD_FILE", secret.path("absent"), "No such file"),
        ("PINAK_DATABASE_PASSWORD_FILE", secret.path("password"), "empty"),
        ("PINAK_DATABASE_USERNAME_FILE", secret.path("absent"), "No such file"),
    ] {
        let log = secret.dir.join(format!("api-{}.log", uuid::Uuid::new_v4().simple()));
        let mut child = spawn_api(
            &log,
            &[
                ("PINAK_DATABASE_URL", &database_url()),
                ("PINAK_DB_SCHEMA", &unique("t")),
                (var, file.to_str().unwrap()),
            ],
        );
        let status = eventually("pinak-api to exit", Duration::from_secs(30), || {
            let exited = child.try_wait().unwrap();
            async move { exited.ok_or_else(|| "still running".to_owned()) }
        })
        .await;
        let logs = std::fs::read_to_string(&log).unwrap();
        assert!(!status.success(), "{var}={}: exits with failure\n{logs}", file.display());
        assert!(logs.contains(&format!("{var}=")) && logs.contains(reason), "{var}: names the variable\n{logs}");
    }
}

/// The full rotation story on one running process: start from the files, the role's password
/// changes under it (503, not ready, still alive), the file catches up (recovered, same pid), a
/// file emptied by mistake keeps the last good password, and a switch to another role.
#[tokio::test]
async fn credentials_from_files_follow_rotation_without_restart() {
    let mut admin = connect_admin().await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut roles = Roles::create(&mut admin, &id).await;
    let passwords = [unique("pa"), unique("pa2"), unique("pb")];
    let role_a = roles.add_login(&mut admin, "a", &passwords[0]).await;
    require_passwords(&role_a).await;
    let role_b = roles.add_login(&mut admin, "b", &passwords[2]).await;
    let schema = format!("t_{id}");
    let secret = SecretDir::new(&[("username", &format!("{role_a}\n")), ("password", &format!("{}\n", passwords[0]))]);
    with_cleanup(rotation(secret, role_a, role_b, schema, passwords), roles.remove(&mut admin)).await;
}

async fn rotation(mut secret: SecretDir, role_a: String, role_b: String, schema: String, passwords: [String; 3]) {
    let mut admin = connect_admin().await;
    let log = secret.dir.join("api.log");
    // The URL names role a without a password: only the password file makes the login work. The
    // username file names role a too, until (d).
    let mut api = ApiProcess::start(
        log,
        &[
            ("PINAK_DATABASE_URL", &url_for(&role_a)),
            ("PINAK_DATABASE_USERNAME_FILE", secret.path("username").to_str().unwrap()),
            ("PINAK_DATABASE_PASSWORD_FILE", secret.path("password").to_str().unwrap()),
            ("PINAK_DB_SCHEMA", &schema),
        ],
    )
    .await;
    let token = Token::new("t1", "p1").sign();
    let admin_token = Token::admin("t1", "p1").sign();

    // (a) Started from the file: a memory is stored and found, over role a's sessions.
    api.assert_store_and_search(&token, "stored with the password from the file").await;
    assert!(sessions_of(&mut admin, &role_a).await.contains(&"pinak-api".to_owned()));

    // (b) The role's password changes under the running API, and its sessions end.
    exec(&mut admin, &format!("ALTER ROLE \"{role_a}\" PASSWORD '{}'", passwords[1])).await;
    terminate(&mut admin, &role_a).await;
    // Outside the readiness gate, authentication needs the database: every call opens a
    // connection (after the two dead ones are discarded), is refused, and must answer 503.
    for i in 0..8 {
        let (s, body) = api.call(Method::GET, "/api/v1/metrics", Some(&admin_token), None).await;
        assert_eq!((s, &body), (503, &json!({"detail": "Database unavailable"})), "admin metrics, call {i}");
    }
    // Memory routes: 503 from the handler until the watch notices, then from the gate.
    eventually("readiness to turn false", WITHIN, || async {
        let (s, body) = api.add(&token, "written while the login is refused").await;
        assert!(s == 503 && is_unavailable_body(&body), "a memory route while the login is refused: {s} {body}");
        match api.status("/api/v1/health").await {
            (503, body) if body["detail"]["verification"] == "database_unavailable" => Ok(()),
            (s, body) => Err(format!("/api/v1/health: {s} {body}")),
        }
    })
    .await;
    let (s, body) = api.call(Method::GET, "/api/v1/memory/search?query=x", Some(&token), None).await;
    assert!(s == 503 && is_unavailable_body(&body), "search while the login is refused: {s} {body}");
    assert_eq!(api.status("/api/v1/live").await.0, 200, "liveness stays 200");
    // Logged at error level once, not per request (several pings and requests have failed).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.log_lines("ERROR", REFUSED_MESSAGE), 1, "one error line for the refused login:\n{}", api.logs());
    assert_eq!(api.log_lines("ERROR", "database error"), 0, "no 500s logged:\n{}", api.logs());
    api.assert_running();

    // (c) The file gets the new password: the same process recovers by itself.
    let reloads = api.log_lines("INFO", RELOADED_MESSAGE);
    secret.update(&[("username", &format!("{role_a}\n")), ("password", &format!("{}\n", passwords[1]))]);
    eventually("readiness to return", WITHIN, || async {
        match api.status("/api/v1/health").await {
            (200, _) => Ok(()),
            (s, body) => Err(format!("/api/v1/health: {s} {body}")),
        }
    })
    .await;
    assert_eq!(api.log_lines("INFO", RELOADED_MESSAGE), reloads + 1, "one reload logged:\n{}", api.logs());
    api.assert_store_and_search(&token, "stored after the password rotation").await;
    api.assert_running();
    assert_eq!(api.log_lines("ERROR", REFUSED_MESSAGE), 1);

    // A password file emptied by mistake is logged and the last good password stays in use:
    // after every session ends, new ones still log in.
    secret.update(&[("username", &format!("{role_a}\n")), ("password", "")]);
    eventually("the empty file to be logged", WITHIN, || async {
        let n = api.log_lines("WARN", "cannot use the secret file");
        if n == 1 { Ok(()) } else { Err(format!("{n} warnings")) }
    })
    .await;
    terminate(&mut admin, &role_a).await;
    eventually("a write over a new connection", WITHIN, || async {
        match api.add(&token, "written with the last good password").await {
            (201, _) => Ok(()),
            (503, body) if is_unavailable_body(&body) => Err(format!("503 {body}")),
            (s, body) => panic!("write after the file was emptied: {s} {body}"),
        }
    })
    .await;
    assert_eq!(api.log_lines("ERROR", REFUSED_MESSAGE), 1, "the last good password was used:\n{}", api.logs());

    // (d) Both files switch to role b at once (one Secret update). Open sessions stay role a's
    // until they end; new ones are role b's, in both pools.
    secret.update(&[("username", &format!("{role_b}\n")), ("password", &format!("{}\n", passwords[2]))]);
    eventually("the switch to be loaded", WITHIN, || async {
        let n = api.log_lines("INFO", RELOADED_MESSAGE);
        if n == reloads + 2 { Ok(()) } else { Err(format!("{n} reloads logged")) }
    })
    .await;
    let kept = sessions_of(&mut admin, &role_a).await;
    assert!(kept.contains(&"pinak-api".to_owned()), "open connections are kept after a reload: {kept:?}");
    terminate(&mut admin, &role_a).await;
    let jobs_app = format!("pinak-jobs:{schema}");
    eventually("both pools to connect as role b", Duration::from_secs(40), || async {
        let (s, body) = api.add(&token, "written as role b").await;
        if s != 201 {
            assert!(s == 503 && is_unavailable_body(&body), "write after the role switch: {s} {body}");
        }
        let apps = sessions_of(&mut connect_admin().await, &role_b).await;
        if s == 201 && apps.contains(&"pinak-api".to_owned()) && apps.contains(&jobs_app) {
            Ok(())
        } else {
            Err(format!("write {s}; role b's sessions: {apps:?}"))
        }
    })
    .await;
    assert_eq!(sessions_of(&mut admin, &role_a).await, Vec::<String>::new(), "no new session as role a");
    api.assert_store_and_search(&token, "stored and found as role b").await;
    api.assert_running();

    // The secrets never reach the log.
    let logs = api.logs();
    for p in &passwords {
        assert!(!logs.contains(p.as_str()), "a password is in the log:\n{logs}");
    }
    assert_eq!(api.log_lines("ERROR", REFUSED_MESSAGE), 1);
}
