//! `pinak mcp`: a stdio MCP server for agents that launch their tools as commands. It relays
//! each JSON-RPC message from stdin to the API's `/mcp` and writes the answers to stdout, so
//! the tools, their checks and their permissions are the API's own (api/src/mcp). Diagnostics
//! go to stderr: stdout carries only the protocol.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use crate::client::{Api, detail};
use crate::{Failure, Global};

/// JSON-RPC's "server error" range; the bridge's own failures (HTTP status, transport).
const BRIDGE_ERROR: i64 = -32000;

pub fn run(g: &Global) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut bridge = Bridge::default();
    for line in stdin.lines() {
        let line = line.map_err(|e| Failure::Other(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        for answer in bridge.relay(&api, &line) {
            writeln!(stdout, "{answer}")
                .and_then(|()| stdout.flush())
                .map_err(|e| Failure::Other(format!("writing stdout: {e}")))?;
        }
    }
    Ok(String::new())
}

/// What the bridge remembers between messages: the negotiated protocol version, which the
/// streamable HTTP transport sends as a header once `initialize` has answered.
#[derive(Default)]
struct Bridge {
    protocol_version: Option<String>,
}

impl Bridge {
    /// The messages to write for one incoming message (none for an accepted notification).
    fn relay(&mut self, api: &Api, line: &str) -> Vec<String> {
        let message: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![error(&Value::Null, -32700, &format!("not JSON: {e}"))],
        };
        let id = message.get("id").cloned();
        let mut headers = vec![("accept", "application/json, text/event-stream".to_owned())];
        if let Some(v) = &self.protocol_version {
            headers.push(("mcp-protocol-version", v.clone()));
        }
        let answer = match api.post_raw("/mcp", line.to_owned(), &headers) {
            Ok(resp) => resp,
            Err(e) => return self.failed(id, e.message()),
        };
        let status = answer.status();
        let event_stream = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let text = answer.text().unwrap_or_default();
        let messages: Vec<String> = if event_stream {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty())
                .collect()
        } else if text.trim().is_empty() {
            Vec::new()
        } else {
            vec![text.trim().to_owned()]
        };
        let rpc: Vec<Value> = messages
            .iter()
            .filter_map(|m| serde_json::from_str::<Value>(m).ok())
            .filter(|m| m.get("jsonrpc").is_some())
            .collect();
        if rpc.is_empty() && !status.is_success() {
            // An HTTP refusal without a JSON-RPC body (401, 403, 5xx): answer the request.
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return self.failed(id, &format!("{} {}", status.as_u16(), detail(&body)));
        }
        for m in &rpc {
            if let Some(v) = m.pointer("/result/protocolVersion").and_then(Value::as_str) {
                self.protocol_version = Some(v.to_owned());
            }
        }
        rpc.iter().map(Value::to_string).collect()
    }

    /// A failure to relay: an error answer for a request, a note on stderr for a notification.
    fn failed(&self, id: Option<Value>, msg: &str) -> Vec<String> {
        eprintln!("pinak mcp: {msg}");
        id.map(|id| error(&id, BRIDGE_ERROR, msg)).into_iter().collect()
    }
}

fn error(id: &Value, code: i64, msg: &str) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": msg } }).to_string()
}
