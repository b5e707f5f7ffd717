//! Admin commands: quarantine review (`proposals`) and token revocation (`revoke`).

use serde_json::{Value, json};

use crate::client::Api;
use crate::output::{cell, table};
use crate::{Failure, Global};

/// Review memories the quarantine policy held back (needs an admin token)
#[derive(Debug, clap::Subcommand)]
pub enum ProposalsCommand {
    /// List quarantine items, newest first
    List {
        /// Which items: pending, approved or rejected
        #[arg(long, default_value = "pending")]
        status: String,
        /// Most items to show (1-200)
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=200))]
        limit: u16,
        /// Every page, following the API's cursor (`--limit` is then the page size)
        #[arg(long)]
        all: bool,
    },
    /// Approve an item: the API validates it again, then stores it
    Approve { id: String },
    /// Reject an item
    Reject { id: String },
}

pub fn proposals(g: &Global, cmd: &ProposalsCommand) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let (verb, id) = match cmd {
        ProposalsCommand::List { status, limit, all } => {
            let query = [("status_filter", status.clone()), ("limit", limit.to_string())];
            let body = api.list("/api/v1/memory/quarantine/list", &query, *all)?;
            return Ok(if g.json { body.to_string() } else { proposal_table(&body) });
        }
        ProposalsCommand::Approve { id } => ("approve", id),
        ProposalsCommand::Reject { id } => ("reject", id),
    };
    let body = api.post(&format!("/api/v1/memory/quarantine/{verb}/{id}"), &Value::Null)?.body;
    if g.json {
        return Ok(body.to_string());
    }
    Ok(format!("{} {} memory {}", cell(&body["status"]), cell(&body["layer"]), cell(&body["id"])))
}

fn proposal_table(items: &Value) -> String {
    let rows: Vec<Vec<String>> = items
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let content = &i["payload"]["content"];
            let shown = if content.is_null() { i["payload"].to_string() } else { cell(content) };
            vec![cell(&i["id"]), cell(&i["layer"]), cell(&i["status"]), cell(&i["client_id"]), shown]
        })
        .collect();
    table(&["ID", "LAYER", "STATUS", "CLIENT", "CONTENT"], &rows)
}

/// Revoke a token by its `jti` (needs an admin token; only in the admin's own tenant)
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The token's `jti` claim
    jti: String,
    /// Until when the revocation is kept (RFC 3339); the API's default is a year from now
    #[arg(long)]
    expires_at: Option<String>,
}

pub fn revoke(g: &Global, args: &RevokeArgs) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let mut body = json!({"jti": args.jti});
    if let Some(at) = &args.expires_at {
        body["expires_at"] = json!(at);
    }
    api.post("/api/v1/auth/revoke", &body)?;
    Ok(if g.json { json!({"revoked": args.jti}).to_string() } else { format!("revoked token {}", args.jti) })
}
