//! Field paths and field sets as in sigs.k8s.io/structured-merge-diff, over untyped JSON: the
//! [`ListSchema`] supplies what the typed schema would (list types, atomic maps, key defaults).
//!
//! Without a Go type every object key is treated like a struct field, so a non-empty object is
//! never owned as a whole, only through its leaves (the API server owns map *keys* of
//! `map[string]object` fields as members too; the difference only shows for such maps).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::lists::{ListSchema, ListType};

/// One step of a field path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// `f:<name>`: an object field.
    Field(String),
    /// `k:{...}`: a map-list item, by its key fields sorted by name.
    Key(Vec<(String, Value)>),
    /// `v:<json>`: a set-list item.
    Value(Value),
    /// `i:<n>`: a positional item (only read back, never produced).
    Index(usize),
}

pub type Path = Vec<PathElement>;
pub type FieldSet = BTreeSet<Path>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                cmp_entries(a.iter().map(|(k, v)| (k, v)), b.iter().map(|(k, v)| (k, v)))
            }
            (PathElement::Value(a), PathElement::Value(b)) => cmp_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

fn cmp_entries<'a>(
    a: impl Iterator<Item = (&'a String, &'a Value)>,
    b: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Ordering {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ka, va)), Some((kb, vb))) => {
                let o = ka.cmp(kb).then_with(|| cmp_values(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

fn sorted_entries(m: &Map<String, Value>) -> BTreeMap<&String, &Value> {
    m.iter().collect()
}

/// Total order of JSON values as structured-merge-diff sorts them: numbers (compared by value,
/// so `80` equals `80.0`), strings, booleans, lists, maps, null.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            x.iter().zip(y).map(|(p, q)| cmp_values(p, q)).find(|o| o.is_ne()).unwrap_or_else(|| x.len().cmp(&y.len()))
        }
        (Value::Object(x), Value::Object(y)) => {
            let (x, y) = (sorted_entries(x), sorted_entries(y));
            cmp_entries(x.into_iter(), y.into_iter())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Deep equality where numbers compare by value.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    cmp_values(a, b) == Ordering::Equal
}

fn write_number(out: &mut String, n: &Number) {
    match n.as_f64() {
        // Go prints whole floats without a fraction (2.0 is "2"), in JSON and in "%v".
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => {
            let _ = write!(out, "{f:.0}");
        }
        _ => {
            let _ = write!(out, "{n}");
        }
    }
}

impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push('[');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push('=');
                    write_go(&mut out, value, GoStyle::Path);
                }
                out.push(']');
            }
            PathElement::Value(value) => {
                out.push_str("[=");
                write_go(&mut out, value, GoStyle::Path);
                out.push(']');
            }
            PathElement::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
        f.write_str(&out)
    }
}

/// A path as the API server prints it: `.spec.template.spec.containers[name="app"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Go's encoder escapes HTML-significant characters and the JS line separators.
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's rendering of a value: `encoding/json` (`Json`: sorted keys, `<`, `>`, `&` escaped), or
/// structured-merge-diff's `value.ToString` for conflict paths like `[name="nginx"]` (`Path`:
/// objects as `k=v` pairs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum GoStyle {
    Json,
    Path,
}

fn write_go(out: &mut String, v: &Value, style: GoStyle) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go(out, item, style);
            }
            out.push(']');
        }
        Value::Object(m) if style == GoStyle::Path => {
            for (k, v) in m {
                out.push_str(k);
                out.push('=');
                write_go(out, v, style);
            }
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in sorted_entries(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_go(out, v, style);
            }
            out.push('}');
        }
    }
}

/// Compact JSON as Go's `encoding/json` writes it: sorted keys, `<`, `>`, `&` escaped. Used for
/// FieldsV1 keys and the last-applied annotation, whose exact bytes clients compare.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, v, GoStyle::Json);
    out
}

fn serialize_element(pe: &PathElement) -> String {
    match pe {
        PathElement::Field(name) => format!("f:{name}"),
        PathElement::Key(fields) => {
            let mut out = String::from("k:{");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(&mut out, name);
                out.push(':');
                write_go(&mut out, value, GoStyle::Json);
            }
            out.push('}');
            out
        }
        PathElement::Value(value) => format!("v:{}", go_json(value)),
        PathElement::Index(i) => format!("i:{i}"),
    }
}

fn parse_element(s: &str) -> Result<PathElement, String> {
    let (kind, rest) = s.split_at_checked(2).ok_or_else(|| format!("key must be 2 characters long: {s}"))?;
    match kind {
        "f:" => Ok(PathElement::Field(rest.to_string())),
        "v:" => serde_json::from_str(rest).map(PathElement::Value).map_err(|e| format!("parsing {s}: {e}")),
        "k:" => {
            let fields: Map<String, Value> = serde_json::from_str(rest).map_err(|e| format!("parsing {s}: {e}"))?;
            let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        "i:" => rest.parse().map(PathElement::Index).map_err(|e| format!("parsing {s}: {e}")),
        _ if !kind.ends_with(':') => Err(format!("missing colon: {s}")),
        _ => Err("unknown path element type".to_string()),
    }
}

fn emit_level(paths: &[&[PathElement]]) -> Map<String, Value> {
    let mut out = Map::new();
    let mut i = 0;
    while i < paths.len() {
        let head = &paths[i][0];
        let mut member = false;
        let mut children: Vec<&[PathElement]> = Vec::new();
        // Sorted input keeps every path under one head contiguous.
        while i < paths.len() && paths[i][0] == *head {
            match &paths[i][1..] {
                [] => member = true,
                rest => children.push(rest),
            }
            i += 1;
        }
        let mut node = emit_level(&children);
        if member && !children.is_empty() {
            node.insert(".".to_string(), Value::Object(Map::new()));
        }
        out.insert(serialize_element(head), Value::Object(node));
    }
    out
}

/// The FieldsV1 form of a set: `{"f:spec": {"f:replicas": {}}}`, with `".": {}` where a node is
/// owned itself as well as through children.
pub fn fields_to_json(set: &FieldSet) -> Value {
    let paths: Vec<&[PathElement]> = set.iter().filter(|p| !p.is_empty()).map(Vec::as_slice).collect();
    Value::Object(emit_level(&paths))
}

fn decode_level(v: &Value, prefix: &mut Path, out: &mut FieldSet) -> Result<(), String> {
    let Value::Object(m) = v else {
        return Err(format!("expected an object in FieldsV1, got {v}"));
    };
    for (key, child) in m {
        if key == "." {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            continue;
        }
        prefix.push(parse_element(key)?);
        match child {
            Value::Object(c) if c.is_empty() => {
                out.insert(prefix.clone());
            }
            _ => decode_level(child, prefix, out)?,
        }
        prefix.pop();
    }
    Ok(())
}

/// Parses a FieldsV1 object back into a set.
pub fn fields_from_json(v: &Value) -> Result<FieldSet, String> {
    let mut out = FieldSet::new();
    decode_level(v, &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// Adds every object field that has owned descendants, as structured-merge-diff's
/// `EnsureNamedFieldsAreMembers` does before pruning: a field nobody owns anything under can go.
pub fn with_parent_fields(set: &FieldSet) -> FieldSet {
    let mut out = set.clone();
    for path in set {
        for end in 1..path.len() {
            if matches!(path[end - 1], PathElement::Field(_)) {
                out.insert(path[..end].to_vec());
            }
        }
    }
    out
}

/// Members first, then children, depth first: the order conflicts are listed in.
pub fn iteration_order(set: &FieldSet) -> Vec<Path> {
    fn walk(paths: &[&[PathElement]], prefix: &mut Path, out: &mut Vec<Path>) {
        for p in paths.iter().filter(|p| p.len() == 1) {
            let mut full = prefix.clone();
            full.push(p[0].clone());
            out.push(full);
        }
        let deeper: Vec<&[PathElement]> = paths.iter().copied().filter(|p| p.len() > 1).collect();
        let mut i = 0;
        while i < deeper.len() {
            let head = &deeper[i][0];
            let mut children = Vec::new();
            while i < deeper.len() && deeper[i][0] == *head {
                children.push(&deeper[i][1..]);
                i += 1;
            }
            prefix.push(head.clone());
            walk(&children, prefix, out);
            prefix.pop();
        }
    }
    let paths: Vec<&[PathElement]> = set.iter().filter(|p| !p.is_empty()).map(Vec::as_slice).collect();
    let mut out = Vec::new();
    walk(&paths, &mut Vec::new(), &mut out);
    out
}

/// Added, modified and removed paths between two objects (`typed.Compare`). Leaves are compared
/// by value; objects, lists and list items show up as added or removed when they appear or
/// disappear as a whole.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

enum Node {
    Absent,
    Empty,
    Map,
    List(ListType),
    Leaf,
}

/// Walks JSON objects with the list semantics of a [`ListSchema`].
pub struct Walker<'s> {
    pub lists: &'s dyn ListSchema,
}

impl Walker<'_> {
    fn atomic(&self, names: &[&str]) -> bool {
        !names.is_empty() && self.lists.atomic_map(names)
    }

    /// The path element of a list item. Lenient where the API server would reject the object
    /// (see [`Walker::validate`]): missing key fields are left out of the key, non-object items
    /// of a map list are identified by value.
    pub fn element(&self, item: &Value, list: &ListType, names: &[&str]) -> PathElement {
        match (list, item) {
            (ListType::Map(keys), Value::Object(m)) => {
                let mut fields: Vec<(String, Value)> = keys
                    .iter()
                    .filter_map(|k| {
                        let value = m.get(k).cloned().or_else(|| self.lists.key_default(names, k))?;
                        Some((k.clone(), value))
                    })
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                PathElement::Key(fields)
            }
            _ => PathElement::Value(item.clone()),
        }
    }

    fn node(&self, v: Option<&Value>, names: &[&str]) -> Node {
        match v {
            None => Node::Absent,
            Some(Value::Null) => Node::Empty,
            Some(Value::Object(m)) if !self.atomic(names) => {
                if m.is_empty() {
                    Node::Empty
                } else {
                    Node::Map
                }
            }
            Some(Value::Array(items)) => match self.lists.list_type(names) {
                ListType::Atomic => Node::Leaf,
                _ if items.is_empty() => Node::Empty,
                list => Node::List(list),
            },
            Some(_) => Node::Leaf,
        }
    }

    /// The fields an applied configuration sets (`ToFieldSet`): leaves, explicit nulls, empty
    /// objects, atomic lists and maps, and every item of a set or map list.
    pub fn to_set(&self, v: &Value) -> FieldSet {
        let mut out = FieldSet::new();
        self.collect(v, &mut Vec::new(), &mut Vec::new(), &mut out);
        out
    }

    fn collect<'v>(&self, v: &'v Value, path: &mut Path, names: &mut Vec<&'v str>, out: &mut FieldSet) {
        match v {
            Value::Object(_) if self.atomic(names) => {
                out.insert(path.clone());
            }
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    names.push(k);
                    if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                        out.insert(path.clone());
                    } else {
                        self.collect(child, path, names, out);
                    }
                    names.pop();
                    path.pop();
                }
            }
            Value::Array(items) => match self.lists.list_type(names) {
                ListType::Atomic => {
                    out.insert(path.clone());
                }
                list => {
                    let elements: Vec<PathElement> = items.iter().map(|i| self.element(i, &list, names)).collect();
                    let mut seen = BTreeSet::new();
                    let duplicated: BTreeSet<&PathElement> = elements.iter().filter(|pe| !seen.insert(*pe)).collect();
                    for (item, pe) in items.iter().zip(&elements) {
                        path.push(pe.clone());
                        // A duplicated item cannot be told apart from its twin, so only its
                        // identity is recorded, as the API server does.
                        if !duplicated.contains(pe) {
                            self.collect(item, path, names, out);
                        }
                        out.insert(path.clone());
                        path.pop();
                    }
                }
            },
            _ => {
                out.insert(path.clone());
            }
        }
    }

    /// Compares `old` with `new` (both whole objects).
    pub fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let mut c = Comparison::default();
        self.compare_at(Some(old), Some(new), &mut Vec::new(), &mut Vec::new(), &mut c);
        c
    }

    fn compare_at<'v>(
        &self,
        l: Option<&'v Value>,
        r: Option<&'v Value>,
        path: &mut Path,
        names: &mut Vec<&'v str>,
        c: &mut Comparison,
    ) {
        let (ln, rn) = (self.node(l, names), self.node(r, names));
        let container = |n: &Node| matches!(n, Node::Absent | Node::Empty);
        let structural = match (&ln, &rn) {
            (Node::Map, Node::Map) | (Node::List(_), Node::List(_)) => true,
            (Node::Map | Node::List(_), other) | (other, Node::Map | Node::List(_)) => container(other),
            _ => false,
        };
        if !structural {
            match (l, r) {
                (None, Some(_)) => c.added.insert(path.clone()),
                (Some(_), None) => c.removed.insert(path.clone()),
                (Some(a), Some(b)) if !values_equal(a, b) => c.modified.insert(path.clone()),
                _ => false,
            };
            return;
        }
        match (&ln, &rn) {
            (Node::Map, _) | (_, Node::Map) => {
                let keys: BTreeSet<&'v String> =
                    [l, r].into_iter().flatten().filter_map(Value::as_object).flat_map(Map::keys).collect();
                for k in keys {
                    path.push(PathElement::Field(k.clone()));
                    names.push(k);
                    self.compare_at(l.and_then(|v| v.get(k)), r.and_then(|v| v.get(k)), path, names, c);
                    names.pop();
                    path.pop();
                }
            }
            _ => {
                let list = match (&ln, &rn) {
                    (Node::List(list), _) | (_, Node::List(list)) => list.clone(),
                    _ => ListType::Atomic,
                };
                let index = |v: Option<&'v Value>| -> Vec<(PathElement, &'v Value)> {
                    let items = v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                    let mut seen = BTreeSet::new();
                    items
                        .iter()
                        .map(|item| (self.element(item, &list, names), item))
                        .filter(|(pe, _)| seen.insert(pe.clone()))
                        .collect()
                };
                let (li, ri) = (index(l), index(r));
                let rmap: BTreeMap<&PathElement, &'v Value> = ri.iter().map(|(pe, v)| (pe, *v)).collect();
                let lmap: BTreeMap<&PathElement, &'v Value> = li.iter().map(|(pe, v)| (pe, *v)).collect();
                let order =
                    li.iter().map(|(pe, _)| pe).chain(ri.iter().map(|(pe, _)| pe).filter(|pe| !lmap.contains_key(pe)));
                for pe in order {
                    path.push(pe.clone());
                    self.compare_at(lmap.get(pe).copied(), rmap.get(pe).copied(), path, names, c);
                    path.pop();
                }
            }
        }
        if !path.is_empty() {
            if l.is_none() {
                c.added.insert(path.clone());
            } else if r.is_none() {
                c.removed.insert(path.clone());
            }
        }
    }

    /// Merges an applied configuration into the live object (`TypedValue.Merge`): objects merge
    /// field by field, set and map lists merge item by item keeping the applied order, everything
    /// else (scalars, atomic lists and maps, explicit nulls) is taken from `config`.
    pub fn merge(&self, live: &Value, config: &Value) -> Value {
        self.merge_at(Some(live), config, &mut Vec::new())
    }

    fn merge_at<'v>(&self, l: Option<&'v Value>, r: &'v Value, names: &mut Vec<&'v str>) -> Value {
        match (l, r) {
            (Some(Value::Object(lm)), Value::Object(rm)) if !self.atomic(names) => {
                let mut out = lm.clone();
                for (k, rv) in rm {
                    names.push(k);
                    let merged = self.merge_at(lm.get(k), rv, names);
                    names.pop();
                    out.insert(k.clone(), merged);
                }
                Value::Object(out)
            }
            (Some(Value::Array(la)), Value::Array(ra)) => match self.lists.list_type(names) {
                ListType::Atomic => r.clone(),
                list => Value::Array(self.merge_list(la, ra, &list, names)),
            },
            _ => r.clone(),
        }
    }

    /// Interleaves live and applied items like structured-merge-diff: applied items keep their
    /// order, live-only items stay where they were relative to the items both sides share.
    fn merge_list<'v>(&self, l: &'v [Value], r: &'v [Value], list: &ListType, names: &mut Vec<&'v str>) -> Vec<Value> {
        let lpes: Vec<PathElement> = l.iter().map(|i| self.element(i, list, names)).collect();
        let rpes: Vec<PathElement> = r.iter().map(|i| self.element(i, list, names)).collect();
        let first = |pes: &[PathElement]| {
            let mut m: BTreeMap<PathElement, usize> = BTreeMap::new();
            for (i, pe) in pes.iter().enumerate() {
                m.entry(pe.clone()).or_insert(i);
            }
            m
        };
        let (lfirst, rfirst) = (first(&lpes), first(&rpes));
        let mut shared = rpes.iter().filter(|pe| lfirst.contains_key(*pe));
        let mut next_shared = shared.next();
        let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(l.len().max(r.len()));
        let (mut li, mut ri) = (0, 0);
        while li < l.len() || ri < r.len() {
            if li < l.len() && ri < r.len() {
                let pe = &lpes[li];
                if *pe == rpes[ri] {
                    merged_rhs.insert(pe);
                    out.push(self.merge_at(Some(&l[lfirst[pe]]), &r[rfirst[pe]], names));
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                // A shared item that is not due yet waits for its turn on the applied side.
                if rfirst.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < l.len() {
                let pe = &lpes[li];
                if !rfirst.contains_key(pe) {
                    out.push(l[li].clone());
                    li += 1;
                    continue;
                } else if merged_rhs.contains(pe) {
                    li += 1;
                }
            }
            if ri < r.len() {
                let pe = &rpes[ri];
                merged_rhs.insert(pe);
                out.push(self.merge_at(lfirst.get(pe).map(|&i| &l[i]), &r[rfirst[pe]], names));
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.next();
                }
            }
        }
        out
    }

    /// Removes the nulls an applied configuration set: the typed object the API server stores
    /// has no such fields.
    pub fn drop_applied_nulls(&self, target: &mut Value, config: &Value) {
        self.drop_nulls_at(target, config, &mut Vec::new());
    }

    fn drop_nulls_at<'v>(&self, target: &mut Value, config: &'v Value, names: &mut Vec<&'v str>) {
        match (target, config) {
            (Value::Object(tm), Value::Object(cm)) => {
                for (k, cv) in cm {
                    if cv.is_null() {
                        if tm.get(k).is_some_and(Value::is_null) {
                            tm.remove(k);
                        }
                        continue;
                    }
                    if let Some(tv) = tm.get_mut(k) {
                        names.push(k);
                        self.drop_nulls_at(tv, cv, names);
                        names.pop();
                    }
                }
            }
            (Value::Array(ta), Value::Array(ca)) => match self.lists.list_type(names) {
                ListType::Atomic => ta.iter_mut().for_each(strip_nulls),
                ListType::Set => {}
                list => {
                    for citem in ca {
                        let pe = self.element(citem, &list, names);
                        if let Some(t) = ta.iter_mut().find(|t| self.element(t, &list, names) == pe) {
                            self.drop_nulls_at(t, citem, names);
                        }
                    }
                }
            },
            _ => {}
        }
    }

    /// The value at `path`, if the object has it.
    pub fn find<'v>(&self, root: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
        let mut cur = root;
        let mut names: Vec<&str> = Vec::new();
        for pe in path {
            cur = match pe {
                PathElement::Field(name) => {
                    names.push(name);
                    cur.as_object()?.get(name)?
                }
                PathElement::Index(i) => cur.as_array()?.get(*i)?,
                PathElement::Key(_) | PathElement::Value(_) => {
                    let list = self.lists.list_type(&names);
                    cur.as_array()?.iter().find(|item| self.element(item, &list, &names) == *pe)?
                }
            };
        }
        Some(cur)
    }

    fn find_mut<'v>(&self, root: &'v mut Value, path: &[PathElement]) -> Option<&'v mut Value> {
        let mut cur = root;
        let mut names: Vec<&str> = Vec::new();
        for pe in path {
            cur = match pe {
                PathElement::Field(name) => {
                    names.push(name);
                    cur.as_object_mut()?.get_mut(name)?
                }
                PathElement::Index(i) => cur.as_array_mut()?.get_mut(*i)?,
                PathElement::Key(_) | PathElement::Value(_) => {
                    let list = self.lists.list_type(&names);
                    let items = cur.as_array_mut()?;
                    let at = items.iter().position(|item| self.element(item, &list, &names) == *pe)?;
                    &mut items[at]
                }
            };
        }
        Some(cur)
    }

    /// Removes the field or list item at `path` (every item with that identity). An object or
    /// list emptied by the removal is dropped from its parent object too: the API server turns it
    /// into null, which the typed object it stores cannot hold (one level only, as there).
    pub fn remove(&self, root: &mut Value, path: &[PathElement]) -> bool {
        self.remove_at(root, path, true)
    }

    fn remove_at(&self, root: &mut Value, path: &[PathElement], drop_emptied: bool) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let names: Vec<&str> = parent_path
            .iter()
            .filter_map(|pe| match pe {
                PathElement::Field(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        let Some(parent) = self.find_mut(root, parent_path) else {
            return false;
        };
        let (removed, emptied) = match (last, parent) {
            (PathElement::Field(name), Value::Object(m)) => (m.remove(name).is_some(), m.is_empty()),
            (PathElement::Index(i), Value::Array(items)) if *i < items.len() => {
                items.remove(*i);
                (true, items.is_empty())
            }
            (PathElement::Key(_) | PathElement::Value(_), Value::Array(items)) => {
                let list = self.lists.list_type(&names);
                let before = items.len();
                items.retain(|item| self.element(item, &list, &names) != *last);
                (items.len() != before, items.is_empty())
            }
            _ => (false, false),
        };
        if drop_emptied && removed && emptied && matches!(parent_path.last(), Some(PathElement::Field(_))) {
            self.remove_at(root, parent_path, false);
        }
        removed
    }

    /// What the API server rejects in an applied configuration: map-list items that are not
    /// objects or lack every key, set items that are objects, lists or null, and duplicates.
    pub fn validate(&self, v: &Value) -> Result<(), String> {
        let mut errors = Vec::new();
        self.validate_at(v, &mut Vec::new(), &mut Vec::new(), &mut errors);
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(format!("errors:\n  {}", errors.join("\n  "))),
        }
    }

    fn validate_at<'v>(&self, v: &'v Value, path: &mut Path, names: &mut Vec<&'v str>, errors: &mut Vec<String>) {
        match v {
            Value::Object(m) if !self.atomic(names) => {
                for (k, child) in m {
                    path.push(PathElement::Field(k.clone()));
                    names.push(k);
                    self.validate_at(child, path, names, errors);
                    names.pop();
                    path.pop();
                }
            }
            Value::Array(items) => {
                let list = self.lists.list_type(names);
                if list == ListType::Atomic {
                    return;
                }
                let at = path_string(path);
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    if let Some(problem) = self.item_problem(item, &list, names) {
                        errors.push(format!("{at}: element {i}: {problem}"));
                        continue;
                    }
                    let pe = self.element(item, &list, names);
                    if !seen.insert(pe.clone()) {
                        errors.push(format!("{at}: duplicate entries for key {pe}"));
                        continue;
                    }
                    path.push(pe);
                    self.validate_at(item, path, names, errors);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn item_problem(&self, item: &Value, list: &ListType, names: &[&str]) -> Option<String> {
        match (list, item) {
            (ListType::Map(_), Value::Null) => Some("associative list with keys may not have a null element".into()),
            (ListType::Map(keys), Value::Object(m)) => {
                let any = keys.iter().any(|k| m.contains_key(k) || self.lists.key_default(names, k).is_some());
                (!any).then(|| {
                    let quoted: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
                    format!(
                        "associative list with keys has an element that omits all key fields [{}] \
                         (and doesn't have default values for any key fields)",
                        quoted.join(" ")
                    )
                })
            }
            (ListType::Map(_), _) => Some("associative list with keys may not have non-map elements".into()),
            (_, Value::Object(_)) => Some("associative list without keys has an element that's a map type".into()),
            (_, Value::Array(_)) => Some("not supported: associative list with lists as elements".into()),
            (_, Value::Null) => Some("associative list without keys has an element that's an explicit null".into()),
            _ => None,
        }
    }
}

/// Drops null object members anywhere below `v`.
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::lists::BuiltinLists;
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn key(name: &str, value: Value) -> PathElement {
        PathElement::Key(vec![(name.to_string(), value)])
    }

    #[test]
    fn fields_v1_round_trip_with_dot() {
        let set: FieldSet = [
            vec![f("metadata"), f("labels"), f("app")],
            vec![f("spec"), f("containers"), key("name", json!("a"))],
            vec![f("spec"), f("containers"), key("name", json!("a")), f("image")],
            vec![f("spec"), f("finalizers"), PathElement::Value(json!("x"))],
        ]
        .into_iter()
        .collect();
        let json = fields_to_json(&set);
        assert_eq!(
            json,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}},
                    "f:finalizers": {"v:\"x\"": {}}
                }
            })
        );
        assert_eq!(fields_from_json(&json).unwrap(), set);
        assert!(fields_from_json(&json!({"x:y": {}})).is_err());
        assert!(fields_from_json(&json!({"f:a": 1})).is_err());
        assert_eq!(fields_from_json(&json!({"i:3": {}})).unwrap(), [vec![PathElement::Index(3)]].into());
    }

    #[test]
    fn key_elements_sort_fields_and_compare_numbers_by_value() {
        let parsed = fields_from_json(&json!({"k:{\"protocol\":\"TCP\",\"containerPort\":80}": {}})).unwrap();
        let expected = PathElement::Key(vec![("containerPort".into(), json!(80.0)), ("protocol".into(), json!("TCP"))]);
        assert_eq!(parsed.iter().next().unwrap()[0], expected);
        assert_eq!(serialize_element(&expected), "k:{\"containerPort\":80,\"protocol\":\"TCP\"}");
        assert_eq!(path_string(&[f("spec"), expected]), ".spec[containerPort=80,protocol=\"TCP\"]");
        assert_eq!(path_string(&[f("a"), PathElement::Value(json!("x")), PathElement::Index(2)]), ".a[=\"x\"][2]");
    }

    #[test]
    fn go_json_sorts_and_escapes() {
        assert_eq!(
            go_json(&json!({"b": 1, "a": "<&>", "c": [true, null]})),
            r#"{"a":"\u003c\u0026\u003e","b":1,"c":[true,null]}"#
        );
    }

    #[test]
    fn iteration_order_lists_members_before_children() {
        let set: FieldSet =
            [vec![f("spec"), f("z")], vec![f("spec"), f("a"), f("b")], vec![f("kind")]].into_iter().collect();
        let order: Vec<String> = iteration_order(&set).iter().map(|p| path_string(p)).collect();
        assert_eq!(order, vec![".kind", ".spec.z", ".spec.a.b"]);
    }

    #[test]
    fn to_set_uses_keys_defaults_and_atomic_types() {
        let w = Walker { lists: &BuiltinLists };
        let obj = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [
            {"name": "c", "ports": [{"containerPort": 80}], "args": ["x"], "resources": {}}
        ]}}}});
        let got: Vec<String> = w.to_set(&obj).iter().map(|p| path_string(p)).collect();
        assert_eq!(
            got,
            vec![
                ".spec.selector",
                ".spec.template.spec.containers[name=\"c\"]",
                ".spec.template.spec.containers[name=\"c\"].args",
                ".spec.template.spec.containers[name=\"c\"].name",
                ".spec.template.spec.containers[name=\"c\"].ports[containerPort=80,protocol=\"TCP\"]",
                ".spec.template.spec.containers[name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].containerPort",
                ".spec.template.spec.containers[name=\"c\"].resources",
            ]
        );
    }

    #[test]
    fn compare_reports_structural_adds_and_removes() {
        let w = Walker { lists: &BuiltinLists };
        let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "paused": false}});
        let new = json!({"metadata": {"annotations": {"x": "y"}}, "spec": {"replicas": 2, "paused": false}});
        let c = w.compare(&old, &new);
        let s = |set: &FieldSet| set.iter().map(|p| path_string(p)).collect::<Vec<_>>();
        assert_eq!(s(&c.added), vec![".metadata.annotations", ".metadata.annotations.x"]);
        assert_eq!(s(&c.removed), vec![".metadata.labels", ".metadata.labels.a"]);
        assert_eq!(s(&c.modified), vec![".spec.replicas"]);
    }

    #[test]
    fn merge_interleaves_list_items_like_smd() {
        let w = Walker { lists: &BuiltinLists };
        let item = |n: &str| json!({"name": n});
        let live = json!({"spec": {"containers": [item("a"), item("x"), item("b")]}});
        let config = json!({"spec": {"containers": [item("b"), item("n"), item("a")]}});
        let merged = w.merge(&live, &config);
        let names: Vec<&str> =
            merged["spec"]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["x", "b", "n", "a"]);
    }

    #[test]
    fn remove_drops_emptied_parents_and_find_follows_keys() {
        let w = Walker { lists: &BuiltinLists };
        let mut obj = json!({"metadata": {"name": "n", "labels": {"a": "1"}, "finalizers": ["f"]}});
        assert!(w.find(&obj, &[f("metadata"), f("finalizers"), PathElement::Value(json!("f"))]).is_some());
        assert!(w.remove(&mut obj, &[f("metadata"), f("labels"), f("a")]));
        assert!(w.remove(&mut obj, &[f("metadata"), f("finalizers"), PathElement::Value(json!("f"))]));
        assert!(!w.remove(&mut obj, &[f("metadata"), f("nothing")]));
        assert_eq!(obj, json!({"metadata": {"name": "n"}}));
    }

    #[test]
    fn validate_rejects_what_the_api_server_rejects() {
        let w = Walker { lists: &BuiltinLists };
        let dup = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        assert_eq!(w.validate(&dup).unwrap_err(), ".spec.containers: duplicate entries for key [name=\"a\"]");
        let keyless = json!({"spec": {"containers": [{"image": "x"}]}});
        assert!(
            w.validate(&keyless)
                .unwrap_err()
                .contains("element 0: associative list with keys has an element that omits all key fields [\"name\"]")
        );
        let bad_set = json!({"metadata": {"finalizers": [{"a": 1}, null]}});
        assert!(w.validate(&bad_set).unwrap_err().starts_with("errors:\n  .metadata.finalizers: element 0"));
        // A port without protocol is fine: the key has a default.
        assert!(w.validate(&json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1}]}]}})).is_ok());
    }
}
