//! Strategic merge patch as the API server applies it (k8s.io/apimachinery/pkg/util/strategicpatch,
//! `StrategicMergeMapPatch` with `MergeParallelList` and `IgnoreUnmatchedNulls`).
//!
//! The API server stores what the patched map decodes into, a typed Go object: directive keys and
//! nulls taken over verbatim from the patch vanish there. Since kubesim stores the JSON itself,
//! values copied from the patch are cleaned of both.

use std::mem::discriminant;

use serde_json::{Map, Value};

use super::lists::{ListSchema, MergeStrategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

const ERR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

/// Kubernetes strategic merge patch: maps merge recursively, null deletes a key, lists merge
/// by their merge key (or are replaced), and the directives `$patch: replace|delete|merge`,
/// `$retainKeys`, `$setElementOrder/<field>`, `$deleteFromPrimitiveList/<field>` work as in
/// k8s.io/apimachinery/pkg/util/strategicpatch (kubectl apply and Helm 3 send these).
/// Errors carry the apimachinery message.
pub fn strategic_merge(original: &Value, patch: &Value, lists: &dyn ListSchema) -> Result<Value, String> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err("invalid JSON document".to_string());
    };
    Smp { lists }.merge_map(original.clone(), patch.clone(), &mut Vec::new()).map(Value::Object)
}

/// Go's `%v` of a decoded JSON value, which the apimachinery errors embed.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> String {
    format!("expected a {expected}, but received a {}", go_type(actual))
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> String {
    format!("map: {} does not contain declared merge key: {key}", go_fmt(&Value::Object(m.clone())))
}

fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> String {
    format!("unknown patch type: {} in map: {}", go_fmt(directive), go_fmt(&Value::Object(m.clone())))
}

fn extract_key(key: &str, prefix: &str) -> Result<String, String> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(ERR_PRIMITIVE_LIST.to_string()),
        _ => Err(ERR_SET_ELEMENT_ORDER.to_string()),
    }
}

fn is_directive_key(key: &str) -> bool {
    key == RETAIN_KEYS
        || key.starts_with(&format!("{SET_ELEMENT_ORDER}/"))
        || key.starts_with(&format!("{DELETE_FROM_PRIMITIVE_LIST}/"))
}

/// A patch value taken over as is: without nulls (`discardNullValuesFromPatch`), without maps
/// carrying `$patch` (`removeDirectives`) and without the other directive keys.
fn sanitize(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(sanitize_map(m))),
        Value::Array(items) => Some(Value::Array(sanitize_list(items))),
        other => Some(other),
    }
}

fn sanitize_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| sanitize(v).map(|v| (k, v)))
        .collect()
}

fn sanitize_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(sanitize).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Scalar,
}

/// `sliceElementType`: every item of both lists must have the same JSON type, and not be a list.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<Kind, String> {
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch) {
        match first {
            None if v.is_array() => return Err("lists of lists are not supported".to_string()),
            None => first = Some(v),
            Some(f) if discriminant(f) != discriminant(v) => {
                let both = Value::Array(vec![Value::Array(original.to_vec()), Value::Array(patch.to_vec())]);
                return Err(format!("list element types are not identical: {}", go_fmt(&both)));
            }
            Some(_) => {}
        }
    }
    match first {
        None => Err("no elements in any of the given slices".to_string()),
        Some(v) if v.is_object() => Ok(Kind::Map),
        Some(_) => Ok(Kind::Scalar),
    }
}

fn merge_value<'a>(item: &'a Value, key: &str, kind: Kind) -> Option<&'a Value> {
    match kind {
        Kind::Map => item.as_object().and_then(|m| m.get(key)),
        Kind::Scalar => Some(item),
    }
}

/// `index`: position of `item` in `list`, by merge key value for maps.
fn index_of(list: &[Value], item: &Value, key: &str, kind: Kind) -> Option<usize> {
    let wanted = merge_value(item, key, kind);
    list.iter().position(|v| merge_value(v, key, kind) == wanted)
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, String> {
    for (i, item) in list.iter().enumerate() {
        let m = item.as_object().ok_or_else(|| format!("value for key {i} is not a map"))?;
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn extract_to_delete_items(items: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in items {
        let m = v.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", &v))?;
        if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

fn validate_merge_key_in_lists(key: &str, lists: &[&[Value]]) -> Result<(), String> {
    for item in lists.iter().flat_map(|l| l.iter()) {
        let m = item.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", item))?;
        if !m.contains_key(key) {
            return Err(no_merge_key(m, key));
        }
    }
    Ok(())
}

/// `normalizeSliceOrder`: sorts `items` by their position in `order`, deletions last.
fn normalize_slice_order(items: Vec<Value>, order: &[Value], key: &str, kind: Kind) -> Result<Vec<Value>, String> {
    let (mut items, deletions) = if kind == Kind::Map {
        validate_merge_key_in_lists(key, &[&items, order])?;
        extract_to_delete_items(items)?
    } else {
        (items, Vec::new())
    };
    items.sort_by_key(|item| index_of(order, item, key, kind).unwrap_or(usize::MAX));
    items.extend(deletions);
    Ok(items)
}

/// `mergeSortedSlice`: inserts server-only items (`left`) between patch items (`right`) where the
/// live order puts them; an item the live list lacks (new in the patch) goes first.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_of(server_order, l, key, kind), index_of(server_order, r, key, kind)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    kind: Kind,
) -> Result<Vec<Value>, String> {
    let patch_items = normalize_slice_order(patch_items, patch_order, key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, key, kind)?;
    Ok(merge_sorted_slice(server_only, patch_items, server_order, key, kind))
}

/// Splits `merged` into the items `by` mentions and the rest (`partition*ByPresentInList`).
fn partition(merged: Vec<Value>, by: &[Value], key: &str) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut in_patch = Vec::new();
    let mut server_only = Vec::new();
    for v in merged {
        let present = if key.is_empty() {
            by.contains(&v)
        } else {
            let m = v.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", &v))?;
            let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
            find_by_key(by, key, value)?.is_some()
        };
        if present {
            in_patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((in_patch, server_only))
}

fn dedup_scalars(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn contains_directive(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

fn merge_key_values_equal(left: &Value, right: &Value, key: &str) -> Result<bool, String> {
    if key.is_empty() {
        return Ok(left == right);
    }
    let l = left.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", left))?;
    let r = right.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(lv == rv)
}

/// `validatePatchWithSetOrderList`: the patch list must be a subsequence of the order list.
fn validate_order_list(patch_list: &[Value], order: &[Value], key: &str) -> Result<(), String> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let items = if key.is_empty() { patch_list.to_vec() } else { extract_to_delete_items(patch_list.to_vec())?.0 };
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if contains_directive(&items[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_values_equal(&items[pi], &order[oi], key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() && oi >= order.len() {
        return Err(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        ));
    }
    Ok(())
}

/// `applyRetainKeysDirective`: drop every original key the directive does not list.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), String> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(ERR_RETAIN_KEYS.to_string());
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER) && !listed(k)
    });
    if unlisted {
        return Err(ERR_RETAIN_KEYS.to_string());
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// A list field's value for `$setElementOrder` processing; null counts as absent.
fn list_field(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(bad_arg_type("[]interface {}", other)),
    }
}

struct Smp<'a> {
    lists: &'a dyn ListSchema,
}

impl Smp<'_> {
    fn strategy(&self, names: &[String], field: &str) -> Option<MergeStrategy> {
        let mut path: Vec<&str> = names.iter().map(String::as_str).collect();
        path.push(field);
        self.lists.merge_key(&path)
    }

    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        names: &mut Vec<String>,
    ) -> Result<Map<String, Value>, String> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            return match directive.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE);
                    Ok(sanitize_map(patch))
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(bad_patch_type(directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, names)?;
        // Deletion lists go last: kubectl pairs them with the list's $setElementOrder, whose
        // merge has to see the items before they are deleted.
        let (deletions, fields): (Vec<_>, Vec<_>) =
            patch.into_iter().partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
        for (key, value) in fields {
            self.merge_field(&mut original, key, value, false, names)?;
        }
        for (key, value) in deletions {
            let key = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?;
            self.merge_field(&mut original, key, value, true, names)?;
        }
        Ok(original)
    }

    fn merge_field(
        &self,
        original: &mut Map<String, Value>,
        key: String,
        patch: Value,
        delete_list: bool,
        names: &mut Vec<String>,
    ) -> Result<(), String> {
        if patch.is_null() {
            original.remove(&key);
            return Ok(());
        }
        let Some(current) = original.remove(&key) else {
            if !delete_list && let Some(v) = sanitize(patch) {
                original.insert(key, v);
            }
            return Ok(());
        };
        let merged = match (current, patch) {
            (Value::Object(om), Value::Object(pm)) => {
                names.push(key.clone());
                let merged = self.merge_map(om, pm, names);
                names.pop();
                Some(Value::Object(merged?))
            }
            (Value::Array(ol), Value::Array(pl)) => {
                let strategy = self.strategy(names, &key);
                names.push(key.clone());
                let merged = self.merge_list(ol, pl, strategy, delete_list, names);
                names.pop();
                Some(Value::Array(merged?))
            }
            (current, patch) if delete_list && discriminant(&current) != discriminant(&patch) => Some(current),
            (_, patch) => sanitize(patch),
        };
        if let Some(v) = merged {
            original.insert(key, v);
        }
        Ok(())
    }

    /// `mergeSliceHandler`: lists without a merge strategy are replaced by the patch.
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        strategy: Option<MergeStrategy>,
        delete_list: bool,
        names: &mut Vec<String>,
    ) -> Result<Vec<Value>, String> {
        let key = match &strategy {
            Some(MergeStrategy::Key(k)) => k.clone(),
            _ => String::new(),
        };
        if strategy.is_none() && !delete_list {
            return Ok(sanitize_list(patch));
        }
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = element_kind(&original, &patch)?;
        let (server_order, patch_order, merged) = match kind {
            Kind::Scalar if delete_list => {
                return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
            }
            Kind::Scalar => {
                let merged = dedup_scalars(original.iter().chain(&patch).cloned());
                (original, patch, merged)
            }
            Kind::Map if key.is_empty() => {
                return Err(format!("cannot merge lists without merge key for {}", names.join(".")));
            }
            Kind::Map => {
                let (original, patch) = Self::apply_item_directives(original, patch, &key)?;
                let merged = self.merge_items(original.clone(), &patch, &key, names)?;
                (original, patch, merged)
            }
        };
        let (patch_items, server_only) = partition(merged, &patch_order, &key)?;
        normalize_element_order(patch_items, server_only, &patch_order, &server_order, &key, kind)
    }

    /// `mergeSliceWithSpecialElements`: `{"$patch": "delete", <key>: v}` removes items,
    /// `{"$patch": "replace"}` makes the rest of the patch list the whole list.
    fn apply_item_directives(
        mut original: Vec<Value>,
        patch: Vec<Value>,
        key: &str,
    ) -> Result<(Vec<Value>, Vec<Value>), String> {
        let mut plain = Vec::new();
        let mut replace = false;
        for item in patch {
            let Some(m) = item.as_object() else {
                return Err(bad_arg_type("map[string]interface {}", &item));
            };
            let Some(directive) = m.get(DIRECTIVE) else {
                plain.push(item);
                continue;
            };
            match directive.as_str() {
                Some("delete") => {
                    let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                    while let Some(i) = find_by_key(&original, key, value)? {
                        original.remove(i);
                    }
                }
                Some("replace") => replace = true,
                Some("merge") => return Err("merging lists cannot yet be specified in the patch".to_string()),
                _ => return Err(bad_patch_type(directive, m)),
            }
        }
        if replace { Ok((sanitize_list(plain), Vec::new())) } else { Ok((original, plain)) }
    }

    /// `mergeSliceWithoutSpecialElements`: items with a known key merge, new ones are appended.
    fn merge_items(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        key: &str,
        names: &mut Vec<String>,
    ) -> Result<Vec<Value>, String> {
        for item in patch {
            let Some(m) = item.as_object() else {
                return Err(bad_arg_type("map[string]interface {}", item));
            };
            let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
            match find_by_key(&original, key, value)? {
                Some(i) => {
                    let current = match original[i].take() {
                        Value::Object(current) => current,
                        _ => Map::new(),
                    };
                    original[i] = Value::Object(self.merge_map(current, m.clone(), names)?);
                }
                None => original.extend(sanitize(item.clone())),
            }
        }
        Ok(original)
    }

    /// `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder/<field>` and sorts
    /// it: the directive's order first, then the patch's, then the live list's.
    fn merge_ordered_lists(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        names: &mut Vec<String>,
    ) -> Result<(), String> {
        let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
        for directive in directives {
            let Some(order) = patch.remove(&directive) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(bad_arg_type("[]interface {}", &order));
            };
            let field = extract_key(&directive, SET_ELEMENT_ORDER)?;
            let original_list = list_field(original, &field)?;
            let patch_list = list_field(patch, &field)?;
            let strategy = self.strategy(names, &field);
            let key = match &strategy {
                Some(MergeStrategy::Key(k)) => k.clone(),
                _ => String::new(),
            };
            validate_order_list(patch_list.as_deref().unwrap_or_default(), &order, &key)?;
            let live_order = original_list.clone().unwrap_or_default();
            let patch_items = patch_list.clone().unwrap_or_default();
            let merged = match (original_list, patch_list) {
                (Some(o), None) => o,
                (None, Some(p)) => sanitize_list(p),
                (Some(o), Some(p)) => {
                    names.push(field.clone());
                    let merged = self.merge_list(o, p, strategy, false, names);
                    names.pop();
                    merged?
                }
                (None, None) => continue,
            };
            patch.remove(&field);
            // Nothing to sort when both sides are empty (apimachinery errors out here instead).
            let sorted = match element_kind(&live_order, &patch_items) {
                Ok(kind) => {
                    let (listed, server_only) = partition(merged, &order, &key)?;
                    normalize_element_order(listed, server_only, &order, &live_order, &key, kind)?
                }
                Err(_) if live_order.is_empty() && patch_items.is_empty() => merged,
                Err(e) => return Err(e),
            };
            original.insert(field, Value::Array(sorted));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::lists::BuiltinLists;
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Result<Value, String> {
        strategic_merge(&original, &patch, &BuiltinLists)
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    fn container_names(obj: &Value) -> Vec<String> {
        obj["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn containers_merge_by_name_in_set_element_order() {
        let live = deployment(json!([
            {"name": "a", "image": "a:1", "terminationMessagePath": "/dev/termination-log"},
            {"name": "sidecar", "image": "s:1"},
            {"name": "b", "image": "b:1"}
        ]));
        // What kubectl apply sends after the user reordered b before a, bumped a and added c.
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}],
            "containers": [{"name": "a", "image": "a:2"}, {"name": "c", "image": "c:1"}]
        }}}});
        let out = smp(live, patch).unwrap();
        // The server-only sidecar is slotted in before the first listed item it preceded live.
        assert_eq!(container_names(&out), vec!["sidecar", "b", "a", "c"]);
        let a = &out["spec"]["template"]["spec"]["containers"][2];
        assert_eq!(a, &json!({"name": "a", "image": "a:2", "terminationMessagePath": "/dev/termination-log"}));
        assert!(out["spec"]["template"]["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn set_element_order_alone_reorders() {
        let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let patch =
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}});
        assert_eq!(container_names(&smp(live, patch).unwrap()), vec!["b", "a"]);
    }

    #[test]
    fn new_item_without_order_directive_goes_first() {
        let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c"}]}}}});
        assert_eq!(container_names(&smp(live, patch).unwrap()), vec!["c", "a", "b"]);
    }

    #[test]
    fn patch_delete_removes_list_item() {
        let live = deployment(json!([{"name": "a"}, {"name": "b", "env": [{"name": "X", "value": "1"}]}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}}}});
        assert_eq!(container_names(&smp(live, patch).unwrap()), vec!["b"]);
        let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}});
        let err = smp(deployment(json!([{"name": "a"}])), missing_key).unwrap_err();
        assert_eq!(err, "map: map[$patch:delete] does not contain declared merge key: name");
    }

    #[test]
    fn patch_replace_on_list_and_map() {
        let live = deployment(json!([{"name": "a", "image": "x"}, {"name": "b"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": null}]}}}});
        let out = smp(live.clone(), patch).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "z"}]));
        let patch = json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"x": "y"}}}}});
        let out = smp(live.clone(), patch).unwrap();
        assert_eq!(out["spec"]["template"], json!({"metadata": {"labels": {"x": "y"}}}));
        let patch = json!({"spec": {"template": {"$patch": "delete"}}});
        assert_eq!(smp(live.clone(), patch).unwrap()["spec"]["template"], json!({}));
        let bad = json!({"spec": {"$patch": "merge"}});
        assert!(smp(live.clone(), bad).unwrap_err().starts_with("unknown patch type: merge in map:"));
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}});
        assert_eq!(smp(live, bad).unwrap_err(), "merging lists cannot yet be specified in the patch");
    }

    #[test]
    fn null_deletes_map_keys_and_unmatched_nulls_are_dropped() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"k": "v"}}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3", "zz": null}, "annotations": null,
                                        "newMap": {"x": null, "y": 1}}});
        let out = smp(live, patch).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"b": "2", "c": "3"}, "newMap": {"y": 1}}}));
    }

    #[test]
    fn finalizers_merge_as_primitives_and_delete_from_primitive_list() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = smp(live.clone(), json!({"metadata": {"finalizers": ["b", "c"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(live.clone(), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}})).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        // kubectl's form: order directive plus deletion list, and a new item.
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["c", "b"],
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "finalizers": ["c"]
        }});
        assert_eq!(smp(live.clone(), patch).unwrap()["metadata"]["finalizers"], json!(["c", "b"]));
        // A deletion list for a missing field adds nothing.
        let out =
            smp(json!({"metadata": {}}), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})).unwrap();
        assert_eq!(out, json!({"metadata": {}}));
        let bad = json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}});
        assert_eq!(smp(live, bad).unwrap_err(), "invalid patch format of primitive list");
    }

    #[test]
    fn lists_without_strategy_are_replaced() {
        let live = deployment(json!([{"name": "a", "args": ["1", "2"], "env": [{"name": "A", "value": "1"}]}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "args": ["3"], "env": [{"name": "B", "value": "2"}]}
        ]}}}});
        let out = smp(live, patch).unwrap();
        let c = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["3"]));
        assert_eq!(c["env"], json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]));
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(smp(live.clone(), patch).unwrap(), json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        assert_eq!(smp(live, bad).unwrap_err(), "invalid patch format of retainKeys");
        // Taken over verbatim into a missing field, the directive must not be stored.
        let out =
            smp(json!({"spec": {}}), json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}))
                .unwrap();
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }

    #[test]
    fn type_changes_and_errors() {
        let out = smp(json!({"a": {"b": 1}, "n": 1}), json!({"a": "s", "n": "x"})).unwrap();
        assert_eq!(out, json!({"a": "s", "n": "x"}));
        assert_eq!(smp(json!({}), json!([])).unwrap_err(), "invalid JSON document");
        let live = deployment(json!([{"name": "a"}]));
        let err =
            smp(live.clone(), json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})).unwrap_err();
        assert_eq!(err, "map: map[image:x] does not contain declared merge key: name");
        let err = smp(live.clone(), json!({"spec": {"template": {"spec": {"containers": ["x"]}}}})).unwrap_err();
        assert!(err.starts_with("list element types are not identical"), "{err}");
        let order = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "b"}]
        }}}});
        assert!(smp(live, order).unwrap_err().starts_with("The order in patch list:"));
        let merge_without_key = json!({"metadata": {"finalizers": [{"a": 1}]}});
        assert_eq!(
            smp(json!({"metadata": {"finalizers": [{"b": 1}]}}), merge_without_key).unwrap_err(),
            "cannot merge lists without merge key for metadata.finalizers"
        );
    }

    struct TestLists;

    impl ListSchema for TestLists {
        fn list_type(&self, _path: &[&str]) -> super::super::lists::ListType {
            super::super::lists::ListType::Atomic
        }

        fn merge_key(&self, path: &[&str]) -> Option<MergeStrategy> {
            match path {
                ["mergingList"] => Some(MergeStrategy::Key("name".into())),
                ["mergingIntList"] => Some(MergeStrategy::Primitive),
                _ => None,
            }
        }
    }

    fn named(items: &[i64]) -> Value {
        Value::Array(items.iter().map(|n| json!({"name": n})).collect())
    }

    /// Vectors from apimachinery's patch_test.go ("set elements order ... with server-only items").
    #[test]
    fn server_only_items_keep_their_relative_place() {
        let order = json!({"$setElementOrder/mergingList": named(&[4, 2, 3, 1])});
        let out = strategic_merge(&json!({"mergingList": named(&[1, 3, 4, 2, 9])}), &order, &TestLists).unwrap();
        assert_eq!(out["mergingList"], named(&[4, 2, 3, 1, 9]));
        let order = json!({"$setElementOrder/mergingList": named(&[2, 1, 4, 3])});
        let out = strategic_merge(&json!({"mergingList": named(&[1, 2, 9, 3, 4])}), &order, &TestLists).unwrap();
        assert_eq!(out["mergingList"], named(&[2, 1, 9, 4, 3]));
        let out = strategic_merge(&json!({"mergingList": named(&[1, 2, 7, 9, 8, 3, 4])}), &order, &TestLists).unwrap();
        assert_eq!(out["mergingList"], named(&[2, 1, 7, 9, 8, 4, 3]));
        let add = json!({"$setElementOrder/mergingIntList": [1, 4, 2, 3], "mergingIntList": [4, 3]});
        let out = strategic_merge(&json!({"mergingIntList": [1, 2]}), &add, &TestLists).unwrap();
        assert_eq!(out["mergingIntList"], json!([1, 4, 2, 3]));
        let order = json!({"$setElementOrder/mergingIntList": [4, 2, 3, 1]});
        let out = strategic_merge(&json!({"mergingIntList": [1, 3, 4, 2, 9]}), &order, &TestLists).unwrap();
        assert_eq!(out["mergingIntList"], json!([4, 2, 3, 1, 9]));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let live = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
        let out = smp(live, patch).unwrap();
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443}]));
    }
}
