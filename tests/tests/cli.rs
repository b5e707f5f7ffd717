//! The `pinak` binary against a real pinak-api: output, `--json`, and the exit status of each
//! kind of failure (see `pinak --help`).

use std::io::Write;
use std::process::{Command, Stdio};

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `pinak` with only the given environment; on the blocking pool, so the in-process API
/// keeps serving while the child waits on it.
async fn pinak(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    let mut cmd = Command::new(pinak_tests::operator::workspace_bin("pinak"));
    // No profile file of the machine's user: an empty configuration directory.
    let no_config = std::env::temp_dir().join("pinak_cli_no_config");
    cmd.args(args)
        .env_remove("PINAK_URL")
        .env_remove("PINAK_TOKEN")
        .env_remove("PINAK_JWT_SECRET")
        .env_remove("PINAK_CONFIG")
        .env_remove("PINAK_PROFILE")
        .env("XDG_CONFIG_HOME", &no_config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdin = stdin.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("pinak starts");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    Run {
        code: out.status.code().expect("pinak exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `pinak` pointed at `api` with `token`.
async fn call(api: &TestApi, token: &str, args: &[&str], stdin: &str) -> Run {
    pinak(args, &[("PINAK_URL", &api.base), ("PINAK_TOKEN", token)], stdin).await
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(pinak_tests::unique("pinak_cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn add_get_search_and_context() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();

    let added = call(&api, &token, &["add", "--json", "Kubernetes", "upgrades", "need", "a", "drain"], "").await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let id = added.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(added.json()["content"], "Kubernetes upgrades need a drain");

    let from_stdin = call(&api, &token, &["add", "--tag", "ops", "-"], "Postgres upgrades need a drain too\n").await;
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert!(from_stdin.stdout.starts_with("added semantic memory "), "{}", from_stdin.stdout);

    let skill = temp_file("skill.json", r#"{"skill_name": "drain a node", "steps": ["cordon", "drain"]}"#);
    let proc_added = call(&api, &token, &["add", "--layer", "procedural", "--file", skill.to_str().unwrap()], "").await;
    assert_eq!(proc_added.code, 0, "{}", proc_added.stderr);
    assert!(proc_added.stdout.starts_with("added procedural memory "), "{}", proc_added.stdout);

    let got = call(&api, &token, &["get", "semantic", &id], "").await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert!(got.stdout.lines().any(|l| l.starts_with("content") && l.ends_with("Kubernetes upgrades need a drain")));
    let got = call(&api, &token, &["--json", "get", "semantic", &id], "").await;
    assert_eq!(got.json()["id"], id.as_str());

    let found = call(&api, &token, &["search", "upgrades", "drain", "--limit", "10"], "").await;
    assert_eq!(found.code, 0, "{}", found.stderr);
    let lines: Vec<&str> = found.stdout.lines().collect();
    assert!(lines[0].starts_with("LAYER") && lines[0].ends_with("CONTENT"), "{}", found.stdout);
    assert!(lines.iter().any(|l| l.starts_with("semantic") && l.contains(&id)), "{}", found.stdout);
    let found = call(&api, &token, &["search", "drain", "--layer", "procedural", "--json"], "").await;
    let hits = found.json();
    assert!(!hits.as_array().unwrap().is_empty(), "{hits}");
    assert!(hits.as_array().unwrap().iter().all(|h| h["metadata"]["type"] == "procedural"), "{hits}");
    // --mode keyword: only memories holding a word of the query.
    let found = call(&api, &token, &["search", "kubernetes", "--mode", "keyword", "--json"], "").await;
    let hits = found.json();
    assert_eq!(hits.as_array().map(Vec::len), Some(1), "{hits}");
    assert_eq!(hits[0]["id"], id.as_str());
    let bad = call(&api, &token, &["search", "x", "--mode", "fuzzy"], "").await;
    assert_eq!(bad.code, 2, "a usage error: {}", bad.stderr);

    let ctx = call(&api, &token, &["context", "drain"], "").await;
    assert_eq!(ctx.code, 0, "{}", ctx.stderr);
    assert!(ctx.stdout.lines().any(|l| l.starts_with("procedural") && l.ends_with("drain a node")), "{}", ctx.stdout);
    let ctx = call(&api, &token, &["context", "drain", "--json"], "").await;
    assert!(ctx.json()["semantic"].as_array().is_some_and(|s| !s.is_empty()), "{}", ctx.stdout);
    api.stop().await;
}

#[tokio::test]
async fn each_failure_has_its_exit_status() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();

    // 2: usage.
    let r = call(&api, &token, &["search"], "").await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = call(&api, &token, &["add"], "").await;
    assert_eq!(
        (r.code, r.stderr.trim()),
        (2, "pinak: nothing to add: give the text, `-` for stdin, --file or --jsonl")
    );

    // 3: nothing listens on the port of a dropped listener.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let r = pinak(&["search", "x", "--url", &url, "--token", &token], &[], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach") && r.stderr.contains("Connection refused"), "{}", r.stderr);

    // 4: no token, a token the API does not accept (401), a missing scope (403).
    let r = pinak(&["search", "x", "--url", &api.base], &[], "").await;
    assert_eq!((r.code, r.stderr.trim()), (4, "pinak: no token: pass --token or set PINAK_TOKEN"));
    let forged = Token::new("t1", "p1").secret("another-secret-0123456789-abcdefghijklmnop").sign();
    let r = call(&api, &forged, &["search", "x"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    let read_only = Token::new("t1", "p1").set("scopes", json!(["memory.read"])).sign();
    let r = call(&api, &read_only, &["add", "hello"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("403") && r.stderr.contains("Missing scope"), "{}", r.stderr);

    // 5: other API errors, with their detail.
    let r = call(&api, &token, &["get", "semantic", &uuid::Uuid::new_v4().to_string()], "").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("404") && r.stderr.contains("not found"), "{}", r.stderr);
    let r = call(&api, &token, &["add", "--layer", "episodic", "--object", r#"{"goal": "g"}"#], "").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("422") && r.stderr.contains("content"), "{}", r.stderr);

    // 6: input that is not what the layer takes.
    let r = call(&api, &token, &["add", "--layer", "rag", "just text"], "").await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(api.count("memories_semantic").await + api.count("memories_episodic").await, 0);
    api.stop().await;
}

/// The old `pinak mint` form (Helm NOTES.txt, scripts/dev) and `token mint` both give a token
/// the API accepts; a published secret is refused with status 2.
#[tokio::test]
async fn minted_tokens_work_against_the_api() {
    let api = TestApi::start().await;
    let secret = [("PINAK_JWT_SECRET", pinak_tests::SECRET)];
    for form in [&["mint"][..], &["token", "mint"]] {
        let args: Vec<&str> =
            form.iter().copied().chain(["--tenant", "t1", "--project", "p1", "--client-id", "cli"]).collect();
        let minted = pinak(&args, &secret, "").await;
        assert_eq!(minted.code, 0, "{}", minted.stderr);
        let r = call(&api, minted.stdout.trim(), &["add", "minted", "--json"], "").await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.json()["client_id"], "cli");
    }
    let r = pinak(&["mint", "--tenant", "t", "--project", "p"], &[("PINAK_JWT_SECRET", "secret")], "").await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    api.stop().await;
}

#[tokio::test]
async fn jsonl_import_checks_every_line_first() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();

    // More than one /batch call's worth.
    let good: String =
        (0..501).map(|i| format!("{}\n", json!({"content": format!("note {i}"), "tags": ["bulk"]}))).collect();
    let path = temp_file("good.jsonl", &good);
    let r = call(&api, &token, &["add", "--jsonl", path.to_str().unwrap()], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "added 501 semantic memories");
    assert!(r.stderr.contains("500/501") && r.stderr.contains("501/501"), "{}", r.stderr);
    assert_eq!(api.count("memories_semantic").await, 501);

    let r = call(&api, &token, &["add", "--jsonl", "-", "--json"], "{\"content\": \"from stdin\"}\n").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["count"], 1);
    assert_eq!(r.json()["ids"].as_array().unwrap().len(), 1);

    let bad =
        format!("{good}{}\n\n{}\n{}\n", json!({"content": 5}), json!({"content": "ok", "colour": "red"}), "{oops");
    let path = temp_file("bad.jsonl", &bad);
    let r = call(&api, &token, &["add", "--jsonl", path.to_str().unwrap()], "").await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("3 bad line(s); nothing was sent"), "{}", r.stderr);
    assert!(r.stderr.contains("line 502: `content` must be string"), "{}", r.stderr);
    assert!(r.stderr.contains("line 504: unknown field `colour`"), "{}", r.stderr);
    assert!(r.stderr.contains("line 505: not JSON"), "{}", r.stderr);
    assert_eq!(api.count("memories_semantic").await, 502);

    // The schema check passes with read permission alone; the refused /batch call names its lines.
    let read_only = Token::new("t1", "p1").set("scopes", json!(["memory.read"])).sign();
    let r = call(&api, &read_only, &["add", "--jsonl", "-"], "\n{\"content\": \"a\"}\n{\"content\": \"b\"}\n").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("403") && r.stderr.contains("(sending lines 2-3; 0 of 2 records were stored before)"),
        "{}",
        r.stderr
    );
    api.stop().await;
}

#[tokio::test]
async fn stats_and_doctor() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();
    for text in ["one", "two"] {
        assert_eq!(call(&api, &token, &["add", text], "").await.code, 0);
    }

    let r = call(&api, &token, &["stats"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("client client-a (0 children)\nLAYER"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("semantic") && l.split_whitespace().nth(1) == Some("2")),
        "{}",
        r.stdout
    );
    let r = call(&api, &token, &["stats", "--json"], "").await;
    assert_eq!(r.json()["combined"]["counts"]["semantic"], 2);

    let r = call(&api, &token, &["doctor"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for check in ["reachable", "ready", "token", "auth"] {
        assert!(r.stdout.lines().any(|l| l.starts_with(check) && l.contains(" ok ")), "{check}: {}", r.stdout);
    }
    assert!(r.stdout.contains("tenant t1, project p1, client client-a"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("store") && l.contains("skipped: needs an admin token")),
        "{}",
        r.stdout
    );

    // An admin token also checks the store: schema, pgvector, vectors, the audit chain.
    let admin = Token::admin("t1", "p1").sign();
    let r = call(&api, &admin, &["doctor"], "").await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let store = r.stdout.lines().find(|l| l.starts_with("store")).unwrap_or_default().to_owned();
    assert!(store.contains(" ok ") && store.contains("migration ") && store.contains("pgvector 0.8"), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l.starts_with("audit") && l.contains("links verified")), "{}", r.stdout);
    let mut db = api.db().await;
    sqlx::query("UPDATE memories_semantic SET embedding = NULL WHERE content = 'one'").execute(&mut db).await.unwrap();
    let r = call(&api, &admin, &["doctor"], "").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.contains("1 rows without a vector"), "{}", r.stdout);

    // A forged token looks fine locally; the API's 401 is what fails.
    let forged = Token::new("t1", "p1").secret("another-secret-0123456789-abcdefghijklmnop").sign();
    let r = call(&api, &forged, &["doctor", "--json"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checks"][3]["check"], "auth");
    assert!(report["checks"][3]["detail"].as_str().unwrap().contains("401"), "{report}");
    let expired = Token::new("t1", "p1").set("exp", json!(chrono::Utc::now().timestamp() - 10)).sign();
    let r = call(&api, &expired, &["doctor"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stdout.lines().any(|l| l.starts_with("token") && l.contains("FAIL") && l.contains("expired")));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = pinak(&["doctor", "--url", &format!("http://127.0.0.1:{port}")], &[], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("2 of 2 checks failed"), "{}", r.stderr);
    api.stop().await;
}

#[tokio::test]
async fn proposals_review_and_revoke() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();
    let admin = Token::admin("t1", "p1").sign();
    for text in ["keep this proposal", "drop this proposal"] {
        api.post(&token, "/quarantine/propose/semantic", json!({"content": text})).await;
    }

    let r = call(&api, &admin, &["proposals", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("ID") && r.stdout.lines().count() == 3, "{}", r.stdout);
    let listed = call(&api, &admin, &["proposals", "list", "--json"], "").await.json();
    let id_of = |text: &str| {
        let item = listed.as_array().unwrap().iter().find(|i| i["payload"]["content"] == text).unwrap();
        item["id"].as_str().unwrap().to_owned()
    };
    let (keep, drop) = (id_of("keep this proposal"), id_of("drop this proposal"));

    let r = call(&api, &admin, &["proposals", "approve", &keep], "").await;
    assert_eq!((r.code, r.stdout.trim()), (0, format!("approved semantic memory {keep}").as_str()), "{}", r.stderr);
    let r = call(&api, &admin, &["proposals", "reject", &drop, "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["status"], "rejected");
    let r = call(&api, &admin, &["proposals", "reject", &drop], "").await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("404") && r.stderr.contains("Quarantine item not found"), "{}", r.stderr);
    let r = call(&api, &admin, &["proposals", "list", "--status", "approved", "--json"], "").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = call(&api, &token, &["proposals", "list"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(api.count("memories_semantic").await, 1);

    let victim = Token::new("t1", "p1");
    let victim_token = victim.sign();
    assert_eq!(call(&api, &victim_token, &["stats"], "").await.code, 0);
    let r = call(&api, &admin, &["revoke", &victim.jti()], "").await;
    assert_eq!((r.code, r.stdout.trim()), (0, format!("revoked token {}", victim.jti()).as_str()), "{}", r.stderr);
    let r = call(&api, &victim_token, &["stats"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = call(&api, &token, &["revoke", "some-jti"], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    api.stop().await;
}

#[tokio::test]
async fn events_session_and_working() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();

    let r = call(&api, &token, &["events", "add", "deploy", "--payload", r#"{"version": "1.2"}"#], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("added event"), "{}", r.stdout);
    let r = call(&api, &token, &["events", "add", "deploy", "--payload", "[1]"], "").await;
    assert_eq!((r.code, r.stderr.trim()), (6, "pinak: --payload must be a JSON object"));
    let r = call(&api, &token, &["events", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.lines().any(|l| l.contains(" deploy ") && l.contains(r#""version": "1.2""#)), "{}", r.stdout);

    for (role, text) in [("user", "first line"), ("assistant", "second line")] {
        let r = call(&api, &token, &["session", "add", "s1", text, "--role", role], "").await;
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = call(&api, &token, &["session", "list", "s1"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[1].contains("user") && lines[1].ends_with("first line"), "{}", r.stdout);
    assert!(lines[2].contains("assistant") && lines[2].ends_with("second line"), "{}", r.stdout);

    let r =
        call(&api, &token, &["working", "add", "remember", "the", "drain", "--key", "k1", "--ttl", "600"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = call(&api, &token, &["working", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.lines().any(|l| l.contains("k1") && l.ends_with("remember the drain")), "{}", r.stdout);
    let r = call(&api, &token, &["working", "list", "--json"], "").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);

    // Past one page: --all follows the API's cursor.
    for n in 0..4 {
        call(&api, &token, &["events", "add", "tick", "--payload", &format!(r#"{{"n": {n}}}"#)], "").await;
    }
    let r = call(&api, &token, &["events", "list", "--limit", "2", "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let r = call(&api, &token, &["events", "list", "--limit", "2", "--all", "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json().as_array().unwrap().len(), 5, "{}", r.stdout);
    let r = call(&api, &token, &["events", "list", "--limit", "2", "--all"], "").await;
    assert_eq!(r.stdout.lines().count(), 6, "a header and five rows: {}", r.stdout);
    api.stop().await;
}

#[tokio::test]
async fn clients_list_and_register() {
    let api = TestApi::start().await;
    let token = Token::new("t1", "p1").sign();
    let admin = Token::admin("t1", "p1").sign();
    let args = ["clients", "register", "ci-bot", "--name", "CI bot", "--parent", "client-a"];
    let r = call(&api, &token, &args, "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    let r = call(&api, &admin, &args, "").await;
    assert_eq!((r.code, r.stdout.trim()), (0, "registered client ci-bot"), "{}", r.stderr);
    let r = call(&api, &token, &["clients", "list"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("CLIENT"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("ci-bot") && l.contains("client-a") && l.ends_with("CI bot")),
        "{}",
        r.stdout
    );
    let r = call(&api, &token, &["clients", "list", "--json"], "").await;
    assert!(r.json().as_array().unwrap().iter().any(|c| c["client_id"] == "ci-bot"), "{}", r.stdout);
    api.stop().await;
}

#[tokio::test]
async fn export_and_import_round_trip() {
    let api = TestApi::start().await;
    let agent = Token::new("t1", "p1").sign();
    for text in ["first note", "second note"] {
        api.post(&agent, "/add", json!({"content": text})).await;
    }
    api.post(&agent, "/event", json!({"event_type": "e", "payload": {}})).await;
    let out = temp_file("unused", "").with_file_name("p1.jsonl");
    let r = call(&api, &Token::admin("t1", "p1").sign(), &["export", "--output", out.to_str().unwrap()], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("exported 3 rows (event 1, semantic 2) to "), "{}", r.stdout);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(!out.with_file_name("p1.jsonl.partial").exists());

    // To stdout, the lines alone; the summary goes to stderr.
    let r = call(&api, &Token::admin("t1", "p1").sign(), &["export"], "").await;
    assert_eq!((r.code, r.stdout.as_str()), (0, text.as_str()), "{}", r.stderr);

    let admin2 = Token::admin("t1", "p2").sign();
    let r = call(&api, &admin2, &["import", out.to_str().unwrap(), "--new-ids"], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("imported 3 rows (") && r.stdout.contains("semantic 2") && r.stdout.contains("event 1"),
        "{}",
        r.stdout
    );
    let r = call(&api, &admin2, &["import", "-", "--new-ids", "--json"], &text).await;
    assert_eq!(r.json()["imported"], 3, "{}", r.stderr);

    // A malformed file: its line, exit 6, nothing imported.
    let bad = format!("{}\n{{\"layer\":\"semantic\",\"row\":{{\"colour\":1}}}}\n", text.lines().next().unwrap());
    let r = call(&api, &Token::admin("t1", "p3").sign(), &["import", "-", "--new-ids"], &bad).await;
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("line 2: `colour` is not a column"), "{}", r.stderr);
    assert_eq!(api.count("memories_semantic").await, 6);
    // Not an admin: exit 4.
    let r = call(&api, &agent, &["export", "--output", out.to_str().unwrap()], "").await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    api.stop().await;
}

#[tokio::test]
async fn profiles_give_the_url_and_token() {
    let api = TestApi::start().await;
    let token_file = temp_file("t1.token", &format!("{}\n", Token::new("t1", "p1").sign()));
    let config = temp_file(
        "config.toml",
        &format!(
            "[profiles.default]\nurl = \"http://127.0.0.1:9\"\n\n[profiles.test]\nurl = \"{}\"\ntoken_file = \"{}\"\ntimeout = 20\n",
            api.base,
            token_file.display()
        ),
    );
    let cfg = config.to_str().unwrap();
    let r = pinak(&["--config", cfg, "--profile", "test", "add", "from a profile"], &[], "").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = pinak(&["search", "profile", "--json"], &[("PINAK_CONFIG", cfg), ("PINAK_PROFILE", "test")], "").await;
    assert_eq!(r.json()[0]["content"], "from a profile", "{}", r.stderr);
    // The default profile points nowhere: unreachable (3); a flag wins over the profile.
    let r = pinak(&["--config", cfg, "stats"], &[("PINAK_TOKEN", "x")], "").await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = pinak(
        &["--config", cfg, "--url", &api.base, "search", "profile"],
        &[("PINAK_TOKEN", &Token::new("t1", "p1").sign())],
        "",
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A profile the file lacks, or a misspelt key: usage errors (2) naming the problem.
    let r = pinak(&["--config", cfg, "--profile", "prod", "stats"], &[], "").await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no profile `prod`") && r.stderr.contains("default, test"), "{}", r.stderr);
    let bad = temp_file("bad.toml", "[profiles.default]\nurl = \"http://x\"\ntokne = \"t\"\n");
    let r = pinak(&["--config", bad.to_str().unwrap(), "stats"], &[], "").await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("tokne"), "{}", r.stderr);
    api.stop().await;
}

#[tokio::test]
async fn tokens_signed_with_a_private_key_and_kid() {
    let (ed, rsa) = (pinak_tests::keypair::KeyPair::ed25519(), pinak_tests::keypair::KeyPair::rsa());
    let keys = temp_file("ops-ed.pem", std::str::from_utf8(&ed.public_pem).unwrap()).with_file_name("");
    std::fs::write(keys.join("ops-rsa.pem"), &rsa.public_pem).unwrap();
    let api = TestApi::builder().env("PINAK_JWT_KEYS_DIR", keys.to_str().unwrap()).start().await;
    for (pair, kid) in [(&ed, "ops-ed"), (&rsa, "ops-rsa")] {
        let key = temp_file("private.pem", std::str::from_utf8(&pair.private_pem).unwrap());
        let r = pinak(
            &["token", "mint", "--tenant", "t1", "--project", "p1", "--key-file", key.to_str().unwrap(), "--kid", kid],
            &[],
            "",
        )
        .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        let token = r.stdout.trim().to_owned();
        let r = call(&api, &token, &["stats"], "").await;
        assert_eq!(r.code, 0, "{kid}: {}", r.stderr);
    }
    // The wrong kid for the key: the API refuses the signature (4).
    let key = temp_file("private.pem", std::str::from_utf8(&ed.private_pem).unwrap());
    let r = pinak(
        &[
            "token",
            "mint",
            "--tenant",
            "t1",
            "--project",
            "p1",
            "--key-file",
            key.to_str().unwrap(),
            "--kid",
            "ops-rsa",
        ],
        &[],
        "",
    )
    .await;
    assert_eq!(call(&api, r.stdout.trim(), &["stats"], "").await.code, 4);
    // Not a key, or a key without its kid: usage errors.
    let junk = temp_file("junk.pem", "not a key");
    let r = pinak(
        &["token", "mint", "--tenant", "t", "--project", "p", "--key-file", junk.to_str().unwrap(), "--kid", "k"],
        &[],
        "",
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = pinak(&["token", "mint", "--tenant", "t", "--project", "p", "--key-file", key.to_str().unwrap()], &[], "")
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    api.stop().await;
}
