//! The object store: every object by group, resource, namespace and name, one global
//! resourceVersion counter (as etcd's revision), and the recent change history that watches
//! resume from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::GroupResource;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub gr: GroupResource,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(gr: &GroupResource, namespace: Option<&str>, name: &str) -> Self {
        Key { gr: gr.clone(), namespace: namespace.unwrap_or_default().to_owned(), name: name.to_owned() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. `old` lets a filtered watch turn "stopped matching" into DELETED.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub gr: GroupResource,
    pub kind: EventType,
    pub object: Value,
    pub old: Option<Value>,
}

/// How many changes watches can resume from; older resourceVersions get 410 Gone.
const HISTORY: usize = 20_000;

pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this rv are gone from `history` (compaction).
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Store { objects: BTreeMap::new(), rv: 1, history: VecDeque::new(), compacted: 1, tx }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can still resume after.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    /// Forgets the history (as an etcd compaction does): watches from older versions get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, in one namespace or all, in key order (the list order).
    pub fn list<'a>(
        &'a self,
        gr: &GroupResource,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> {
        let start = Key::new(gr, namespace, "");
        let gr = gr.clone();
        let ns = namespace.map(str::to_owned);
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.gr == gr && ns.as_ref().is_none_or(|n| *n == k.namespace))
    }

    /// Every stored object (for controllers that scan, such as garbage collection).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Changes after `rv`, or None when `rv` is older than the history (410 Gone).
    pub fn changes_since(&self, rv: u64) -> Option<Vec<Arc<Change>>> {
        if rv < self.compacted {
            return None;
        }
        Some(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Stores `object` under `key`, stamping a new resourceVersion, and records the change.
    pub fn put(&mut self, key: Key, mut object: Value) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let old = self.objects.insert(key.clone(), object.clone());
        let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
        self.record(key.gr, kind, object.clone(), old);
        object
    }

    /// Removes `key`; the DELETED event carries a new resourceVersion, as the real server's does.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        self.record(key.gr.clone(), EventType::Deleted, object.clone(), None);
        Some(object)
    }

    fn record(&mut self, gr: GroupResource, kind: EventType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change { rv: self.rv, gr, kind, object, old });
        if self.history.len() == HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.rv;
        }
        self.history.push_back(change.clone());
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(change);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_grow_and_history_resumes() {
        let mut s = Store::new();
        let gr = GroupResource::new("", "configmaps");
        let a = s.put(Key::new(&gr, Some("ns"), "a"), json!({"metadata": {"name": "a"}}));
        let rv_a: u64 = a["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        s.put(Key::new(&gr, Some("ns"), "b"), json!({"metadata": {"name": "b"}}));
        s.remove(&Key::new(&gr, Some("ns"), "a")).unwrap();
        let since = s.changes_since(rv_a).unwrap();
        assert_eq!(since.iter().map(|c| c.kind).collect::<Vec<_>>(), [EventType::Added, EventType::Deleted]);
        assert_eq!(s.list(&gr, Some("ns")).count(), 1);
        assert_eq!(s.list(&gr, Some("other")).count(), 0);
        s.compact();
        assert!(s.changes_since(rv_a).is_none(), "compacted history answers Gone");
        assert!(s.changes_since(s.current_rv()).unwrap().is_empty());
    }

    #[test]
    fn list_stays_inside_its_resource_and_namespace() {
        let mut s = Store::new();
        let cm = GroupResource::new("", "configmaps");
        let sec = GroupResource::new("", "secrets");
        s.put(Key::new(&cm, Some("a"), "x"), json!({}));
        s.put(Key::new(&cm, Some("b"), "x"), json!({}));
        s.put(Key::new(&sec, Some("a"), "x"), json!({}));
        assert_eq!(s.list(&cm, None).count(), 2);
        assert_eq!(s.list(&cm, Some("a")).count(), 1);
        assert_eq!(s.list(&sec, None).count(), 1);
    }
}
