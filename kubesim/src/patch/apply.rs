//! Server-side apply and `metadata.managedFields` bookkeeping, after the API server's field
//! manager (k8s.io/apimachinery/pkg/util/managedfields) and structured-merge-diff's `Updater`.
//!
//! Managers are identified like the API server does: appliers by (manager, subresource),
//! updaters by (manager, apiVersion, subresource). Fields are owned as leaves, list items and
//! atomic values (see [`super::fieldset`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldset::{
    FieldSet, Path, PathElement, Walker, fields_from_json, fields_to_json, go_json, iteration_order, path_string,
    values_equal, with_parent_fields,
};
use super::lists::ListSchema;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const LAST_APPLIED_POINTER: &str = "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";
/// `TotalAnnotationSizeLimitB`: a last-applied annotation that would exceed it is dropped.
const ANNOTATIONS_SIZE_LIMIT: usize = 256 * 1024;
/// Owner of everything an object had when it is first applied without managed fields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// Only applies by this manager upgrade from client-side apply (as in the API server).
const KUBECTL: &str = "kubectl";

/// Never owned, never removed: identity and server-maintained metadata.
const IGNORED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "uid"],
    &["metadata", "resourceVersion"],
    &["metadata", "generation"],
    &["metadata", "creationTimestamp"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
    &["metadata", "managedFields"],
    &["metadata", "selfLink"],
    &["metadata", "clusterName"],
];

fn is_field(pe: &PathElement, name: &str) -> bool {
    matches!(pe, PathElement::Field(n) if n == name)
}

/// Also covers `metadata` itself: an applied object always names itself, so the API server never
/// finds `metadata` unowned when pruning.
fn is_ignored(path: &[PathElement]) -> bool {
    matches!(path, [only] if is_field(only, "metadata"))
        || IGNORED
            .iter()
            .any(|ignored| path.len() >= ignored.len() && ignored.iter().zip(path).all(|(n, pe)| is_field(pe, n)))
}

fn owned(set: FieldSet) -> FieldSet {
    set.into_iter().filter(|p| !is_ignored(p)).collect()
}

/// A field another manager owns with a different value than the apply would set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// The field, e.g. `.spec.replicas`.
    pub field: String,
    /// The owner's operation, `Apply` or `Update`: messages name updaters with their API version.
    pub operation: String,
    /// The owner's API version (empty means the version the message is rendered for).
    pub api_version: String,
    pub subresource: Option<String>,
}

impl Conflict {
    /// The owner as the API server prints it: `"helm" using apps/v1`, `"kubectl"`,
    /// `"kube-controller-manager" with subresource "status" using apps/v1`.
    pub fn owner(&self, api_version: &str) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = self.subresource.as_deref().filter(|s| !s.is_empty()) {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            let version = if self.api_version.is_empty() { api_version } else { &self.api_version };
            out.push_str(&format!(" using {version}"));
        }
        out
    }

    fn identifier(&self) -> String {
        identifier(&self.manager, &self.operation, &self.api_version, self.subresource.as_deref())
    }
}

/// Why an apply was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// 409: render with [`conflict_message`] and [`conflict_causes`].
    Conflicts(Vec<Conflict>),
    /// The applied object or the stored managed fields are malformed (the API server answers
    /// 400/422/500 with this text).
    Invalid(String),
}

/// The API server's manager identifier: the JSON of the entry without fields or time, and without
/// apiVersion for appliers. Conflict messages list managers sorted by it.
fn identifier(manager: &str, operation: &str, api_version: &str, subresource: Option<&str>) -> String {
    let quote = |s: &str| go_json(&Value::String(s.to_string()));
    let mut out = format!("{{\"manager\":{},\"operation\":{}", quote(manager), quote(operation));
    if operation != "Apply" && !api_version.is_empty() {
        out.push_str(&format!(",\"apiVersion\":{}", quote(api_version)));
    }
    if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
        out.push_str(&format!(",\"subresource\":{}", quote(sub)));
    }
    out.push('}');
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: Operation, api_version: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref().filter(|s| !s.is_empty()) == subresource.filter(|s| !s.is_empty())
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    fn same_manager(&self, other: &Entry) -> bool {
        self.is(&other.manager, other.operation, &other.api_version, other.subresource.as_deref())
    }

    fn identifier(&self) -> String {
        identifier(&self.manager, self.operation.as_str(), &self.api_version, self.subresource.as_deref())
    }

    fn seconds(&self) -> i64 {
        self.time.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp())
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.as_str().into()));
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            m.insert("time".into(), Value::String(time.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), fields_to_json(&self.set));
        if let Some(sub) = self.subresource.as_deref().filter(|s| !s.is_empty()) {
            m.insert("subresource".into(), Value::String(sub.into()));
        }
        Value::Object(m)
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn decode_entry(i: usize, e: &Value) -> Result<Entry, String> {
    let operation = match str_field(e, "operation") {
        Some("Apply") => Operation::Apply,
        Some("Update") => Operation::Update,
        _ => return Err("operation must be `Apply` or `Update`".to_string()),
    };
    let api_version = str_field(e, "apiVersion").unwrap_or_default();
    if api_version.is_empty() {
        return Err("apiVersion must not be empty".to_string());
    }
    match str_field(e, "fieldsType") {
        Some("FieldsV1") => {}
        None | Some("") => return Err(format!("missing fieldsType in managed fields entry {i}")),
        Some(other) => return Err(format!("invalid fieldsType {other:?} in managed fields entry {i}")),
    }
    let set = match e.get("fieldsV1") {
        None | Some(Value::Null) => FieldSet::new(),
        Some(fields) => fields_from_json(fields).map_err(|err| format!("error decoding set: {err}"))?,
    };
    Ok(Entry {
        manager: str_field(e, "manager").unwrap_or_default().to_string(),
        operation,
        api_version: api_version.to_string(),
        time: str_field(e, "time").map(str::to_string),
        subresource: str_field(e, "subresource").filter(|s| !s.is_empty()).map(str::to_string),
        set,
    })
}

fn decode_list(list: Option<&Value>) -> Result<Vec<Entry>, String> {
    let items = match list {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("metadata.managedFields must be a list".to_string()),
    };
    let mut out: Vec<Entry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let entry = decode_entry(i, item)?;
        // Entries with one identity overwrite each other, as in the API server's map.
        match out.iter_mut().find(|e| e.same_manager(&entry)) {
            Some(existing) => *existing = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

fn decode_entries(obj: &Value) -> Result<Vec<Entry>, String> {
    decode_list(managed_fields_of(obj))
}

/// `[]` or `[{}]`: the client asks to drop all managed fields.
fn is_reset(list: &Value) -> bool {
    match list.as_array().map(Vec::as_slice) {
        Some([]) => true,
        Some([only]) => only.as_object().is_some_and(Map::is_empty),
        _ => false,
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

/// Sorted as the API server stores them: appliers first, then by time, manager, version.
fn set_managed_fields(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.seconds().cmp(&q.seconds()))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let Value::Object(root) = obj else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::to_json).collect()));
    }
}

/// The object before anything was set, for diffs on create: top-level objects (metadata, spec,
/// status) count as already present, as they are in the zero value of every built-in kind.
fn zero_object(obj: &Value) -> Value {
    let fields = obj.as_object().into_iter().flatten();
    Value::Object(fields.filter(|(_, v)| v.is_object()).map(|(k, _)| (k.clone(), json!({}))).collect())
}

struct Writer<'a> {
    walker: Walker<'a>,
    manager: &'a str,
    now: &'a str,
    api_version: &'a str,
    subresource: Option<&'a str>,
}

impl<'a> Writer<'a> {
    fn new(
        lists: &'a dyn ListSchema,
        manager: &'a str,
        now: &'a str,
        api_version: &'a str,
        subresource: Option<&'a str>,
    ) -> Self {
        Writer { walker: Walker { lists }, manager, now, api_version, subresource }
    }

    /// A non-apply write from `old` to `new` by `manager` (structured-merge-diff's `Update`):
    /// whoever owned a field that changed or disappeared loses it, the writer gains what changed.
    fn record(&self, manager: &str, old: &Value, new: &Value, entries: &mut Vec<Entry>) {
        let cmp = self.walker.compare(old, new);
        let changed: FieldSet = cmp.added.union(&cmp.modified).cloned().collect();
        for e in entries.iter_mut() {
            e.set.retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
        }
        entries.retain(|e| !e.set.is_empty());
        let mine = owned(changed);
        if mine.is_empty() {
            return;
        }
        let (api_version, subresource) = (self.api_version, self.subresource);
        match entries.iter_mut().find(|e| e.is(manager, Operation::Update, api_version, subresource)) {
            Some(e) => {
                e.set.extend(mine);
                e.time = Some(self.now.to_string());
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version: api_version.to_string(),
                time: Some(self.now.to_string()),
                subresource: subresource.map(str::to_string),
                set: mine,
            }),
        }
    }

    /// Removes what the applier owned last time and owns no longer, unless someone else still
    /// owns it (structured-merge-diff's `prune` with its add-back passes).
    fn prune(&self, merged: &mut Value, last: &FieldSet, entries: &[Entry]) {
        if last.is_empty() {
            return;
        }
        let managed: FieldSet = entries.iter().flat_map(|e| e.set.iter().cloned()).collect();
        let managed = with_parent_fields(&managed);
        for path in with_parent_fields(last) {
            if is_ignored(&path) || managed.contains(&path) {
                continue;
            }
            if self.walker.find(merged, &path).is_some() {
                self.walker.remove(merged, &path);
            }
        }
    }

    /// Fields of the client-side-apply annotation whose live value still matches it: conflicts
    /// on these are the leftovers of `kubectl apply` and do not block `kubectl apply --server-side`.
    fn last_applied_fields(&self, live: &Value) -> FieldSet {
        let last = live
            .pointer(LAST_APPLIED_POINTER)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .filter(|last| str_field(last, "apiVersion") == Some(self.api_version));
        let Some(last) = last else {
            return FieldSet::new();
        };
        let cmp = self.walker.compare(&last, live);
        let mut set = self.walker.to_set(&last);
        set.retain(|p| !cmp.modified.contains(p) && !cmp.added.contains(p) && !cmp.removed.contains(p));
        set
    }

    fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        force: bool,
        mut entries: Vec<Entry>,
    ) -> Result<Value, Vec<Conflict>> {
        let live_obj = live.map_or_else(|| json!({}), without_managed_fields);
        if live.is_some() && entries.is_empty() {
            self.record(BEFORE_FIRST_APPLY, &zero_object(&live_obj), &live_obj, &mut entries);
        }
        // Only an object can be merged; anything else applies nothing (try_apply rejects it).
        let config = if applied.is_object() { without_managed_fields(applied) } else { json!({}) };
        let mut merged = self.walker.merge(&live_obj, &config);
        let config_set = owned(self.walker.to_set(&config));
        let (manager, subresource) = (self.manager, self.subresource);
        let (applier, last) = match entries.iter().position(|e| e.is(manager, Operation::Apply, "", subresource)) {
            Some(i) => {
                entries[i].api_version = self.api_version.to_string();
                (i, std::mem::replace(&mut entries[i].set, config_set))
            }
            None => {
                entries.push(Entry {
                    manager: manager.to_string(),
                    operation: Operation::Apply,
                    api_version: self.api_version.to_string(),
                    time: None,
                    subresource: subresource.map(str::to_string),
                    set: config_set,
                });
                (entries.len() - 1, FieldSet::new())
            }
        };
        self.prune(&mut merged, &last, &entries);

        let cmp = self.walker.compare(&live_obj, &merged);
        let changed: FieldSet = cmp.added.union(&cmp.modified).cloned().collect();
        if !force {
            let mut found = self.conflicts(&entries, applier, &changed);
            if !found.is_empty() && manager == KUBECTL {
                let allowed = self.last_applied_fields(&live_obj);
                found.retain(|(_, path)| !allowed.contains(path));
            }
            if !found.is_empty() {
                return Err(found.into_iter().map(|(i, path)| self.conflict(&entries[i], &path)).collect());
            }
        }
        for (i, e) in entries.iter_mut().enumerate() {
            if i != applier {
                e.set.retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
            }
        }

        self.walker.drop_applied_nulls(&mut merged, &config);
        // A no-op apply keeps the entry's time, as the API server only stamps changes.
        if live.is_none() || !values_equal(&merged, &live_obj) || entries[applier].time.is_none() {
            entries[applier].time = Some(self.now.to_string());
        }
        set_managed_fields(&mut merged, entries);
        if manager == KUBECTL {
            sync_last_applied(&mut merged, applied);
        }
        Ok(merged)
    }

    /// Fields of other managers the apply changes, by manager identifier, in set order.
    fn conflicts(&self, entries: &[Entry], applier: usize, changed: &FieldSet) -> Vec<(usize, Path)> {
        let mut others: Vec<usize> = (0..entries.len()).filter(|&i| i != applier).collect();
        others.sort_by_key(|&i| entries[i].identifier());
        let mut out = Vec::new();
        for i in others {
            let hit: FieldSet = entries[i].set.intersection(changed).cloned().collect();
            out.extend(iteration_order(&hit).into_iter().map(|p| (i, p)));
        }
        out
    }

    fn conflict(&self, owner: &Entry, path: &[PathElement]) -> Conflict {
        Conflict {
            manager: owner.manager.clone(),
            field: path_string(path),
            operation: owner.operation.as_str().to_string(),
            api_version: owner.api_version.clone(),
            subresource: owner.subresource.clone(),
        }
    }
}

/// After an apply by `kubectl` on an object that still has the client-side-apply annotation, the
/// annotation is rewritten to the applied object so a later client-side apply diffs correctly.
fn sync_last_applied(obj: &mut Value, applied: &Value) {
    let present = obj.pointer(LAST_APPLIED_POINTER).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !present {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(annotations)) = config.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED);
    }
    // runtime.Encode writes with a json.Encoder, hence the trailing newline.
    let encoded = format!("{}\n", go_json(&config));
    if let Some(Value::Object(annotations)) = obj.pointer_mut("/metadata/annotations") {
        annotations.insert(LAST_APPLIED.to_string(), Value::String(encoded));
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
        if size > ANNOTATIONS_SIZE_LIMIT {
            annotations.remove(LAST_APPLIED);
        }
    }
}

/// What the API server rejects in an apply body before merging anything: a non-object, a body
/// carrying `metadata.managedFields`, and malformed set/map lists (non-object or keyless items,
/// duplicates). [`try_apply`] runs it; [`apply`] tolerates such input instead.
pub fn validate_applied(applied: &Value, lists: &dyn ListSchema) -> Result<(), String> {
    if !applied.is_object() {
        return Err("the applied configuration must be a JSON object".to_string());
    }
    if managed_fields_of(applied).is_some_and(|v| !v.is_null()) {
        return Err("metadata.managedFields must be nil".to_string());
    }
    Walker { lists }.validate(applied)
}

/// `live`: the stored object (None = create). `applied`: the body of the apply patch.
/// Returns the new object with metadata.managedFields updated (entry: manager, operation
/// "Apply", apiVersion, time=`now`, fieldsType "FieldsV1", fieldsV1; plus `subresource` when
/// given), or the conflicts when `force` is false and another manager owns a field whose value
/// the apply would change (same value = shared ownership, no conflict). With force, ownership
/// moves to `manager`. Fields this manager applied before but no longer applies are removed
/// from the object unless another manager still owns them. Ignored (never owned, never
/// removed): apiVersion, kind, metadata.{name,namespace,uid,resourceVersion,generation,
/// creationTimestamp,deletionTimestamp,deletionGracePeriodSeconds,managedFields,selfLink}.
///
/// Lenient with malformed input (see [`validate_applied`]): keyless items are told apart by the
/// keys they have, duplicates merge into one, unreadable stored managed fields count as none.
/// Like the API server, `kubectl` may take over fields whose value still matches the
/// client-side-apply annotation without force, and rewrites that annotation.
#[allow(clippy::too_many_arguments)] // the signature the API handlers were written against
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    lists: &dyn ListSchema,
    now: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Result<Value, Vec<Conflict>> {
    let entries = live.and_then(|l| decode_entries(l).ok()).unwrap_or_default();
    let writer = Writer::new(lists, manager, now, api_version, subresource);
    writer.apply(live, applied, force, entries)
}

/// [`apply`] that first rejects what the API server rejects: see [`validate_applied`], and stored
/// managed fields that do not decode (`failed to decode managed fields: ...`).
#[allow(clippy::too_many_arguments)] // mirrors `apply`
pub fn try_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    lists: &dyn ListSchema,
    now: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Result<Value, ApplyError> {
    validate_applied(applied, lists).map_err(ApplyError::Invalid)?;
    let entries = match live {
        Some(l) => {
            decode_entries(l).map_err(|e| ApplyError::Invalid(format!("failed to decode managed fields: {e}")))?
        }
        None => Vec::new(),
    };
    let writer = Writer::new(lists, manager, now, api_version, subresource);
    writer.apply(live, applied, force, entries).map_err(ApplyError::Conflicts)
}

/// After a non-apply write (POST/PUT/PATCH) by `manager`: every field whose value `new` adds or
/// changes relative to `old` becomes owned by `manager` (operation "Update") and is taken away
/// from other managers; fields removed are dropped from every manager's set; entries left
/// empty are removed. Returns `new` with metadata.managedFields set.
///
/// As in the API server: managed fields sent in `new` (e.g. kubectl's client-side-apply upgrade
/// patch) replace the stored ones unless empty, unreadable or written through a subresource;
/// `[]` or `[{}]` clears them; and an existing object (one with a uid) without managed fields is
/// left untracked.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    lists: &dyn ListSchema,
    now: &str,
    api_version: &str,
    subresource: Option<&str>,
) -> Value {
    let stored = || old.and_then(|o| decode_entries(o).ok()).unwrap_or_default();
    let sent = managed_fields_of(new);
    let mut entries = if subresource.is_some() {
        stored()
    } else if sent.is_some_and(is_reset) {
        Vec::new()
    } else {
        match decode_list(sent) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => stored(),
        }
    };
    let mut result = without_managed_fields(new);
    let existing =
        old.and_then(|o| o.pointer("/metadata/uid")).and_then(Value::as_str).is_some_and(|uid| !uid.is_empty());
    if entries.is_empty() && existing {
        return result;
    }
    let before = old.map_or_else(|| zero_object(&result), without_managed_fields);
    let writer = Writer::new(lists, manager, now, api_version, subresource);
    writer.record(manager, &before, &result, &mut entries);
    set_managed_fields(&mut result, entries);
    result
}

/// The API server's message, e.g. `Apply failed with 1 conflict: conflict with "helm" using
/// apps/v1: .spec.replicas`, or for several: `Apply failed with 2 conflicts: conflicts with
/// "helm" using apps/v1:\n- .spec.replicas\n- .spec.paused` (managers sorted, one block each).
pub fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", only.owner(api_version), only.field);
    }
    let mut by_manager: BTreeMap<String, (String, Vec<&str>)> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry(c.identifier()).or_insert_with(|| (c.owner(api_version), Vec::new())).1.push(&c.field);
    }
    let mut lines = Vec::new();
    for (owner, fields) in by_manager.values() {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(fields.iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// `details.causes` of the 409 Status: one `FieldManagerConflict` cause per field.
pub fn conflict_causes(conflicts: &[Conflict], api_version: &str) -> Vec<Value> {
    conflicts
        .iter()
        .map(|c| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with {}", c.owner(api_version)),
                "field": c.field,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::lists::{BuiltinLists, SchemaLists};
    use super::*;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const T2: &str = "2024-01-01T00:02:00Z";

    fn ssa(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        now: &str,
    ) -> Result<Value, Vec<Conflict>> {
        apply(live, applied, manager, force, &BuiltinLists, now, "apps/v1", None)
    }

    fn deploy(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}, "spec": spec})
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default()
    }

    fn entry<'v>(obj: &'v Value, manager: &str) -> Option<&'v Value> {
        obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager)
    }

    fn owns(obj: &Value, manager: &str, path: &[&str]) -> bool {
        let Some(e) = entry(obj, manager) else {
            return false;
        };
        let mut node = &e["fieldsV1"];
        for p in path {
            match node.get(*p) {
                Some(n) => node = n,
                None => return false,
            }
        }
        true
    }

    fn container(name: &str, image: &str) -> Value {
        json!({"name": name, "image": image})
    }

    fn containers(spec_containers: Value) -> Value {
        deploy(json!({"template": {"spec": {"containers": spec_containers}}}))
    }

    #[test]
    fn create_sets_managed_fields() {
        let applied = deploy(json!({"replicas": 2}));
        let mut applied = applied;
        applied["metadata"]["labels"] = json!({"app": "web"});
        let out = ssa(None, &applied, "kubectl", false, T0).unwrap();
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(
            entries(&out),
            vec![json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}}
            })]
        );
    }

    #[test]
    fn subresource_is_recorded_and_part_of_identity() {
        let live = ssa(None, &deploy(json!({"replicas": 1})), "ctl", false, T0).unwrap();
        let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {"replicas": 1}});
        let out = apply(Some(&live), &status, "ctl", false, &BuiltinLists, T1, "apps/v1", Some("status")).unwrap();
        let list = entries(&out);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["subresource"], "status");
        assert!(list[1]["fieldsV1"]["f:status"].get("f:replicas").is_some());
        assert_eq!(list[0].get("subresource"), None);
    }

    #[test]
    fn reapply_without_label_removes_it() {
        let mut first = deploy(json!({"replicas": 1}));
        first["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let live = ssa(None, &first, "kubectl", false, T0).unwrap();
        let mut second = deploy(json!({"replicas": 1}));
        second["metadata"]["labels"] = json!({"app": "web"});
        let out = ssa(Some(&live), &second, "kubectl", false, T1).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert!(!owns(&out, "kubectl", &["f:metadata", "f:labels", "f:tier"]));
        // Dropping every label removes the whole map; identity fields stay.
        let out = ssa(Some(&out), &deploy(json!({"replicas": 1})), "kubectl", false, T2).unwrap();
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(out["metadata"]["namespace"], "ns");
    }

    #[test]
    fn shared_field_with_same_value_does_not_conflict() {
        let live = ssa(None, &deploy(json!({"replicas": 3})), "helm", false, T0).unwrap();
        let out = ssa(Some(&live), &deploy(json!({"replicas": 3})), "argo", false, T1).unwrap();
        assert!(owns(&out, "helm", &["f:spec", "f:replicas"]));
        assert!(owns(&out, "argo", &["f:spec", "f:replicas"]));
        // Either one dropping it leaves it to the other; the value stays.
        let out = ssa(Some(&out), &deploy(json!({"paused": false})), "argo", false, T2).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(!owns(&out, "argo", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn different_value_conflicts_and_force_takes_ownership() {
        let live = ssa(None, &deploy(json!({"replicas": 3, "paused": false})), "helm", false, T0).unwrap();
        let conflicts = ssa(Some(&live), &deploy(json!({"replicas": 5})), "argo", false, T1).unwrap_err();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].manager, "helm");
        assert_eq!(conflicts[0].field, ".spec.replicas");
        assert_eq!(
            conflict_message(&conflicts, "apps/v1"),
            "Apply failed with 1 conflict: conflict with \"helm\": .spec.replicas"
        );
        let out = ssa(Some(&live), &deploy(json!({"replicas": 5})), "argo", true, T1).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert!(owns(&out, "argo", &["f:spec", "f:replicas"]));
        assert!(!owns(&out, "helm", &["f:spec", "f:replicas"]));
        assert!(owns(&out, "helm", &["f:spec", "f:paused"]));
        // helm re-applying its old value now conflicts with argo.
        let back = ssa(Some(&out), &deploy(json!({"replicas": 3, "paused": false})), "helm", false, T2).unwrap_err();
        assert_eq!(back[0].manager, "argo");
    }

    #[test]
    fn conflicts_with_updaters_name_the_api_version_and_group_by_manager() {
        let created = record_update(
            None,
            &deploy(json!({"replicas": 1, "paused": true})),
            "helm",
            &BuiltinLists,
            T0,
            "apps/v1",
            None,
        );
        let mut labeled = created.clone();
        labeled["metadata"]["labels"] = json!({"a": "b"});
        let live = record_update(Some(&created), &labeled, "kubectl-label", &BuiltinLists, T1, "apps/v1", None);
        let mut applied = deploy(json!({"replicas": 2, "paused": false}));
        applied["metadata"]["labels"] = json!({"a": "c"});
        let conflicts = ssa(Some(&live), &applied, "kubectl", false, T2).unwrap_err();
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec![".spec.paused", ".spec.replicas", ".metadata.labels.a"]);
        assert_eq!(
            conflict_message(&conflicts, "apps/v1"),
            "Apply failed with 3 conflicts: conflicts with \"helm\" using apps/v1:\n- .spec.paused\n- .spec.replicas\n\
             conflicts with \"kubectl-label\" using apps/v1:\n- .metadata.labels.a"
        );
        assert_eq!(
            conflict_causes(&conflicts[..1], "apps/v1"),
            vec![
                json!({"reason": "FieldManagerConflict", "message": "conflict with \"helm\" using apps/v1", "field": ".spec.paused"})
            ]
        );
        let sub = Conflict { subresource: Some("status".into()), ..conflicts[0].clone() };
        assert_eq!(sub.owner("apps/v1"), "\"helm\" with subresource \"status\" using apps/v1");
    }

    #[test]
    fn reapply_without_own_container_removes_only_it() {
        let live = ssa(None, &containers(json!([container("a", "a:1")])), "alice", false, T0).unwrap();
        let live = ssa(Some(&live), &containers(json!([container("b", "b:1")])), "bob", false, T1).unwrap();
        let names = |o: &Value| {
            o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&live), vec![json!("a"), json!("b")]);
        assert!(owns(&live, "alice", &["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"a\"}", "."]));
        assert!(owns(
            &live,
            "bob",
            &["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"b\"}", "f:image"]
        ));
        let out = ssa(Some(&live), &deploy(json!({"replicas": 1})), "alice", false, T2).unwrap();
        assert_eq!(names(&out), vec![json!("b")]);
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "b:1");
        assert!(owns(&out, "bob", &["f:spec", "f:template", "f:spec", "f:containers", "k:{\"name\":\"b\"}"]));
        // Once bob gives up b as well, nobody owns anything under the template: it goes whole.
        let out = ssa(Some(&out), &deploy(json!({"replicas": 1})), "bob", false, T2).unwrap();
        assert_eq!(out["spec"], json!({"replicas": 1}));
    }

    #[test]
    fn record_update_moves_ownership_of_changed_fields() {
        let live = ssa(None, &deploy(json!({"replicas": 3, "paused": false})), "helm", false, T0).unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(7);
        scaled["metadata"]["resourceVersion"] = json!("2");
        let out = record_update(Some(&live), &scaled, "kubectl-scale", &BuiltinLists, T1, "apps/v1", None);
        assert_eq!(out["spec"]["replicas"], 7);
        assert!(owns(&out, "kubectl-scale", &["f:spec", "f:replicas"]));
        assert!(!owns(&out, "kubectl-scale", &["f:metadata"]));
        assert!(!owns(&out, "helm", &["f:spec", "f:replicas"]));
        assert!(owns(&out, "helm", &["f:spec", "f:paused"]));
        let e = entry(&out, "kubectl-scale").unwrap();
        assert_eq!((e["operation"].as_str(), e["time"].as_str()), (Some("Update"), Some(T1)));
        // Appliers sort before updaters.
        assert_eq!(entries(&out)[0]["manager"], "helm");
        // Removing a field drops it from its owner; an unchanged write keeps the entries as they are.
        let mut unpaused = out.clone();
        unpaused["spec"].as_object_mut().unwrap().remove("paused");
        let out2 = record_update(Some(&out), &unpaused, "other", &BuiltinLists, T2, "apps/v1", None);
        assert!(!owns(&out2, "helm", &["f:spec", "f:paused"]));
        assert!(entry(&out2, "other").is_none());
        // helm owned nothing else and disappears.
        assert!(entry(&out2, "helm").is_none());
        let same = record_update(Some(&out2), &out2, "noop", &BuiltinLists, T2, "apps/v1", None);
        assert_eq!(same["metadata"]["managedFields"], out2["metadata"]["managedFields"]);
    }

    #[test]
    fn record_update_on_create_owns_new_maps_and_items() {
        let mut obj = containers(json!([{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}]));
        obj["metadata"]["labels"] = json!({"app": "web"});
        obj["metadata"]["uid"] = json!("u1");
        let out = record_update(None, &obj, "kubectl-create", &BuiltinLists, T0, "apps/v1", None);
        let fields = &entry(&out, "kubectl-create").unwrap()["fieldsV1"];
        assert_eq!(fields["f:metadata"], json!({"f:labels": {".": {}, "f:app": {}}}));
        let c = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"a\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"], json!({}));
        assert!(fields["f:spec"].get(".").is_none());
    }

    #[test]
    fn record_update_honours_sent_managed_fields_and_reset() {
        let live = record_update(
            None,
            &deploy(json!({"replicas": 1})),
            "kubectl-client-side-apply",
            &BuiltinLists,
            T0,
            "apps/v1",
            None,
        );
        let mut live = live;
        live["metadata"]["uid"] = json!("u1");
        // kubectl's upgrade to server-side apply rewrites the entry through a plain patch.
        let mut upgraded = live.clone();
        upgraded["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        upgraded["metadata"]["managedFields"][0]["operation"] = json!("Apply");
        let out = record_update(Some(&live), &upgraded, "kubectl", &BuiltinLists, T1, "apps/v1", None);
        assert_eq!(entries(&out).len(), 1);
        assert_eq!(entry(&out, "kubectl").unwrap()["operation"], "Apply");
        // Through a subresource the sent fields are ignored.
        let out = record_update(Some(&live), &upgraded, "kubectl", &BuiltinLists, T1, "apps/v1", Some("status"));
        assert!(entry(&out, "kubectl-client-side-apply").is_some());
        // `[]` clears them, and an existing object without them stays untracked.
        let mut reset = live.clone();
        reset["metadata"]["managedFields"] = json!([]);
        let cleared = record_update(Some(&live), &reset, "x", &BuiltinLists, T1, "apps/v1", None);
        assert!(cleared["metadata"].get("managedFields").is_none());
        let mut changed = cleared.clone();
        changed["spec"]["replicas"] = json!(4);
        let untracked = record_update(Some(&cleared), &changed, "x", &BuiltinLists, T2, "apps/v1", None);
        assert!(untracked["metadata"].get("managedFields").is_none());
        assert_eq!(untracked["spec"]["replicas"], 4);
    }

    #[test]
    fn first_apply_on_untracked_object_conflicts_with_before_first_apply() {
        let live = deploy(json!({"replicas": 1, "paused": true}));
        let err = ssa(Some(&live), &deploy(json!({"replicas": 2})), "mgr", false, T1).unwrap_err();
        assert_eq!((err[0].manager.as_str(), err[0].field.as_str()), (BEFORE_FIRST_APPLY, ".spec.replicas"));
        let out = ssa(Some(&live), &deploy(json!({"replicas": 1})), "mgr", false, T1).unwrap();
        assert!(owns(&out, BEFORE_FIRST_APPLY, &["f:spec", "f:paused"]));
        assert!(owns(&out, "mgr", &["f:spec", "f:replicas"]));
    }

    #[test]
    fn kubectl_takes_over_client_side_apply_fields_and_syncs_annotation() {
        let last = go_json(&deploy(json!({"replicas": 3})));
        let mut created = deploy(json!({"replicas": 3, "paused": false}));
        created["metadata"]["annotations"] = json!({LAST_APPLIED: last});
        let live = record_update(None, &created, "kubectl-client-side-apply", &BuiltinLists, T0, "apps/v1", None);
        let applied = deploy(json!({"replicas": 4, "paused": true}));
        // Another manager conflicts with the client-side applier as usual.
        let err = ssa(Some(&live), &applied, "other", false, T1).unwrap_err();
        assert!(err.iter().all(|c| c.manager == "kubectl-client-side-apply"));
        assert_eq!(err.len(), 2);
        // kubectl may take replicas (still as last applied) but not paused (never applied).
        let err = ssa(Some(&live), &applied, KUBECTL, false, T1).unwrap_err();
        assert_eq!(err.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), vec![".spec.paused"]);
        let out = ssa(Some(&live), &deploy(json!({"replicas": 4})), KUBECTL, false, T1).unwrap();
        assert_eq!(out["spec"]["replicas"], 4);
        assert!(owns(&out, KUBECTL, &["f:spec", "f:replicas"]));
        let synced = out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        assert_eq!(synced, format!("{}\n", go_json(&deploy(json!({"replicas": 4})))));
    }

    #[test]
    fn explicit_null_removes_the_field_and_conflicts_with_its_owner() {
        let live = ssa(None, &deploy(json!({"replicas": 3, "paused": true})), "helm", false, T0).unwrap();
        let err = ssa(Some(&live), &deploy(json!({"paused": null})), "argo", false, T1).unwrap_err();
        assert_eq!(err[0].field, ".spec.paused");
        let out = ssa(Some(&live), &deploy(json!({"paused": null})), "argo", true, T1).unwrap();
        assert!(out["spec"].get("paused").is_none());
        assert!(owns(&out, "argo", &["f:spec", "f:paused"]));
    }

    #[test]
    fn noop_apply_keeps_time_and_object() {
        let live = ssa(None, &deploy(json!({"replicas": 1})), "kubectl", false, T0).unwrap();
        let again = ssa(Some(&live), &deploy(json!({"replicas": 1})), "kubectl", false, T1).unwrap();
        assert_eq!(again, live);
    }

    #[test]
    fn atomic_fields_and_set_lists() {
        let mut first = deploy(json!({"selector": {"matchLabels": {"app": "a", "x": "y"}}}));
        first["metadata"]["finalizers"] = json!(["f1"]);
        let live = ssa(None, &first, "a", false, T0).unwrap();
        assert!(owns(&live, "a", &["f:spec", "f:selector"]));
        assert!(owns(&live, "a", &["f:metadata", "f:finalizers", "v:\"f1\""]));
        let mut second = deploy(json!({"selector": {"matchLabels": {"app": "a"}}}));
        second["metadata"]["finalizers"] = json!(["f2"]);
        let out = ssa(Some(&live), &second, "a", false, T1).unwrap();
        // An atomic selector is replaced as a whole; set items merge and f1 is pruned.
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"app": "a"}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["f2"]));
        let mut other = deploy(json!({}));
        other["metadata"]["finalizers"] = json!(["f3"]);
        let out = ssa(Some(&out), &other, "b", false, T2).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f2", "f3"]));
    }

    #[test]
    fn crd_map_list_from_schema() {
        let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "routes": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host", "port"],
                "items": {"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer", "default": 80}}}}
        }}}}});
        let lists = SchemaLists { schema: &schema };
        let cr = |routes: Value| json!({"apiVersion": "ex.io/v1", "kind": "Gw", "metadata": {"name": "g"}, "spec": {"routes": routes}});
        let live =
            apply(None, &cr(json!([{"host": "a", "w": 1}])), "one", false, &lists, T0, "ex.io/v1", None).unwrap();
        let live =
            apply(Some(&live), &cr(json!([{"host": "b", "port": 81}])), "two", false, &lists, T1, "ex.io/v1", None)
                .unwrap();
        assert_eq!(live["spec"]["routes"], json!([{"host": "a", "w": 1}, {"host": "b", "port": 81}]));
        assert!(owns(&live, "one", &["f:spec", "f:routes", "k:{\"host\":\"a\",\"port\":80}", "f:w"]));
        let err = apply(Some(&live), &cr(json!([{"host": "a", "w": 2}])), "two", false, &lists, T2, "ex.io/v1", None)
            .unwrap_err();
        assert_eq!(err[0].field, ".spec.routes[host=\"a\",port=80].w");
        let out = apply(Some(&live), &cr(json!([])), "one", false, &lists, T2, "ex.io/v1", None).unwrap();
        assert_eq!(out["spec"]["routes"], json!([{"host": "b", "port": 81}]));
    }

    /// Vectors from structured-merge-diff's merge/set_test.go (apply, update, apply).
    #[test]
    fn set_list_apply_update_apply() {
        let schema = json!({"properties": {"list": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}});
        let lists = SchemaLists { schema: &schema };
        let obj = |items: &[&str]| json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "list": items});
        let by_default = |live: Option<&Value>, o: &Value| apply(live, o, "default", false, &lists, T2, "v1", None);
        let live = by_default(None, &obj(&["a", "c"])).unwrap();
        let mut updated = live.clone();
        updated["list"] = json!(["a", "b", "c", "d"]);
        let live = record_update(Some(&live), &updated, "controller", &lists, T1, "v1", None);
        assert_eq!(entry(&live, "controller").unwrap()["fieldsV1"], json!({"f:list": {"v:\"b\"": {}, "v:\"d\"": {}}}));

        let out = by_default(Some(&live), &obj(&["a", "aprime", "c", "cprime"])).unwrap();
        assert_eq!(out["list"], json!(["a", "b", "aprime", "c", "d", "cprime"]));
        let mine: Vec<&String> =
            entry(&out, "default").unwrap()["fieldsV1"]["f:list"].as_object().unwrap().keys().collect();
        assert_eq!(mine, vec!["v:\"a\"", "v:\"aprime\"", "v:\"c\"", "v:\"cprime\""]);

        let out = by_default(Some(&live), &obj(&["a", "b", "c"])).unwrap();
        assert_eq!(out["list"], json!(["a", "b", "c", "d"]));
        assert!(owns(&out, "default", &["f:list", "v:\"b\""]));
        assert!(owns(&out, "controller", &["f:list", "v:\"b\""]));
    }

    #[test]
    fn try_apply_rejects_malformed_input() {
        let dup = containers(json!([container("a", "1"), container("a", "2")]));
        assert_eq!(
            try_apply(None, &dup, "m", false, &BuiltinLists, T0, "apps/v1", None),
            Err(ApplyError::Invalid(".spec.template.spec.containers: duplicate entries for key [name=\"a\"]".into()))
        );
        let mut with_fields = deploy(json!({}));
        with_fields["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            try_apply(None, &with_fields, "m", false, &BuiltinLists, T0, "apps/v1", None),
            Err(ApplyError::Invalid("metadata.managedFields must be nil".into()))
        );
        let mut broken = deploy(json!({}));
        broken["metadata"]["managedFields"] =
            json!([{"manager": "x", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
        let err =
            try_apply(Some(&broken), &deploy(json!({})), "m", false, &BuiltinLists, T0, "apps/v1", None).unwrap_err();
        assert_eq!(
            err,
            ApplyError::Invalid("failed to decode managed fields: operation must be `Apply` or `Update`".into())
        );
        // The lenient form takes them as they come.
        let out = apply(None, &dup, "m", false, &BuiltinLists, T0, "apps/v1", None).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        assert!(
            try_apply(None, &deploy(json!({"replicas": 1})), "m", false, &BuiltinLists, T0, "apps/v1", None).is_ok()
        );
    }
}
