//! A project's records as JSON lines, out and back in: every layer, every stored column but
//! the scope (`tenant`, `project_id`, replaced by the importer's) and the generated full-text
//! column (recomputed). Vectors travel with their rows, so an import needs no model.
//!
//! A line is `{"layer": "<layer>", "row": {<column>: <value>, ...}}`. The export reads one
//! snapshot (a repeatable-read, read-only transaction), in pages, so a large project never
//! sits in memory. The import is one transaction: every line is checked before the first
//! insert, and a line the database refuses names its number; nothing is half-imported.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::security::tenancy::Scope;
use crate::store::layers::Layer;

/// The layers exported, in file order.
pub const LAYERS: [Layer; 7] =
    [Layer::Semantic, Layer::Episodic, Layer::Procedural, Layer::Rag, Layer::Working, Layer::Session, Layer::Event];

/// Rows read per page of an export.
pub const PAGE: i64 = 500;

/// Columns a line never carries: the scope comes from the importer's token, `fts` is
/// generated.
const NOT_CARRIED: [&str; 3] = ["tenant", "project_id", "fts"];

/// The stored, non-generated columns of each layer's table but the scope, from the catalog
/// (so a migration that adds a column is exported without a change here). These names are
/// the only identifiers an import splices into SQL.
pub async fn columns(conn: &mut PgConnection) -> Result<HashMap<Layer, Vec<String>>, sqlx::Error> {
    let tables: Vec<&str> = LAYERS.iter().map(|l| l.table()).collect();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1)
           AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname <> ALL($2)
         ORDER BY c.relname, a.attnum",
    )
    .bind(&tables)
    .bind(&NOT_CARRIED[..])
    .fetch_all(conn)
    .await?;
    let mut out: HashMap<Layer, Vec<String>> = HashMap::new();
    for (table, column) in rows {
        if let Some(layer) = LAYERS.iter().find(|l| l.table() == table) {
            out.entry(*layer).or_default().push(column);
        }
    }
    Ok(out)
}

/// One page of a layer's export lines (each ending in a newline), by id after `after`.
pub async fn page(
    conn: &mut PgConnection,
    layer: Layer,
    scope: &Scope,
    after: Option<Uuid>,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let sql = format!(
        "SELECT t.id, jsonb_build_object('layer', $3::text, 'row', to_jsonb(t) - 'tenant' - 'project_id' - 'fts')::text || E'\\n'
         FROM {} t WHERE t.tenant = $1 AND t.project_id = $2 AND ($4::uuid IS NULL OR t.id > $4)
         ORDER BY t.id LIMIT {PAGE}",
        layer.table()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(layer.name())
        .bind(after)
        .fetch_all(conn)
        .await
}

/// A checked line of an import file.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number in the file.
    pub number: usize,
    pub layer: Layer,
    pub row: Map<String, Value>,
}

/// Checks every line of `text` against `columns` (see `columns`): JSON, a known layer, an
/// object row naming only that layer's columns. Blank lines are skipped. With `new_ids`, or
/// when a row has none, the row gets a fresh id. The error names the line.
pub fn parse(text: &str, columns: &HashMap<Layer, Vec<String>>, new_ids: bool) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let at = |msg: String| format!("line {number}: {msg}");
        let mut v: Value = serde_json::from_str(raw).map_err(|e| at(format!("not JSON ({e})")))?;
        let Some(obj) = v.as_object_mut() else { return Err(at("expected an object {\"layer\", \"row\"}".into())) };
        if let Some(extra) = obj.keys().find(|k| *k != "layer" && *k != "row") {
            return Err(at(format!("unknown key `{extra}` (a line holds `layer` and `row`)")));
        }
        let name = obj.get("layer").and_then(Value::as_str).ok_or_else(|| at("`layer` must be a string".into()))?;
        let layer = Layer::parse(name)
            .filter(|l| LAYERS.contains(l))
            .ok_or_else(|| at(format!("unknown layer `{name}` (one of {})", layer_names())))?;
        let Some(Value::Object(mut row)) = obj.remove("row") else { return Err(at("`row` must be an object".into())) };
        let known = columns.get(&layer).map(Vec::as_slice).unwrap_or_default();
        if let Some(bad) = row.keys().find(|k| !known.iter().any(|c| c == *k)) {
            let why =
                if NOT_CARRIED.contains(&bad.as_str()) { " (set by the importer's token or computed)" } else { "" };
            return Err(at(format!("`{bad}` is not a column of layer `{}`{why}", layer.name())));
        }
        if new_ids || row.get("id").is_none_or(Value::is_null) {
            row.insert("id".into(), Value::String(Uuid::new_v4().to_string()));
        }
        out.push(Line { number, layer, row });
    }
    Ok(out)
}

fn layer_names() -> String {
    LAYERS.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
}

/// Inserts one checked line into the caller's scope: the row's values are converted by
/// Postgres (`jsonb_populate_record`) into the table's column types, so a value of the wrong
/// type is refused by the database, not coerced here. Columns the row leaves out take their
/// defaults.
pub async fn insert(conn: &mut PgConnection, scope: &Scope, line: &Line) -> Result<(), sqlx::Error> {
    let table = line.layer.table();
    // Keys were checked against the catalog's column names (`parse`).
    let cols: Vec<String> = line.row.keys().map(|k| format!("\"{k}\"")).collect();
    let picks: Vec<String> = cols.iter().map(|c| format!("r.{c}")).collect();
    let sql = format!(
        "INSERT INTO {table} (tenant, project_id, {}) SELECT $1, $2, {} FROM jsonb_populate_record(NULL::{table}, $3) r",
        cols.join(", "),
        picks.join(", ")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(Value::Object(line.row.clone()))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> HashMap<Layer, Vec<String>> {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        HashMap::from([
            (Layer::Semantic, cols(&["id", "content", "tags", "created_at"])),
            (Layer::Event, cols(&["id", "event_type", "payload", "ts"])),
        ])
    }

    #[test]
    fn lines_are_checked_and_named_by_number() {
        let ok = "{\"layer\":\"semantic\",\"row\":{\"id\":\"7f0c1b9e-5a43-4c1e-9d6b-1b2f3a4c5d6e\",\"content\":\"a\"}}\n\n{\"layer\":\"events\",\"row\":{\"event_type\":\"x\",\"payload\":{}}}\n";
        let lines = parse(ok, &columns(), false).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].row["id"], "7f0c1b9e-5a43-4c1e-9d6b-1b2f3a4c5d6e");
        assert_eq!((lines[1].number, lines[1].layer), (3, Layer::Event));
        assert!(lines[1].row["id"].is_string(), "a row without an id gets one");
        let renewed = parse(ok, &columns(), true).unwrap();
        assert_ne!(renewed[0].row["id"], lines[0].row["id"]);

        for (text, why) in [
            ("{\"layer\":\"semantic\",\"row\":{}}\nnope", "line 2: not JSON"),
            ("[1]", "line 1: expected an object"),
            ("{\"layer\":\"dreams\",\"row\":{}}", "line 1: unknown layer `dreams`"),
            ("{\"layer\":\"semantic\",\"row\":[]}", "line 1: `row` must be an object"),
            ("{\"layer\":\"semantic\",\"row\":{},\"x\":1}", "line 1: unknown key `x`"),
            (
                "{\"layer\":\"semantic\",\"row\":{\"tenant\":\"t2\"}}",
                "line 1: `tenant` is not a column of layer `semantic` (set by",
            ),
            ("{\"layer\":\"semantic\",\"row\":{\"content\":\"a\",\"x; DROP\":1}}", "line 1: `x; DROP` is not a column"),
        ] {
            let err = parse(text, &columns(), false).unwrap_err();
            assert!(err.starts_with(why), "{text}: {err}");
        }
    }
}
