//! Decoding of `application/vnd.kubernetes.protobuf` request bodies.
//!
//! client-go's typed clients (kubectl `create …`, `auth can-i`, Helm's release storage) send objects as the
//! magic `k8s\0` followed by a `runtime.Unknown` envelope whose `raw` field holds the object's own protobuf
//! encoding. The server only understands JSON, so the body is turned into exactly the JSON the same client
//! would have sent with `application/json`: what Go's `encoding/json` makes of the decoded Go struct.
//!
//! Each message is a static field table: numbers come from the `generated.proto` files of k8s.io/api and
//! k8s.io/apimachinery, names and presence from the Go `json` tags. One generic decoder walks the tables.

use std::fmt;

use Presence::{Always, IfSent, NullIfUnsent, OmitEmpty};
use Ty::{Bool, Bytes, FieldsV1, Int32, Int64, IntOrString, MicroTime, Msg, Str, StrArray, Time};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Datelike};
use serde_json::{Map, Value};

const MAGIC: &[u8] = b"k8s\0";

/// Protobuf reserves the field numbers above this.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix nanoseconds; `metav1.Time` marshals it as `null`.
const GO_ZERO_TIME_NANOS: i128 = -62_135_596_800 * NANOS_PER_SECOND;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The envelope names a kind that has no field table here.
    Unsupported { api_version: String, kind: String },
    /// The body is not a well-formed Kubernetes protobuf message.
    Malformed(String),
}

impl DecodeError {
    /// Prefixes a nested decoding error with the field it happened in, so the message locates the problem.
    fn within(self, field: &str) -> Self {
        match self {
            DecodeError::Malformed(message) => DecodeError::Malformed(format!("{field}: {message}")),
            unsupported => unsupported,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Unsupported { api_version, kind } => {
                write!(f, "protobuf encoding of {kind} in {api_version:?} is not supported")
            }
            DecodeError::Malformed(message) => write!(f, "malformed protobuf body: {message}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn malformed(message: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(message.into())
}

/// Decodes a protobuf request body; Unsupported for a kind not modelled (the server answers 415).
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let envelope =
        body.strip_prefix(MAGIC).ok_or_else(|| malformed("body does not start with the k8s\\0 protobuf magic"))?;
    if envelope.is_empty() {
        return Err(malformed("empty body after the protobuf magic"));
    }
    let [type_meta, raw] = last_wires(envelope, [1, 2])?;
    let type_meta = payload(type_meta).map_err(|e| e.within("typeMeta"))?;
    let raw = payload(raw).map_err(|e| e.within("raw"))?;
    let [api_version, kind] = last_wires(type_meta, [1, 2]).map_err(|e| e.within("typeMeta"))?;
    let api_version = lossy(payload(api_version).map_err(|e| e.within("typeMeta.apiVersion"))?);
    let kind = lossy(payload(kind).map_err(|e| e.within("typeMeta.kind"))?);
    // The real server would fall back to the kind implied by the URL; clients built on client-go always set it.
    if kind.is_empty() {
        return Err(malformed("envelope typeMeta has no kind"));
    }
    let Some(fields) = fields_for(&api_version, &kind) else {
        return Err(DecodeError::Unsupported { api_version, kind });
    };
    let decoded = decode_message(raw, fields).map_err(|e| e.within(&kind))?;
    let mut object = Map::new();
    if !api_version.is_empty() {
        object.insert("apiVersion".to_owned(), Value::String(api_version));
    }
    object.insert("kind".to_owned(), Value::String(kind));
    object.extend(decoded);
    Ok(Value::Object(object))
}

fn fields_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    // Every group version registers meta/v1 DeleteOptions under its own apiVersion, with the same encoding.
    if kind == "DeleteOptions" {
        return Some(DELETE_OPTIONS);
    }
    KINDS.iter().find(|(version, name, _)| *version == api_version && *name == kind).map(|(_, _, fields)| *fields)
}

fn lossy(bytes: &[u8]) -> String {
    // Go's decoders accept any bytes in a string and encoding/json replaces invalid UTF-8 with U+FFFD.
    String::from_utf8_lossy(bytes).into_owned()
}

#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    /// Fixed-width values are only ever skipped: no modelled field uses them.
    Fixed,
    Bytes(&'a [u8]),
}

impl Wire<'_> {
    fn describe(self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed => "fixed-width",
            Wire::Bytes(_) => "length-delimited",
        }
    }
}

/// Iterates over the fields of one message; stops after the first error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte =
                *self.buf.get(self.pos).ok_or_else(|| malformed(format!("truncated varint at byte {}", self.pos)))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed(format!("varint longer than 10 bytes ending at byte {}", self.pos)))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let available = self.buf.len() - self.pos;
        let len = usize::try_from(len).ok().filter(|&len| len <= available).ok_or_else(|| {
            malformed(format!("truncated: {len} bytes needed at byte {}, {available} left", self.pos))
        })?;
        let taken = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u32, Wire<'a>), DecodeError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(malformed(format!("illegal field number {number} at byte {}", self.pos)));
        }
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => self.take(8).map(|_| Wire::Fixed)?,
            2 => {
                let len = self.varint()?;
                Wire::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Wire::Fixed)?,
            // Groups (3, 4) are deprecated proto2 features that no Kubernetes type uses.
            other => return Err(malformed(format!("field {number}: unsupported wire type {other}"))),
        };
        Ok((number as u32, wire))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Wire<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

/// The last occurrence of each wanted field, for the few messages read without a field table.
fn last_wires<'a, const N: usize>(buf: &'a [u8], numbers: [u32; N]) -> Result<[Option<Wire<'a>>; N], DecodeError> {
    let mut found = [None; N];
    for field in Reader::new(buf) {
        let (number, wire) = field?;
        if let Some(slot) = numbers.iter().position(|&wanted| wanted == number) {
            found[slot] = Some(wire);
        }
    }
    Ok(found)
}

/// The payload of a length-delimited field; an absent field reads as empty, as in proto2 defaults.
fn payload(wire: Option<Wire<'_>>) -> Result<&[u8], DecodeError> {
    match wire {
        None => Ok(&[]),
        Some(Wire::Bytes(bytes)) => Ok(bytes),
        Some(other) => Err(malformed(format!("expected length-delimited, got {}", other.describe()))),
    }
}

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Bool,
    Int32,
    Int64,
    /// `metav1.Time`: whole seconds, RFC 3339.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with exactly six fractional digits.
    MicroTime,
    IntOrString,
    /// `metav1.FieldsV1`: a message whose raw bytes are already the JSON to emit.
    FieldsV1,
    /// A message of `repeated string items = 1` that Go defines as `[]string` (ExtraValue, AttestationValue).
    StrArray,
    Msg(&'static [Field]),
}

impl Ty {
    /// Repeated occurrences of a singular message merge, which for protobuf is decoding their concatenation.
    fn merges(self) -> bool {
        matches!(self, Ty::Msg(_) | Ty::IntOrString | Ty::FieldsV1 | Ty::StrArray)
    }

    /// What decodes to the Go zero value of this type.
    fn empty_wire(self) -> Wire<'static> {
        match self {
            Ty::Bool | Ty::Int32 | Ty::Int64 => Wire::Varint(0),
            _ => Wire::Bytes(&[]),
        }
    }
}

#[derive(Clone, Copy)]
enum Card {
    One,
    List,
    /// `map<string, ty>`.
    Map,
}

/// How the Go `json` tag treats the field when it is empty or was not sent.
#[derive(Clone, Copy)]
enum Presence {
    /// `omitempty` on a value type (or `omitzero` on a Time): dropped when zero or empty. Never used for structs,
    /// which `omitempty` does not drop.
    OmitEmpty,
    /// A value type without `omitempty`, or any struct: always written, as its zero value when not sent
    /// (an unsent slice or map is nil, hence `null`).
    Always,
    /// A pointer with `omitempty`: written, even when zero, exactly when the client sent it.
    IfSent,
    /// A pointer without `omitempty`: `null` when not sent.
    NullIfUnsent,
}

struct Field {
    number: u32,
    name: &'static str,
    ty: Ty,
    card: Card,
    presence: Presence,
}

const fn one(number: u32, name: &'static str, ty: Ty, presence: Presence) -> Field {
    Field { number, name, ty, card: Card::One, presence }
}

const fn list(number: u32, name: &'static str, ty: Ty, presence: Presence) -> Field {
    Field { number, name, ty, card: Card::List, presence }
}

/// Every map in the modelled types is `omitempty`.
const fn map(number: u32, name: &'static str, value: Ty) -> Field {
    Field { number, name, ty: value, card: Card::Map, presence: Presence::OmitEmpty }
}

fn decode_message(buf: &[u8], fields: &'static [Field]) -> Result<Map<String, Value>, DecodeError> {
    let mut seen: Vec<Vec<Wire<'_>>> = vec![Vec::new(); fields.len()];
    for field in Reader::new(buf) {
        let (number, wire) = field?;
        // Fields this table does not know are skipped, so bodies from newer clients still decode.
        if let Some(slot) = fields.iter().position(|f| f.number == number) {
            seen[slot].push(wire);
        }
    }
    let mut object = Map::new();
    for (field, wires) in fields.iter().zip(&seen) {
        let value = decode_field(field, wires).map_err(|e| e.within(field.name))?;
        if let Some(value) = apply_presence(field, value)? {
            object.insert(field.name.to_owned(), value);
        }
    }
    Ok(object)
}

/// The field's JSON value, or None when it never appeared on the wire.
fn decode_field(field: &Field, wires: &[Wire<'_>]) -> Result<Option<Value>, DecodeError> {
    let Some(&last) = wires.last() else {
        return Ok(None);
    };
    let value = match field.card {
        Card::One if field.ty.merges() => {
            let parts = wires.iter().map(|&wire| payload(Some(wire))).collect::<Result<Vec<_>, _>>()?;
            decode_value(field.ty, Wire::Bytes(&parts.concat()))?
        }
        Card::One => decode_value(field.ty, last)?,
        Card::List => Value::Array(wires.iter().map(|&wire| decode_value(field.ty, wire)).collect::<Result<_, _>>()?),
        Card::Map => {
            let mut entries = Map::new();
            for &wire in wires {
                let [key, value] = last_wires(payload(Some(wire))?, [1, 2])?;
                let key = lossy(payload(key).map_err(|e| e.within("key"))?);
                // A missing value is the empty encoding of its type, as in Go's generated decoders.
                let value =
                    decode_value(field.ty, value.unwrap_or(field.ty.empty_wire())).map_err(|e| e.within(&key))?;
                entries.insert(key, value);
            }
            Value::Object(entries)
        }
    };
    Ok(Some(value))
}

fn apply_presence(field: &Field, value: Option<Value>) -> Result<Option<Value>, DecodeError> {
    Ok(match (value, field.presence) {
        (Some(value), Presence::OmitEmpty) if is_empty(&value) => None,
        (Some(value), _) => Some(value),
        (None, Presence::OmitEmpty | Presence::IfSent) => None,
        (None, Presence::NullIfUnsent) => Some(Value::Null),
        (None, Presence::Always) => Some(match field.card {
            Card::One => decode_value(field.ty, field.ty.empty_wire())?,
            Card::List | Card::Map => Value::Null,
        }),
    })
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_i64() == Some(0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(entries) => entries.is_empty(),
    }
}

fn decode_value(ty: Ty, wire: Wire<'_>) -> Result<Value, DecodeError> {
    // Narrowing casts mirror Go's generated decoders, which truncate oversized varints the same way.
    Ok(match (ty, wire) {
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        (Ty::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::Str, Wire::Bytes(bytes)) => Value::String(lossy(bytes)),
        (Ty::Bytes, Wire::Bytes(bytes)) => Value::String(BASE64.encode(bytes)),
        (Ty::Time, Wire::Bytes(bytes)) => timestamp(bytes, false)?,
        (Ty::MicroTime, Wire::Bytes(bytes)) => timestamp(bytes, true)?,
        (Ty::IntOrString, Wire::Bytes(bytes)) => int_or_string(bytes)?,
        (Ty::FieldsV1, Wire::Bytes(bytes)) => fields_v1(bytes)?,
        (Ty::StrArray, Wire::Bytes(bytes)) => decode_message(bytes, STR_ARRAY)?.remove("items").unwrap_or(Value::Null),
        (Ty::Msg(fields), Wire::Bytes(bytes)) => Value::Object(decode_message(bytes, fields)?),
        (_, wire) => return Err(malformed(format!("unexpected {} value", wire.describe()))),
    })
}

fn integer(message: &Map<String, Value>, name: &str) -> i64 {
    message.get(name).and_then(Value::as_i64).unwrap_or_default()
}

fn timestamp(bytes: &[u8], micro: bool) -> Result<Value, DecodeError> {
    // Go marshals the zero time as no bytes at all and unmarshals them back to it.
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let message = decode_message(bytes, TIMESTAMP)?;
    let seconds = integer(&message, "seconds");
    let nanos = integer(&message, "nanos");
    // metav1.Time drops the nanoseconds on decode; MicroTime truncates them towards zero to microseconds.
    let nanos = if micro { nanos - nanos % 1000 } else { 0 };
    let total = i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos);
    if total == GO_ZERO_TIME_NANOS {
        return Ok(Value::Null);
    }
    let time = i64::try_from(total.div_euclid(NANOS_PER_SECOND))
        .ok()
        .zip(u32::try_from(total.rem_euclid(NANOS_PER_SECOND)).ok())
        .and_then(|(secs, nsecs)| DateTime::from_timestamp(secs, nsecs))
        .filter(|time| (0..=9999).contains(&time.year()))
        .ok_or_else(|| malformed(format!("timestamp {seconds}s is outside years 0-9999")))?;
    let format = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    Ok(Value::String(time.format(format).to_string()))
}

fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut message = decode_message(bytes, INT_OR_STRING)?;
    let active = match integer(&message, "type") {
        0 => "intVal",
        1 => "strVal",
        other => {
            return Err(malformed(format!("IntOrString type {other} is neither 0 (int) nor 1 (string)")));
        }
    };
    Ok(message.remove(active).unwrap_or_default())
}

fn fields_v1(bytes: &[u8]) -> Result<Value, DecodeError> {
    let [raw] = last_wires(bytes, [1])?;
    let raw = payload(raw)?;
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| malformed(format!("fieldsV1 is not JSON: {e}")))
}

const KINDS: &[(&str, &str, &[Field])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "Secret", SECRET),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    ("v1", "Service", SERVICE),
    ("v1", "Event", EVENT),
    ("rbac.authorization.k8s.io/v1", "Role", ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", ROLE_BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", ROLE_BINDING),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", SELF_SUBJECT_ACCESS_REVIEW),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", SELF_SUBJECT_RULES_REVIEW),
    ("authorization.k8s.io/v1", "SubjectAccessReview", SUBJECT_ACCESS_REVIEW),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", SUBJECT_ACCESS_REVIEW),
    ("authentication.k8s.io/v1", "TokenRequest", TOKEN_REQUEST),
    ("authentication.k8s.io/v1", "TokenReview", TOKEN_REVIEW),
    ("authentication.k8s.io/v1", "SelfSubjectReview", SELF_SUBJECT_REVIEW),
    ("coordination.k8s.io/v1", "Lease", LEASE),
];

// k8s.io/apimachinery/pkg/apis/meta/v1 and pkg/util/intstr

const TIMESTAMP: &[Field] = &[one(1, "seconds", Int64, Always), one(2, "nanos", Int32, Always)];

const INT_OR_STRING: &[Field] =
    &[one(1, "type", Int64, Always), one(2, "intVal", Int32, Always), one(3, "strVal", Str, Always)];

const STR_ARRAY: &[Field] = &[list(1, "items", Str, Always)];

const OBJECT_META: &[Field] = &[
    one(1, "name", Str, OmitEmpty),
    one(2, "generateName", Str, OmitEmpty),
    one(3, "namespace", Str, OmitEmpty),
    one(4, "selfLink", Str, OmitEmpty),
    one(5, "uid", Str, OmitEmpty),
    one(6, "resourceVersion", Str, OmitEmpty),
    one(7, "generation", Int64, OmitEmpty),
    // `omitempty,omitzero` since Kubernetes 1.34, so a zero creationTimestamp is dropped rather than null.
    one(8, "creationTimestamp", Time, OmitEmpty),
    one(9, "deletionTimestamp", Time, IfSent),
    one(10, "deletionGracePeriodSeconds", Int64, IfSent),
    map(11, "labels", Str),
    map(12, "annotations", Str),
    list(13, "ownerReferences", Msg(OWNER_REFERENCE), OmitEmpty),
    list(14, "finalizers", Str, OmitEmpty),
    list(17, "managedFields", Msg(MANAGED_FIELDS_ENTRY), OmitEmpty),
];

const METADATA: Field = one(1, "metadata", Msg(OBJECT_META), Always);

const OWNER_REFERENCE: &[Field] = &[
    one(5, "apiVersion", Str, Always),
    one(1, "kind", Str, Always),
    one(3, "name", Str, Always),
    one(4, "uid", Str, Always),
    one(6, "controller", Bool, IfSent),
    one(7, "blockOwnerDeletion", Bool, IfSent),
];

const MANAGED_FIELDS_ENTRY: &[Field] = &[
    one(1, "manager", Str, OmitEmpty),
    one(2, "operation", Str, OmitEmpty),
    one(3, "apiVersion", Str, OmitEmpty),
    one(4, "time", Time, IfSent),
    one(6, "fieldsType", Str, OmitEmpty),
    one(7, "fieldsV1", FieldsV1, IfSent),
    one(8, "subresource", Str, OmitEmpty),
];

const DELETE_OPTIONS: &[Field] = &[
    one(1, "gracePeriodSeconds", Int64, IfSent),
    one(2, "preconditions", Msg(PRECONDITIONS), IfSent),
    one(3, "orphanDependents", Bool, IfSent),
    one(4, "propagationPolicy", Str, IfSent),
    list(5, "dryRun", Str, OmitEmpty),
    one(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool, IfSent),
];

const PRECONDITIONS: &[Field] = &[one(1, "uid", Str, IfSent), one(2, "resourceVersion", Str, IfSent)];

const LABEL_SELECTOR: &[Field] =
    &[map(1, "matchLabels", Str), list(2, "matchExpressions", Msg(SELECTOR_REQUIREMENT), OmitEmpty)];

/// LabelSelectorRequirement and FieldSelectorRequirement share their shape.
const SELECTOR_REQUIREMENT: &[Field] =
    &[one(1, "key", Str, Always), one(2, "operator", Str, Always), list(3, "values", Str, OmitEmpty)];

const CONDITION: &[Field] = &[
    one(1, "type", Str, Always),
    one(2, "status", Str, Always),
    one(3, "observedGeneration", Int64, OmitEmpty),
    one(4, "lastTransitionTime", Time, Always),
    one(5, "reason", Str, Always),
    one(6, "message", Str, Always),
];

// k8s.io/api/core/v1

const NAMESPACE: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(&[list(1, "finalizers", Str, OmitEmpty)]), Always),
    one(3, "status", Msg(NAMESPACE_STATUS), Always),
];

const NAMESPACE_STATUS: &[Field] =
    &[one(1, "phase", Str, OmitEmpty), list(2, "conditions", Msg(NAMESPACE_CONDITION), OmitEmpty)];

const NAMESPACE_CONDITION: &[Field] = &[
    one(1, "type", Str, Always),
    one(2, "status", Str, Always),
    one(4, "lastTransitionTime", Time, Always),
    one(5, "reason", Str, OmitEmpty),
    one(6, "message", Str, OmitEmpty),
];

const SECRET: &[Field] = &[
    METADATA,
    one(5, "immutable", Bool, IfSent),
    map(2, "data", Bytes),
    map(4, "stringData", Str),
    one(3, "type", Str, OmitEmpty),
];

const CONFIG_MAP: &[Field] =
    &[METADATA, one(4, "immutable", Bool, IfSent), map(2, "data", Str), map(3, "binaryData", Bytes)];

const SERVICE_ACCOUNT: &[Field] = &[
    METADATA,
    list(2, "secrets", Msg(OBJECT_REFERENCE), OmitEmpty),
    list(3, "imagePullSecrets", Msg(&[one(1, "name", Str, OmitEmpty)]), OmitEmpty),
    one(4, "automountServiceAccountToken", Bool, IfSent),
];

const OBJECT_REFERENCE: &[Field] = &[
    one(1, "kind", Str, OmitEmpty),
    one(2, "namespace", Str, OmitEmpty),
    one(3, "name", Str, OmitEmpty),
    one(4, "uid", Str, OmitEmpty),
    one(5, "apiVersion", Str, OmitEmpty),
    one(6, "resourceVersion", Str, OmitEmpty),
    one(7, "fieldPath", Str, OmitEmpty),
];

const SERVICE: &[Field] =
    &[METADATA, one(2, "spec", Msg(SERVICE_SPEC), Always), one(3, "status", Msg(SERVICE_STATUS), Always)];

const SERVICE_SPEC: &[Field] = &[
    list(1, "ports", Msg(SERVICE_PORT), OmitEmpty),
    map(2, "selector", Str),
    one(3, "clusterIP", Str, OmitEmpty),
    list(18, "clusterIPs", Str, OmitEmpty),
    one(4, "type", Str, OmitEmpty),
    list(5, "externalIPs", Str, OmitEmpty),
    one(7, "sessionAffinity", Str, OmitEmpty),
    one(8, "loadBalancerIP", Str, OmitEmpty),
    list(9, "loadBalancerSourceRanges", Str, OmitEmpty),
    one(10, "externalName", Str, OmitEmpty),
    one(11, "externalTrafficPolicy", Str, OmitEmpty),
    one(12, "healthCheckNodePort", Int32, OmitEmpty),
    one(13, "publishNotReadyAddresses", Bool, OmitEmpty),
    one(14, "sessionAffinityConfig", Msg(SESSION_AFFINITY_CONFIG), IfSent),
    list(19, "ipFamilies", Str, OmitEmpty),
    one(17, "ipFamilyPolicy", Str, IfSent),
    one(20, "allocateLoadBalancerNodePorts", Bool, IfSent),
    one(21, "loadBalancerClass", Str, IfSent),
    one(22, "internalTrafficPolicy", Str, IfSent),
    one(23, "trafficDistribution", Str, IfSent),
];

const SESSION_AFFINITY_CONFIG: &[Field] =
    &[one(1, "clientIP", Msg(&[one(1, "timeoutSeconds", Int32, IfSent)]), IfSent)];

const SERVICE_PORT: &[Field] = &[
    one(1, "name", Str, OmitEmpty),
    one(2, "protocol", Str, OmitEmpty),
    one(6, "appProtocol", Str, IfSent),
    one(3, "port", Int32, Always),
    one(4, "targetPort", IntOrString, Always),
    one(5, "nodePort", Int32, OmitEmpty),
];

const SERVICE_STATUS: &[Field] = &[
    one(1, "loadBalancer", Msg(&[list(1, "ingress", Msg(LOAD_BALANCER_INGRESS), OmitEmpty)]), Always),
    list(2, "conditions", Msg(CONDITION), OmitEmpty),
];

const LOAD_BALANCER_INGRESS: &[Field] = &[
    one(1, "ip", Str, OmitEmpty),
    one(2, "hostname", Str, OmitEmpty),
    one(3, "ipMode", Str, IfSent),
    list(4, "ports", Msg(PORT_STATUS), OmitEmpty),
];

const PORT_STATUS: &[Field] =
    &[one(1, "port", Int32, Always), one(2, "protocol", Str, Always), one(3, "error", Str, IfSent)];

const EVENT: &[Field] = &[
    METADATA,
    one(2, "involvedObject", Msg(OBJECT_REFERENCE), Always),
    one(3, "reason", Str, OmitEmpty),
    one(4, "message", Str, OmitEmpty),
    one(5, "source", Msg(EVENT_SOURCE), Always),
    one(6, "firstTimestamp", Time, Always),
    one(7, "lastTimestamp", Time, Always),
    one(8, "count", Int32, OmitEmpty),
    one(9, "type", Str, OmitEmpty),
    one(10, "eventTime", MicroTime, Always),
    one(11, "series", Msg(EVENT_SERIES), IfSent),
    one(12, "action", Str, OmitEmpty),
    one(13, "related", Msg(OBJECT_REFERENCE), IfSent),
    one(14, "reportingComponent", Str, Always),
    one(15, "reportingInstance", Str, Always),
];

const EVENT_SOURCE: &[Field] = &[one(1, "component", Str, OmitEmpty), one(2, "host", Str, OmitEmpty)];

const EVENT_SERIES: &[Field] = &[one(1, "count", Int32, OmitEmpty), one(2, "lastObservedTime", MicroTime, Always)];

// k8s.io/api/rbac/v1

const ROLE: &[Field] = &[METADATA, list(2, "rules", Msg(POLICY_RULE), Always)];

const CLUSTER_ROLE: &[Field] = &[
    METADATA,
    list(2, "rules", Msg(POLICY_RULE), Always),
    one(3, "aggregationRule", Msg(&[list(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR), OmitEmpty)]), IfSent),
];

const POLICY_RULE: &[Field] = &[
    list(1, "verbs", Str, Always),
    list(2, "apiGroups", Str, OmitEmpty),
    list(3, "resources", Str, OmitEmpty),
    list(4, "resourceNames", Str, OmitEmpty),
    list(5, "nonResourceURLs", Str, OmitEmpty),
];

/// RoleBinding and ClusterRoleBinding share their shape.
const ROLE_BINDING: &[Field] =
    &[METADATA, list(2, "subjects", Msg(SUBJECT), OmitEmpty), one(3, "roleRef", Msg(ROLE_REF), Always)];

const SUBJECT: &[Field] = &[
    one(1, "kind", Str, Always),
    one(2, "apiGroup", Str, OmitEmpty),
    one(3, "name", Str, Always),
    one(4, "namespace", Str, OmitEmpty),
];

const ROLE_REF: &[Field] = &[one(1, "apiGroup", Str, Always), one(2, "kind", Str, Always), one(3, "name", Str, Always)];

// k8s.io/api/authorization/v1

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(&[RESOURCE_ATTRIBUTES, NON_RESOURCE_ATTRIBUTES]), Always),
    one(3, "status", Msg(SUBJECT_ACCESS_REVIEW_STATUS), Always),
];

const SUBJECT_ACCESS_REVIEW: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(SUBJECT_ACCESS_REVIEW_SPEC), Always),
    one(3, "status", Msg(SUBJECT_ACCESS_REVIEW_STATUS), Always),
];

const SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    RESOURCE_ATTRIBUTES,
    NON_RESOURCE_ATTRIBUTES,
    one(3, "user", Str, OmitEmpty),
    list(4, "groups", Str, OmitEmpty),
    map(5, "extra", StrArray),
    one(6, "uid", Str, OmitEmpty),
];

const RESOURCE_ATTRIBUTES: Field = one(
    1,
    "resourceAttributes",
    Msg(&[
        one(1, "namespace", Str, OmitEmpty),
        one(2, "verb", Str, OmitEmpty),
        one(3, "group", Str, OmitEmpty),
        one(4, "version", Str, OmitEmpty),
        one(5, "resource", Str, OmitEmpty),
        one(6, "subresource", Str, OmitEmpty),
        one(7, "name", Str, OmitEmpty),
        one(8, "fieldSelector", Msg(SELECTOR_ATTRIBUTES), IfSent),
        one(9, "labelSelector", Msg(SELECTOR_ATTRIBUTES), IfSent),
    ]),
    IfSent,
);

/// FieldSelectorAttributes and LabelSelectorAttributes share their shape.
const SELECTOR_ATTRIBUTES: &[Field] =
    &[one(1, "rawSelector", Str, OmitEmpty), list(2, "requirements", Msg(SELECTOR_REQUIREMENT), OmitEmpty)];

const NON_RESOURCE_ATTRIBUTES: Field =
    one(2, "nonResourceAttributes", Msg(&[one(1, "path", Str, OmitEmpty), one(2, "verb", Str, OmitEmpty)]), IfSent);

const SUBJECT_ACCESS_REVIEW_STATUS: &[Field] = &[
    one(1, "allowed", Bool, Always),
    one(4, "denied", Bool, OmitEmpty),
    one(2, "reason", Str, OmitEmpty),
    one(3, "evaluationError", Str, OmitEmpty),
];

const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(&[one(1, "namespace", Str, OmitEmpty)]), Always),
    one(3, "status", Msg(SUBJECT_RULES_REVIEW_STATUS), Always),
];

const SUBJECT_RULES_REVIEW_STATUS: &[Field] = &[
    list(1, "resourceRules", Msg(RESOURCE_RULE), Always),
    list(2, "nonResourceRules", Msg(NON_RESOURCE_RULE), Always),
    one(3, "incomplete", Bool, Always),
    one(4, "evaluationError", Str, OmitEmpty),
];

const RESOURCE_RULE: &[Field] = &[
    list(1, "verbs", Str, Always),
    list(2, "apiGroups", Str, OmitEmpty),
    list(3, "resources", Str, OmitEmpty),
    list(4, "resourceNames", Str, OmitEmpty),
];

const NON_RESOURCE_RULE: &[Field] = &[list(1, "verbs", Str, Always), list(2, "nonResourceURLs", Str, OmitEmpty)];

// k8s.io/api/authentication/v1

const TOKEN_REQUEST: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(TOKEN_REQUEST_SPEC), Always),
    one(3, "status", Msg(&[one(1, "token", Str, Always), one(2, "expirationTimestamp", Time, Always)]), Always),
];

const TOKEN_REQUEST_SPEC: &[Field] = &[
    list(1, "audiences", Str, Always),
    one(4, "expirationSeconds", Int64, NullIfUnsent),
    one(3, "boundObjectRef", Msg(BOUND_OBJECT_REFERENCE), NullIfUnsent),
    map(5, "attestations", StrArray),
];

const BOUND_OBJECT_REFERENCE: &[Field] = &[
    one(1, "kind", Str, OmitEmpty),
    one(2, "apiVersion", Str, OmitEmpty),
    one(3, "name", Str, OmitEmpty),
    one(4, "uid", Str, OmitEmpty),
];

const TOKEN_REVIEW: &[Field] = &[
    METADATA,
    one(2, "spec", Msg(&[one(1, "token", Str, OmitEmpty), list(2, "audiences", Str, OmitEmpty)]), Always),
    one(3, "status", Msg(TOKEN_REVIEW_STATUS), Always),
];

const TOKEN_REVIEW_STATUS: &[Field] = &[
    one(1, "authenticated", Bool, OmitEmpty),
    one(2, "user", Msg(USER_INFO), Always),
    list(4, "audiences", Str, OmitEmpty),
    one(3, "error", Str, OmitEmpty),
];

const USER_INFO: &[Field] = &[
    one(1, "username", Str, OmitEmpty),
    one(2, "uid", Str, OmitEmpty),
    list(3, "groups", Str, OmitEmpty),
    map(4, "extra", StrArray),
];

const SELF_SUBJECT_REVIEW: &[Field] =
    &[METADATA, one(2, "status", Msg(&[one(1, "userInfo", Msg(USER_INFO), Always)]), Always)];

// k8s.io/api/coordination/v1

const LEASE: &[Field] = &[
    METADATA,
    one(
        2,
        "spec",
        Msg(&[
            one(1, "holderIdentity", Str, IfSent),
            one(2, "leaseDurationSeconds", Int32, IfSent),
            one(3, "acquireTime", MicroTime, IfSent),
            one(4, "renewTime", MicroTime, IfSent),
            one(5, "leaseTransitions", Int32, IfSent),
            one(6, "strategy", Str, IfSent),
            one(7, "preferredHolder", Str, IfSent),
        ]),
        Always,
    ),
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn key(number: u32, wire_type: u8) -> Vec<u8> {
        varint(u64::from(number) << 3 | u64::from(wire_type))
    }

    fn int(number: u32, value: u64) -> Vec<u8> {
        [key(number, 0), varint(value)].concat()
    }

    fn bytes(number: u32, payload: &[u8]) -> Vec<u8> {
        [key(number, 2), varint(payload.len() as u64), payload.to_vec()].concat()
    }

    fn text(number: u32, value: &str) -> Vec<u8> {
        bytes(number, value.as_bytes())
    }

    fn msg(number: u32, fields: &[Vec<u8>]) -> Vec<u8> {
        bytes(number, &fields.concat())
    }

    fn entry(number: u32, map_key: &str, value: &[u8]) -> Vec<u8> {
        msg(number, &[text(1, map_key), bytes(2, value)])
    }

    fn timestamp(number: u32, seconds: i64, nanos: i32) -> Vec<u8> {
        msg(number, &[int(1, seconds as u64), int(2, i64::from(nanos) as u64)])
    }

    fn body(api_version: &str, kind: &str, fields: &[Vec<u8>]) -> Vec<u8> {
        let envelope = [msg(1, &[text(1, api_version), text(2, kind)]), msg(2, fields)].concat();
        [MAGIC, &envelope].concat()
    }

    fn decoded(api_version: &str, kind: &str, fields: &[Vec<u8>]) -> Value {
        decode(&body(api_version, kind, fields)).expect("body decodes")
    }

    fn malformed_message(body: &[u8]) -> String {
        match decode(body) {
            Err(DecodeError::Malformed(message)) => message,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    /// Bodies captured from kubectl v1.32.4 against a recording HTTP server.
    const KUBECTL_BODIES: &[(&str, &str)] = &[
        (
            "create secret generic s1 --from-literal=user=admin --from-literal=pw=p@ss --type=Opaque",
            "6b3873000a0c0a027631120653656372657412370a120a02733112001a0022002a00320038004200120a0a02707712047040\
             7373120d0a0475736572120561646d696e1a064f70617175651a002200",
        ),
        (
            "create secret docker-registry d1 --docker-username=u --docker-password=p \
             --docker-server=r.io",
            "6b3873000a0c0a0276311206536563726574128b010a120a02643112001a0022002a0032003800420012550a112e646f636b\
             6572636f6e6669676a736f6e12407b226175746873223a7b22722e696f223a7b22757365726e616d65223a2275222c227061\
             7373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b756265726e657465732e696f2f646f636b6572\
             636f6e6669676a736f6e1a002200",
        ),
        (
            "create configmap c1 --from-literal=a=b --from-file=bin=bin.dat",
            "6b3873000a0f0a0276311209436f6e6669674d6170122b0a120a02633112001a0022002a0032003800420012060a01611201\
             621a0d0a0362696e12060001ff62696e1a002200",
        ),
        (
            "create serviceaccount sa1",
            "6b3873000a140a027631120e536572766963654163636f756e7412150a130a0373613112001a0022002a003200380042001a\
             002200",
        ),
        (
            "create role r1 --verb=get,list --resource=pods,secrets --resource-name=x",
            "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512350a120a027231\
             12001a0022002a00320038004200121f0a036765740a046c69737412001a04706f64731a07736563726574732201781a0022\
             00",
        ),
        (
            "create clusterrole cr1 --verb=get --non-resource-url=/healthz",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c6512\
             260a130a0363723112001a0022002a00320038004200120f0a036765742a082f6865616c74687a1a002200",
        ),
        (
            "create clusterrole cr2 --aggregation-rule=rbac.example.com/aggregate=true",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c6512\
             3d0a130a0363723212001a0022002a003200380042001a260a240a220a1a726261632e6578616d706c652e636f6d2f616767\
             7265676174651204747275651a002200",
        ),
        (
            "create rolebinding rb1 --role=r1 --user=alice --group=devs --serviceaccount=default:sa1",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c6542696e64696e6712\
             b6010a130a0372623112001a0022002a00320038004200122a0a04557365721219726261632e617574686f72697a6174696f\
             6e2e6b38732e696f1a05616c6963652200122a0a0547726f75701219726261632e617574686f72697a6174696f6e2e6b3873\
             2e696f1a0464657673220012200a0e536572766963654163636f756e7412001a03736131220764656661756c741a250a1972\
             6261632e617574686f72697a6174696f6e2e6b38732e696f1204526f6c651a0272311a002200",
        ),
        (
            "create clusterrolebinding crb1 --clusterrole=cr1 --user=bob",
            "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c7573746572526f6c6542\
             696e64696e67126f0a140a046372623112001a0022002a0032003800420012280a04557365721219726261632e617574686f\
             72697a6174696f6e2e6b38732e696f1a03626f6222001a2d0a19726261632e617574686f72697a6174696f6e2e6b38732e69\
             6f120b436c7573746572526f6c651a036372311a002200",
        ),
        (
            "create service clusterip svc1 --tcp=80:8080",
            "6b3873000a0d0a027631120753657276696365126c0a210a047376633112001a0022002a003200380042005a0b0a03617070\
             12047376633112430a1b0a0738302d38303830120354435018502207080010903f1a002800120b0a03617070120473766331\
             1a002209436c757374657249503a00420052005a00600068001a020a001a002200",
        ),
        (
            "create service nodeport svc2 --tcp=443:https --node-port=30001",
            "6b3873000a0d0a02763112075365727669636512740a210a047376633212001a0022002a003200380042005a0b0a03617070\
             120473766332124b0a240a093434332d6874747073120354435018bb03220b080110001a05687474707328b1ea01120b0a03\
             6170701204737663321a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200",
        ),
        (
            "create service externalname ext1 --external-name=example.com",
            "6b3873000a0d0a027631120753657276696365125d0a210a046578743112001a0022002a003200380042005a0b0a03617070\
             1204657874311234120b0a036170701204657874311a00220c45787465726e616c4e616d653a004200520b6578616d706c65\
             2e636f6d5a00600068001a020a001a002200",
        ),
        (
            "create token sa1 --audience=aud1 --duration=10m --bound-object-kind=Pod \
             --bound-object-name=p1 --bound-object-uid=123",
            "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565737412370a10\
             0a0012001a0022002a00320038004200121d0a04617564311a120a03506f64120276311a027031220331323320d8041a040a\
             0012001a002200",
        ),
        (
            "auth can-i get pods -n kube-system",
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373\
             52657669657712400a100a0012001a0022002a0032003800420012220a200a0b6b7562652d73797374656d12036765741a00\
             22002a04706f647332003a001a08080012001a0020001a002200",
        ),
        (
            "auth can-i --list -n default",
            "6b3873000a310a17617574686f72697a6174696f6e2e6b38732e696f2f7631121653656c665375626a65637452756c657352\
             657669657712230a100a0012001a0022002a0032003800420012090a0764656661756c741a04180022001a002200",
        ),
        (
            "auth can-i get /healthz",
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374416363657373\
             526576696577122f0a100a0012001a0022002a003200380042001211120f0a082f6865616c74687a12036765741a08080012\
             001a0020001a002200",
        ),
        (
            "auth whoami",
            "6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631121153656c665375626a6563745265766965\
             77121a0a100a0012001a0022002a0032003800420012060a040a0012001a002200",
        ),
        (
            "create quota q1 --hard=pods=2",
            "6b3873000a130a027631120d5265736f7572636551756f746112250a120a02713112001a0022002a00320038004200120d0a\
             0b0a04706f647312030a01321a001a002200",
        ),
    ];

    fn kubectl_body(command: &str) -> Vec<u8> {
        let (_, hex_body) = KUBECTL_BODIES.iter().find(|(captured, _)| *captured == command).expect("fixture exists");
        hex::decode(hex_body).expect("fixture is hex")
    }

    #[test]
    fn real_kubectl_bodies_decode_to_the_json_kubectl_would_send() {
        let cases = [
            (
                "create secret generic s1 --from-literal=user=admin --from-literal=pw=p@ss --type=Opaque",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                       "data": {"pw": "cEBzcw==", "user": "YWRtaW4="}, "type": "Opaque"}),
            ),
            (
                "create secret docker-registry d1 --docker-username=u --docker-password=p --docker-server=r.io",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "d1"},
                       "data": {".dockerconfigjson":
                           "eyJhdXRocyI6eyJyLmlvIjp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicCIsImF1dGgiOiJkVHB3In19fQ=="},
                       "type": "kubernetes.io/dockerconfigjson"}),
            ),
            (
                "create configmap c1 --from-literal=a=b --from-file=bin=bin.dat",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"},
                       "data": {"a": "b"}, "binaryData": {"bin": "AAH/Ymlu"}}),
            ),
            (
                "create serviceaccount sa1",
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1"}}),
            ),
            (
                "create role r1 --verb=get,list --resource=pods,secrets --resource-name=x",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r1"},
                       "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "secrets"],
                                  "resourceNames": ["x"]}]}),
            ),
            (
                "create clusterrole cr1 --verb=get --non-resource-url=/healthz",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "cr1"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}),
            ),
            (
                "create clusterrole cr2 --aggregation-rule=rbac.example.com/aggregate=true",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "cr2"}, "rules": null,
                       "aggregationRule": {"clusterRoleSelectors": [
                           {"matchLabels": {"rbac.example.com/aggregate": "true"}}]}}),
            ),
            (
                "create rolebinding rb1 --role=r1 --user=alice --group=devs --serviceaccount=default:sa1",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "rb1"},
                       "subjects": [
                           {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                           {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                           {"kind": "ServiceAccount", "name": "sa1", "namespace": "default"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}}),
            ),
            (
                "create clusterrolebinding crb1 --clusterrole=cr1 --user=bob",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": "crb1"},
                       "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr1"}}),
            ),
            (
                "create service clusterip svc1 --tcp=80:8080",
                json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "svc1", "labels": {"app": "svc1"}},
                       "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                                "selector": {"app": "svc1"}, "type": "ClusterIP"},
                       "status": {"loadBalancer": {}}}),
            ),
            (
                "create service nodeport svc2 --tcp=443:https --node-port=30001",
                json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "svc2", "labels": {"app": "svc2"}},
                       "spec": {"ports": [{"name": "443-https", "protocol": "TCP", "port": 443,
                                           "targetPort": "https", "nodePort": 30001}],
                                "selector": {"app": "svc2"}, "type": "NodePort"},
                       "status": {"loadBalancer": {}}}),
            ),
            (
                "create service externalname ext1 --external-name=example.com",
                json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "ext1", "labels": {"app": "ext1"}},
                       "spec": {"selector": {"app": "ext1"}, "type": "ExternalName", "externalName": "example.com"},
                       "status": {"loadBalancer": {}}}),
            ),
            (
                "create token sa1 --audience=aud1 --duration=10m --bound-object-kind=Pod --bound-object-name=p1 \
                 --bound-object-uid=123",
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
                       "spec": {"audiences": ["aud1"], "expirationSeconds": 600,
                                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1", "uid": "123"}},
                       "status": {"token": "", "expirationTimestamp": null}}),
            ),
            (
                "auth can-i get pods -n kube-system",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                       "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "get", "resource": "pods"}},
                       "status": {"allowed": false}}),
            ),
            (
                "auth can-i --list -n default",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "metadata": {},
                       "spec": {"namespace": "default"},
                       "status": {"resourceRules": null, "nonResourceRules": null, "incomplete": false}}),
            ),
            (
                "auth can-i get /healthz",
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                       "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
                       "status": {"allowed": false}}),
            ),
            (
                "auth whoami",
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
                       "status": {"userInfo": {}}}),
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(decode(&kubectl_body(command)).expect(command), expected, "{command}");
        }
    }

    #[test]
    fn kind_without_a_table_is_unsupported() {
        assert_eq!(
            decode(&kubectl_body("create quota q1 --hard=pods=2")),
            Err(DecodeError::Unsupported { api_version: "v1".into(), kind: "ResourceQuota".into() })
        );
        assert_eq!(
            decode(&body("apps/v1", "Deployment", &[])),
            Err(DecodeError::Unsupported { api_version: "apps/v1".into(), kind: "Deployment".into() })
        );
        // A known kind in another version has another schema.
        assert_eq!(
            decode(&body("rbac.authorization.k8s.io/v1beta1", "Role", &[])),
            Err(DecodeError::Unsupported {
                api_version: "rbac.authorization.k8s.io/v1beta1".into(),
                kind: "Role".into()
            })
        );
        // The core Event and events.k8s.io Event are different messages.
        assert!(matches!(decode(&body("events.k8s.io/v1", "Event", &[])), Err(DecodeError::Unsupported { .. })));
    }

    #[test]
    fn secret_with_data_labels_and_full_metadata() {
        let metadata = msg(
            1,
            &[
                text(1, "release.v1"),
                text(2, ""),
                text(3, "apps"),
                text(5, "uid-1"),
                int(7, 3),
                timestamp(8, 1_700_000_000, 999),
                bytes(9, &[]),
                int(10, 0),
                entry(11, "owner", b"helm"),
                entry(11, "status", b"deployed"),
                entry(12, "note", b"a=b"),
                msg(13, &[text(5, "v1"), text(1, "ConfigMap"), text(3, "cm"), text(4, "u2"), int(6, 1)]),
                text(14, "example.com/keep"),
                msg(
                    17,
                    &[
                        text(1, "helm"),
                        text(2, "Update"),
                        text(3, "v1"),
                        timestamp(4, 1_700_000_000, 0),
                        text(6, "FieldsV1"),
                        msg(7, &[text(1, r#"{"f:data":{}}"#)]),
                    ],
                ),
            ],
        );
        let secret = decoded(
            "v1",
            "Secret",
            &[
                metadata,
                entry(2, "release", b"\x1f\x8b\x08payload"),
                entry(2, "empty", b""),
                msg(2, &[text(1, "no-value")]),
                entry(4, "plain", b"text"),
                text(3, "helm.sh/release.v1"),
                int(5, 0),
            ],
        );
        assert_eq!(
            secret,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "release.v1",
                    "namespace": "apps",
                    "uid": "uid-1",
                    "generation": 3,
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "deletionTimestamp": null,
                    "deletionGracePeriodSeconds": 0,
                    "labels": {"owner": "helm", "status": "deployed"},
                    "annotations": {"note": "a=b"},
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2", "controller": true}
                    ],
                    "finalizers": ["example.com/keep"],
                    "managedFields": [{
                        "manager": "helm",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": "2023-11-14T22:13:20Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {}}
                    }]
                },
                "data": {"release": "H4sIcGF5bG9hZA==", "empty": "", "no-value": ""},
                "stringData": {"plain": "text"},
                "type": "helm.sh/release.v1",
                "immutable": false
            })
        );
    }

    #[test]
    fn namespace_always_carries_its_spec_and_status() {
        assert_eq!(
            decoded("v1", "Namespace", &[msg(1, &[text(1, "team-a")])]),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}, "status": {}})
        );
        let terminating = decoded(
            "v1",
            "Namespace",
            &[
                msg(2, &[text(1, "kubernetes")]),
                msg(
                    3,
                    &[
                        text(1, "Terminating"),
                        msg(2, &[text(1, "NamespaceDeletionContentFailure"), text(2, "False"), bytes(4, &[])]),
                    ],
                ),
            ],
        );
        assert_eq!(
            terminating,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {},
                   "spec": {"finalizers": ["kubernetes"]},
                   "status": {"phase": "Terminating", "conditions": [
                       {"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": null}]}})
        );
    }

    #[test]
    fn self_subject_access_review_with_selectors() {
        let requirement = |number| msg(number, &[text(1, "env"), text(2, "In"), text(3, "prod"), text(3, "stage")]);
        let review = decoded(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &[msg(
                2,
                &[msg(
                    1,
                    &[
                        text(1, "default"),
                        text(2, "list"),
                        text(3, "apps"),
                        text(5, "deployments"),
                        text(6, "scale"),
                        msg(8, &[text(1, "metadata.name=x")]),
                        msg(9, &[requirement(2)]),
                    ],
                )],
            )],
        );
        assert_eq!(
            review,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": {
                       "namespace": "default", "verb": "list", "group": "apps", "resource": "deployments",
                       "subresource": "scale",
                       "fieldSelector": {"rawSelector": "metadata.name=x"},
                       "labelSelector": {"requirements": [
                           {"key": "env", "operator": "In", "values": ["prod", "stage"]}]}}},
                   "status": {"allowed": false}})
        );
    }

    #[test]
    fn delete_options_keep_explicit_zero_values_under_any_api_version() {
        let fields = [int(1, 0), msg(2, &[text(1, "uid-9"), text(2, "")]), text(4, "Foreground"), text(5, "All")];
        for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
            assert_eq!(
                decoded(api_version, "DeleteOptions", &fields),
                json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                       "preconditions": {"uid": "uid-9", "resourceVersion": ""},
                       "propagationPolicy": "Foreground", "dryRun": ["All"]})
            );
        }
        assert_eq!(
            decoded("v1", "DeleteOptions", &[int(3, 1)]),
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "orphanDependents": true})
        );
    }

    #[test]
    fn role_binding_keeps_required_empty_fields() {
        let binding = decoded(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &[
                msg(1, &[text(1, "read"), text(3, "team-a")]),
                msg(2, &[text(1, "ServiceAccount"), text(3, "builder"), text(4, "ci")]),
                msg(3, &[text(2, "ClusterRole"), text(3, "view")]),
            ],
        );
        assert_eq!(
            binding,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "read", "namespace": "team-a"},
                   "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}],
                   "roleRef": {"apiGroup": "", "kind": "ClusterRole", "name": "view"}})
        );
        // Without roleRef on the wire Go still writes the struct, with its required strings empty.
        assert_eq!(
            decoded("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &[])["roleRef"],
            json!({"apiGroup": "", "kind": "", "name": ""})
        );
    }

    #[test]
    fn review_and_token_kinds() {
        let extra = msg(5, &[text(1, "scopes"), msg(2, &[text(1, "a"), text(1, "b")])]);
        let empty_extra = msg(5, &[text(1, "none")]);
        let review = decoded(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            &[msg(2, &[text(3, "alice"), text(4, "devs"), extra, empty_extra, text(6, "u-1")])],
        );
        assert_eq!(
            review["spec"],
            json!({"user": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"], "none": null}, "uid": "u-1"})
        );
        assert_eq!(
            decoded("authorization.k8s.io/v1", "LocalSubjectAccessReview", &[])["status"],
            json!({"allowed": false})
        );
        assert_eq!(
            decoded("authentication.k8s.io/v1", "TokenReview", &[msg(2, &[text(1, "jwt"), text(2, "api")])]),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
                   "spec": {"token": "jwt", "audiences": ["api"]}, "status": {"user": {}}})
        );
        // Pointer fields without omitempty become null when the client leaves them out.
        assert_eq!(
            decoded("authentication.k8s.io/v1", "TokenRequest", &[])["spec"],
            json!({"audiences": null, "expirationSeconds": null, "boundObjectRef": null})
        );
    }

    #[test]
    fn lease_and_event_times() {
        let lease = decoded(
            "coordination.k8s.io/v1",
            "Lease",
            &[msg(
                2,
                &[
                    text(1, "node-1"),
                    int(2, 40),
                    timestamp(3, 1_700_000_000, 123_456_789),
                    timestamp(4, 1_700_000_000, -1_500),
                    int(5, 0),
                ],
            )],
        );
        assert_eq!(
            lease["spec"],
            json!({"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                   "acquireTime": "2023-11-14T22:13:20.123456Z", "renewTime": "2023-11-14T22:13:19.999999Z",
                   "leaseTransitions": 0})
        );
        let event = decoded(
            "v1",
            "Event",
            &[
                msg(2, &[text(1, "Pod"), text(3, "web")]),
                text(3, "Started"),
                timestamp(6, 1_700_000_000, 0),
                int(8, 2),
                timestamp(10, 1_700_000_000, 5_000),
                msg(11, &[int(1, 2), timestamp(2, 1_700_000_001, 0)]),
                text(14, "kubelet"),
            ],
        );
        assert_eq!(
            event,
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {},
                   "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Started", "source": {},
                   "firstTimestamp": "2023-11-14T22:13:20Z", "lastTimestamp": null, "count": 2,
                   "eventTime": "2023-11-14T22:13:20.000005Z",
                   "series": {"count": 2, "lastObservedTime": "2023-11-14T22:13:21.000000Z"},
                   "reportingComponent": "kubelet", "reportingInstance": ""})
        );
        // Go's zero time is null, not year 1.
        let zero = decoded("v1", "Namespace", &[msg(1, &[timestamp(9, -62_135_596_800, 0)])]);
        assert_eq!(zero["metadata"], json!({"deletionTimestamp": null}));
    }

    #[test]
    fn service_ports_and_pointer_fields() {
        let service = decoded(
            "v1",
            "Service",
            &[msg(
                2,
                &[
                    msg(1, &[int(3, 53), text(2, "UDP")]),
                    msg(1, &[int(3, u64::MAX), msg(4, &[int(1, 0), int(2, 9053)]), text(6, "dns")]),
                    text(17, "SingleStack"),
                    text(18, "10.0.0.10"),
                    int(20, 0),
                    msg(14, &[msg(1, &[int(1, 10_800)])]),
                ],
            )],
        );
        assert_eq!(
            service["spec"],
            json!({"ports": [{"protocol": "UDP", "port": 53, "targetPort": 0},
                             {"port": -1, "targetPort": 9053, "appProtocol": "dns"}],
                   "ipFamilyPolicy": "SingleStack", "clusterIPs": ["10.0.0.10"],
                   "allocateLoadBalancerNodePorts": false,
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10_800}}})
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let unknown =
            [int(90, 7), [key(91, 1), vec![0; 8]].concat(), [key(92, 5), vec![0; 4]].concat(), text(93, "future")]
                .concat();
        let envelope = [
            msg(1, &[text(1, "v1"), text(2, "ConfigMap"), unknown.clone()]),
            msg(
                2,
                &[
                    msg(1, &[text(1, "cm"), unknown.clone()]),
                    unknown.clone(),
                    msg(2, &[text(1, "k"), unknown.clone(), text(2, "v")]),
                ],
            ),
            text(3, ""),
            text(4, ""),
            unknown,
        ]
        .concat();
        assert_eq!(
            decode(&[MAGIC, &envelope].concat()),
            Ok(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}))
        );
    }

    #[test]
    fn repeated_singular_fields_follow_protobuf_merge_rules() {
        let config_map = decoded(
            "v1",
            "ConfigMap",
            &[
                msg(1, &[text(1, "first"), entry(11, "a", b"1")]),
                msg(1, &[text(1, "second"), entry(11, "b", b"2")]),
                int(4, 1),
                int(4, 0),
            ],
        );
        assert_eq!(
            config_map,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "second", "labels": {"a": "1", "b": "2"}}, "immutable": false})
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_like_go_does() {
        let secret = decoded("v1", "Secret", &[msg(1, &[bytes(1, b"bad\xffname")])]);
        assert_eq!(secret["metadata"]["name"], json!("bad\u{fffd}name"));
    }

    #[test]
    fn every_truncation_is_malformed_or_a_shorter_valid_message() {
        for (command, _) in KUBECTL_BODIES {
            let full = kubectl_body(command);
            // Cutting between two envelope fields leaves a complete envelope, just with fewer fields.
            let mut reader = Reader::new(&full[MAGIC.len()..]);
            let mut boundaries = Vec::new();
            while reader.pos < reader.buf.len() {
                reader.field().expect("fixture is well-formed");
                boundaries.push(MAGIC.len() + reader.pos);
            }
            for len in 0..full.len() {
                let result = decode(&full[..len]);
                let malformed = matches!(result, Err(DecodeError::Malformed(_)));
                assert_eq!(malformed, !boundaries.contains(&len), "{command} cut at {len}: {result:?}");
            }
        }
    }

    #[test]
    fn mutated_bodies_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (command, _) in KUBECTL_BODIES {
            let full = kubectl_body(command);
            for _ in 0..500 {
                let mut mutated = full.clone();
                for _ in 0..=next() % 3 {
                    let at = MAGIC.len() + (next() as usize) % (mutated.len() - MAGIC.len());
                    mutated[at] = next() as u8;
                }
                let _ = decode(&mutated);
            }
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(malformed_message(b"").contains("magic"));
        assert!(malformed_message(b"{\"kind\":\"Secret\"}").contains("magic"));
        assert!(malformed_message(MAGIC).contains("empty body"));
        let cases: [(&[u8], &str); 7] = [
            (&[0x0b], "unsupported wire type 3"),
            (&[0x0c], "unsupported wire type 4"),
            (&[0x0e], "unsupported wire type 6"),
            (&[0x02, 0x01], "illegal field number 0"),
            (&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], "longer than 10 bytes"),
            (&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f], "truncated"),
            (&[0x0a, 0x02, 0x08], "truncated"),
        ];
        for (envelope, expected) in cases {
            let message = malformed_message(&[MAGIC, envelope].concat());
            assert!(message.contains(expected), "{envelope:?}: {message}");
        }
    }

    #[test]
    fn well_framed_but_invalid_content_is_malformed() {
        let cases = [
            (body("v1", "Secret", &[msg(1, &[int(1, 5)])]), "Secret: metadata: name: unexpected varint"),
            (body("v1", "Secret", &[text(5, "yes")]), "Secret: immutable: unexpected length-delimited"),
            (body("v1", "Secret", &[msg(2, &[int(1, 1)])]), "Secret: data: key: expected length-delimited"),
            (body("v1", "Service", &[msg(2, &[msg(1, &[msg(4, &[int(1, 2)])])])]), "IntOrString type 2"),
            (body("v1", "Secret", &[msg(1, &[msg(17, &[msg(7, &[text(1, "{not json")])])])]), "fieldsV1 is not JSON"),
            (body("v1", "Secret", &[msg(1, &[timestamp(8, i64::MAX, 0)])]), "outside years"),
            (body("v1", "", &[]), "no kind"),
            ([MAGIC, &int(1, 1)].concat(), "typeMeta: expected length-delimited"),
        ];
        for (input, expected) in cases {
            let message = malformed_message(&input);
            assert!(message.contains(expected), "expected {expected:?} in {message:?}");
        }
    }

    #[test]
    fn errors_display_their_cause() {
        let unsupported = DecodeError::Unsupported { api_version: "apps/v1".into(), kind: "Deployment".into() };
        assert_eq!(unsupported.to_string(), "protobuf encoding of Deployment in \"apps/v1\" is not supported");
        assert_eq!(DecodeError::Malformed("x".into()).to_string(), "malformed protobuf body: x");
    }
}
