//! Storage of memory records, always inside a `Scope` (see `tenancy`). Rows come back as the
//! JSON the contract calls "the raw row", built by Postgres (`to_jsonb`) minus the vector and
//! full-text columns.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Map, Value};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryScalar;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::governance::actor::Actor;
use crate::security::tenancy::Scope;
use crate::store::layers::{Kind, Layer};
use crate::store::pgcopy::BinaryCopy;

/// SQL that renders row alias `t` as the API's JSON row.
pub const ROW_JSON: &str = "(to_jsonb(t) - 'embedding' - 'fts')";

/// `ROW_JSON` for one layer's table. On the vectorised layers it names the columns instead:
/// `to_jsonb(t)` renders the 384-float vector (and the tsvector) before they are removed,
/// about 15 us per row against 4.5 us (measured at 100k rows), and a search renders ~40 rows.
/// tests/tests/memory_api.rs checks that both forms agree on every vectorised layer.
pub fn row_json(layer: Layer) -> &'static str {
    static VECTORISED: LazyLock<Vec<(Layer, String)>> = LazyLock::new(|| {
        Layer::VECTOR_LAYERS
            .into_iter()
            .map(|layer| {
                let common_head = ["id", "tenant", "project_id"];
                let common_tail = [
                    "agent_id",
                    "client_id",
                    "client_name",
                    "created_at",
                    "updated_at",
                    "embedding_model",
                    "embedding_dim",
                ];
                let columns = common_head.into_iter().chain(layer.fields().iter().map(|f| f.column)).chain(common_tail);
                let pairs: Vec<String> = columns.map(|c| format!("'{c}', t.{c}")).collect();
                (layer, format!("jsonb_build_object({})", pairs.join(", ")))
            })
            .collect()
    });
    VECTORISED.iter().find(|(l, _)| *l == layer).map_or(ROW_JSON, |(_, sql)| sql.as_str())
}

/// A computed embedding and the model that produced it.
pub struct Embedding {
    pub vector: Vec<f32>,
    pub model: String,
}

type Scalar<'q> = QueryScalar<'q, Postgres, Value, PgArguments>;

/// An integral JSON number. JSON Schema's `integer` also admits `5.0` and `-0.0`, which
/// `as_i64` rejects (binding NULL into a NOT NULL column). Callers have validated the range.
fn json_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= i32::MAX as f64).map(|f| f as i64))
}

fn bind_embedding<'q>(q: Scalar<'q>, e: Option<&Embedding>) -> Scalar<'q> {
    q.bind(e.map(|e| pgvector::Vector::from(e.vector.clone())))
        .bind(e.map(|e| e.model.clone()))
        .bind(e.map(|e| e.vector.len() as i32))
}

/// Renders a stored row for clients: JSON columns decoded, and episodic `tool_logs` = `steps`.
pub fn present(layer: Layer, mut row: Value) -> Value {
    if layer == Layer::Episodic
        && let Some(obj) = row.as_object_mut()
    {
        let steps = obj.get("steps").cloned().unwrap_or(Value::Null);
        obj.insert("tool_logs".into(), steps);
    }
    row
}

/// A payload field's value as its column stores it.
enum Cell {
    Text(Option<String>),
    Json(Option<Value>),
    Int(Option<i32>),
}

/// The column values of a validated payload, in `layer.fields()` order. Absent optional
/// fields are NULL; the NOT NULL `tags` list defaults to [] and episodic `salience` to 0.
fn cells(layer: Layer, payload: &Value) -> impl Iterator<Item = Cell> + '_ {
    layer.fields().iter().map(move |field| {
        let v = payload.get(field.key).filter(|v| !v.is_null());
        match field.kind {
            Kind::Json if field.column == "tags" => {
                Cell::Json(Some(v.cloned().unwrap_or_else(|| Value::Array(vec![]))))
            }
            Kind::Int if layer == Layer::Episodic && field.column == "salience" => {
                Cell::Int(Some(v.and_then(json_int).unwrap_or(0) as i32))
            }
            kind => cell(kind, v),
        }
    })
}

fn cell(kind: Kind, value: Option<&Value>) -> Cell {
    let value = value.filter(|v| !v.is_null()).cloned();
    match kind {
        Kind::Text => Cell::Text(value.map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })),
        Kind::Json => Cell::Json(value),
        Kind::Int => Cell::Int(value.as_ref().and_then(json_int).map(|n| n as i32)),
    }
}

fn bind_cell(q: Scalar<'_>, cell: Cell) -> Scalar<'_> {
    match cell {
        Cell::Text(v) => q.bind(v),
        Cell::Json(v) => q.bind(v),
        Cell::Int(v) => q.bind(v),
    }
}

/// The columns every inserted document row names: scope and actor, the layer's fields, and
/// on vectorised layers the embedding.
fn insert_columns(layer: Layer) -> Vec<&'static str> {
    let mut columns = vec!["id", "tenant", "project_id", "agent_id", "client_id", "client_name"];
    columns.extend(layer.fields().iter().map(|f| f.column));
    if layer.is_vectorised() {
        columns.extend(["embedding", "embedding_model", "embedding_dim"]);
    }
    columns
}

/// Inserts a document-layer record from a validated payload.
pub async fn insert_document(
    conn: &mut PgConnection,
    layer: Layer,
    scope: &Scope,
    actor: &Actor,
    payload: &Value,
    embedding: Option<&Embedding>,
) -> Result<Value, sqlx::Error> {
    let columns = insert_columns(layer);
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} AS t ({}) VALUES ({}) RETURNING {}",
        layer.table(),
        columns.join(", "),
        placeholders.join(", "),
        row_json(layer)
    );
    let mut q = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(&scope.tenant)
        .bind(&scope.project)
        .bind(&actor.agent_id)
        .bind(&actor.client_id)
        .bind(&actor.client_name);
    for cell in cells(layer, payload) {
        q = bind_cell(q, cell);
    }
    if layer.is_vectorised() {
        q = bind_embedding(q, embedding);
    }
    Ok(present(layer, q.fetch_one(&mut *conn).await?))
}

/// Inserts many document-layer records of one scope with one binary COPY (the same column
/// values `insert_document` writes), then reads them back: the rows in payload order.
/// `embeddings` lines up with `payloads`.
pub async fn copy_documents(
    conn: &mut PgConnection,
    layer: Layer,
    scope: &Scope,
    actor: &Actor,
    payloads: &[Value],
    embeddings: &[Option<Embedding>],
) -> Result<Vec<Value>, sqlx::Error> {
    let columns = insert_columns(layer);
    let ids: Vec<Uuid> = payloads.iter().map(|_| Uuid::new_v4()).collect();
    let mut copy = BinaryCopy::new();
    for ((id, payload), embedding) in ids.iter().zip(payloads).zip(embeddings) {
        copy.row(columns.len() as u16);
        copy.uuid(*id);
        for value in [&scope.tenant, &scope.project, &actor.agent_id, &actor.client_id] {
            copy.text(Some(value));
        }
        copy.text(actor.client_name.as_deref());
        for cell in cells(layer, payload) {
            match cell {
                Cell::Text(v) => copy.text(v.as_deref()),
                Cell::Json(v) => copy.jsonb(v.as_ref()),
                Cell::Int(v) => copy.int4(v),
            }
        }
        if layer.is_vectorised() {
            copy.vector(embedding.as_ref().map(|e| e.vector.as_slice()));
            copy.text(embedding.as_ref().map(|e| e.model.as_str()));
            copy.int4(embedding.as_ref().map(|e| e.vector.len() as i32));
        }
    }
    let data = copy.finish();
    let statement = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", layer.table(), columns.join(", "));
    let mut sink = conn.copy_in_raw(&statement).await?;
    sink.send(data).await?;
    sink.finish().await?;

    let sql = format!("SELECT t.id, {} FROM {} t WHERE t.id = ANY($1)", row_json(layer), layer.table());
    let rows: Vec<(Uuid, Value)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&ids).fetch_all(&mut *conn).await?;
    let mut by_id: HashMap<Uuid, Value> = rows.into_iter().collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).map(|row| present(layer, row)).collect())
}

/// One record in scope, or `None` (missing and out-of-scope look the same).
pub async fn get(
    conn: &mut PgConnection,
    layer: Layer,
    scope: &Scope,
    id: Uuid,
    for_update: bool,
) -> Result<Option<Value>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} t WHERE id = $1 AND tenant = $2 AND project_id = $3{}",
        row_json(layer),
        layer.table(),
        if for_update { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| present(layer, r)))
}

/// Applies allow-listed updates (already validated) and, for vectorised layers, the new
/// embedding of the updated text, in the caller's transaction.
pub async fn update_document(
    conn: &mut PgConnection,
    layer: Layer,
    scope: &Scope,
    id: Uuid,
    updates: &Map<String, Value>,
    embedding: Option<&Embedding>,
) -> Result<Option<Value>, sqlx::Error> {
    let fields: Vec<_> = layer.fields().iter().filter(|f| updates.contains_key(f.key)).collect();
    let mut sets: Vec<String> = fields.iter().enumerate().map(|(i, f)| format!("{} = ${}", f.column, i + 4)).collect();
    sets.push("updated_at = now()".into());
    if embedding.is_some() {
        let next = fields.len() + 4;
        sets.push(format!("embedding = ${next}, embedding_model = ${}, embedding_dim = ${}", next + 1, next + 2));
    }
    let sql = format!(
        "UPDATE {} AS t SET {} WHERE id = $1 AND tenant = $2 AND project_id = $3 RETURNING {}",
        layer.table(),
        sets.join(", "),
        row_json(layer)
    );
    let mut q =
        sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql)).bind(id).bind(&scope.tenant).bind(&scope.project);
    for f in fields {
        q = bind_cell(q, cell(f.kind, updates.get(f.key)));
    }
    if embedding.is_some() {
        q = bind_embedding(q, embedding);
    }
    Ok(q.fetch_optional(conn).await?.map(|r| present(layer, r)))
}

/// Deletes a record (and with it its vector, a column of the row). True if it existed in scope.
pub async fn delete(conn: &mut PgConnection, layer: Layer, scope: &Scope, id: Uuid) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE id = $1 AND tenant = $2 AND project_id = $3", layer.table());
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&scope.tenant)
        .bind(&scope.project)
        .execute(conn)
        .await?
        .rows_affected()
        > 0)
}
