//! Watch: the initial state or the history after a resourceVersion, then live changes, with
//! selector transitions (an object that stops matching is DELETED for that watch), bookmarks,
//! `sendInitialEvents`, `timeoutSeconds`, and 410 Gone for a compacted resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::list::ListOptions;
use super::{ApiError, ApiResult, Cluster, as_version};
use crate::resources::ResourceType;
use crate::store::{Change, EventType};

/// How often a watch that asked for bookmarks gets one (the real server: about a minute).
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// Turns an object into what the watch sends (the object itself, or a one-row Table).
pub type Render = Box<dyn Fn(&Value) -> Value + Send + Sync>;

pub struct WatchSpec {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub opts: ListOptions,
    pub render: Render,
}

impl WatchSpec {
    fn in_scope(&self, c: &Change) -> bool {
        c.gr == self.rt.gr()
            && self.namespace.as_ref().is_none_or(|ns| c.object["metadata"]["namespace"].as_str() == Some(ns.as_str()))
    }

    /// The event this watch sends for a change, if any.
    fn event_for(&self, c: &Change) -> Option<Value> {
        let now = self.opts.matches(&c.object);
        let before = c.old.as_ref().is_some_and(|o| self.opts.matches(o));
        let kind = match c.kind {
            EventType::Added if now => EventType::Added,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            EventType::Deleted if now => EventType::Deleted,
            _ => return None,
        };
        Some(json!({"type": kind.as_str(), "object": (self.render)(&as_version(&c.object, &self.rt))}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta}})
    }
}

fn gone(rv: &str, oldest: u64) -> Value {
    let status = ApiError::gone(format!("too old resource version: {rv} ({oldest})")).status();
    json!({"type": "ERROR", "object": status})
}

impl Cluster {
    /// Starts a watch; the receiver yields one JSON event per item until the watch ends.
    pub fn watch(self: &Arc<Self>, spec: WatchSpec) -> ApiResult<mpsc::Receiver<Value>> {
        let (tx, rx) = mpsc::channel::<Value>(1024);
        let mut kill = self.watch_kill.subscribe();
        let (mut live, first, mut last_rv) = {
            let inner = self.lock();
            let live = inner.store.subscribe();
            let current = inner.store.current_rv();
            let mut first = Vec::new();
            let rv = spec.opts.resource_version.clone();
            let from_state = spec.opts.send_initial_events || rv.as_deref().is_none_or(|r| r == "0");
            if from_state {
                for (_, obj) in inner.store.list(&spec.rt.gr(), spec.namespace.as_deref()) {
                    if spec.opts.matches(obj) {
                        first.push(json!({"type": "ADDED", "object": (spec.render)(&as_version(obj, &spec.rt))}));
                    }
                }
                if spec.opts.send_initial_events {
                    first.push(spec.bookmark(current, true));
                }
                (live, first, current)
            } else {
                let rv_str = rv.unwrap_or_default();
                let Ok(from) = rv_str.parse::<u64>() else {
                    return Err(ApiError::bad_request(format!("invalid resource version {rv_str:?}")));
                };
                match inner.store.changes_since(from) {
                    None => {
                        first.push(gone(&rv_str, inner.store.compacted_rv()));
                        drop(inner);
                        let _ = tx.try_send(first.remove(0));
                        return Ok(rx);
                    }
                    Some(changes) => {
                        for c in changes.iter().filter(|c| spec.in_scope(c)) {
                            if let Some(e) = spec.event_for(c) {
                                first.push(e);
                            }
                        }
                        (live, first, current.max(from))
                    }
                }
            }
        };
        let timeout = spec.opts.timeout_seconds.map(Duration::from_secs);
        tokio::spawn(async move {
            for e in first {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let mut bookmarks = tokio::time::interval(BOOKMARK_EVERY);
            bookmarks.tick().await;
            loop {
                let sleep_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
                // Biased, kill first: a watch dropped by `/kubesim/drop-watches` must not deliver
                // a change made after the drop answered (an unbiased pick sometimes did, which
                // moved the client's resourceVersion past a later compaction).
                tokio::select! {
                    biased;
                    _ = kill.changed() => return,
                    _ = tokio::time::sleep_until(sleep_until) => return,
                    _ = bookmarks.tick(), if spec.opts.allow_bookmarks => {
                        if tx.send(spec.bookmark(last_rv, false)).await.is_err() { return; }
                    }
                    change = live.recv() => {
                        let Ok(c) = change else { return };
                        if c.rv <= last_rv { continue; }
                        last_rv = c.rv;
                        if !spec.in_scope(&c) { continue; }
                        if let Some(e) = spec.event_for(&c)
                            && tx.send(e).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}
