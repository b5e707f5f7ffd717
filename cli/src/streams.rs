//! Events, session transcripts and working notes: list and append.

use serde_json::{Value, json};

use crate::client::Api;
use crate::output::{cell, table};
use crate::{Failure, Global};

/// Most rows a list shows (1-200)
#[derive(Debug, clap::Args)]
pub struct Limit {
    /// Most rows to show (1-200)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=200))]
    limit: u16,
    /// Every page, following the API's cursor (`--limit` is then the page size)
    #[arg(long)]
    all: bool,
}

/// Events of the project
#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// Events, newest first
    List(Limit),
    /// Append an event
    Add {
        event_type: String,
        /// The event's payload, a JSON object
        #[arg(long, default_value = "{}")]
        payload: String,
    },
}

/// Session transcript lines
#[derive(Debug, clap::Subcommand)]
pub enum SessionCommand {
    /// A session's lines, oldest first
    List {
        session_id: String,
        #[command(flatten)]
        limit: Limit,
    },
    /// Append a line to a session
    Add {
        session_id: String,
        #[arg(required = true)]
        text: Vec<String>,
        /// Who said it
        #[arg(long, default_value = "user")]
        role: String,
        /// Seconds until the line expires
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// Working-memory notes
#[derive(Debug, clap::Subcommand)]
pub enum WorkingCommand {
    /// Unexpired notes, newest first
    List(Limit),
    /// Add a note
    Add {
        #[arg(required = true)]
        text: Vec<String>,
        /// Session the note belongs to (the API's default is `global`)
        #[arg(long)]
        session_id: Option<String>,
        /// The note's key (the API's default is `current_context`)
        #[arg(long)]
        key: Option<String>,
        /// Seconds until the note expires
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// Lists `path` as a table of `columns` (header, field), or the API's JSON.
fn list(
    g: &Global,
    path: &str,
    l: &Limit,
    query: &[(&str, String)],
    columns: &[(&str, &str)],
) -> Result<String, Failure> {
    let mut query = query.to_vec();
    query.push(("limit", l.limit.to_string()));
    let body = Api::new(g)?.list(path, &query, l.all)?;
    if g.json {
        return Ok(body.to_string());
    }
    let rows: Vec<Vec<String>> = body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            columns.iter().map(|(_, f)| if r[*f].is_object() { r[*f].to_string() } else { cell(&r[*f]) }).collect()
        })
        .collect();
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    Ok(table(&headers, &rows))
}

/// `body` with each option that is set.
fn with_options<const N: usize>(mut body: Value, options: [(&str, Option<Value>); N]) -> Value {
    for (field, v) in options {
        if let Some(v) = v {
            body[field] = v;
        }
    }
    body
}

/// Posts `body` to `path`; prints the API's JSON or `what` with the new id.
fn add(g: &Global, path: &str, body: &Value, what: &str) -> Result<String, Failure> {
    let answer = Api::new(g)?.post(path, body)?;
    if g.json {
        return Ok(answer.body.to_string());
    }
    let verb = if answer.status == 202 { "proposed for review" } else { "added" };
    Ok(format!("{verb} {what} {}", cell(&answer.body["id"])).trim_end().to_owned())
}

pub fn events(g: &Global, cmd: &EventsCommand) -> Result<String, Failure> {
    match cmd {
        EventsCommand::List(l) => list(
            g,
            "/api/v1/memory/events",
            l,
            &[],
            &[("ID", "id"), ("TIME", "ts"), ("TYPE", "event_type"), ("PAYLOAD", "payload")],
        ),
        EventsCommand::Add { event_type, payload } => {
            let payload: Value = serde_json::from_str(payload)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| Failure::Input("--payload must be a JSON object".into()))?;
            add(g, "/api/v1/memory/event", &json!({"event_type": event_type, "payload": payload}), "event")
        }
    }
}

pub fn session(g: &Global, cmd: &SessionCommand) -> Result<String, Failure> {
    match cmd {
        SessionCommand::List { session_id, limit } => list(
            g,
            "/api/v1/memory/session/list",
            limit,
            &[("session_id", session_id.clone())],
            &[("TIME", "ts"), ("ROLE", "role"), ("CONTENT", "content")],
        ),
        SessionCommand::Add { session_id, text, role, ttl } => {
            let body = json!({"session_id": session_id, "content": text.join(" "), "role": role});
            let body = with_options(body, [("ttl_seconds", ttl.map(|t| json!(t)))]);
            add(g, "/api/v1/memory/session/add", &body, "session line")
        }
    }
}

pub fn working(g: &Global, cmd: &WorkingCommand) -> Result<String, Failure> {
    match cmd {
        WorkingCommand::List(l) => list(
            g,
            "/api/v1/memory/working/list",
            l,
            &[],
            &[("ID", "id"), ("SESSION", "session_id"), ("KEY", "key"), ("EXPIRES", "expires_at"), ("CONTENT", "value")],
        ),
        WorkingCommand::Add { text, session_id, key, ttl } => {
            let body = with_options(
                json!({"content": text.join(" ")}),
                [
                    ("session_id", session_id.as_ref().map(|v| json!(v))),
                    ("key", key.as_ref().map(|v| json!(v))),
                    ("ttl_seconds", ttl.map(|t| json!(t))),
                ],
            );
            add(g, "/api/v1/memory/working/add", &body, "working note")
        }
    }
}

/// The tenant's client registry
#[derive(Debug, clap::Subcommand)]
pub enum ClientsCommand {
    /// Registered clients
    List(Limit),
    /// Register a client (status trusted or blocked needs an admin token)
    Register {
        client_id: String,
        /// A readable name
        #[arg(long)]
        name: Option<String>,
        /// The parent client's id
        #[arg(long)]
        parent: Option<String>,
        /// registered (the API's default), trusted or blocked
        #[arg(long)]
        status: Option<String>,
    },
}

pub fn clients(g: &Global, cmd: &ClientsCommand) -> Result<String, Failure> {
    match cmd {
        ClientsCommand::List(l) => list(
            g,
            "/api/v1/memory/client/list",
            l,
            &[],
            &[("CLIENT", "client_id"), ("STATUS", "status"), ("PARENT", "parent_client_id"), ("NAME", "client_name")],
        ),
        ClientsCommand::Register { client_id, name, parent, status } => {
            let body = with_options(
                json!({"client_id": client_id}),
                [
                    ("client_name", name.as_ref().map(|v| json!(v))),
                    ("parent_client_id", parent.as_ref().map(|v| json!(v))),
                    ("status", status.as_ref().map(|v| json!(v))),
                ],
            );
            let answer = Api::new(g)?.post("/api/v1/memory/client/register", &body)?;
            Ok(if g.json { answer.body.to_string() } else { format!("registered client {client_id}") })
        }
    }
}
