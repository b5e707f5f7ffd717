//! Hash-chained audit log, one chain per tenant.
//!
//! `hash = sha256(prev_hash | event_type | canonical_json(payload) | ts)`, with `prev_hash` ""
//! for a chain's first row. Appends run inside the caller's transaction (the record, its
//! access row and its audit row commit together or not at all) and take a per-tenant
//! advisory lock, so concurrent writers on any replica cannot fork the chain.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Row};

pub fn canonical_json(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // serde_json may preserve insertion order; rebuilding in sorted order makes it canonical.
    let sorted = sort(v);
    let mut out = String::new();
    write_canonical(&sorted, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn ts_string(ts: DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn chain_hash(prev_hash: &str, event_type: &str, payload: &Value, ts: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"|");
    h.update(event_type.as_bytes());
    h.update(b"|");
    h.update(canonical_json(payload).as_bytes());
    h.update(b"|");
    h.update(ts_string(ts).as_bytes());
    hex::encode(h.finalize())
}

pub async fn append(
    conn: &mut PgConnection,
    tenant: &str,
    event_type: &str,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    append_many(conn, tenant, &[(event_type.to_owned(), payload.clone())]).await
}

/// Appends links in order under one hold of the tenant's chain lock, in one round trip
/// (the `audit_append` function of migrations/0003_audit_append.sql).
pub async fn append_many(conn: &mut PgConnection, tenant: &str, links: &[(String, Value)]) -> Result<(), sqlx::Error> {
    let (events, payloads) = link_args(links);
    sqlx::query("SELECT audit_append($1, $2, $3)")
        .bind(tenant)
        .bind(&events)
        .bind(&payloads)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The arguments of `audit_append`: event types and canonical payload texts, in order.
pub fn link_args(links: &[(String, Value)]) -> (Vec<&str>, Vec<String>) {
    links.iter().map(|(e, p)| (e.as_str(), canonical_json(p))).unzip()
}

#[derive(Debug, PartialEq, Eq)]
pub enum ChainReport {
    Valid { checked: i64, head_hash: Option<String> },
    Broken { checked: i64, first_bad_id: i64 },
}

/// Walks a tenant's chain in order, recomputing every hash and link.
pub async fn verify(pool: &PgPool, tenant: &str) -> Result<ChainReport, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let rows = sqlx::query(
        "SELECT id, seq, event_type, payload, prev_hash, hash, ts FROM logs_audit WHERE tenant = $1 ORDER BY seq",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let mut prev = String::new();
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        let id: i64 = row.get("id");
        let seq: i64 = row.get("seq");
        let prev_hash: String = row.get("prev_hash");
        let hash: String = row.get("hash");
        let expected = chain_hash(&prev, row.get("event_type"), &row.get::<Value, _>("payload"), row.get("ts"));
        if seq != i as i64 + 1 || prev_hash != prev || hash != expected {
            return Ok(ChainReport::Broken { checked, first_bad_id: id });
        }
        checked += 1;
        prev = hash;
    }
    Ok(ChainReport::Valid { checked, head_hash: (!prev.is_empty()).then_some(prev) })
}

/// The newest link of a tenant's chain: (seq, hash, ts).
pub async fn head(pool: &PgPool, tenant: &str) -> Result<Option<(i64, String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash, ts FROM logs_audit WHERE tenant = $1 ORDER BY seq DESC LIMIT 1")
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// The (id, hash) stored at one position of a tenant's chain.
pub async fn link_at(pool: &PgPool, tenant: &str, seq: i64) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, hash FROM logs_audit WHERE tenant = $1 AND seq = $2")
        .bind(tenant)
        .bind(seq)
        .fetch_optional(pool)
        .await
}

/// Issuer of a signed head export.
pub const HEAD_ISSUER: &str = "pinak-audit";

/// Claims of a signed head export (an HS256 JWT under `PINAK_AUDIT_SIGNING_KEY`).
#[derive(Deserialize, Serialize)]
pub struct HeadClaims {
    pub iss: String,
    pub tenant: String,
    pub seq: i64,
    pub head_hash: String,
    pub iat: i64,
}

/// A tenant's head signed with `key`, to be kept outside the database: `verify` with it as the
/// anchor then detects a deleted tail.
pub fn sign_head(key: &str, tenant: &str, seq: i64, head_hash: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = HeadClaims {
        iss: HEAD_ISSUER.into(),
        tenant: tenant.to_owned(),
        seq,
        head_hash: head_hash.to_owned(),
        iat: Utc::now().timestamp(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key.as_bytes()))
}

/// The claims of a head signed with `key`, if the signature is good.
pub fn verify_head(key: &str, token: &str) -> Option<HeadClaims> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["iss"]);
    v.set_issuer(&[HEAD_ISSUER]);
    v.validate_exp = false;
    jsonwebtoken::decode::<HeadClaims>(token, &DecodingKey::from_secret(key.as_bytes()), &v).ok().map(|d| d.claims)
}

/// Every tenant's newest link: (tenant, seq, hash, ts).
pub async fn heads(pool: &PgPool) -> Result<Vec<(String, i64, String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("SELECT DISTINCT ON (tenant) tenant, seq, hash, ts FROM logs_audit ORDER BY tenant, seq DESC")
        .fetch_all(pool)
        .await
}
