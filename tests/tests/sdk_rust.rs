//! The Rust SDK (`sdk/rust`) against a real pinak-api on the real Postgres: its route table
//! matches the service's `/openapi.json` both ways, and its calls round-trip.

use pinak_sdk::{Client, Error, Mode, SearchOptions, routes};
use pinak_tests::{TestApi, Token};
use serde_json::{Value, json};

#[tokio::test]
async fn the_route_table_matches_the_openapi_document() {
    let api = TestApi::start().await;
    let spec: Value = reqwest::get(api.url("/openapi.json")).await.unwrap().json().await.unwrap();
    let served: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    for r in routes::ALL {
        assert!(
            served.contains(&(r.method.to_owned(), r.path.to_owned())),
            "the SDK calls {r:?}, which the service lacks"
        );
    }
    for (method, path) in served.iter().filter(|(_, p)| p.starts_with("/api/v1/memory/")) {
        let covered = routes::ALL.iter().any(|r| r.method == method && r.path == path);
        let excused = routes::NOT_COVERED.iter().any(|(m, p, _)| m == method && p == path);
        assert!(covered || excused, "{method} {path} is neither wrapped by the SDK nor in NOT_COVERED");
    }
    for (m, p, _) in routes::NOT_COVERED {
        assert!(
            served.contains(&((*m).to_owned(), (*p).to_owned())),
            "NOT_COVERED names a route the service lacks: {m} {p}"
        );
    }
    api.stop().await;
}

#[tokio::test]
async fn remember_recall_and_page() {
    let api = TestApi::start().await;
    let pinak = Client::new(&api.base, &Token::new("t1", "p1").sign()).unwrap();
    let stored = pinak.remember("The staging database is restored every Sunday", &["ops"]).await.unwrap();
    let id = stored["id"].as_str().unwrap().to_owned();

    let hits = pinak.search("staging restored", 3).await.unwrap();
    assert_eq!(hits[0].id, id);
    assert_eq!(hits[0].layer.as_deref(), Some("semantic"));
    let keyword = SearchOptions { mode: Some(Mode::Keyword), ..Default::default() };
    assert_eq!(pinak.search_with("sunday", 3, &keyword).await.unwrap()[0].id, id);
    let record = pinak.get("semantic", &id).await.unwrap();
    assert_eq!(record.content.as_deref(), Some("The staging database is restored every Sunday"));

    for n in 0..3 {
        pinak.add_event("deploy", json!({ "n": n })).await.unwrap();
    }
    let first = pinak.events(Some(2), None).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = pinak.events(Some(2), first.next_cursor.as_deref()).await.unwrap();
    assert_eq!((rest.items.len(), rest.next_cursor), (1, None));

    pinak.add_working("current ticket OPS-7", json!({ "ttl_seconds": 60 })).await.unwrap();
    let notes = pinak.working_notes(None, None).await.unwrap();
    assert_eq!(notes.items[0]["value"], "current ticket OPS-7", "{:?}", notes.items);
    api.stop().await;
}

#[tokio::test]
async fn errors_carry_their_status_and_detail() {
    let api = TestApi::start().await;
    let pinak = Client::new(&api.base, &Token::new("t1", "p1").sign()).unwrap();
    let missing = pinak.get("semantic", "00000000-0000-4000-8000-000000000000").await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
    let invalid = pinak.remember("", &[]).await.unwrap_err();
    assert!(matches!(invalid, Error::Validation { .. }), "{invalid}");
    let admin_only = pinak.delete("semantic", "00000000-0000-4000-8000-000000000000").await.unwrap_err();
    assert_eq!(admin_only.status(), Some(403), "{admin_only}");
    let stranger = Client::new(&api.base, "not-a-token").unwrap();
    assert_eq!(stranger.search("x", 1).await.unwrap_err().status(), Some(401));
    api.stop().await;
}
