//! Provisioning against the real Postgres + pgvector that `scripts/test` starts
//! (`PINAK_TEST_DATABASE_URL`, an admin URL). Every test uses its own store names, so tests
//! run in parallel and beside the rest of the suite on the same cluster.

use std::str::FromStr;

use pinak_crds::MemoryStore;
use pinak_operator::database::{self, AdminUrl, Target, plan, scram};
use pinak_operator::error::Error;
use pinak_operator::names::StoreNames;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

fn admin_url() -> String {
    std::env::var("PINAK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| panic!("PINAK_TEST_DATABASE_URL is not set: run the suite with scripts/test"))
}

fn admin() -> AdminUrl {
    AdminUrl::parse(&admin_url()).expect("PINAK_TEST_DATABASE_URL is a Postgres URL")
}

/// A store with a fresh name and uid; its schema is `opt_<random>`.
fn new_store() -> MemoryStore {
    let id = hex::encode(scram::random_bytes(6).unwrap());
    let uid = format!("00000000-0000-4000-8000-{id}");
    serde_json::from_value(serde_json::json!({
        "apiVersion": "pinak.dev/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": format!("s{id}"), "namespace": "optest", "uid": uid},
        "spec": {"database": {"adminCredentials": {"secretRef": {"name": "pg"}}, "schema": format!("opt_{id}")}}
    }))
    .unwrap()
}

fn names_of(store: &MemoryStore) -> StoreNames {
    StoreNames::of(store).unwrap()
}

fn target<'a>(names: &'a StoreNames, password: &'a str) -> Target<'a> {
    Target { names, login_role: &names.login_role, password, connection_limit: 7 }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(url)?.connect().await
}

async fn admin_conn() -> PgConnection {
    connect(&admin_url()).await.expect("admin connection")
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(conn).await.map(|_| ())
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

async fn schema_exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn role_exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn provisioning_is_idempotent_and_the_login_role_is_least_privilege() {
    let (store, other) = (new_store(), new_store());
    let (names, other_names) = (names_of(&store), names_of(&other));
    let admin = admin();

    let first = database::provision(&admin, &target(&names, "pw-one")).await.unwrap();
    assert_eq!(first.migration_version, database::latest_migration());
    assert!(!first.pgvector_version.is_empty());
    // Twice: the same report, and nothing left to do (the plan is empty).
    let second = database::provision(&admin, &target(&names, "pw-one")).await.unwrap();
    assert_eq!(second, first);
    let mut conn = admin_conn().await;
    let observed = database::observe(&mut conn, &names, &names.login_role).await.unwrap();
    let plan = plan::setup_plan(&target(&names, "pw-one"), &observed, || panic!("no password change")).unwrap();
    assert_eq!(plan, Vec::<String>::new());

    // Role attributes.
    let (limit, config, can_login): (i32, Vec<String>, bool) =
        sqlx::query_as("SELECT rolconnlimit, rolconfig, rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(&names.login_role)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(limit, 7);
    assert!(can_login);
    assert!(config.contains(&"statement_timeout=60s".to_owned()), "{config:?}");
    assert!(config.contains(&format!("role={}", names.owner_role)), "{config:?}");
    let owner_login: bool = sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
        .bind(&names.owner_role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!owner_login, "the owner role is NOLOGIN");

    assert!(password_matches(&mut conn, &names.login_role, "pw-one").await);
    database::provision(&admin, &target(&other_names, "pw-other")).await.unwrap();

    // The store's login, as the pods use it.
    let mut login = connect(&admin.for_login(&names.login_role, "pw-one")).await.expect("login role connects");
    let (current, session): (String, String) =
        sqlx::query_as("SELECT current_user::text, session_user::text").fetch_one(&mut login).await.unwrap();
    assert_eq!((current.as_str(), session.as_str()), (names.owner_role.as_str(), names.login_role.as_str()));
    // Its schema: the migrated tables, readable and writable, and new objects belong to the owner.
    exec(&mut login, "SELECT count(*) FROM memories_semantic").await.unwrap();
    exec(&mut login, "CREATE TABLE scratch (x int); INSERT INTO scratch VALUES (1)").await.unwrap();
    let owner: String =
        sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE schemaname = $1 AND tablename = 'scratch'")
            .bind(&names.schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(owner, names.owner_role);
    // The job queue's schema: graphile_worker finds its migrations table and may create tables.
    let worker = format!("\"{}\"", names.worker_schema);
    exec(&mut login, &format!("SELECT count(*) FROM {worker}.migrations")).await.unwrap();
    exec(&mut login, &format!("CREATE TABLE {worker}.jobs_probe (id int)")).await.unwrap();
    // Nothing outside: no CREATE in public, no new schemas, no other store's data.
    let e = exec(&mut login, "CREATE TABLE public.pinak_probe (x int)").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    let e = exec(&mut login, "CREATE SCHEMA pinak_probe").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    let e = exec(&mut login, &format!("SELECT count(*) FROM \"{}\".memories_semantic", other_names.schema))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    // ...and the other store's login cannot read this one either.
    let mut other_login = connect(&admin.for_login(&other_names.login_role, "pw-other")).await.unwrap();
    let e = exec(&mut other_login, &format!("SELECT count(*) FROM \"{}\".scratch", names.schema)).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    let _ = login.close().await;
    let _ = other_login.close().await;

    database::reclaim(&admin, &names).await.unwrap();
    database::reclaim(&admin, &other_names).await.unwrap();
}

/// Whether `role`'s stored SCRAM verifier is the one for `password` (recomputed with its salt).
async fn password_matches(conn: &mut PgConnection, role: &str, password: &str) -> bool {
    use base64::Engine;
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(conn)
        .await
        .unwrap();
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    let salt = stored.split('$').nth(1).and_then(|s| s.split(':').nth(1)).expect("a SCRAM verifier");
    let salt = base64::engine::general_purpose::STANDARD.decode(salt).unwrap();
    scram::verifier(password, &salt) == stored
}

#[tokio::test]
async fn a_new_password_replaces_the_old_one() {
    let store = new_store();
    let names = names_of(&store);
    let admin = admin();
    database::provision(&admin, &target(&names, "first-password")).await.unwrap();
    database::provision(&admin, &target(&names, "second-password")).await.unwrap();
    // The test cluster trusts local connections (initdb --auth=trust), so a login proves
    // nothing about the password: check the stored SCRAM verifier instead.
    let mut conn = admin_conn().await;
    assert!(password_matches(&mut conn, &names.login_role, "second-password").await);
    assert!(!password_matches(&mut conn, &names.login_role, "first-password").await);
    database::reclaim(&admin, &names).await.unwrap();
}

#[tokio::test]
async fn reclaim_drops_everything_of_the_store_even_with_sessions_open() {
    let store = new_store();
    let names = names_of(&store);
    let admin = admin();
    database::provision(&admin, &target(&names, "pw")).await.unwrap();
    let mut login = connect(&admin.for_login(&names.login_role, "pw")).await.unwrap();
    exec(&mut login, "BEGIN; LOCK TABLE memories_semantic IN ACCESS SHARE MODE").await.unwrap();

    database::reclaim(&admin, &names).await.unwrap();
    let mut conn = admin_conn().await;
    for schema in [&names.schema, &names.worker_schema] {
        assert!(!schema_exists(&mut conn, schema).await, "{schema} dropped");
    }
    for role in [&names.owner_role, &names.login_role] {
        assert!(!role_exists(&mut conn, role).await, "{role} dropped");
    }
    assert!(exec(&mut login, "SELECT 1").await.is_err(), "the session was ended");
    // Again: nothing left, nothing to do.
    database::reclaim(&admin, &names).await.unwrap();
}

/// Retain: the operator leaves everything in place on delete. A store recreated under the same
/// name (a new uid) does not silently take the retained data over.
#[tokio::test]
async fn retained_data_is_not_adopted_by_a_recreated_store() {
    let store = new_store();
    let names = names_of(&store);
    let admin = admin();
    database::provision(&admin, &target(&names, "pw")).await.unwrap();
    let mut recreated = store.clone();
    recreated.metadata.uid = Some("00000000-0000-4000-8000-ffffffffffff".into());
    let recreated_names = names_of(&recreated);
    assert_eq!(recreated_names.schema, names.schema);
    let err = database::provision(&admin, &target(&recreated_names, "pw2")).await.unwrap_err();
    assert!(matches!(err, Error::SchemaNotOwned { .. }), "{err}");
    // Its reclaim does not touch the retained store either.
    database::reclaim(&admin, &recreated_names).await.unwrap();
    let mut conn = admin_conn().await;
    assert!(schema_exists(&mut conn, &names.schema).await);
    assert!(role_exists(&mut conn, &names.login_role).await);
    connect(&admin.for_login(&names.login_role, "pw")).await.expect("the retained login still works");
    database::reclaim(&admin, &names).await.unwrap();
}

#[tokio::test]
async fn a_foreign_schema_is_refused_and_left_alone() {
    let store = new_store();
    let names = names_of(&store);
    let admin = admin();
    let mut conn = admin_conn().await;
    exec(&mut conn, &format!("CREATE SCHEMA \"{}\"; CREATE TABLE \"{}\".precious (x int)", names.schema, names.schema))
        .await
        .unwrap();

    let err = database::provision(&admin, &target(&names, "pw")).await.unwrap_err();
    assert!(matches!(err, Error::SchemaNotOwned { .. }), "{err}");
    assert_eq!(err.reason(), "SchemaNotOwned");
    // Refused before any statement: no roles were made.
    assert!(!role_exists(&mut conn, &names.owner_role).await);
    assert!(!role_exists(&mut conn, &names.login_role).await);
    // A Delete reclaim of the store does not drop what it does not own.
    database::reclaim(&admin, &names).await.unwrap();
    exec(&mut conn, &format!("SELECT * FROM \"{}\".precious", names.schema)).await.unwrap();
    exec(&mut conn, &format!("DROP SCHEMA \"{}\" CASCADE", names.schema)).await.unwrap();
}

/// Platform teams often hand the operator a CREATEROLE admin rather than a superuser.
#[tokio::test]
async fn a_non_superuser_admin_can_provision_and_reclaim() {
    let store = new_store();
    let names = names_of(&store);
    let role = format!("{}_admin", names.schema);
    let mut conn = admin_conn().await;
    // Creating pgvector needs a superuser: the platform team installs it once per database.
    exec(&mut conn, "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public").await.unwrap();
    exec(&mut conn, &format!("CREATE ROLE \"{role}\" LOGIN CREATEROLE PASSWORD 'adm'")).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()::text").fetch_one(&mut conn).await.unwrap();
    exec(&mut conn, &format!("GRANT CREATE ON DATABASE \"{db}\" TO \"{role}\"")).await.unwrap();

    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some("adm")).unwrap();
    let limited = AdminUrl::parse(url.as_str()).unwrap();
    let report = database::provision(&limited, &target(&names, "pw")).await.unwrap();
    assert_eq!(report.migration_version, database::latest_migration());
    database::provision(&limited, &target(&names, "pw")).await.unwrap();
    let mut login = connect(&limited.for_login(&names.login_role, "pw")).await.unwrap();
    exec(&mut login, "SELECT count(*) FROM memories_semantic").await.unwrap();
    let _ = login.close().await;
    database::reclaim(&limited, &names).await.unwrap();
    assert!(!schema_exists(&mut conn, &names.schema).await);
    exec(
        &mut conn,
        &format!("REVOKE CREATE ON DATABASE \"{db}\" FROM \"{role}\"; DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unreachable_postgres_is_reported_as_such() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = AdminUrl::parse(&format!("postgres://postgres@127.0.0.1:{port}/pinak")).unwrap();
    let store = new_store();
    let err = database::provision(&admin, &target(&names_of(&store), "pw")).await.unwrap_err();
    assert_eq!(err.reason(), "DatabaseUnreachable", "{err}");
}
