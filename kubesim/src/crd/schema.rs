//! What the apiserver does with a CRD version's `openAPIV3Schema` when a custom resource is
//! written, after k8s.io/apiextensions-apiserver v1.35 (`pkg/apiserver/schema`,
//! `pkg/registry/customresource`) and kube-openapi's validator: pruning, defaulting, OpenAPI
//! validation with update ratcheting, list-type invariants, CEL rules (evaluated by kube-cel) and
//! the 422 wording of k8s.io/apimachinery field errors.
//!
//! The server applies them in this order: [`prune`], [`apply_defaults`], [`validate`].

use crate::selector::go_quote;
use std::cmp::Ordering;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use kube_cel::cel::{Context, Program};
use kube_cel::{CompilationError, CompilationResult, Rule, ValidationError};
use serde_json::{Map, Value};

const PRESERVE_UNKNOWN: &str = "x-kubernetes-preserve-unknown-fields";
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const VALIDATIONS: &str = "x-kubernetes-validations";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const LIST_MAP_KEYS: &str = "x-kubernetes-list-map-keys";
const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];
/// `field.Path.String()` of the nil path, which the apiserver uses for whole-object errors.
const NIL_PATH: &str = "<nil>";
const OPENAPI_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const CEL_REASONS: [&str; 4] =
    ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

// ---------------------------------------------------------------------------------------------
// Schema accessors

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn schema_type(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|i| i.is_object())
}

/// A `default: null` is no default at all, as in the structural schema.
fn default_of(schema: &Value) -> Option<&Value> {
    schema.get("default").filter(|d| !d.is_null())
}

/// A length or count limit; Go decodes them as integers, so `5.0` means 5.
fn count_keyword(schema: &Value, key: &str) -> Option<i64> {
    let limit = schema.get(key)?;
    limit.as_i64().or_else(|| limit.as_f64().map(|f| f as i64))
}

fn list_type(schema: &Value) -> Option<&str> {
    schema.get(LIST_TYPE).and_then(Value::as_str)
}

fn rules(schema: &Value) -> &[Value] {
    schema.get(VALIDATIONS).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// How a schema describes one key of an object value.
enum FieldSchema<'a> {
    Property(&'a Value),
    Additional(&'a Value),
    /// `additionalProperties: true|false`: the key is kept but nothing below it is specified.
    Untyped,
    Unknown,
}

fn field_schema<'a>(schema: &'a Value, key: &str) -> FieldSchema<'a> {
    if let Some(prop) = properties(schema).and_then(|p| p.get(key)) {
        return FieldSchema::Property(prop);
    }
    match schema.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => FieldSchema::Additional(ap),
        Some(Value::Bool(_)) => FieldSchema::Untyped,
        _ => FieldSchema::Unknown,
    }
}

fn child_schema<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    match field_schema(schema, key) {
        FieldSchema::Property(s) | FieldSchema::Additional(s) => Some(s),
        FieldSchema::Untyped | FieldSchema::Unknown => None,
    }
}

fn has_rules(schema: &Value) -> bool {
    !rules(schema).is_empty()
        || items(schema).is_some_and(has_rules)
        || schema.get("additionalProperties").filter(|a| a.is_object()).is_some_and(has_rules)
        || properties(schema).is_some_and(|p| p.values().any(has_rules))
}

/// kube-openapi and the pruner name nested fields `a.b[0].c`.
fn dotted(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

fn indexed(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `field.Path.Key`: map keys (additionalProperties) are bracketed, unquoted.
fn keyed(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

fn or_nil(path: &str) -> String {
    if path.is_empty() { NIL_PATH.to_string() } else { path.to_string() }
}

// ---------------------------------------------------------------------------------------------
// Defaulting

/// Fills in `default` values: for each property with a default that is absent from an object
/// that exists, recursively (properties, items, additionalProperties), as structural defaulting
/// does (defaults are themselves defaulted; a null with nullable=false and a default is replaced).
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    match obj {
        Value::Object(map) => {
            for (key, prop) in properties(schema).into_iter().flatten() {
                match map.get_mut(key) {
                    Some(present) => replace_non_nullable_null(prop, present),
                    None => {
                        if let Some(default) = default_of(prop) {
                            map.insert(key.clone(), default.clone());
                        }
                    }
                }
            }
            for (key, value) in map.iter_mut() {
                match field_schema(schema, key) {
                    FieldSchema::Property(prop) => apply_defaults(prop, value),
                    FieldSchema::Additional(ap) => {
                        replace_non_nullable_null(ap, value);
                        apply_defaults(ap, value);
                    }
                    FieldSchema::Untyped | FieldSchema::Unknown => {}
                }
            }
        }
        Value::Array(list) => {
            if let Some(item_schema) = items(schema) {
                for item in list {
                    replace_non_nullable_null(item_schema, item);
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn replace_non_nullable_null(schema: &Value, value: &mut Value) {
    if value.is_null()
        && !nullable(schema)
        && let Some(default) = default_of(schema)
    {
        *value = default.clone();
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning

/// Removes fields the schema does not specify (pruning), honouring
/// x-kubernetes-preserve-unknown-fields and x-kubernetes-embedded-resource (apiVersion, kind,
/// metadata kept), and at the root keeps apiVersion, kind, metadata. Returns the dotted paths
/// removed (e.g. "spec.foo", "spec.items[0].bar"), sorted, so the server can report them under
/// fieldValidation=Strict (as `unknown field "spec.foo"`) or Warn.
///
/// Like the decoder, it then silently drops nulls of non-nullable fields that have no default
/// (those with a default are left for [`apply_defaults`]); these are not reported.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut removed = Vec::new();
    prune_value(Some(schema), obj, false, true, "", &mut removed);
    drop_non_nullable_nulls(Some(schema), obj);
    removed.sort();
    removed
}

/// `keep_unknown` is kube's `skipPrune`: it flows into array items but not into properties.
fn prune_value(
    schema: Option<&Value>,
    value: &mut Value,
    keep_unknown: bool,
    resource_root: bool,
    path: &str,
    removed: &mut Vec<String>,
) {
    let keep_unknown = keep_unknown || schema.is_some_and(|s| flag(s, PRESERVE_UNKNOWN));
    match value {
        Value::Object(map) => {
            let Some(schema) = schema else {
                if !keep_unknown {
                    removed.extend(map.keys().map(|k| dotted(path, k)));
                    map.clear();
                }
                return;
            };
            let keeps_meta = resource_root || flag(schema, EMBEDDED);
            map.retain(|key, child| {
                if keeps_meta && META_FIELDS.contains(&key.as_str()) {
                    return true;
                }
                let child_path = dotted(path, key);
                match field_schema(schema, key) {
                    FieldSchema::Property(s) | FieldSchema::Additional(s) => {
                        prune_value(Some(s), child, false, false, &child_path, removed)
                    }
                    FieldSchema::Untyped => prune_value(None, child, false, false, &child_path, removed),
                    FieldSchema::Unknown if keep_unknown => {}
                    FieldSchema::Unknown => {
                        removed.push(child_path);
                        return false;
                    }
                }
                true
            });
        }
        Value::Array(list) => {
            let item_schema = schema.and_then(items);
            if keep_unknown && item_schema.is_none() {
                return;
            }
            for (i, item) in list.iter_mut().enumerate() {
                prune_value(item_schema, item, keep_unknown, false, &indexed(path, i), removed);
            }
        }
        _ => {}
    }
}

fn drop_non_nullable_nulls(schema: Option<&Value>, value: &mut Value) {
    match value {
        Value::Object(map) => map.retain(|key, child| {
            let child_schema = schema.and_then(|s| child_schema(s, key));
            if child.is_null() && child_schema.is_some_and(|c| !nullable(c) && default_of(c).is_none()) {
                return false;
            }
            drop_non_nullable_nulls(child_schema, child);
            true
        }),
        Value::Array(list) => {
            let item_schema = schema.and_then(items);
            for item in list {
                drop_non_nullable_nulls(item_schema, item);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Field errors

/// `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    Invalid,
    NotSupported,
    TypeInvalid,
    TooLong,
    TooMany,
    Forbidden,
    /// list-type set/map uniqueness and CEL rules with `reason: FieldValueDuplicate`.
    Duplicate,
}

impl ErrorKind {
    /// The `reason` of a status cause (`metav1.CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
        }
    }

    /// The kinds after which the apiserver does not run CEL rules (`hasBlockingErr`).
    fn blocks_cel(self) -> bool {
        matches!(self, Self::NotSupported | Self::Required | Self::TooLong | Self::TooMany | Self::TypeInvalid)
    }
}

/// One `field.Error`. `bad_value: None` is the apiserver's omitted value (`Invalid value: <detail>`);
/// `Some(Value::Null)` prints as `null`. Required, Forbidden and TooLong never print the value.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub kind: ErrorKind,
    pub detail: String,
    pub bad_value: Option<Value>,
}

impl FieldError {
    fn new(path: impl Into<String>, kind: ErrorKind, bad_value: Option<Value>, detail: impl Into<String>) -> Self {
        Self { path: path.into(), kind, detail: detail.into(), bad_value }
    }

    fn invalid(path: impl Into<String>, bad_value: Option<Value>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Invalid, bad_value, detail)
    }

    fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Required, None, detail)
    }

    fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Forbidden, None, detail)
    }

    /// `Required` when the offending setting is absent (empty), `Invalid` naming it otherwise.
    fn missing_or_invalid(path: impl Into<String>, got: &str, detail: &str) -> Self {
        if got.is_empty() { Self::required(path, detail) } else { Self::invalid(path, Some(Value::from(got)), detail) }
    }

    fn not_supported(path: impl Into<String>, bad_value: Value, supported: &[String]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
        Self::new(path, ErrorKind::NotSupported, Some(bad_value), detail)
    }

    fn too_long(path: impl Into<String>, max: i64) -> Self {
        let detail = match max {
            1 => "may not be more than 1 byte".to_string(),
            m if m >= 0 => format!("may not be more than {m} bytes"),
            _ => "value is too long".to_string(),
        };
        Self::new(path, ErrorKind::TooLong, None, detail)
    }

    fn too_many(path: impl Into<String>, actual: usize, max: i64) -> Self {
        let detail = match max {
            1 => "must have at most 1 item".to_string(),
            m if m >= 0 => format!("must have at most {m} items"),
            _ => "has too many items".to_string(),
        };
        Self::new(path, ErrorKind::TooMany, Some(Value::from(actual)), detail)
    }

    /// `field.Error.ErrorBody()`: the message without the field path, as in status causes.
    pub fn body(&self) -> String {
        let mut body = self.kind.label().to_string();
        let prints_value = !matches!(self.kind, ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong);
        if prints_value && let Some(value) = &self.bad_value {
            body.push_str(": ");
            body.push_str(&go_value(value));
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

/// `field.Error.Error()`: `<path>: <body>`.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

/// The apiserver's 422 text and causes, e.g. `MemoryStore.pinak.dev "notes" is invalid:
/// spec.database.adminCredentials: Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster` (one
/// error) and the `[a, b]` list form for several (identical messages collapsed); causes are
/// `{"reason":"FieldValueInvalid","message":"Invalid value: ...","field":"spec.database"}`, one per
/// error, empty members omitted (`errors.NewInvalid`).
pub fn invalid_message(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> (String, Vec<Value>) {
    let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    let causes = errors
        .iter()
        .map(|e| {
            let mut cause = Map::new();
            cause.insert("reason".into(), Value::from(e.kind.reason()));
            let body = e.body();
            if !body.is_empty() {
                cause.insert("message".into(), Value::from(body));
            }
            if !e.path.is_empty() {
                cause.insert("field".into(), Value::from(e.path.clone()));
            }
            Value::Object(cause)
        })
        .collect();
    let mut messages: Vec<String> = Vec::new();
    for e in errors {
        let message = e.to_string();
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    let head = format!("{qualified} {} is invalid", go_quote(name));
    let text = match messages.as_slice() {
        [] => head,
        [one] => format!("{head}: {one}"),
        many => format!("{head}: [{}]", many.join(", ")),
    };
    (text, causes)
}

// ---------------------------------------------------------------------------------------------
// Go formatting, so messages read exactly like the apiserver's

/// `%v` of a float64: shortest digits, exponent form outside [1e-4, 1e6).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// `encoding/json` output: like serde_json's, with Go's HTML-safe escapes.
fn go_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// How `ErrorBody` renders a bad value decoded from JSON.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => Num::of(n).to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => go_json(v),
    }
}

/// `swag.IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    const MAX_JSON_INT: f64 = 9_007_199_254_740_991.0;
    if !f.is_finite() || f.abs() > MAX_JSON_INT {
        return false;
    }
    let whole = f.trunc();
    if f == whole {
        return true;
    }
    (f - whole).abs() / (f.abs() + whole.abs()) < 1e-9
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

/// kube-openapi matches `pattern` with Go's RE2. The only RE2-syntax engine among this crate's
/// dependencies is the `regex` crate behind CEL's `matches()`, so patterns (and the regex-defined
/// string formats) are evaluated by a one-line CEL program.
struct Regex {
    program: Option<Program>,
    base: Context<'static>,
}

impl Regex {
    fn new() -> Self {
        Self { program: Program::compile("s.matches(p)").ok(), base: Context::default() }
    }

    /// `Err` carries the compile error of an invalid pattern.
    fn is_match(&self, pattern: &str, s: &str) -> Result<bool, String> {
        let Some(program) = &self.program else {
            return Ok(true);
        };
        let mut ctx = self.base.new_inner_scope();
        ctx.add_variable_from_value("s", s);
        ctx.add_variable_from_value("p", pattern);
        match program.execute(&ctx) {
            Ok(kube_cel::cel::Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(format!("unexpected match result {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// String formats (the ones CRDs may use in v1.35; others are stripped by the apiserver)

const SHORT_NAME: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const HEX2: &str = "[0-9a-fA-F]{2}";
const HEX4: &str = "[0-9a-fA-F]{4}";

/// `(format, RE2 pattern, max byte length)` of the formats strfmt defines by a regex.
fn regex_format(format: &str) -> Option<(String, usize)> {
    let uuid = |version: &str, variant: &str| {
        format!("(?i)^[0-9a-f]{{8}}-?[0-9a-f]{{4}}-?{version}[0-9a-f]{{3}}-?{variant}[0-9a-f]{{3}}-?[0-9a-f]{{12}}$")
    };
    let mac = |group: &str, sep: &str, counts: [usize; 3]| {
        let alternatives: Vec<String> =
            counts.iter().map(|n| format!("{group}(?:{sep}{group}){{{}}}", n - 1)).collect();
        format!("(?:{})", alternatives.join("|"))
    };
    let byte_octet = "(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])";
    let (pattern, max) = match format {
        "bsonobjectid" => ("^[0-9a-fA-F]{24}$".to_string(), usize::MAX),
        "hostname" => (
            r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$"
                .to_string(),
            255,
        ),
        "uuid" => (uuid("[0-9a-f]", "[0-9a-f]"), usize::MAX),
        "uuid3" => (uuid("3", "[0-9a-f]"), usize::MAX),
        "uuid4" => (uuid("4", "[89ab]"), usize::MAX),
        "uuid5" => (uuid("5", "[89ab]"), usize::MAX),
        "ssn" => ("^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$".to_string(), usize::MAX),
        "hexcolor" => ("^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$".to_string(), usize::MAX),
        "rgbcolor" => (
            format!(r"^rgb\(\s*{byte_octet}\s*,\s*{byte_octet}\s*,\s*{byte_octet}\s*\)$"),
            usize::MAX,
        ),
        "byte" => (
            "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$".to_string(),
            usize::MAX,
        ),
        "mac" => (
            format!(
                "^(?:{}|{}|{})$",
                mac(HEX2, ":", [6, 8, 20]),
                mac(HEX2, "-", [6, 8, 20]),
                mac(HEX4, r"\.", [3, 4, 10])
            ),
            usize::MAX,
        ),
        "k8sshortname" => (format!("^{SHORT_NAME}$"), 63),
        "k8slongname" => (format!(r"^{SHORT_NAME}(\.{SHORT_NAME})*$"), 253),
        _ => return None,
    };
    Some((pattern, max))
}

/// `Some(valid)` for a supported format, `None` for formats the apiserver ignores.
fn format_valid(regex: &Regex, format: &str, s: &str) -> Option<bool> {
    let normalized = format.replace('-', "");
    let valid = match normalized.as_str() {
        // Supported by the apiserver but not checked here (no parser among the allowed crates).
        "password" | "email" | "uri" | "isbn" | "isbn10" | "isbn13" | "creditcard" => true,
        "date" => is_date(s),
        "datetime" => is_date_time(regex, s),
        "duration" => is_duration(s),
        "ipv4" => s.contains('.') && (is_sloppy_ipv4(s) || s.parse::<Ipv6Addr>().is_ok()),
        "ipv6" => s.contains(':') && s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        other => {
            let (pattern, max) = regex_format(other)?;
            let labels_ok = other != "hostname" || s.split('.').all(|label| label.len() <= 63);
            s.len() <= max && labels_ok && regex.is_match(&pattern, s).unwrap_or(false)
        }
    };
    Some(valid)
}

fn is_string_format(format: &str) -> bool {
    let normalized = format.replace('-', "");
    matches!(
        normalized.as_str(),
        "password"
            | "email"
            | "uri"
            | "isbn"
            | "isbn10"
            | "isbn13"
            | "creditcard"
            | "date"
            | "datetime"
            | "duration"
            | "ipv4"
            | "ipv6"
            | "cidr"
    ) || regex_format(&normalized).is_some()
}

/// Go's `time.Parse("2006-01-02", s)`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| s[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime`, quirks included (it splits on every `t`).
fn is_date_time(regex: &Regex, s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    let [date, time, ..] = parts.as_slice() else {
        return false;
    };
    let pattern = "^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$";
    is_date(date)
        && regex.is_match(pattern, time).unwrap_or(false)
        && time.get(0..2).is_some_and(|h| h <= "23")
        && time.get(3..5).is_some_and(|m| m <= "59")
        && time.get(6..8).is_some_and(|sec| sec <= "59")
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration`, else any `<digits> <unit>` pair.
fn is_duration(s: &str) -> bool {
    is_go_duration(s) || has_scala_duration(s)
}

fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        if !matches!(&rest[..unit_len], "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

fn has_scala_duration(s: &str) -> bool {
    const UNITS: [&[&str]; 8] = [
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\n' | '\r' | '\u{c}') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == 'µ') {
            i += 1;
        }
        let unit: String = chars[start..i].iter().collect::<String>().to_lowercase();
        let known = UNITS.iter().any(|variants| {
            variants
                .iter()
                .enumerate()
                .any(|(n, v)| (n == variants.len() - 1 && unit.starts_with(v)) || unit.eq_ignore_ascii_case(v))
        });
        if !unit.is_empty() && known {
            return true;
        }
    }
    false
}

/// `netutils.ParseIPSloppy` for IPv4: leading zeros allowed.
fn is_sloppy_ipv4(s: &str) -> bool {
    let octets: Vec<&str> = s.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            (1..=3).contains(&o.len())
                && o.bytes().all(|b| b.is_ascii_digit())
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = prefix.parse::<u8>() else {
        return false;
    };
    if !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if is_sloppy_ipv4(ip) || ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else {
        ip.parse::<Ipv6Addr>().is_ok() && bits <= 128
    }
}

// ---------------------------------------------------------------------------------------------
// Correlation of old and new values (transition rules and ratcheting)

fn map_list_keys(schema: &Value) -> Option<Vec<&str>> {
    if schema_type(schema) != "array" || list_type(schema) != Some("map") {
        return None;
    }
    let keys: Vec<&str> = schema.get(LIST_MAP_KEYS)?.as_array()?.iter().filter_map(Value::as_str).collect();
    (!keys.is_empty()).then_some(keys)
}

fn composite_key<'v>(keys: &[&str], item: &'v Value) -> Option<Vec<&'v Value>> {
    let obj = item.as_object()?;
    keys.iter()
        .map(|k| obj.get(*k).filter(|v| matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_))))
        .collect()
}

/// The old element a new map-list element correlates with (same key values); other lists do not
/// correlate by element.
fn map_list_get<'o>(schema: &Value, old: &'o [Value], item: &Value) -> Option<&'o Value> {
    let keys = map_list_keys(schema)?;
    let key = composite_key(&keys, item)?;
    old.iter().find(|candidate| composite_key(&keys, candidate).is_some_and(|k| k == key))
}

/// The old value correlated with the new `child` of a node (`None` when there is none).
fn correlated_child<'o>(schema: &Value, old: Option<&'o Value>, key: Child<'_>, child: &Value) -> Option<&'o Value> {
    match key {
        Child::Field(name) => old?.as_object()?.get(name),
        Child::Item => map_list_get(schema, old?.as_array()?, child),
    }
}

#[derive(Clone, Copy)]
enum Child<'k> {
    Field(&'k str),
    Item,
}

/// `CorrelatedObject.CachedDeepEqual`: deep equality as ratcheting sees it. Map-lists compare by
/// key, and an object key without a schema never correlates (so the object counts as changed).
fn correlated_equal(schema: &Value, new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            n.len() == o.len()
                && n.iter().all(|(k, v)| match (child_schema(schema, k), o.get(k)) {
                    (Some(s), Some(ov)) => correlated_equal(s, v, ov),
                    _ => false,
                })
        }
        (Value::Array(n), Value::Array(o)) => match (map_list_keys(schema), items(schema)) {
            (Some(_), Some(item_schema)) => {
                n.len() == o.len()
                    && n.iter().all(|item| {
                        map_list_get(schema, o, item)
                            .is_some_and(|old_item| correlated_equal(item_schema, item, old_item))
                    })
            }
            _ => n == o,
        },
        _ => new == old,
    }
}

/// A JSON number as the apiserver decodes it: int64 when it fits, float64 otherwise. kube-openapi
/// checks integers against bounds truncated to int64 and floats as float64.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Self {
        match n.as_i64() {
            Some(i) => Self::Int(i),
            None => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// A schema bound in this number's representation.
    fn bound(self, b: f64) -> Self {
        match self {
            Self::Int(_) => Self::Int(b as i64),
            Self::Float(_) => Self::Float(b),
        }
    }

    fn is_positive(self) -> bool {
        match self {
            Self::Int(i) => i > 0,
            Self::Float(f) => f > 0.0,
        }
    }

    /// `factor` is positive and of the same representation.
    fn is_multiple_of(self, factor: Self) -> bool {
        match (self, factor) {
            (Self::Int(v), Self::Int(f)) => v % f == 0,
            (Self::Float(v), Self::Float(f)) => is_json_integer(if f < 1.0 { 1.0 / f * v } else { v / f }),
            _ => true,
        }
    }

    fn json(self) -> Value {
        match self {
            Self::Int(i) => Value::from(i),
            Self::Float(f) => Value::from(f),
        }
    }
}

/// Go's `%v`.
impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => f.write_str(&go_float(*x)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAPI validation (kube-openapi's SchemaValidator as the apiserver configures it)

/// Validates one value against a schema, naming fields like kube-openapi (`spec.x in body ...`).
/// `prefix` is the `fldPath` the apiserver passes (none for a custom resource, `...default` when
/// checking a CRD's defaults).
struct OpenApi<'r> {
    regex: &'r Regex,
    prefix: Option<String>,
}

impl OpenApi<'_> {
    fn path(&self, name: &str) -> String {
        let name = name.trim_start_matches('.');
        match (&self.prefix, name) {
            (None, n) => or_nil(n),
            (Some(p), "") => p.clone(),
            (Some(p), n) => format!("{p}.{n}"),
        }
    }

    /// Errors kube-openapi raises without a field name land on `fldPath` itself.
    fn unnamed(&self, detail: String) -> FieldError {
        let path = self.prefix.clone().unwrap_or_else(|| NIL_PATH.to_string());
        FieldError::invalid(path, Some(Value::from("")), detail)
    }

    /// `old` is the correlated old value; an unchanged correlated value is not validated at all,
    /// since ratcheting would turn every error below it into a warning.
    fn check(&self, schema: &Value, value: &Value, name: &str, old: Option<&Value>, out: &mut Vec<FieldError>) {
        if let Some(old) = old
            && correlated_equal(schema, value, old)
        {
            return;
        }
        self.check_type(schema, value, name, out);
        if value.is_null() {
            self.check_enum(schema, value, name, out);
            return;
        }
        self.check_junctors(schema, value, name, out);
        match value {
            Value::String(s) => {
                self.check_string(schema, s, name, out);
                self.check_format(schema, s, name, out);
            }
            Value::Number(n) => self.check_number(schema, n, name, out),
            Value::Array(list) => self.check_array(schema, list, name, old, out),
            _ => {}
        }
        self.check_enum(schema, value, name, out);
        if let Value::Object(map) = value {
            self.check_object(schema, map, name, old, out);
        }
    }

    fn check_type(&self, schema: &Value, value: &Value, name: &str, out: &mut Vec<FieldError>) {
        let types: Vec<&str> = if flag(schema, INT_OR_STRING) {
            vec!["integer", "string"]
        } else {
            match schema_type(schema) {
                "" => return,
                t => vec![t],
            }
        };
        let expected = types.join(",");
        let type_error = |got: &str, expected: &str| {
            let detail = format!("{name} in body must be of type {expected}: {}", go_quote(got));
            FieldError::new(self.path(name), ErrorKind::TypeInvalid, Some(Value::from(got)), detail)
        };
        let (got, got_format) = match value {
            Value::Null => {
                if !nullable(schema) {
                    out.push(type_error("null", &expected));
                }
                return;
            }
            Value::Bool(_) => ("boolean", ""),
            Value::String(_) => ("string", ""),
            Value::Number(n) if n.is_i64() => ("integer", "int64"),
            Value::Number(_) => ("number", "float64"),
            Value::Array(_) => ("array", ""),
            Value::Object(_) => ("object", ""),
        };
        let float_int = got == "number" && types.contains(&"integer") && value.as_f64().is_some_and(is_json_integer);
        let int_float = got == "integer" && types.contains(&"number");
        let matches = types.contains(&got) || float_int || int_float;
        let format = schema.get("format").and_then(Value::as_str).filter(|f| is_string_format(f));
        let stringish = matches!(value, Value::String(_) | Value::Array(_));
        match format {
            Some(format) if !stringish && !matches => out.push(type_error(got_format, format)),
            Some(_) if stringish && !types.iter().any(|t| *t == "integer" || *t == "number") => {}
            _ if !matches => out.push(type_error(got, &expected)),
            _ => {}
        }
    }

    /// allOf/anyOf/oneOf/not. Of several failing branches kube-openapi reports the one with the
    /// most passing checks; this reports the one with the fewest errors.
    fn check_junctors(&self, schema: &Value, value: &Value, name: &str, out: &mut Vec<FieldError>) {
        let branches = |key: &str| schema.get(key).and_then(Value::as_array).filter(|b| !b.is_empty());
        let run = |branch: &Value| {
            let mut errs = Vec::new();
            self.check(branch, value, name, None, &mut errs);
            errs
        };
        let quoted = go_quote(name);
        if let Some(any) = branches("anyOf") {
            let results: Vec<Vec<FieldError>> = any.iter().map(run).collect();
            if results.iter().all(|r| !r.is_empty()) {
                out.push(self.unnamed(format!("{quoted} must validate at least one schema (anyOf)")));
                out.extend(results.into_iter().min_by_key(Vec::len).unwrap_or_default());
            }
        }
        if let Some(one) = branches("oneOf") {
            let results: Vec<Vec<FieldError>> = one.iter().map(run).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                out.push(self.unnamed(format!("{quoted} must validate one and only one schema (oneOf). {found}")));
                if valid == 0 {
                    out.extend(results.into_iter().min_by_key(Vec::len).unwrap_or_default());
                }
            }
        }
        if let Some(all) = branches("allOf") {
            let mut valid = 0;
            for branch in all {
                let errs = run(branch);
                valid += usize::from(errs.is_empty());
                out.extend(errs);
            }
            if valid != all.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                out.push(self.unnamed(format!("{quoted} must validate all the schemas (allOf){none}")));
            }
        }
        if let Some(not) = schema.get("not").filter(|n| n.is_object())
            && run(not).is_empty()
        {
            out.push(self.unnamed(format!("{quoted} must not validate the schema (not)")));
        }
    }

    /// The first failing of maxLength, minLength, pattern (kube-openapi stops there).
    fn check_string(&self, schema: &Value, s: &str, name: &str, out: &mut Vec<FieldError>) {
        let chars = s.chars().count();
        let bad = || Some(Value::from(s));
        if let Some(max) = count_keyword(schema, "maxLength")
            && chars as i64 > max
        {
            out.push(FieldError::too_long(self.path(name), max));
        } else if let Some(min) = count_keyword(schema, "minLength")
            && (chars as i64) < min
        {
            let detail = format!("{name} in body should be at least {min} chars long");
            out.push(FieldError::invalid(self.path(name), bad(), detail));
        } else if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let detail = match self.regex.is_match(pattern, s) {
                Ok(true) => return,
                Ok(false) => format!("{name} in body should match '{pattern}'"),
                Err(e) => format!("{name} in body should match '{pattern}, but pattern is invalid: {e}'"),
            };
            out.push(FieldError::invalid(self.path(name), bad(), detail));
        }
    }

    fn check_format(&self, schema: &Value, s: &str, name: &str, out: &mut Vec<FieldError>) {
        let Some(format) = schema.get("format").and_then(Value::as_str) else {
            return;
        };
        if format_valid(self.regex, format, s) == Some(false) {
            let detail = format!("{name} in body must be of type {format}: {}", go_quote(s));
            out.push(FieldError::new(self.path(name), ErrorKind::TypeInvalid, Some(Value::from(s)), detail));
        }
    }

    fn check_number(&self, schema: &Value, n: &serde_json::Number, name: &str, out: &mut Vec<FieldError>) {
        let path = self.path(name);
        let value = Num::of(n);
        let bound = |key: &str| schema.get(key).and_then(Value::as_f64).map(|b| value.bound(b));
        // Range of the integer formats: enforced from Kubernetes 1.36 (1.35 ignores int32/int64).
        if schema_type(schema) == "integer"
            && let Some(format @ ("int32" | "int64")) = schema.get("format").and_then(Value::as_str)
            && !n.as_i64().is_some_and(|i| format == "int64" || i32::try_from(i).is_ok())
        {
            let detail = format!("Checked value must be of type integer with format {format} in {name}");
            out.push(FieldError::invalid(NIL_PATH, Some(Value::from("")), detail));
        }
        if let Some(factor) = bound("multipleOf") {
            if !factor.is_positive() {
                let detail = format!("factor MultipleOf declared for {name} must be positive: {factor}");
                out.push(FieldError::invalid(&path, Some(factor.json()), detail));
            } else if !value.is_multiple_of(factor) {
                let detail = format!("{name} in body should be a multiple of {factor}");
                out.push(FieldError::invalid(&path, Some(value.json()), detail));
            }
        }
        for (key, exclusive_key, lower) in
            [("minimum", "exclusiveMinimum", true), ("maximum", "exclusiveMaximum", false)]
        {
            let Some(limit) = bound(key) else {
                continue;
            };
            let exclusive = flag(schema, exclusive_key);
            let beyond = if lower { Ordering::Less } else { Ordering::Greater };
            let violated =
                value.partial_cmp(&limit).is_some_and(|o| o == beyond || (exclusive && o == Ordering::Equal));
            if violated {
                let relation = match (lower, exclusive) {
                    (true, false) => "greater than or equal to",
                    (true, true) => "greater than",
                    (false, false) => "less than or equal to",
                    (false, true) => "less than",
                };
                let detail = format!("{name} in body should be {relation} {limit}");
                out.push(FieldError::invalid(&path, Some(value.json()), detail));
            }
        }
    }

    fn check_array(&self, schema: &Value, list: &[Value], name: &str, old: Option<&Value>, out: &mut Vec<FieldError>) {
        if let Some(item_schema) = items(schema) {
            for (i, item) in list.iter().enumerate() {
                let old_item = correlated_child(schema, old, Child::Item, item);
                self.check(item_schema, item, &indexed(name, i), old_item, out);
            }
        }
        let path = self.path(name);
        if let Some(min) = count_keyword(schema, "minItems")
            && (list.len() as i64) < min
        {
            let detail = format!("{name} in body should have at least {min} items");
            out.push(FieldError::invalid(&path, Some(Value::from(list.len())), detail));
        }
        if let Some(max) = count_keyword(schema, "maxItems")
            && list.len() as i64 > max
        {
            out.push(FieldError::too_many(&path, list.len(), max));
        }
        if flag(schema, "uniqueItems") && list.iter().enumerate().any(|(i, v)| list[..i].contains(v)) {
            let detail = format!("{name} in body shouldn't contain duplicates");
            out.push(FieldError::invalid(&path, Some(Value::from("")), detail));
        }
    }

    fn check_enum(&self, schema: &Value, value: &Value, name: &str, out: &mut Vec<FieldError>) {
        let Some(allowed) = schema.get("enum").and_then(Value::as_array).filter(|a| !a.is_empty()) else {
            return;
        };
        // kube-openapi never matches null against an enum, even on a nullable field.
        let same = |a: &Value| match (value, a) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            _ => value == a,
        };
        if !value.is_null() && allowed.iter().any(same) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => go_json(other),
            })
            .collect();
        out.push(FieldError::not_supported(self.path(name), value.clone(), &supported));
    }

    fn check_object(
        &self,
        schema: &Value,
        map: &Map<String, Value>,
        name: &str,
        old: Option<&Value>,
        out: &mut Vec<FieldError>,
    ) {
        let path = self.path(name);
        if let Some(min) = count_keyword(schema, "minProperties")
            && (map.len() as i64) < min
        {
            let detail = format!("{name} in body should have at least {min} properties");
            out.push(FieldError::invalid(&path, Some(Value::from(map.len())), detail));
        }
        if let Some(max) = count_keyword(schema, "maxProperties")
            && map.len() as i64 > max
        {
            out.push(FieldError::too_many(&path, map.len(), max));
        }
        let declared = |k: &str| properties(schema).is_some_and(|p| p.contains_key(k));
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                for key in map.keys().filter(|k| !declared(k)) {
                    let detail = format!("{name}.{key} in body is a forbidden property");
                    out.push(FieldError::invalid(&path, Some(Value::from(key.as_str())), detail));
                }
            }
            Some(ap @ Value::Object(_)) => {
                for (key, child) in map.iter().filter(|(k, _)| !declared(k)) {
                    let old_child = correlated_child(schema, old, Child::Field(key), child);
                    self.check(ap, child, &format!("{name}.{key}"), old_child, out);
                }
            }
            _ => {}
        }
        for (key, prop) in properties(schema).into_iter().flatten() {
            if let Some(child) = map.get(key) {
                let old_child = correlated_child(schema, old, Child::Field(key), child);
                self.check(prop, child, &dotted(name, key), old_child, out);
            }
        }
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = required.as_str()
                && !map.contains_key(key)
            {
                out.push(FieldError::required(self.path(&format!("{name}.{key}")), ""));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// x-kubernetes-list-type invariants (`listtype.ValidateListSetsAndMaps`)

fn check_list_types(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match field_schema(schema, key) {
                    FieldSchema::Property(s) => check_list_types(s, child, &dotted(path, key), out),
                    FieldSchema::Additional(s) => check_list_types(s, child, &keyed(path, key), out),
                    FieldSchema::Untyped | FieldSchema::Unknown => {}
                }
            }
        }
        Value::Array(list) => {
            match list_type(schema) {
                Some("set") => {
                    for i in first_repeats(list) {
                        out.push(FieldError::new(indexed(path, i), ErrorKind::Duplicate, Some(list[i].clone()), ""));
                    }
                }
                Some("map") => check_map_list(schema, list, path, out),
                _ => {}
            }
            if let Some(item_schema) = items(schema) {
                for (i, item) in list.iter().enumerate() {
                    check_list_types(item_schema, item, &indexed(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Index of the second occurrence of every repeated value.
fn first_repeats(values: &[Value]) -> Vec<usize> {
    (0..values.len()).filter(|&i| values[..i].iter().filter(|v| **v == values[i]).count() == 1).collect()
}

fn check_map_list(schema: &Value, list: &[Value], path: &str, out: &mut Vec<FieldError>) {
    if let Some((i, bad)) = list.iter().enumerate().find(|(_, x)| !x.is_null() && !x.is_object()) {
        let detail = "must be an object for an array of list-type map";
        out.push(FieldError::invalid(indexed(path, i), Some(bad.clone()), detail));
        return;
    }
    let key_fields: Vec<&str> =
        schema.get(LIST_MAP_KEYS).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    // Missing key fields are left out of the key, so a missing key equals another missing key.
    let keys: Vec<Value> = list
        .iter()
        .map(|item| {
            let present = key_fields.iter().filter_map(|k| item.get(*k).map(|v| ((*k).to_string(), v.clone())));
            Value::Object(present.collect())
        })
        .collect();
    for i in first_repeats(&keys) {
        out.push(FieldError::new(indexed(path, i), ErrorKind::Duplicate, Some(keys[i].clone()), ""));
    }
}

// ---------------------------------------------------------------------------------------------
// CEL rules (`x-kubernetes-validations`)

/// Walks the object like the apiserver's CEL validator and evaluates each node's rules with
/// kube-cel, one rule at a time against that node's schema (descendant rules stripped), so that
/// null values are skipped, old values correlate only through objects and map-lists, and failing
/// rules that do not use `oldSelf` are ratcheted on unchanged values.
struct Cel {
    validator: kube_cel::Validator,
}

impl Cel {
    /// `unchanged`: the nearest correlated value (this node or an ancestor) equals its old value.
    fn walk(
        &self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        unchanged: bool,
        out: &mut Vec<FieldError>,
    ) {
        if value.is_null() {
            return;
        }
        self.eval_rules(schema, value, old.filter(|o| !o.is_null()), path, unchanged, out);
        for branch in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.walk(branch, value, old, path, false, out);
        }
        let mut descend = |child_schema: &Value, child: &Value, key: Child<'_>, child_path: String| {
            let old_child = correlated_child(schema, old, key, child);
            let child_unchanged = old_child.map_or(unchanged, |o| correlated_equal(child_schema, child, o));
            self.walk(child_schema, child, old_child, &child_path, child_unchanged, out);
        };
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match field_schema(schema, key) {
                        FieldSchema::Property(s) => descend(s, child, Child::Field(key), dotted(path, key)),
                        FieldSchema::Additional(s) => descend(s, child, Child::Field(key), keyed(path, key)),
                        FieldSchema::Untyped | FieldSchema::Unknown => {}
                    }
                }
            }
            Value::Array(list) => {
                if let Some(item_schema) = items(schema) {
                    for (i, item) in list.iter().enumerate() {
                        descend(item_schema, item, Child::Item, indexed(path, i));
                    }
                }
            }
            _ => {}
        }
    }

    fn eval_rules(
        &self,
        schema: &Value,
        value: &Value,
        old: Option<&Value>,
        path: &str,
        unchanged: bool,
        out: &mut Vec<FieldError>,
    ) {
        let node_rules = rules(schema);
        if node_rules.is_empty() {
            return;
        }
        let mut node = without_rules(schema);
        for rule in node_rules {
            if let Value::Object(m) = &mut node {
                m.insert(VALIDATIONS.into(), Value::Array(vec![rule.clone()]));
            }
            let compiled = kube_cel::compile_schema(&node);
            let Some(compiled_rule) = compiled.validations.first() else {
                continue;
            };
            if let Err(errors) = self.validator.validate_compiled(&compiled, value, old) {
                let node = Node { ty: schema_type(schema), value, path, unchanged };
                out.extend(errors.iter().filter_map(|e| node.field_error(compiled_rule, e)));
            }
        }
    }
}

/// The node a CEL error was raised at.
struct Node<'a> {
    ty: &'a str,
    value: &'a Value,
    path: &'a str,
    unchanged: bool,
}

impl Node<'_> {
    /// `validateExpressions`' error for a kube-cel error, or `None` when it is ratcheted.
    fn field_error(
        &self,
        rule: &Result<CompilationResult, CompilationError>,
        e: &ValidationError,
    ) -> Option<FieldError> {
        let type_value = Some(Value::from(self.ty));
        let at_node = or_nil(self.path);
        match (&e.kind, rule) {
            (kube_cel::ErrorKind::ValidationFailure, Ok(compiled)) => {
                if self.unchanged && !compiled.is_transition_rule {
                    return None;
                }
                let r = &compiled.rule;
                let detail = failure_detail(r, &e.message);
                let path = match r.field_path.as_deref().map(normalize_field_path) {
                    Some(fp) if !fp.is_empty() => dotted(self.path, &fp),
                    _ => at_node,
                };
                let shown = (!matches!(self.ty, "object" | "array")).then(|| self.value.clone());
                Some(match r.reason.as_deref() {
                    Some("FieldValueForbidden") => FieldError::forbidden(path, detail),
                    Some("FieldValueRequired") => FieldError::required(path, detail),
                    Some("FieldValueDuplicate") => FieldError::new(path, ErrorKind::Duplicate, shown, ""),
                    _ => FieldError::invalid(path, shown, detail),
                })
            }
            (
                kube_cel::ErrorKind::CompilationFailure
                | kube_cel::ErrorKind::InvalidRule
                | kube_cel::ErrorKind::InvalidResult,
                _,
            ) => Some(FieldError::invalid(at_node, type_value, format!("rule compile error: {}", e.message))),
            _ => {
                let cause = e.message.strip_prefix("rule evaluation error: ").unwrap_or(&e.message);
                let shown_rule = match rule {
                    Ok(compiled) => rule_error_string(&compiled.rule),
                    Err(_) => e.rule.trim().to_string(),
                };
                let detail = format!("{cause} evaluating rule: {shown_rule}");
                Some(FieldError::invalid(at_node, type_value, detail))
            }
        }
    }
}

/// The rule's message, or its evaluated messageExpression when that is a usable one-line string.
fn failure_detail(rule: &Rule, kube_cel_message: &str) -> String {
    if rule.message_expression.is_some() {
        let kube_cel_fallback = rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule));
        let evaluated = kube_cel_message.trim();
        if kube_cel_message != kube_cel_fallback
            && !evaluated.is_empty()
            && !evaluated.contains('\n')
            && evaluated.len() <= 5 * 1024
        {
            return evaluated.to_string();
        }
    }
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("failed rule: {}", rule_error_string(rule)),
    }
}

fn rule_error_string(rule: &Rule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => rule.rule.trim().to_string(),
    }
}

/// `ValidFieldPath(...).String()`: `.a['b.c'][0]` becomes `a.b.c[0]`.
fn normalize_field_path(field_path: &str) -> String {
    let mut out = String::new();
    let push_name = |out: &mut String, name: &str| {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    };
    let mut rest = field_path.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix("['") {
            let mut key = String::new();
            let mut end = None;
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => key.extend(chars.next().map(|(_, escaped)| escaped)),
                    '\'' => {
                        end = Some(i);
                        break;
                    }
                    c => key.push(c),
                }
            }
            let Some(after) = end.and_then(|e| quoted[e + 1..].strip_prefix(']')) else {
                break;
            };
            push_name(&mut out, &key);
            rest = after;
        } else if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((index, after)) = bracketed.split_once(']') else {
                break;
            };
            out.push_str(&format!("[{index}]"));
            rest = after;
        } else if let Some(dotted_name) = rest.strip_prefix('.') {
            let end = dotted_name.find(['.', '[']).unwrap_or(dotted_name.len());
            push_name(&mut out, &dotted_name[..end]);
            rest = &dotted_name[end..];
        } else {
            push_name(&mut out, rest);
            break;
        }
    }
    out
}

/// A schema subtree without rules (those are evaluated at their own nodes) or descriptions.
fn without_rules(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let stripped = match (key.as_str(), value) {
            ("description", _) | (VALIDATIONS, _) => continue,
            ("properties", Value::Object(props)) => {
                Value::Object(props.iter().map(|(k, v)| (k.clone(), without_rules(v))).collect())
            }
            ("items" | "additionalProperties" | "not", v) => without_rules(v),
            ("allOf" | "anyOf" | "oneOf", Value::Array(branches)) => {
                Value::Array(branches.iter().map(without_rules).collect())
            }
            (_, v) => v.clone(),
        };
        out.insert(key.clone(), stripped);
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// Validation entry point

/// OpenAPI/structural validation (type, nullable, required, enum, bounds, multipleOf, lengths,
/// pattern, items, properties, formats incl. int32/int64 ranges, int-or-string, allOf/anyOf/
/// oneOf/not), x-kubernetes-list-type set/map uniqueness, then the CEL rules — unless an earlier
/// error is of a blocking kind, in which case the apiserver's "some validation rules were not
/// checked" error is added instead. With `old` (an update), errors on values that correlate with
/// an unchanged old value are ratcheted away (CRDValidationRatcheting, on by default), list-type
/// errors are only reported if `old` had none, and transition rules (`oldSelf`) run.
/// Call it on the pruned and defaulted object, as the apiserver does.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let regex = Regex::new();
    let mut errors = Vec::new();
    OpenApi { regex: &regex, prefix: None }.check(schema, obj, "", old, &mut errors);

    let mut list_errors = Vec::new();
    check_list_types(schema, obj, "", &mut list_errors);
    if let Some(old) = old {
        let mut old_list_errors = Vec::new();
        check_list_types(schema, old, "", &mut old_list_errors);
        if !old_list_errors.is_empty() {
            list_errors.clear();
        }
    }
    errors.extend(list_errors);

    if !has_rules(schema) {
        return errors;
    }
    if errors.iter().any(|e| e.kind.blocks_cel()) {
        let detail = "some validation rules were not checked because the object was invalid; \
                      correct the existing errors to complete validation";
        errors.push(FieldError::invalid(NIL_PATH, Some(Value::Null), detail));
        return errors;
    }
    let unchanged = old.is_some_and(|o| correlated_equal(schema, obj, o));
    let cel = Cel { validator: kube_cel::Validator::new() };
    cel.walk(schema, obj, old, "", unchanged, &mut errors);
    errors
}

// ---------------------------------------------------------------------------------------------
// Checking a CRD's schema

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Field,
    Item,
}

struct SchemaLint<'r> {
    regex: &'r Regex,
    errors: Vec<FieldError>,
}

impl SchemaLint<'_> {
    /// `uncorrelatable`: the path of the nearest enclosing non-map list, where `oldSelf` is
    /// meaningless.
    fn node(&mut self, schema: &Value, path: &str, level: Level, uncorrelatable: Option<&str>) {
        let Value::Object(map) = schema else {
            self.errors.push(FieldError::invalid(path, Some(schema.clone()), "must be a schema object"));
            return;
        };
        let at = |key: &str| format!("{path}.{key}");
        for (key, what) in [
            ("$ref", "$ref"),
            ("definitions", "definitions"),
            ("patternProperties", "patternProperties"),
            ("dependencies", "dependencies"),
            ("additionalItems", "additionalItems"),
        ] {
            if map.contains_key(key) {
                self.errors.push(FieldError::forbidden(at(key), format!("{what} is not supported")));
            }
        }
        self.check_type(schema, path, level);
        if flag(schema, "uniqueItems") {
            let detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
            self.errors.push(FieldError::forbidden(at("uniqueItems"), detail));
        }
        if let Some(ap) = schema.get("additionalProperties") {
            if level == Level::Root {
                self.errors.push(FieldError::forbidden(at("additionalProperties"), "must not be used at the root"));
            }
            let props_present = properties(schema).is_some_and(|p| !p.is_empty());
            if props_present && ap != &Value::Bool(true) {
                let detail = "additionalProperties and properties are mutual exclusive";
                self.errors.push(FieldError::forbidden(at("additionalProperties"), detail));
            }
        }
        if schema.get(PRESERVE_UNKNOWN) == Some(&Value::Bool(false)) {
            let detail = "must be true or undefined";
            self.errors.push(FieldError::invalid(at(PRESERVE_UNKNOWN), Some(Value::Bool(false)), detail));
        }
        if flag(schema, INT_OR_STRING) {
            for key in [PRESERVE_UNKNOWN, EMBEDDED] {
                if flag(schema, key) {
                    let detail = format!("must be false if {INT_OR_STRING} is true");
                    self.errors.push(FieldError::invalid(at(key), Some(Value::Bool(true)), detail));
                }
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Err(e) = self.regex.is_match(pattern, "")
        {
            let detail = format!("must be a valid regular expression, but isn't: {e}");
            self.errors.push(FieldError::invalid(at("pattern"), Some(Value::from(pattern)), detail));
        }
        self.check_list_type(schema, path);
        if level == Level::Root
            && let Some(metadata) = properties(schema).and_then(|p| p.get("metadata"))
        {
            self.check_root_metadata(metadata, &format!("{path}.properties[metadata]"));
        }
        self.check_rules(schema, path, uncorrelatable);
        self.check_default(schema, path);

        for (key, prop) in properties(schema).into_iter().flatten() {
            self.node(prop, &format!("{path}.properties[{key}]"), Level::Field, uncorrelatable);
        }
        if let Some(item_schema) = schema.get("items") {
            if item_schema.is_array() {
                self.errors.push(FieldError::forbidden(at("items"), "items must be a schema object and not an array"));
            } else {
                let items_path = at("items");
                let inner = if list_type(schema) == Some("map") { uncorrelatable } else { Some(path) };
                self.node(item_schema, &items_path, Level::Item, inner);
            }
        }
        if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            self.node(ap, &at("additionalProperties"), Level::Field, uncorrelatable);
        }
    }

    fn check_type(&mut self, schema: &Value, path: &str, level: Level) {
        let type_path = format!("{path}.type");
        let ty = match schema.get("type") {
            None => "",
            Some(Value::String(t)) => t.as_str(),
            Some(other) => {
                self.errors.push(FieldError::invalid(&type_path, Some(other.clone()), "must be a string"));
                return;
            }
        };
        if ty == "null" {
            let detail = "type cannot be set to null, use nullable as an alternative";
            self.errors.push(FieldError::forbidden(&type_path, detail));
        } else if !ty.is_empty() && !OPENAPI_TYPES.contains(&ty) {
            let supported: Vec<String> = OPENAPI_TYPES.iter().map(|t| (*t).to_string()).collect();
            self.errors.push(FieldError::not_supported(&type_path, Value::from(ty), &supported));
        }
        if flag(schema, EMBEDDED) && ty != "object" {
            let detail = "must be object if x-kubernetes-embedded-resource is true";
            self.errors.push(FieldError::missing_or_invalid(&type_path, ty, detail));
        } else if ty.is_empty() && !flag(schema, INT_OR_STRING) && !flag(schema, PRESERVE_UNKNOWN) {
            let detail = match level {
                Level::Root => "must not be empty at the root",
                Level::Item => "must not be empty for specified array items",
                Level::Field => "must not be empty for specified object fields",
            };
            self.errors.push(FieldError::required(&type_path, detail));
        }
        if level == Level::Root && !ty.is_empty() && ty != "object" {
            self.errors.push(FieldError::invalid(&type_path, Some(Value::from(ty)), "must be object at the root"));
        }
        if ty == "array" && schema.get("items").is_none() {
            self.errors.push(FieldError::required(format!("{path}.items"), "must be specified"));
        }
    }

    fn check_list_type(&mut self, schema: &Value, path: &str) {
        let ty = schema_type(schema);
        let lt = schema.get(LIST_TYPE).map(|v| v.as_str().unwrap_or_default());
        let keys = schema.get(LIST_MAP_KEYS).and_then(Value::as_array).filter(|k| !k.is_empty());
        let at = |key: &str| format!("{path}.{key}");
        if let Some(lt) = lt {
            if ty != "array" {
                let detail = "must be array if x-kubernetes-list-type is specified";
                self.errors.push(FieldError::missing_or_invalid(at("type"), ty, detail));
            }
            if !matches!(lt, "atomic" | "set" | "map") {
                let supported = ["atomic", "set", "map"].map(String::from);
                self.errors.push(FieldError::not_supported(at(LIST_TYPE), Value::from(lt), &supported));
            }
        }
        if keys.is_some() && lt != Some("map") {
            let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
            self.errors.push(FieldError::missing_or_invalid(at(LIST_TYPE), lt.unwrap_or_default(), detail));
        }
        if lt == Some("map") {
            if keys.is_none() {
                let detail = "must not be empty if x-kubernetes-list-type is map";
                self.errors.push(FieldError::required(at(LIST_MAP_KEYS), detail));
            }
            if let Some(item_schema) = items(schema)
                && schema_type(item_schema) != "object"
            {
                let detail = "must be object if parent array's x-kubernetes-list-type is map";
                let got = Value::from(schema_type(item_schema));
                self.errors.push(FieldError::invalid(format!("{path}.items.type"), Some(got), detail));
            }
        }
    }

    /// Metadata at the root may only restrict `name` and `generateName`.
    fn check_root_metadata(&mut self, metadata: &Value, path: &str) {
        let allowed = |key: &str, value: &Value| match key {
            "type" => value == "object",
            "default" => true,
            "properties" => {
                value.as_object().is_some_and(|p| !p.is_empty() && p.keys().all(|k| k == "name" || k == "generateName"))
            }
            _ => false,
        };
        let extra = metadata.as_object().is_none_or(|m| m.iter().any(|(k, v)| !allowed(k, v)));
        if extra {
            let detail =
                "must not specify anything other than name and generateName, but metadata is implicitly specified";
            self.errors.push(FieldError::forbidden(path, detail));
        }
    }

    fn check_rules(&mut self, schema: &Value, path: &str, uncorrelatable: Option<&str>) {
        for (i, rule) in rules(schema).iter().enumerate() {
            let at = |key: &str| format!("{path}.{VALIDATIONS}[{i}].{key}");
            let text = |key: &str| rule.get(key).and_then(Value::as_str);
            let rule_text = text("rule").unwrap_or_default();
            let message = text("message");
            let trimmed_message = message.map(str::trim).unwrap_or_default();
            if rule_text.trim().is_empty() {
                self.errors.push(FieldError::required(at("rule"), "rule is not specified"));
                continue;
            }
            if message.is_some_and(|m| !m.is_empty()) && trimmed_message.is_empty() {
                self.errors.push(FieldError::invalid(
                    at("message"),
                    Some(Value::from(message)),
                    "must be non-empty if specified",
                ));
            } else if trimmed_message.contains('\n') {
                self.errors.push(FieldError::invalid(
                    at("message"),
                    Some(Value::from(message)),
                    "must not contain line breaks",
                ));
            } else if rule_text.trim().contains('\n') && trimmed_message.is_empty() {
                let detail = "message must be specified if rule contains line breaks";
                self.errors.push(FieldError::required(at("message"), detail));
            }
            if let Some(reason) = text("reason")
                && !CEL_REASONS.contains(&reason)
            {
                let supported = CEL_REASONS.map(String::from);
                self.errors.push(FieldError::not_supported(at("reason"), Value::from(reason), &supported));
            }
            if let Some(field_path) = text("fieldPath") {
                if field_path.trim().is_empty() {
                    let detail = "must be non-empty if specified";
                    self.errors.push(FieldError::invalid(at("fieldPath"), Some(Value::from(field_path)), detail));
                } else if field_path.contains('\n') {
                    let detail = "must not contain line breaks";
                    self.errors.push(FieldError::invalid(at("fieldPath"), Some(Value::from(field_path)), detail));
                }
            }
            match Program::compile(rule_text) {
                Err(e) => {
                    let detail = format!("compilation failed: {e}");
                    self.errors.push(FieldError::invalid(at("rule"), Some(rule.clone()), detail));
                }
                Ok(program) if program.references().has_variable("oldSelf") => {
                    if let Some(list_path) = uncorrelatable {
                        let detail = format!(
                            "oldSelf cannot be used on the uncorrelatable portion of the schema within {list_path}"
                        );
                        self.errors.push(FieldError::invalid(at("rule"), Some(Value::from(rule_text)), detail));
                    }
                }
                Ok(_) => {
                    if let Some(optional) = rule.get("optionalOldSelf") {
                        let detail = "may not be set if oldSelf is not used in rule";
                        self.errors.push(FieldError::invalid(at("optionalOldSelf"), Some(optional.clone()), detail));
                    }
                }
            }
            if let Some(expression) = text("messageExpression") {
                if expression.trim().is_empty() {
                    let detail = "messageExpression must be non-empty if specified";
                    self.errors.push(FieldError::required(at("messageExpression"), detail));
                } else if let Err(e) = Program::compile(expression) {
                    let detail = format!("messageExpression compilation failed: {e}");
                    self.errors.push(FieldError::invalid(at("messageExpression"), Some(rule.clone()), detail));
                }
            }
        }
    }

    /// A default must be pruned already and validate against the schema it sits in.
    fn check_default(&mut self, schema: &Value, path: &str) {
        let Some(default) = default_of(schema) else {
            return;
        };
        let mut pruned = default.clone();
        prune_value(Some(schema), &mut pruned, false, flag(schema, EMBEDDED), "", &mut Vec::new());
        if pruned != *default {
            let detail = "must not have unknown fields";
            self.errors.push(FieldError::invalid(format!("{path}.default"), Some(default.clone()), detail));
        }
        let checker = OpenApi { regex: self.regex, prefix: Some(format!("{path}.default")) };
        checker.check(schema, default, "", None, &mut self.errors);
    }
}

/// Checks a CRD's own versions[].schema.openAPIV3Schema is structural enough to serve (object
/// root, every node typed unless preserve-unknown/int-or-string, no $ref and other unsupported
/// keywords, list-type and metadata restrictions, valid patterns, defaults that validate), that
/// its CEL rules parse and use `oldSelf` only where old values correlate. Messages read like the
/// apiserver's; paths start at `openAPIV3Schema`, so prefix them with `spec.versions[N].schema.`.
pub fn check_crd_schema(schema: &Value) -> Vec<String> {
    let regex = Regex::new();
    let mut lint = SchemaLint { regex: &regex, errors: Vec::new() };
    lint.node(schema, "openAPIV3Schema", Level::Root, None);
    lint.errors.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CRD: &str = include_str!("../../../crds/memorystore.yaml");
    const EXAMPLE: &str = include_str!("../../../crds/examples/memorystore.yaml");

    fn ms_schema() -> Value {
        let crd: Value = serde_yaml::from_str(CRD).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn example() -> Value {
        serde_yaml::from_str(EXAMPLE).unwrap()
    }

    /// What the apiserver stores for a create: pruned, then defaulted.
    fn admitted(schema: &Value, mut obj: Value) -> Value {
        prune(schema, &mut obj);
        apply_defaults(schema, &mut obj);
        obj
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    fn ms_errors(obj: Value, old: Option<Value>) -> Vec<String> {
        let schema = ms_schema();
        let obj = admitted(&schema, obj);
        let old = old.map(|o| admitted(&schema, o));
        messages(&validate(&schema, &obj, old.as_ref()))
    }

    fn with_spec(patch: impl FnOnce(&mut Value)) -> Value {
        let mut obj = example();
        patch(&mut obj["spec"]);
        obj
    }

    #[test]
    fn defaults_fill_the_memorystore_example() {
        let schema = ms_schema();
        let mut obj = example();
        apply_defaults(&schema, &mut obj);
        let spec = &obj["spec"];
        assert_eq!(spec["auth"], json!({"audience": "pinak-memory-api", "issuer": "pinak-memory"}));
        assert_eq!(spec["embedding"], json!({"backend": "local", "dimensions": 384}));
        assert_eq!(
            spec["index"],
            json!({"efConstruction": 64, "efSearch": 100, "halfvec": true, "m": 16, "textSearchConfig": "english"})
        );
        assert_eq!(spec["paused"], json!(false));
        assert_eq!(spec["retention"], json!({"accessLogDays": 90}));
        assert_eq!(spec["vault"]["kvMount"], json!("secret"));
        assert_eq!(spec["vault"]["refreshInterval"], json!("5m"));
        assert_eq!(spec["database"]["reclaimPolicy"], json!("Retain"));
        // Present values win over defaults; optional fields without defaults stay absent.
        assert_eq!(spec["policy"], json!({"quarantineUntrustedWrites": true, "trustedClients": ["claude-code"]}));
        assert!(spec["api"].get("autoscaling").is_none());
        assert!(spec.get("tenant").is_none());
        assert!(obj.get("status").is_none());
        assert_eq!(obj["metadata"], example()["metadata"]);
        // On a null-free object this agrees with the defaulting kube-cel does before CEL rules.
        assert_eq!(obj, kube_cel::apply_defaults(&schema, &example()));
    }

    #[test]
    fn defaults_reach_into_objects_created_by_defaults_and_present_objects_only() {
        let schema = ms_schema();
        let mut obj =
            json!({"spec": {"database": {"adminCredentials": {}}, "api": {"autoscaling": {"maxReplicas": 5}}}});
        apply_defaults(&schema, &mut obj);
        assert_eq!(
            obj["spec"]["api"],
            json!({"mode": "Deployment", "replicas": 2, "autoscaling": {"maxReplicas": 5, "minReplicas": 2, "targetCPUUtilizationPercentage": 80}})
        );
        assert!(obj["spec"].get("vault").is_none(), "no default, so no object is invented");

        let schema = json!({"type": "object", "properties": {
            "a": {"type": "object", "default": {}, "properties": {
                "b": {"type": "integer", "default": 1},
                "c": {"type": "string", "nullable": true, "default": "x"},
            }},
            "n": {"type": "string", "default": "n"},
            "m": {"type": "object", "additionalProperties": {"type": "string", "default": "d"}},
            "l": {"type": "array", "items": {"type": "integer", "default": 7}},
            "p": {"type": "object", "properties": {"q": {"type": "integer", "default": 1}}},
            "z": {"type": "string", "default": null},
        }});
        let mut obj = json!({"n": null, "m": {"k": null, "j": "v"}, "l": [null, 3]});
        apply_defaults(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"a": {"b": 1, "c": "x"}, "n": "n", "m": {"k": "d", "j": "v"}, "l": [7, 3]}),
            "defaults are themselves defaulted, non-nullable nulls are replaced"
        );
        let mut obj = json!({"a": {"c": null}, "p": {}});
        apply_defaults(&schema, &mut obj);
        assert_eq!(obj, json!({"a": {"b": 1, "c": null}, "p": {"q": 1}, "n": "n"}), "nullable nulls are kept");
    }

    #[test]
    fn prune_removes_unknown_fields_and_reports_them_sorted() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                "known": {"type": "object", "properties": {"a": {"type": "string"}}},
            }},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
            "nonNull": {"type": "string"},
            "nullOk": {"type": "string", "nullable": true},
            "withDefault": {"type": "string", "default": "d"},
        }}}});
        let mut obj = json!({
            "apiVersion": "pinak.dev/v1alpha1", "kind": "Thing", "metadata": {"name": "n"},
            "spec": {
                "items": [{"name": "a", "bar": 1}, {"name": "b"}],
                "free": {"anything": {"deep": [1, {"x": 2}]}, "known": {"a": "x", "b": "y"}},
                "labels": {"k": "v"},
                "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1},
                "foo": 1, "nonNull": null, "nullOk": null, "withDefault": null,
            },
            "status": {"x": 1}, "extraTop": true,
        });
        let removed = prune(&schema, &mut obj);
        assert_eq!(
            removed,
            ["extraTop", "spec.embedded.extra", "spec.foo", "spec.free.known.b", "spec.items[0].bar", "status"]
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "pinak.dev/v1alpha1", "kind": "Thing", "metadata": {"name": "n"},
                "spec": {
                    "items": [{"name": "a"}, {"name": "b"}],
                    "free": {"anything": {"deep": [1, {"x": 2}]}, "known": {"a": "x"}},
                    "labels": {"k": "v"},
                    "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
                    "nullOk": null, "withDefault": null,
                },
            }),
            "non-nullable nulls without default are dropped silently; those with a default stay for defaulting"
        );
        assert!(prune(&schema, &mut obj).is_empty(), "pruning is idempotent");
    }

    #[test]
    fn prune_keeps_everything_under_preserve_unknown_and_wipes_untyped_objects() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "raw": {"type": "array"},
        }});
        let mut obj = json!({"x": [{"y": 1}], "list": [{"a": "1", "b": 2}], "raw": [{"z": 1}, 3]});
        // Unknown fields stay, declared ones are pruned again; an array without items has no known fields.
        assert_eq!(prune(&schema, &mut obj), ["list[0].b", "raw[0].z"]);
        assert_eq!(obj, json!({"x": [{"y": 1}], "list": [{"a": "1"}], "raw": [{}, 3]}));

        let schema = json!({"type": "object", "properties": {
            "m": {"type": "object", "additionalProperties": true},
            "arr": {"type": "array"},
        }});
        let mut obj = json!({"m": {"k": {"deep": 1}, "s": "kept"}, "arr": [{"gone": 1}, 2]});
        assert_eq!(prune(&schema, &mut obj), ["arr[0].gone", "m.k.deep"]);
        assert_eq!(obj, json!({"m": {"k": {}, "s": "kept"}, "arr": [{}, 2]}));
    }

    fn keyword_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
            "count": {"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 2},
            "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5},
            "big": {"type": "number", "maximum": 1000000, "exclusiveMaximum": true},
            "mode": {"type": "string", "enum": ["Fast", "Slow"]},
            "maybe": {"type": "string", "nullable": true, "enum": ["a"]},
            "level": {"type": "integer", "enum": [1, 2]},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": true, "items": {"type": "string"}},
            "labels": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "every": {"type": "string", "format": "duration"},
            "addr": {"type": "string", "format": "ipv4"},
            "short": {"type": "string", "format": "k8s-short-name"},
            "id": {"type": "string", "format": "uuid"},
            "blob": {"type": "string", "format": "byte"},
            "size": {"x-kubernetes-int-or-string": true},
            "small": {"type": "integer", "format": "int32"},
            "opt": {"type": "string", "nullable": true},
            "req": {"type": "string"},
            "either": {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        }}}})
    }

    fn keyword_errors(spec: Value) -> Vec<String> {
        let mut spec = spec;
        if spec.get("name").is_none() {
            spec["name"] = json!("ok");
        }
        messages(&validate(&keyword_schema(), &json!({"spec": spec}), None))
    }

    #[test]
    fn type_required_and_nullable() {
        assert_eq!(
            keyword_errors(json!({"name": 5})),
            [r#"spec.name: Invalid value: "integer": spec.name in body must be of type string: "integer""#]
        );
        assert_eq!(messages(&validate(&keyword_schema(), &json!({"spec": {}}), None)), ["spec.name: Required value"]);
        assert_eq!(
            messages(&validate(&keyword_schema(), &json!({}), None)),
            Vec::<String>::new(),
            "spec itself is optional"
        );
        assert_eq!(
            keyword_errors(json!({"req": null, "opt": null})),
            [r#"spec.req: Invalid value: "null": spec.req in body must be of type string: "null""#]
        );
        assert_eq!(
            keyword_errors(json!({"count": 4.0, "ratio": 1})),
            Vec::<String>::new(),
            "integral floats are integers, integers are numbers"
        );
        assert_eq!(
            keyword_errors(json!({"count": 2.5})),
            [
                r#"spec.count: Invalid value: "number": spec.count in body must be of type integer: "number""#,
                "spec.count: Invalid value: 2.5: spec.count in body should be a multiple of 2",
            ],
            "value checks still run after a type error"
        );
    }

    #[test]
    fn string_keywords_stop_at_the_first_failure() {
        assert_eq!(keyword_errors(json!({"name": "abcdefg"})), ["spec.name: Too long: may not be more than 5 bytes"]);
        assert_eq!(
            keyword_errors(json!({"name": "a"})),
            [r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#]
        );
        assert_eq!(
            keyword_errors(json!({"name": "AB"})),
            [r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#]
        );
        assert_eq!(keyword_errors(json!({"name": "ééé"})).len(), 1, "lengths count characters");
    }

    #[test]
    fn number_keywords() {
        assert_eq!(
            keyword_errors(json!({"count": 0})),
            ["spec.count: Invalid value: 0: spec.count in body should be greater than or equal to 1"],
            "0 is a multiple of 2"
        );
        assert_eq!(
            keyword_errors(json!({"count": -3})),
            [
                "spec.count: Invalid value: -3: spec.count in body should be a multiple of 2",
                "spec.count: Invalid value: -3: spec.count in body should be greater than or equal to 1",
            ],
            "multipleOf, then minimum"
        );
        assert_eq!(
            keyword_errors(json!({"count": 3})),
            ["spec.count: Invalid value: 3: spec.count in body should be a multiple of 2"]
        );
        assert_eq!(
            keyword_errors(json!({"count": 12})),
            ["spec.count: Invalid value: 12: spec.count in body should be less than or equal to 10"]
        );
        assert_eq!(
            keyword_errors(json!({"ratio": 0})),
            ["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"]
        );
        assert_eq!(
            keyword_errors(json!({"ratio": 2.5})),
            ["spec.ratio: Invalid value: 2.5: spec.ratio in body should be less than or equal to 1.5"]
        );
        assert_eq!(
            keyword_errors(json!({"big": 1e6})),
            ["spec.big: Invalid value: 1e+06: spec.big in body should be less than 1e+06"]
        );
        assert_eq!(
            keyword_errors(json!({"small": 2147483648_i64})),
            [r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.small"#]
        );
        assert!(keyword_errors(json!({"small": -2147483648_i64})).is_empty());
    }

    #[test]
    fn enum_keyword() {
        assert_eq!(
            keyword_errors(json!({"mode": "Medium"})),
            [r#"spec.mode: Unsupported value: "Medium": supported values: "Fast", "Slow""#]
        );
        assert_eq!(
            keyword_errors(json!({"level": 3})),
            [r#"spec.level: Unsupported value: 3: supported values: "1", "2""#]
        );
        assert!(keyword_errors(json!({"level": 2.0, "mode": "Slow"})).is_empty());
        // kube-openapi never accepts null for an enum, nullable or not.
        assert_eq!(
            keyword_errors(json!({"maybe": null})),
            [r#"spec.maybe: Unsupported value: null: supported values: "a""#]
        );
    }

    #[test]
    fn array_and_object_keywords() {
        assert_eq!(
            keyword_errors(json!({"tags": []})),
            ["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
        );
        assert_eq!(
            keyword_errors(json!({"tags": ["a", "b", "c"]})),
            ["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(
            keyword_errors(json!({"tags": ["a", "a"]})),
            [r#"spec.tags: Invalid value: "": spec.tags in body shouldn't contain duplicates"#]
        );
        assert_eq!(
            keyword_errors(json!({"tags": [1]})),
            [r#"spec.tags[0]: Invalid value: "integer": spec.tags[0] in body must be of type string: "integer""#]
        );
        assert_eq!(
            keyword_errors(json!({"labels": {}})),
            ["spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties"]
        );
        assert_eq!(
            keyword_errors(json!({"labels": {"a": "1", "b": "2", "c": "3"}})),
            ["spec.labels: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(
            keyword_errors(json!({"labels": {"a": 1}})),
            [r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#]
        );
    }

    #[test]
    fn formats_and_int_or_string() {
        let ok = json!({
            "when": "2024-02-29T10:00:00.5+02:00", "day": "2000-02-29", "every": "1h30m", "addr": "010.0.0.1",
            "short": "a-b", "id": "123e4567-e89b-12d3-a456-426614174000", "blob": "aGk=", "size": "10Gi",
        });
        assert_eq!(keyword_errors(ok), Vec::<String>::new());
        assert!(keyword_errors(json!({"every": "5 minutes", "size": 3})).is_empty(), "scala-style durations pass");
        for (field, bad) in [
            ("when", "2024-02-30T10:00:00Z"),
            ("when", "2024-01-01 10:00:00"),
            ("day", "2001-02-29"),
            ("every", "soon"),
            ("addr", "256.0.0.1"),
            ("short", "A-b"),
            ("id", "not-a-uuid"),
            ("blob", "a"),
        ] {
            let format = keyword_schema()["properties"]["spec"]["properties"][field]["format"].clone();
            let format = format.as_str().unwrap().to_string();
            assert_eq!(
                keyword_errors(json!({field: bad})),
                [format!(
                    r#"spec.{field}: Invalid value: "{bad}": spec.{field} in body must be of type {format}: "{bad}""#
                )],
                "{field}={bad}"
            );
        }
        assert_eq!(
            keyword_errors(json!({"size": true})),
            [r#"spec.size: Invalid value: "boolean": spec.size in body must be of type integer,string: "boolean""#]
        );
        assert_eq!(
            keyword_errors(json!({"when": 5})),
            [r#"spec.when: Invalid value: "int64": spec.when in body must be of type date-time: "int64""#],
            "a formatted string field names the format for non-string values"
        );
    }

    #[test]
    fn junctors() {
        assert!(keyword_errors(json!({"either": {"a": 1}})).is_empty());
        assert_eq!(
            keyword_errors(json!({"either": {}})),
            [
                r#"<nil>: Invalid value: "": "spec.either" must validate one and only one schema (oneOf). Found none valid"#,
                "spec.either.a: Required value"
            ]
        );
        assert_eq!(
            keyword_errors(json!({"either": {"a": 1, "b": 2}})),
            [
                r#"<nil>: Invalid value: "": "spec.either" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
            ]
        );
    }

    fn list_schema() -> Value {
        json!({"type": "object", "properties": {
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}},
            "nested": {"type": "object", "additionalProperties": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "integer"}}},
        }})
    }

    #[test]
    fn list_type_uniqueness() {
        let schema = list_schema();
        let obj = json!({
            "set": ["a", "b", "a", "a", "b"],
            "conds": [{"type": "Ready"}, {"type": "Ready", "status": "True"}, {"status": "x"}, {}],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"protocol": "TCP", "port": 80}],
            "nested": {"k": [1, 1]},
        });
        assert_eq!(
            messages(&validate(&schema, &obj, None)),
            [
                r#"conds[1]: Duplicate value: {"type":"Ready"}"#,
                "conds[3]: Duplicate value: {}",
                "nested[k][1]: Duplicate value: 1",
                r#"ports[2]: Duplicate value: {"port":80,"protocol":"TCP"}"#,
                r#"set[2]: Duplicate value: "a""#,
                r#"set[4]: Duplicate value: "b""#,
            ]
        );
        assert_eq!(
            messages(&validate(&schema, &json!({"conds": [{"type": "a"}, "b"]}), None)),
            [
                r#"conds[1]: Invalid value: "string": conds[1] in body must be of type object: "string""#,
                r#"conds[1]: Invalid value: "b": must be an object for an array of list-type map"#,
            ]
        );
        // Updates only report list-type errors if the stored object had none.
        let old = json!({"set": ["x", "x"]});
        assert!(validate(&schema, &json!({"set": ["y", "y"]}), Some(&old)).is_empty());
        assert_eq!(validate(&schema, &json!({"set": ["y", "y"]}), Some(&json!({"set": []}))).len(), 1);
    }

    #[test]
    fn memorystore_example_passes_and_cel_rules_reject_both_credential_sources() {
        let admitted_example = admitted(&ms_schema(), example());
        assert!(validate(&ms_schema(), &admitted_example, None).is_empty());
        assert!(validate(&ms_schema(), &admitted_example, Some(&admitted_example)).is_empty());

        let both = with_spec(|s| s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin"));
        let expected =
            ["spec.database.adminCredentials: Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster"];
        assert_eq!(ms_errors(both.clone(), None), expected);
        let neither = with_spec(|s| s["database"]["adminCredentials"] = json!({}));
        assert_eq!(ms_errors(neither, None), expected);

        let schema = ms_schema();
        let errors = validate(&schema, &admitted(&schema, both), None);
        let (text, causes) = invalid_message("MemoryStore", "pinak.dev", "notes", &errors);
        assert_eq!(
            text,
            r#"MemoryStore.pinak.dev "notes" is invalid: spec.database.adminCredentials: Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster"#
        );
        assert_eq!(
            causes,
            [json!({
                "reason": "FieldValueInvalid",
                "message": "Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster",
                "field": "spec.database.adminCredentials",
            })]
        );
    }

    #[test]
    fn memorystore_rules_on_nested_objects() {
        let no_vault = with_spec(|s| {
            s["database"]["adminCredentials"] = json!({"vaultPath": "db/admin"});
            s.as_object_mut().unwrap().remove("vault");
        });
        assert_eq!(
            ms_errors(no_vault, None),
            ["spec: Invalid value: database.adminCredentials.vaultPath requires spec.vault"]
        );
        let bad_hpa = with_spec(|s| s["api"]["autoscaling"] = json!({"minReplicas": 4, "maxReplicas": 2}));
        assert_eq!(
            ms_errors(bad_hpa, None),
            ["spec.api.autoscaling: Invalid value: autoscaling.maxReplicas must be at least minReplicas"]
        );
        let null_hpa = with_spec(|s| s["api"]["autoscaling"] = Value::Null);
        assert!(ms_errors(null_hpa, None).is_empty(), "rules are not evaluated on null values");
        let reserved = with_spec(|s| s["database"]["schema"] = json!("pg_temp"));
        assert_eq!(
            ms_errors(reserved, None),
            ["spec.database: Invalid value: database.schema must not start with pg_ (reserved by Postgres)"]
        );
    }

    #[test]
    fn transition_rule_makes_the_schema_immutable() {
        let old = with_spec(|s| s["database"]["schema"] = json!("ms_custom"));
        let immutable = ["spec.database: Invalid value: database.schema is immutable"];
        assert!(ms_errors(old.clone(), Some(old.clone())).is_empty());
        let changed = with_spec(|s| s["database"]["schema"] = json!("ms_other"));
        assert_eq!(ms_errors(changed.clone(), Some(old.clone())), immutable);
        assert!(ms_errors(changed, None).is_empty(), "transition rules only run on update");
        assert_eq!(ms_errors(example(), Some(old.clone())), immutable, "removing it");
        assert_eq!(ms_errors(old.clone(), Some(example())), immutable, "setting it later");
        let other_field = with_spec(|s| {
            s["database"]["schema"] = json!("ms_custom");
            s["database"]["reclaimPolicy"] = json!("Delete");
        });
        assert!(ms_errors(other_field, Some(old)).is_empty());
    }

    #[test]
    fn blocking_errors_skip_cel_rules() {
        let obj = with_spec(|s| {
            s["database"]["reclaimPolicy"] = json!("Sometimes");
            s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin");
        });
        assert_eq!(
            ms_errors(obj, None),
            [
                r#"spec.database.reclaimPolicy: Unsupported value: "Sometimes": supported values: "Retain", "Delete""#,
                "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; \
                 correct the existing errors to complete validation",
            ]
        );
        let not_blocking = with_spec(|s| {
            s["tenant"] = json!("");
            s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin");
        });
        assert_eq!(
            ms_errors(not_blocking, None),
            [
                r#"spec.tenant: Invalid value: "": spec.tenant in body should be at least 1 chars long"#,
                "spec.database.adminCredentials: Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster",
            ]
        );
    }

    #[test]
    fn updates_ratchet_errors_on_unchanged_values() {
        let stored = with_spec(|s| {
            s["tenant"] = json!("");
            s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin");
        });
        let untouched = with_spec(|s| {
            s["tenant"] = json!("");
            s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin");
            s["retention"] = json!({"accessLogDays": 30});
        });
        assert!(ms_errors(untouched, Some(stored.clone())).is_empty());
        let touched = with_spec(|s| {
            s["tenant"] = json!("");
            s["database"]["adminCredentials"]["vaultPath"] = json!("db/other");
        });
        assert_eq!(
            ms_errors(touched, Some(stored)),
            ["spec.database.adminCredentials: Invalid value: set exactly one of secretRef, vaultPath or cnpgCluster"]
        );
    }

    fn rule_schema() -> Value {
        json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "self.spec.a < self.spec.b",
                "messageExpression": "'a (' + string(self.spec.a) + ') must be below b'"}],
            "properties": {"spec": {"type": "object",
                "x-kubernetes-validations": [{"rule": "self.a > 0", "fieldPath": ".a", "message": "a must be positive"}],
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": "integer", "x-kubernetes-validations": [{"rule": "self % 2 == 0"}]},
                    "name": {"type": "string", "x-kubernetes-validations": [
                        {"rule": "self != 'root'", "message": "  reserved  ", "reason": "FieldValueForbidden"},
                        {"rule": "self != 'dup'", "reason": "FieldValueDuplicate"},
                        {"rule": "self == 'boom' ? int(self) > 0 : true", "message": "no boom"},
                    ]},
                    "disks": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string"}, "size": {"type": "integer"}},
                            "x-kubernetes-validations": [{"rule": "self.size == oldSelf.size", "message": "size is immutable"}]}},
                    "atomic": {"type": "array", "items": {"type": "object", "properties": {"size": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.size == oldSelf.size", "message": "never checked"}]}},
                },
            }},
        })
    }

    fn rule_errors(spec: Value, old_spec: Option<Value>) -> Vec<String> {
        let old = old_spec.map(|s| json!({"spec": s}));
        messages(&validate(&rule_schema(), &json!({"spec": spec}), old.as_ref()))
    }

    #[test]
    fn cel_messages_reasons_and_field_paths() {
        assert!(rule_errors(json!({"a": 1, "b": 2, "name": "x"}), None).is_empty());
        assert_eq!(
            rule_errors(json!({"a": 5, "b": 4}), None),
            ["<nil>: Invalid value: a (5) must be below b"],
            "root rules report the nil path; messageExpression wins"
        );
        assert_eq!(
            rule_errors(json!({"a": 0, "b": 3}), None),
            ["spec.a: Invalid value: a must be positive", "spec.b: Invalid value: 3: failed rule: self % 2 == 0"]
        );
        assert_eq!(rule_errors(json!({"a": 1, "b": 2, "name": "root"}), None), ["spec.name: Forbidden: reserved"]);
        assert_eq!(rule_errors(json!({"a": 1, "b": 2, "name": "dup"}), None), [r#"spec.name: Duplicate value: "dup""#]);
        let eval = rule_errors(json!({"a": 1, "b": 2, "name": "boom"}), None);
        assert_eq!(eval.len(), 1);
        assert!(
            eval[0].starts_with(r#"spec.name: Invalid value: "string": "#)
                && eval[0].ends_with(" evaluating rule: no boom"),
            "{eval:?}"
        );
    }

    #[test]
    fn transition_rules_correlate_map_lists_by_key_and_never_atomic_lists() {
        let old = json!({"a": 1, "b": 2, "disks": [{"name": "x", "size": 1}, {"name": "y", "size": 2}],
            "atomic": [{"size": 1}]});
        let reordered = json!({"a": 1, "b": 2, "disks": [{"name": "y", "size": 2}, {"name": "x", "size": 1}, {"name": "z", "size": 9}],
            "atomic": [{"size": 5}]});
        assert!(rule_errors(reordered, Some(old.clone())).is_empty());
        let resized = json!({"a": 1, "b": 2, "disks": [{"name": "x", "size": 1}, {"name": "y", "size": 3}]});
        assert_eq!(rule_errors(resized, Some(old)), ["spec.disks[1]: Invalid value: size is immutable"]);
    }

    #[test]
    fn invalid_message_formats() {
        let a = FieldError::required("spec.a", "");
        let b = FieldError::invalid("spec.b", Some(json!({"k": "<v>"})), "bad");
        let (text, causes) = invalid_message("Widget", "", "w\"1", &[a.clone(), b.clone(), a.clone()]);
        assert_eq!(
            text,
            r#"Widget "w\"1" is invalid: [spec.a: Required value, spec.b: Invalid value: {"k":"\u003cv\u003e"}: bad]"#
        );
        assert_eq!(causes.len(), 3, "causes are not deduplicated");
        assert_eq!(causes[0], json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.a"}));
        let (text, causes) = invalid_message("Widget", "example.com", "w", &[]);
        assert_eq!(text, r#"Widget.example.com "w" is invalid"#);
        assert!(causes.is_empty());
        let (text, _) = invalid_message("Widget", "example.com", "w", &[a.clone(), a]);
        assert_eq!(text, r#"Widget.example.com "w" is invalid: spec.a: Required value"#);
        assert_eq!(FieldError::too_long("x", 1).body(), "Too long: may not be more than 1 byte");
        assert_eq!(FieldError::too_many("x", 2, 1).to_string(), "x: Too many: 2: must have at most 1 item");
    }

    #[test]
    fn go_formatting() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.0), "-2");
        assert_eq!(go_quote("a\"b\\c\n\u{1}é\u{a0}"), r#""a\"b\\c\n\x01é\u00a0""#);
        assert_eq!(normalize_field_path(".a['b.c'][0].d"), "a.b.c[0].d");
        assert_eq!(normalize_field_path("['it\\'s']"), "it's");
        assert!(is_json_integer(3.0) && !is_json_integer(3.5) && !is_json_integer(f64::NAN));
    }

    #[test]
    fn memorystore_crd_schema_is_servable() {
        assert_eq!(check_crd_schema(&ms_schema()), Vec::<String>::new());
    }

    #[test]
    fn check_crd_schema_reports_unservable_schemas() {
        let schema = json!({"type": "object",
            "additionalProperties": {"type": "string"},
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                "untyped": {"description": "no type"},
                "ref": {"$ref": "#/definitions/x", "type": "object"},
                "list": {"type": "array", "uniqueItems": true},
                "odd": {"type": "strin"},
                "named": {"type": "string", "pattern": "(", "default": 5},
                "obj": {"type": "object", "properties": {"a": {"type": "integer"}}, "default": {"a": 1, "b": 2}},
                "conds": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "string"}},
                "atomic": {"type": "array", "items": {"type": "object",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}, {"rule": "self.x ==", "message": "m"},
                        {"rule": "true", "reason": "Nope", "optionalOldSelf": true}]}},
            },
        });
        let errors = check_crd_schema(&schema);
        let expected = [
            "openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root",
            "openAPIV3Schema.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
            r#"openAPIV3Schema.properties[atomic].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within openAPIV3Schema.properties[atomic]"#,
            r#"openAPIV3Schema.properties[atomic].items.x-kubernetes-validations[2].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#,
            "openAPIV3Schema.properties[atomic].items.x-kubernetes-validations[2].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule",
            "openAPIV3Schema.properties[conds].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
            r#"openAPIV3Schema.properties[conds].items.type: Invalid value: "string": must be object if parent array's x-kubernetes-list-type is map"#,
            "openAPIV3Schema.properties[list].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            "openAPIV3Schema.properties[list].items: Required value: must be specified",
            // kube-openapi names the default's root "", hence the leading blank.
            r#"openAPIV3Schema.properties[named].default: Invalid value: "integer":  in body must be of type string: "integer""#,
            r#"openAPIV3Schema.properties[obj].default: Invalid value: {"a":1,"b":2}: must not have unknown fields"#,
            r#"openAPIV3Schema.properties[odd].type: Unsupported value: "strin": supported values: "array", "boolean", "integer", "number", "object", "string""#,
            "openAPIV3Schema.properties[ref].$ref: Forbidden: $ref is not supported",
            "openAPIV3Schema.properties[untyped].type: Required value: must not be empty for specified object fields",
        ];
        for e in expected {
            assert!(errors.iter().any(|got| got == e), "missing {e}\nin {errors:#?}");
        }
        assert!(errors.iter().any(|e| e.starts_with("openAPIV3Schema.properties[named].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: ")));
        assert!(errors.iter().any(|e| e.starts_with(
            "openAPIV3Schema.properties[atomic].items.x-kubernetes-validations[1].rule: Invalid value: {"
        ) && e.contains("compilation failed: ")));
        assert_eq!(
            check_crd_schema(&json!({"type": "string"})),
            [r#"openAPIV3Schema.type: Invalid value: "string": must be object at the root"#]
        );
    }
}
