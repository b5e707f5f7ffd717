//! `/mcp` driven by a real MCP client: the official Python SDK (`mcp`, pinned in
//! scripts/stack.sh) runs tests/mcp/session.py against a real pinak-api, once per protocol
//! generation (the initialize handshake, and the stateless 2026-07-28 envelope), and once
//! through `pinak mcp` (the CLI's stdio bridge).

use pinak_tests::{TestApi, Token};
use serde_json::json;

async fn session(protocol: &str, through_cli: bool) {
    let api = TestApi::start().await;
    let admin = Token::admin("t1", "p1").set("client_id", json!("mcp-test")).sign();
    let reader =
        Token::new("t1", "p1").set("scopes", json!(["memory.read"])).set("client_id", json!("mcp-test")).sign();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/mcp/session.py");
    let mut cmd = tokio::process::Command::new(pinak_tests::venv_python());
    if through_cli {
        cmd.env("PINAK_CLI", pinak_tests::operator::workspace_bin("pinak"));
    }
    let out = cmd
        .arg(script)
        .env("PINAK_URL", &api.base)
        .env("PINAK_ADMIN_TOKEN", admin)
        .env("PINAK_READER_TOKEN", reader)
        .env("PINAK_PROTOCOL", protocol)
        .output()
        .await
        .expect("the venv's python runs (scripts/stack.sh install)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{protocol}: {stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    eprintln!("{protocol}:\n{stdout}");
    api.stop().await;
}

#[tokio::test]
async fn a_python_mcp_client_lists_and_calls_every_tool_over_the_handshake() {
    session("legacy", false).await;
}

#[tokio::test]
async fn a_python_mcp_client_lists_and_calls_every_tool_statelessly() {
    session("2026-07-28", false).await;
}

#[tokio::test]
async fn pinak_mcp_bridges_stdio_to_the_api() {
    session("legacy", true).await;
}
