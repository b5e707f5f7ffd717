//! Issue 19's contract items: direct writes refuse unknown fields (15), deserialisation errors
//! name the field (16), bounded queries and a Postgres statement timeout (8).

use pinak_tests::{TestApi, Token};
use serde_json::json;

/// Item 15: unknown fields on a direct write get 422 naming the field, as the layer schemas'
/// `additionalProperties: false`; fields the routes or schemas define are still accepted.
#[tokio::test]
async fn direct_writes_refuse_unknown_fields() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    for (path, body) in [
        ("/add", json!({"content": "x", "colour": "red"})),
        ("/episodic/add", json!({"content": "x", "colour": "red"})),
        ("/procedural/add", json!({"skill_name": "s", "steps": ["a"], "colour": "red"})),
        ("/rag/add", json!({"query": "q", "external_source": "e", "content": "c", "colour": "red"})),
        ("/working/add", json!({"content": "x", "colour": "red"})),
    ] {
        let (s, b) = api.post(&w, path, body).await;
        assert_eq!(s, 422, "{path}: {b}");
        assert_eq!(b["detail"][0]["loc"], json!(["body", "colour"]), "{path}: {b}");
        assert!(b["detail"][0]["msg"].as_str().unwrap().contains("colour"), "{path}: {b}");
    }
    let (s, b) = api.post(&w, "/batch", json!({"layer": "semantic", "items": [{"content": "x", "colour": 1}]})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "items", 0, "colour"]), "{b}");
    assert_eq!(api.count("memories_semantic").await + api.count("working_memory").await, 0);
    // Fields of the schemas and of the routes stay accepted.
    for (path, body) in [
        ("/add", json!({"content": "x", "tags": ["a"], "schema_version": "1"})),
        ("/episodic/add", json!({"content": "x", "salience": 2, "goal": "g", "schema_version": "1"})),
        ("/working/add", json!({"content": "x", "session_id": "s", "key": "k", "ttl_seconds": 60})),
    ] {
        let (s, b) = api.post(&w, path, body).await;
        assert_eq!(s, 201, "{path}: {b}");
    }
    api.stop().await;
}

/// Item 16: a deserialisation error names the field, and a body that is not an object says so.
#[tokio::test]
async fn deserialisation_errors_name_the_field() {
    let api = TestApi::start().await;
    let w = Token::new("t", "p").sign();
    let (s, b) = api.post(&w, "/add", json!({"content": 5})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "content"]), "{b}");
    let (s, b) = api.post(&w, "/add", json!({"tags": []})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "content"]), "{b}");
    assert_eq!(b["detail"][0]["type"], "missing", "{b}");
    let (s, b) = api.post(&w, "/procedural/add", json!({"skill_name": "s", "steps": ["a", 7]})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "steps", 1]), "{b}");
    for body in [json!([1, 2]), json!("text"), json!(3)] {
        let (s, b) = api.post(&w, "/add", body.clone()).await;
        assert_eq!(s, 422, "{body}: {b}");
        assert_eq!(b["detail"][0]["loc"], json!(["body"]), "{b}");
        assert!(b["detail"][0]["msg"].as_str().unwrap().contains("expected an object"), "{body}: {b}");
    }
    let (s, b) =
        api.post(&w, "/batch", json!({"layer": "semantic", "items": [{"content": "ok"}, {"content": []}]})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "items", 1, "content"]), "{b}");
    api.stop().await;
}

/// Item 8: queries are bounded (422 beyond) and pooled connections carry a statement timeout
/// just below the request timeout, so Postgres stops a query when the API gives up on it.
#[tokio::test]
async fn queries_are_bounded_and_statements_time_out() {
    let api = TestApi::builder().env("PINAK_REQUEST_TIMEOUT_MS", "5000").start().await;
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&api.state.pool).await.unwrap();
    assert_eq!(timeout, "4500ms", "statement_timeout on a pooled connection");
    let r = Token::new("t", "p").sign();
    let long_query = "word ".repeat(300);
    let long_word = "x".repeat(200);
    for path in ["/search", "/retrieve_context", "/rag/search"] {
        for (q, what) in [(&long_query, "query"), (&long_word, "word")] {
            let (s, b) = api.get(&r, &format!("{path}?query={q}")).await;
            assert_eq!(s, 422, "{path} with a long {what}: {b}");
            assert_eq!(b["detail"][0]["loc"], json!(["query", "query"]), "{b}");
        }
        assert_eq!(api.get(&r, &format!("{path}?query=deploy%20failed")).await.0, 200, "{path}");
    }
    api.stop().await;
}

/// Item 11: a parent holds at most 100 children (422 registering one more) and the summary
/// counts every child, in one grouped statement.
#[tokio::test]
async fn children_per_parent_are_capped_and_summarised() {
    let api = TestApi::start().await;
    let admin = Token::admin("t", "p").set("client_id", json!("parent")).sign();
    for i in 0..100 {
        let (s, b) = api
            .post(&admin, "/client/register", json!({"client_id": format!("kid-{i:03}"), "parent_client_id": "parent"}))
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) =
        api.post(&admin, "/client/register", json!({"client_id": "kid-100", "parent_client_id": "parent"})).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "parent_client_id"]), "{b}");
    assert!(b["detail"][0]["msg"].as_str().unwrap().contains("100"), "{b}");
    // Re-registering an existing child and registering under another parent still work.
    let again = json!({"client_id": "kid-007", "parent_client_id": "parent", "client_name": "Seven"});
    assert_eq!(api.post(&admin, "/client/register", again).await.0, 201);
    let other = json!({"client_id": "kid-100", "parent_client_id": "other"});
    assert_eq!(api.post(&admin, "/client/register", other).await.0, 201);
    // Writes by two children and the parent are counted per child and combined.
    let kid = |id: &str| Token::new("t", "p").set("client_id", json!(id)).sign();
    api.post(&kid("kid-007"), "/add", json!({"content": "a"})).await;
    api.post(&kid("kid-007"), "/episodic/add", json!({"content": "b"})).await;
    api.post(&kid("kid-099"), "/working/add", json!({"content": "c"})).await;
    api.post(&admin, "/add", json!({"content": "d"})).await;
    let (s, sum) = api.get(&admin, "/client/summary").await;
    assert_eq!(s, 200, "{sum}");
    let children = sum["children"].as_array().unwrap();
    assert_eq!(children.len(), 100, "{sum}");
    assert_eq!(children[7]["client_id"], "kid-007");
    assert_eq!(children[7]["client_name"], "Seven");
    assert_eq!(children[7]["counts"], json!({"semantic": 1, "episodic": 1, "procedural": 0, "rag": 0, "working": 0}));
    assert_eq!(children[7]["total"], 2);
    assert_eq!(children[99]["counts"]["working"], 1);
    assert_eq!(children[0]["total"], 0);
    assert_eq!(children[0]["last_write"]["semantic"], json!(null));
    assert_eq!(sum["summary"]["total"], 1);
    assert_eq!(sum["combined"]["total"], 4);
    assert_eq!(sum["combined"]["counts"]["semantic"], 2);
    api.stop().await;
}

/// Item 20: the admin token `scripts/dev` mints carries a `client_id`, so its writes file no
/// `missing_client_id` issues. Runs the script's own `pinak mint` arguments through the CLI.
#[tokio::test]
async fn dev_script_token_carries_a_client_id() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let script = std::fs::read_to_string(root.join("scripts/dev")).unwrap();
    let line = script.lines().find(|l| l.contains("/pinak\" mint ")).expect("scripts/dev runs pinak mint");
    let args = line.split("/pinak\" mint ").nth(1).unwrap().split(')').next().unwrap();
    let dir = std::env::temp_dir().join(pinak_tests::unique("dev_secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{}\n", pinak_tests::SECRET)).unwrap();
    let args: Vec<String> =
        args.split_whitespace()
            .map(|a| {
                if a == "\"$SECRET_FILE\"" { secret_file.display().to_string() } else { a.trim_matches('"').to_owned() }
            })
            .collect();
    let out = std::process::Command::new(pinak_tests::operator::workspace_bin("pinak"))
        .arg("mint")
        .args(&args)
        .output()
        .expect("run pinak mint");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "pinak mint {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let api = TestApi::start().await;
    let (s, b) = api.post(&token, "/add", json!({"content": "Pinak stores memories in Postgres"})).await;
    assert_eq!(s, 201, "{b}");
    assert!(b["client_id"].as_str().is_some_and(|c| !c.is_empty()), "{b}");
    let mut db = api.db().await;
    let issues: i64 =
        sqlx::query_scalar("SELECT count(*) FROM logs_client_issues WHERE error_code = 'missing_client_id'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(issues, 0, "the dev token's writes file no missing_client_id issue");
    api.stop().await;
}
