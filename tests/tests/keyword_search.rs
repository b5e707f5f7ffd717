//! The keyword leg of search (api/src/retrieval/keyword.rs) and the ranking options, against
//! the real Postgres: a question finds a memory that holds only some of its words, terms are
//! weighed by rarity, stems match other forms, rag and working notes are served by their
//! full-text indexes, and user text is never an operator.

use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn contents(hits: &Value) -> Vec<String> {
    hits.as_array().unwrap().iter().map(|h| h["content"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn search(api: &TestApi, token: &str, query: &str, extra: &str) -> Vec<String> {
    let (s, hits) = api.get(token, &format!("/search?k=10&query={}{extra}", urlencode(query))).await;
    assert_eq!(s, 200, "{hits}");
    contents(&hits)
}

#[tokio::test]
async fn a_question_finds_a_memory_holding_only_some_of_its_words() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    for content in [
        "Caroline: I went to a LGBTQ support group yesterday and it was so powerful.",
        "Melanie: my family went camping at the lake last week.",
        "Melanie: I painted a sunrise with the kids.",
        "Caroline: thanks, see you soon!",
    ] {
        let (s, body) = api.post(&w, "/add", json!({ "content": content })).await;
        assert_eq!(s, 201, "{body}");
    }
    // "When", "did", "the" are stop words; "go" and "Caroline" are not in the answer's words
    // beyond the name. The prototype's AND match returned nothing for this.
    let got = search(&api, &w, "When did Caroline go to the LGBTQ support group?", "&mode=keyword").await;
    assert_eq!(
        got.first().map(String::as_str),
        Some("Caroline: I went to a LGBTQ support group yesterday and it was so powerful."),
        "{got:?}"
    );
    // Stems match other forms: "supporting groups" -> support*, group*; "families" -> famili*, family.
    let got = search(&api, &w, "supporting groups", "&mode=keyword").await;
    assert!(got[0].contains("support group"), "{got:?}");
    let got = search(&api, &w, "families camping", "&mode=keyword").await;
    assert!(got[0].contains("family went camping"), "{got:?}");
    // A rare term outweighs a common one: "Caroline" is in two memories, "thanks" in one.
    let got = search(&api, &w, "Caroline thanks", "&mode=keyword").await;
    assert_eq!(got[0], "Caroline: thanks, see you soon!", "{got:?}");
    assert_eq!(got.len(), 2, "only memories holding a term: {got:?}");
    // Stop words alone match nothing, and a word absent from every memory finds nothing.
    assert!(search(&api, &w, "the and of", "&mode=keyword").await.is_empty());
    assert!(search(&api, &w, "zeppelin", "&mode=keyword").await.is_empty());
    // The default (hybrid) keeps the keyword hit first here; vector mode runs no keyword list
    // (dummy embeddings are hashes: every memory comes back, in arbitrary order).
    let got = search(&api, &w, "LGBTQ support group", "").await;
    assert!(got[0].contains("support group"), "{got:?}");
    assert_eq!(search(&api, &w, "zeppelin", "&mode=vector").await.len(), 4);
    api.stop().await;
}

#[tokio::test]
async fn every_text_layer_is_searched_and_expired_notes_are_not() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let adds = [
        ("/episodic/add", json!({"content": "deployed the billing service", "goal": "ship invoices"})),
        (
            "/procedural/add",
            json!({"skill_name": "rollback", "description": "revert the billing release", "steps": ["helm rollback"]}),
        ),
        (
            "/rag/add",
            json!({"query": "billing docs", "external_source": "wiki", "content": "how invoices are numbered"}),
        ),
        ("/working/add", json!({"content": "billing migration half done"})),
    ];
    for (path, body) in adds {
        let (s, b) = api.post(&w, path, body).await;
        assert_eq!(s, 201, "{path}: {b}");
    }
    let (s, ctx) = api.get(&w, "/retrieve_context?query=who%20broke%20billing%3F&mode=keyword").await;
    assert_eq!(s, 200, "{ctx}");
    for layer in ["episodic", "procedural", "rag", "working"] {
        assert_eq!(ctx[layer].as_array().unwrap().len(), 1, "{layer}: {ctx}");
    }
    // /rag/search: any word, through the full-text index, newest first.
    let (s, rag) = api.get(&w, "/rag/search?query=numbering%20of%20invoices").await;
    assert_eq!(s, 200);
    assert_eq!(rag.as_array().unwrap().len(), 1, "{rag}");
    assert_eq!(rag[0]["type"], "rag");
    // An expired working note is not searched.
    let mut db = api.db().await;
    sqlx::query("UPDATE working_memory SET expires_at = now() - interval '1 minute'").execute(&mut db).await.unwrap();
    let (_, ctx) = api.get(&w, "/retrieve_context?query=billing&mode=keyword").await;
    assert!(ctx["working"].as_array().unwrap().is_empty(), "{ctx}");
    // Another project sees none of it.
    let other = Token::new("t1", "p2").sign();
    let (_, ctx) = api.get(&other, "/retrieve_context?query=billing%20invoices&mode=keyword").await;
    for layer in ["semantic", "episodic", "procedural", "rag", "working"] {
        assert!(ctx[layer].as_array().unwrap().is_empty(), "{layer}: {ctx}");
    }
    api.stop().await;
}

#[tokio::test]
async fn user_text_is_only_ever_a_literal() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    api.post(&w, "/add", json!({"content": "it's O'Neil's back\\slash note: a & b | c"})).await;
    for q in [
        "'",
        "''",
        "\\",
        "\\\\",
        "a:*",
        "o'neil's",
        "a & b | !c",
        "<->",
        "(((",
        "::*",
        "'x' | 'y'",
        "back\\slash",
        "日本語 テキスト",
        "%_",
    ] {
        for mode in ["keyword", "hybrid"] {
            let (s, body) = api.get(&w, &format!("/search?query={}&mode={mode}", urlencode(q))).await;
            assert_eq!(s, 200, "{q} ({mode}): {body}");
        }
        let (s, body) = api.get(&w, &format!("/rag/search?query={}", urlencode(q))).await;
        assert_eq!(s, 200, "{q}: {body}");
    }
    // An operator-looking query matches its words literally, not as a query language.
    let got = search(&api, &w, "O'Neil", "&mode=keyword").await;
    assert_eq!(got.len(), 1, "{got:?}");
    api.stop().await;
}

#[tokio::test]
async fn ranking_options_are_checked() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    api.post(&w, "/add", json!({"content": "alpha beta"})).await;
    for (query, field) in [
        ("mode=semantic", "mode"),
        ("fusion=max", "fusion"),
        ("rrf_k=0", "rrf_k"),
        ("rrf_k=abc", "rrf_k"),
        ("fusion=rrf&weight=0.3", "weight"),
        ("weight=2", "weight"),
        ("fusion=weighted&rrf_k=10", "rrf_k"),
    ] {
        for route in ["/search?query=alpha", "/retrieve_context?query=alpha"] {
            let (s, body) = api.get(&w, &format!("{route}&{query}")).await;
            assert_eq!(s, 422, "{route}&{query}: {body}");
            assert!(body.to_string().contains(field), "{route}&{query} names {field}: {body}");
        }
    }
    for query in ["fusion=weighted", "weight=0.7", "fusion=rrf&rrf_k=10", "mode=keyword&fusion=weighted"] {
        let (s, body) = api.get(&w, &format!("/search?query=alpha&{query}")).await;
        assert_eq!(s, 200, "{query}: {body}");
        assert_eq!(body[0]["content"], "alpha beta", "{query}");
    }
    api.stop().await;
}

#[tokio::test]
async fn keyword_lists_are_served_by_the_full_text_indexes() {
    let api = TestApi::start().await;
    let mut db = api.db().await;
    // A table where the scope is a sliver, so the plan must come from an index.
    sqlx::query(
        "INSERT INTO memories_semantic (id, tenant, project_id, content, tags, created_at)
         SELECT gen_random_uuid(), 'bulk', 'p', 'filler text number ' || i, '[]', now() FROM generate_series(1, 20000) i",
    )
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("ANALYZE memories_semantic").execute(&mut db).await.unwrap();
    sqlx::query("SET default_text_search_config = english").execute(&mut db).await.unwrap();
    let sql = pinak_api::retrieval::search::hybrid_sql(true, None, 10);
    assert!(!sql.to_lowercase().contains("like"), "no LIKE scan remains: {sql}");
    let explain = format!(
        "EXPLAIN (COSTS OFF) {}",
        sql.replace("$1", "'bulk'")
            .replace("$2", "'p'")
            .replace("$3", "ARRAY['''filler'':*', '''number'':*']")
            .replace("$4", "('{0,0,0,0,0}'::int8[])")
            .replace("$6", "'''number'':*'")
    );
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).fetch_all(&mut db).await.unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("memories_semantic_fts"), "the GIN index serves the semantic list:\n{plan}");
    api.stop().await;
}

#[tokio::test]
async fn the_text_search_configuration_is_chosen_per_store() {
    // `simple` has no stop words and no stemming: "groups" no longer finds "group", and "the"
    // becomes a term.
    let api = TestApi::builder().env("PINAK_TEXT_SEARCH_CONFIG", "simple").start().await;
    let w = Token::new("t1", "p1").sign();
    api.post(&w, "/add", json!({"content": "the support group"})).await;
    assert!(search(&api, &w, "groups", "&mode=keyword").await.is_empty());
    assert_eq!(search(&api, &w, "the", "&mode=keyword").await.len(), 1);
    api.stop().await;
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    api.post(&w, "/add", json!({"content": "the support group"})).await;
    assert_eq!(search(&api, &w, "groups", "&mode=keyword").await.len(), 1);
    assert!(search(&api, &w, "the", "&mode=keyword").await.is_empty());
    api.stop().await;
}

#[tokio::test]
async fn an_unknown_text_search_configuration_stops_the_start_with_its_name() {
    let vars = [
        ("PINAK_DATABASE_URL", pinak_tests::database_url()),
        ("PINAK_DB_SCHEMA", pinak_tests::unique("t")),
        ("PINAK_JWT_SECRET", "an-unpublished-secret-of-at-least-32-bytes".to_owned()),
        ("PINAK_EMBEDDING_BACKEND", "dummy".to_owned()),
        ("PINAK_TEXT_SEARCH_CONFIG", "klingon".to_owned()),
    ];
    let cfg = pinak_api::runtime::config::Config::from_lookup(|k| {
        vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let err = pinak_api::runtime::lifecycle::prepare(cfg).await.err().expect("the start fails");
    assert!(err.to_string().contains("klingon"), "{err}");
    let bad = pinak_api::runtime::config::Config::from_lookup(|k| match k {
        "PINAK_TEXT_SEARCH_CONFIG" => Some("english; DROP".into()),
        _ => vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone()),
    });
    assert!(bad.err().unwrap().to_string().contains("PINAK_TEXT_SEARCH_CONFIG"));
}

#[tokio::test]
async fn a_term_most_memories_hold_scores_but_does_not_select() {
    let api = TestApi::start().await;
    let w = Token::new("t1", "p1").sign();
    let items: Vec<_> = (0..80).map(|i| json!({ "content": format!("filler note number {i}") })).collect();
    let (s, body) = api.post(&w, "/batch", json!({ "layer": "semantic", "items": items })).await;
    assert_eq!(s, 201, "{body}");
    api.post(&w, "/add", json!({"content": "filler about a zebra"})).await;
    let mut db = api.db().await;
    sqlx::query("ANALYZE memories_semantic").execute(&mut db).await.unwrap();
    // "filler" is in every row: with a rarer term beside it, only the rarer term selects.
    let got = search(&api, &w, "filler zebra", "&mode=keyword").await;
    assert_eq!(got, ["filler about a zebra"], "{got:?}");
    // Alone, the common term still selects (the rarest term always does).
    assert_eq!(search(&api, &w, "filler", "&mode=keyword").await.len(), 10);
    api.stop().await;
}
