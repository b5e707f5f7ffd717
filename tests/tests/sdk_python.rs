//! The Python SDK (`sdk/python`, package `pinak_sdk`) against a real pinak-api: its pytest
//! suite (sdk/python/tests) remembers and recalls (sync and async), lists every paged route
//! and follows cursors, reviews proposals, maps errors to its exception classes, retries on
//! 503 (against a local stub), and checks that every route the SDK calls, with its query
//! parameters, is in the service's `/openapi.json` (and that every memory route is either
//! covered or listed as not covered). The venv's python has pytest, httpx and the SDK
//! (scripts/stack.sh install).

use pinak_tests::{TestApi, Token};
use serde_json::json;

#[tokio::test]
async fn the_python_sdk_test_suite_passes_against_a_real_api() {
    let api = TestApi::start().await;
    let admin = Token::admin("t1", "p1").set("client_id", json!("sdk-test")).sign();
    let writer = Token::new("t1", "p1").set("client_id", json!("sdk-test")).sign();
    let reader =
        Token::new("t1", "p1").set("scopes", json!(["memory.read"])).set("client_id", json!("sdk-test")).sign();
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/python");
    let out = tokio::process::Command::new(pinak_tests::venv_python())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "tests"])
        .current_dir(sdk)
        // No bytecode caches in the repository; no proxy for the loopback API.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "*")
        .env("PINAK_URL", &api.base)
        .env("PINAK_ADMIN_TOKEN", admin)
        .env("PINAK_TOKEN", writer)
        .env("PINAK_READER_TOKEN", reader)
        .output()
        .await
        .expect("the venv's python runs (scripts/stack.sh install)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed"), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    api.stop().await;
}
