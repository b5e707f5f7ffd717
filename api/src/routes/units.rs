//! Memory units: an admin groups records of any layer under a label; any member then finds
//! its siblings. A record belongs to at most one unit; creation is all-or-nothing.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::runtime::state::AppState;
use crate::security::auth::Principal;
use crate::security::permissions::Perm;
use crate::store::layers::Layer;
use crate::web::error::{AppError, AppResult};
use crate::web::extract::OptionalJsonBody;

const MAX_MEMBERS: usize = 100;

/// Whether a member record exists in scope (and, for expiring layers, has not expired).
async fn member_exists(
    conn: &mut sqlx::PgConnection,
    p: &Principal,
    layer: Layer,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let live = match layer {
        Layer::Working | Layer::Session => " AND (expires_at IS NULL OR expires_at > now())",
        _ => "",
    };
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE id = $1 AND tenant = $2 AND project_id = $3{live})",
        layer.table()
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .fetch_one(conn)
        .await
}

struct Member {
    layer: Layer,
    id: Uuid,
    role: String,
}

fn parse_members(body: &Value) -> AppResult<(String, Vec<Member>, Value)> {
    let bad = |m: &str| AppError::bad_request(m.to_owned());
    let obj = body
        .as_object()
        .filter(|o| o.len() == 2 && o.contains_key("label") && o.contains_key("members"))
        .ok_or_else(|| bad("Expected label and members"))?;
    let label = obj["label"]
        .as_str()
        .filter(|l| (1..=256).contains(&l.chars().count()))
        .ok_or_else(|| bad("Label must be 1-256 characters"))?;
    let list = obj["members"]
        .as_array()
        .filter(|m| (1..=MAX_MEMBERS).contains(&m.len()))
        .ok_or_else(|| bad("Members must be a list of 1-100 objects"))?;
    let mut seen = HashSet::new();
    let mut members = Vec::new();
    for m in list {
        let o = m
            .as_object()
            .filter(|o| o.len() == 3 && ["layer", "id", "role"].iter().all(|k| o.contains_key(*k)))
            .ok_or_else(|| bad("Invalid member layer or ID"))?;
        let layer = o["layer"].as_str().and_then(Layer::parse).ok_or_else(|| bad("Invalid member layer or ID"))?;
        let id =
            o["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| bad("Invalid member layer or ID"))?;
        let role = o["role"]
            .as_str()
            .filter(|r| (1..=64).contains(&r.chars().count()))
            .ok_or_else(|| bad("Member role must be 1-64 characters"))?;
        if !seen.insert((layer, id)) {
            return Err(bad("Duplicate member"));
        }
        members.push(Member { layer, id, role: role.to_owned() });
    }
    Ok((label.to_owned(), members, obj["members"].clone()))
}

pub async fn create(
    State(state): State<AppState>,
    p: Principal,
    OptionalJsonBody(body): OptionalJsonBody,
) -> AppResult<Response> {
    p.require(Perm::CreateUnit)?;
    let (label, members, submitted) = parse_members(&body.unwrap_or(Value::Null))?;
    let unit_id = Uuid::new_v4();
    let mut tx = state.pool.begin().await?;
    sqlx::query("INSERT INTO memory_units (id, tenant, project_id, label) VALUES ($1,$2,$3,$4)")
        .bind(unit_id)
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .bind(&label)
        .execute(&mut *tx)
        .await?;
    for (pos, m) in members.iter().enumerate() {
        if !member_exists(&mut tx, &p, m.layer, m.id).await? {
            return Err(AppError::bad_request("Member not found in this tenant/project"));
        }
        let inserted = sqlx::query(
            "INSERT INTO memory_unit_members (unit_id, tenant, project_id, layer, record_id, role, position) VALUES ($1,$2,$3,$4,$5,$6,$7)
             ON CONFLICT (tenant, project_id, layer, record_id) DO NOTHING",
        )
        .bind(unit_id)
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .bind(m.layer.name())
        .bind(m.id.to_string())
        .bind(&m.role)
        .bind(pos as i32)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AppError::bad_request("Member already belongs to a unit"));
        }
    }
    crate::governance::audit::append(
        &mut tx,
        &p.scope.tenant,
        "unit:create",
        &json!({ "id": unit_id.to_string(), "label": label, "members": members.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": unit_id.to_string(), "label": label, "members": submitted, "tenant": p.scope.tenant, "project_id": p.scope.project }))).into_response())
}

pub async fn related(
    State(state): State<AppState>,
    p: Principal,
    Path((layer, record_id)): Path<(String, String)>,
) -> AppResult<Json<Value>> {
    let layer = Layer::parse(&layer).ok_or_else(|| AppError::bad_request("Unsupported layer"))?;
    p.require(Perm::ReadUnits)?;
    p.require(Perm::Read(layer))?;
    let none = || AppError::not_found("No related unit");
    let id = Uuid::parse_str(&record_id).map_err(|_| none())?;
    let mut conn = state.pool.acquire().await?;
    if !member_exists(&mut conn, &p, layer, id).await? {
        return Err(none());
    }
    let unit: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT u.id, u.label FROM memory_unit_members m JOIN memory_units u ON u.id = m.unit_id
         WHERE m.tenant = $1 AND m.project_id = $2 AND m.layer = $3 AND m.record_id = $4",
    )
    .bind(&p.scope.tenant)
    .bind(&p.scope.project)
    .bind(layer.name())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let (unit_id, label) = unit.ok_or_else(none)?;
    let rows: Vec<(String, String, String)> = sqlx::query_as("SELECT layer, record_id, role FROM memory_unit_members WHERE unit_id = $1 AND tenant = $2 AND project_id = $3 ORDER BY position")
        .bind(unit_id)
        .bind(&p.scope.tenant)
        .bind(&p.scope.project)
        .fetch_all(&mut *conn)
        .await?;
    let mut members = Vec::new();
    for (layer_name, rid, role) in rows {
        let (Some(l), Ok(rid)) = (Layer::parse(&layer_name), Uuid::parse_str(&rid)) else { continue };
        if p.require(Perm::Read(l)).is_err() {
            continue; // a layer the caller may not read: members are records, so Read(layer) applies
        }
        if !member_exists(&mut conn, &p, l, rid).await? {
            continue; // dangling or expired
        }
        let sql = format!(
            "SELECT {} FROM {} t WHERE id = $1 AND tenant = $2 AND project_id = $3",
            crate::store::records::row_json(l),
            l.table()
        );
        if let Some(record) = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql))
            .bind(rid)
            .bind(&p.scope.tenant)
            .bind(&p.scope.project)
            .fetch_optional(&mut *conn)
            .await?
        {
            members
                .push(json!({ "layer": l.name(), "role": role, "record": crate::store::records::present(l, record) }));
        }
    }
    Ok(Json(json!({ "id": unit_id.to_string(), "label": label, "members": members })))
}
