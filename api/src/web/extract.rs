//! Request extractors whose rejections are the contract's 422 validation bodies
//! (FastAPI's `{"detail": [{"loc", "msg", "type"}]}`) instead of axum's plain-text errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::web::error::AppError;

/// A JSON body deserialised into `T`; malformed JSON or wrong types give 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes =
            Bytes::from_request(req, state).await.map_err(|_| AppError::bad_request("Request body interrupted"))?;
        let value: Value = if bytes.is_empty() {
            return Err(AppError::validation(&["body"], "Field required", "missing"));
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| AppError::validation(&["body"], format!("JSON decode error: {e}"), "json_invalid"))?
        };
        reject_nul(&value)?;
        deserialise(value, vec![json!("body")]).map(JsonBody)
    }
}

/// Deserialises a JSON value into `T`. A failure is a 422 whose `loc` extends `loc` with the
/// path of the offending field (`["body", "steps", 1]`), a missing or unknown field is named,
/// and a value that is not an object says "expected an object".
pub fn deserialise<T: DeserializeOwned>(value: Value, mut loc: Vec<Value>) -> Result<T, AppError> {
    let got = match &value {
        Value::Object(_) => None,
        Value::Null => Some("null"),
        Value::Bool(_) => Some("a boolean"),
        Value::Number(_) => Some("a number"),
        Value::String(_) => Some("a string"),
        Value::Array(_) => Some("an array"),
    };
    // Every body is an object; serde alone would read a struct from an array, positionally.
    if let Some(got) = got {
        let msg = format!("Input should be a JSON object: expected an object, got {got}");
        return Err(AppError::unprocessable(json!([{ "loc": loc, "msg": msg, "type": "object_type" }])));
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let msg = e.into_inner().to_string();
        let named = |prefix: &str| msg.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
        let push_field = |loc: &mut Vec<Value>, field: String| {
            if loc.last() != Some(&json!(field)) {
                loc.push(json!(field));
            }
        };
        let (msg, kind) = if let Some(field) = named("missing field `") {
            push_field(&mut loc, field);
            ("Field required".to_owned(), "missing")
        } else if let Some(field) = named("unknown field `") {
            push_field(&mut loc, field);
            (format!("Extra inputs are not permitted: {msg}"), "extra_forbidden")
        } else {
            (msg, "value_error")
        };
        AppError::unprocessable(json!([{ "loc": loc, "msg": msg, "type": kind }]))
    })
}

/// Postgres `text` and `jsonb` cannot hold U+0000, so a NUL in any string or key of a body
/// would fail its query with a 500. Refused here, once for every route, as a 422.
fn reject_nul(value: &Value) -> Result<(), AppError> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    // Recursion is bounded: serde_json refuses documents nested deeper than 128.
    if has_nul(value) {
        return Err(AppError::validation(&["body"], "Strings must not contain NUL (\\u0000) characters", "string_nul"));
    }
    Ok(())
}

/// An optional JSON body: empty means `None`.
pub struct OptionalJsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes =
            Bytes::from_request(req, state).await.map_err(|_| AppError::bad_request("Request body interrupted"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::validation(&["body"], format!("JSON decode error: {e}"), "json_invalid"))?;
        reject_nul(&value)?;
        Ok(OptionalJsonBody(Some(value)))
    }
}

/// Query parameters deserialised into `T`; a missing or mistyped parameter gives 422.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        // A percent-encoded NUL (%00) cannot be bound as Postgres text either.
        if let Ok(pairs) = serde_urlencoded_from_str::<Vec<(String, String)>>(query)
            && let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(AppError::validation(
                &["query", k.as_str()],
                "Strings must not contain NUL (\\u0000) characters",
                "string_nul",
            ));
        }
        serde_urlencoded_from_str(query)
            .map(QueryParams)
            .map_err(|e| AppError::validation(&["query"], e, "value_error"))
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}").parse().map_err(|_| "invalid query string".to_string())?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}

/// Checks an integer parameter against its inclusive range, as FastAPI's `Query(ge, le)`.
pub fn check_range(name: &str, value: i64, min: i64, max: i64) -> Result<i64, AppError> {
    if value < min {
        Err(AppError::validation(
            &["query", name],
            format!("Input should be greater than or equal to {min}"),
            "greater_than_equal",
        ))
    } else if value > max {
        Err(AppError::validation(
            &["query", name],
            format!("Input should be less than or equal to {max}"),
            "less_than_equal",
        ))
    } else {
        Ok(value)
    }
}
