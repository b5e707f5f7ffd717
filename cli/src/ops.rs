//! Commands for the people running the service: `stats` and `doctor`.

use serde_json::{Value, json};

use crate::client::Api;
use crate::output::{cell, table};
use crate::{Failure, Global};

/// Record counts per layer for the token's client and its child clients.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Count only the token's own client, not its children
    #[arg(long)]
    no_children: bool,
}

pub fn stats(g: &Global, args: &StatsArgs) -> Result<String, Failure> {
    let api = Api::new(g)?;
    let query = [("include_children", (!args.no_children).to_string())];
    let body = api.get("/api/v1/memory/client/summary", &query)?.body;
    if g.json {
        return Ok(body.to_string());
    }
    let combined = &body["combined"];
    let rows: Vec<Vec<String>> = combined["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(layer, n)| vec![layer.clone(), cell(n), cell(&combined["last_write"][layer])])
        .collect();
    Ok(format!(
        "client {} ({} children)\n{}\ntotal {}, open issues {}, awaiting review {}",
        cell(&body["client"]["client_id"]),
        body["children"].as_array().map_or(0, Vec::len),
        table(&["LAYER", "RECORDS", "LAST WRITE"], &rows),
        cell(&combined["total"]),
        cell(&combined["open_issues"]),
        cell(&combined["pending_quarantine"]),
    ))
}

/// One check's outcome: the failure decides the exit status of `doctor`.
struct Check {
    name: &'static str,
    outcome: Result<String, Failure>,
}

/// What the token says about itself, read without verifying it (only the API can).
fn token_claims(token: &str) -> Result<String, Failure> {
    let c: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|e| Failure::Auth(format!("the token is not a JWT: {e}")))?;
    let now = chrono::Utc::now().timestamp();
    let exp = c["exp"].as_i64().unwrap_or(0);
    if exp <= now {
        return Err(Failure::Auth(format!("the token expired {} seconds ago", now - exp)));
    }
    Ok(format!(
        "tenant {}, project {}, client {}, expires in {}s",
        cell(&c["tenant"]),
        cell(&c["project_id"]),
        if c["client_id"].is_null() { "(none)".into() } else { cell(&c["client_id"]) },
        exp - now
    ))
}

/// The store behind the API, for an admin token: schema version and pgvector, rows without a
/// vector, the audit chain. Other tokens get the checks marked skipped.
fn store_checks(api: &Api) -> Vec<Check> {
    let admin = api
        .token()
        .and_then(|t| jsonwebtoken::dangerous::insecure_decode_claims::<Value>(t).ok())
        .is_some_and(|c| c["roles"].as_array().is_some_and(|r| r.iter().any(|x| x == "admin")));
    if !admin {
        let skipped = || Ok("skipped: needs an admin token".to_owned());
        return vec![Check { name: "store", outcome: skipped() }, Check { name: "audit", outcome: skipped() }];
    }
    let vector_enabled = api.get("/api/v1/health", &[]).map(|a| a.body["vector_enabled"] == true).unwrap_or(false);
    let store = api.get("/api/v1/metrics", &[]).and_then(|a| {
        let m = a.body;
        let summary = format!(
            "migration {}, pgvector {}, {} vectors",
            cell(&m["schema_version"]),
            cell(&m["pgvector"]),
            cell(&m["vectors"])
        );
        match m["rows_without_vectors"].as_i64().unwrap_or(0) {
            missing if missing > 0 && vector_enabled => Err(Failure::Api(format!(
                "{summary}; {missing} rows without a vector (the reembed job fills them; see its logs)"
            ))),
            _ => Ok(summary),
        }
    });
    let audit = api.post("/api/v1/memory/maintenance/verify", &json!({})).and_then(|a| {
        let r = &a.body["audit"];
        if r["valid"] == true {
            Ok(format!("chain of {} links verified", cell(&r["checked"])))
        } else {
            Err(Failure::Api(format!("audit chain broken: {r}")))
        }
    });
    vec![Check { name: "store", outcome: store }, Check { name: "audit", outcome: audit }]
}

/// Reachability, readiness and the token, each checked on its own so one report shows all.
pub fn doctor(g: &Global) -> Result<String, Failure> {
    let api = Api::public(g)?;
    let mut checks =
        vec![Check { name: "reachable", outcome: api.get("/api/v1/live", &[]).map(|_| format!("{} answers", g.url)) }];
    if checks[0].outcome.is_ok() {
        let ready = api
            .get("/api/v1/health", &[])
            .map(|a| format!("{}, embeddings {}", cell(&a.body["status"]), cell(&a.body["embedding_backend"])));
        checks.push(Check { name: "ready", outcome: ready });
    }
    let token = api.token().ok_or_else(|| Failure::Auth("no token: pass --token or set PINAK_TOKEN".into()));
    checks.push(Check { name: "token", outcome: token.and_then(token_claims) });
    if checks.iter().all(|c| c.outcome.is_ok()) {
        let accepted = api.get("/api/v1/memory/schema", &[]).map(|_| "accepted, may read".to_owned());
        checks.push(Check { name: "auth", outcome: accepted });
    }
    if checks.iter().all(|c| c.outcome.is_ok()) {
        checks.extend(store_checks(&api));
    }

    let failed = checks.iter().filter(|c| c.outcome.is_err()).count();
    let report = if g.json {
        let list: Vec<Value> = checks
            .iter()
            .map(|c| match &c.outcome {
                Ok(d) => json!({"check": c.name, "ok": true, "detail": d}),
                Err(f) => json!({"check": c.name, "ok": false, "detail": f.message()}),
            })
            .collect();
        json!({"ok": failed == 0, "checks": list}).to_string()
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| match &c.outcome {
                Ok(d) => vec![c.name.into(), "ok".into(), d.clone()],
                Err(f) => vec![c.name.into(), "FAIL".into(), f.message().to_owned()],
            })
            .collect();
        table(&["CHECK", "RESULT", "DETAIL"], &rows)
    };
    let total = checks.len();
    match checks.into_iter().find_map(|c| c.outcome.err()) {
        None => Ok(report),
        Some(first) => {
            // The report goes to stdout either way; the first failure sets the exit status.
            println!("{report}");
            Err(first.context(format!("{failed} of {total} checks failed")))
        }
    }
}
